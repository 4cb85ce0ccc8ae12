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
