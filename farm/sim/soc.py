"""SoC profiles of virtual phones: core layout, clock rates and the identity properties they report."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SocProfile:
    """The hardware facts a virtual phone reports and its scripted workloads use for their speed model."""

    name: str  # e.g. "sm8550", the inventory label
    platform: str  # ro.board.platform
    little: tuple[int, ...]
    big: tuple[int, ...]
    little_max_khz: int
    big_max_khz: int
    little_min_khz: int
    big_min_khz: int
    little_speed: float  # per-core throughput relative to one big core
    gpu: str
    kernel: str  # uname -r

    @property
    def cpus(self) -> tuple[int, ...]:
        return tuple(sorted(self.little + self.big))

    def core_speed(self, cpu: int) -> float:
        return 1.0 if cpu in self.big else self.little_speed

    def max_khz(self, cpu: int) -> int:
        return self.big_max_khz if cpu in self.big else self.little_max_khz

    def min_khz(self, cpu: int) -> int:
        return self.big_min_khz if cpu in self.big else self.little_min_khz


SOC_PROFILES: dict[str, SocProfile] = {
    p.name: p
    for p in (
        SocProfile(
            "sm8550",
            "kalama",
            (0, 1, 2, 3),
            (4, 5, 6, 7),
            2016000,
            2803200,
            307200,
            633600,
            0.45,
            "Adreno (TM) 740",
            "5.15.94-android13-8-farm-sim",
        ),
        SocProfile(
            "sm8650",
            "pineapple",
            (0, 1),
            (2, 3, 4, 5, 6, 7),
            2265600,
            3014400,
            364800,
            633600,
            0.5,
            "Adreno (TM) 750",
            "6.1.25-android14-11-farm-sim",
        ),
        SocProfile(
            "sm8450",
            "taro",
            (0, 1, 2, 3),
            (4, 5, 6, 7),
            1785600,
            2496000,
            300000,
            633600,
            0.42,
            "Adreno (TM) 730",
            "5.10.81-android12-9-farm-sim",
        ),
        SocProfile(
            "mt6983",
            "mt6983",
            (0, 1, 2, 3),
            (4, 5, 6, 7),
            1800000,
            2850000,
            500000,
            650000,
            0.4,
            "Mali-G710 MC10",
            "5.10.66-android12-9-farm-sim",
        ),
    )
}


@dataclass(frozen=True)
class StorageProfile:
    """Flash and loading-thread facts behind the elastic-infer stand-in's decode model.

    Each named profile puts a sparse-loading decode (``LLAMA_LOAD_SPARSE_TENSOR=1``) in one of the three regimes
    of the elastic-infer bound analysis: ``flash`` (slow flash, the loading thread waits on reads: Flash-IO-bound),
    ``ram`` (fast flash and a high index-cache hit rate: RAM-IO-bound), ``sync`` (a costly handshake between the
    compute and loading threads on every decoded token: synchronization-bound). Synthetic settings, chosen so
    the regimes are far apart, not measurements of any phone.
    """

    name: str
    flash_gbps: float  # sequential read bandwidth of the weights file
    cache_hit: float  # share of the active weights LLAMA_USE_OUT_DIM_INDEX_CACHE serves from RAM
    sync_ms_per_thread: float  # compute ↔ loading thread handshake per decoded token, per compute thread


STORAGE_PROFILES: dict[str, StorageProfile] = {
    p.name: p
    for p in (
        StorageProfile("flash", flash_gbps=1.4, cache_hit=0.85, sync_ms_per_thread=2.5),
        StorageProfile("ram", flash_gbps=4.2, cache_hit=0.97, sync_ms_per_thread=2.5),
        StorageProfile("sync", flash_gbps=1.4, cache_hit=0.85, sync_ms_per_thread=150.0),
    )
}
DEFAULT_STORAGE = "flash"


@dataclass(frozen=True)
class OpenClFacts:
    """What MACE's OpenCL runtime reports for a GPU (``OpenCLRuntime: global_mem_cache_size …``)."""

    platform: str
    version: str
    global_mem_cache_size: int
    compute_units: int
    max_wgp_size: int


def opencl_facts(gpu: str) -> OpenClFacts:
    """Synthetic but plausible OpenCL facts for a GPU name of :data:`SOC_PROFILES`."""
    if gpu.startswith("Mali"):
        units = int(gpu.rsplit("MC", 1)[-1]) if "MC" in gpu else 8
        return OpenClFacts(
            "ARM Platform, FULL_PROFILE, OpenCL 3.0 v1.r40p0-farm-sim, unknown",
            "OpenCL 3.0 v1.r40p0-farm-sim",
            1048576,
            units,
            512,
        )
    return OpenClFacts("QUALCOMM Snapdragon(TM), FULL_PROFILE, OpenCL 3.0 , unknown",
                       "OpenCL 3.0 Adreno(TM) 7xx farm-sim", 131072, 6, 1024)  # fmt: skip
