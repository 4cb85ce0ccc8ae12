"""The ``sophgo`` device kind: a TPU box (one or more BM1684X-class chips) over SSH, one slot per chip.

What a TPU box adds to an SSH device (:mod:`actors.ssh_device`, :mod:`actors.box`):

* **Slots** — the inventory's ``chips:``, else the chips ``bm-smi --noloop`` lists when the actor starts (once;
  if the box cannot be asked then, the inventory's single default slot ``chip0`` is used and a warning says to
  list ``chips:``). Slot ``<id>/chip<N>`` renders ``{device.chip}`` as ``N`` for the demos' ``--devid``. Every
  slot runs over the box's one SSH connection, so a two-chip box runs two benchmarks at once.
* **Sampler** — one ``bm-smi --noloop`` per poll for the whole box (:class:`~actors.box.BoxMonitor`), each run
  keeping its own chip's maxima: ``tpu_mem_peak_mb`` (device memory used on the chip, MB as bm-smi prints
  them, so it includes the runtime's idle footprint), ``tpu_util_max_pct`` (``Tpu-Util``), ``temp_max_c``
  (``chipT``), plus ``sampler_polls`` / ``sampler_poll_ms``. A run shorter than the first poll (0.2 s) has none.
* **Bmodels** — before a run starts, every ``*.bmodel`` named in its command (``--model_path a.bmodel`` or
  ``-m a.bmodel,b.bmodel``; relative to the workdir) is read with ``model_tool --info`` (pushed first when it is
  an artifact, so the figures are of the file the run loads; cached by content hash, or by size and mtime for
  files kept on the box): ``bmodel_device_mem_mib``, ``bmodel_weight_mib``, ``bmodel_instruct_mib``,
  ``bmodel_runtime_mib`` (MiB). A file's figure is its whole-file ``device mem size`` line when the dump has
  one, else the sum over its nets of each net's largest stage (a net's stages share its weights).
* **Shared weights** — a run that loads several bmodels together (``-m a.bmodel,b.bmodel``) relies on them
  sharing one copy of the weights, which LLM-TPU requires to be identical in size. The box checks the
  ``model_tool --info`` weight sizes before starting the demo; if they differ the run is refused: its row is
  ``failed`` with an error naming both files and sizes, and no device time is spent. Such a run's columns count
  the shared weights once (``bmodel_count``, ``bmodel_weights_identical`` say what was checked). Variants of one
  model measured in separate runs are compared with a query instead (see ``docs/boxes.md``).
* **Fingerprint** — the remote host's (:meth:`~actors.ssh_device.SshDevice.host_fingerprint`) plus ``fp_tpu_name``
  (``1684X-SC7``), ``fp_tpu_chips``, ``fp_tpu_sdk``, ``fp_tpu_driver`` from the bm-smi header, and the device
  memory split ``fp_tpu_mem_npu_mib`` / ``_vpu_`` / ``_vpp_`` read with ``memory_edit.sh -p`` (the inventory's
  ``memory_edit:``) — read, never changed: ``-c`` (set) is the researcher's, followed by a reboot.
* **Exact weights** — ``bmodel_weight_bytes`` is the weight size ``model_tool --info`` printed, to the byte.
* **Temperature** — the hottest chip's ``chipT`` (a reading under 2 s old is reused), for the thermal gate.
"""

from __future__ import annotations

import dataclasses
import logging
import posixpath
import re
import shlex
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from actors.artifacts import local_copy
from actors.box import AcceleratorBox, Reading
from actors.messages import RunRequest, RunResult
from farm.errors import OutputParseError, RunRefused
from farm.probes.bm_smi import BmSmiReport, parse_bm_smi
from farm.probes.model_tool_info import ModelToolInfo, parse_model_tool_info
from farm.specs.inventory import SophgoDevice
from farm.workloads.textscan import strip_ansi

log = logging.getLogger(__name__)

BM_SMI = ("bm-smi", "--noloop")
MODEL_TOOL = "model_tool"
COLUMNS = {"mem_used_mb": "tpu_mem_peak_mb", "util_pct": "tpu_util_max_pct", "temp_c": "temp_max_c"}
_MIB = float(1 << 20)
_SDK = re.compile(r"SDK Version\s*:\s*(\S+)", re.IGNORECASE)
_DRIVER = re.compile(r"Driver Version\s*:\s*(\S+)", re.IGNORECASE)


_SPLIT = {
    name: re.compile(
        rf"\b{name}\b[^:=\n]{{0,20}}[:=]\s*(0x[0-9a-fA-F]+|\d+(?:\.\d+)?)\s*(MiB|MB|M|bytes|B)?", re.IGNORECASE
    )
    for name in ("npu", "vpu", "vpp")
}


def memory_split(text: str) -> dict[str, str]:
    """``fp_tpu_mem_{npu,vpu,vpp}_mib`` from ``memory_edit.sh -p`` (the last figure printed for each heap:
    hexadecimal and unit-less values of a million or more are bytes, anything else MiB)."""
    fp = {}
    for name, pattern in _SPLIT.items():
        found = pattern.findall(strip_ansi(text))
        if not found:
            continue
        raw, unit = found[-1]
        value = float(int(raw, 16)) if raw.lower().startswith("0x") else float(raw)
        if raw.lower().startswith("0x") or unit.lower() in ("bytes", "b") or (not unit and value >= 1e6):
            value /= _MIB
        fp[f"fp_tpu_mem_{name}_mib"] = f"{value:g}"
    return fp


def tpu_readings(report: BmSmiReport) -> dict[int, Reading]:
    """Per chip id: ``mem_used_mb``, ``util_pct``, ``temp_c``, ``power_w``, ``clock_mhz``, ``max_clock_mhz`` (those
    bm-smi printed); the clocks are what bench mode records of a box's state."""
    out: dict[int, Reading] = {}
    for chip in report.chips:
        values = {
            "mem_used_mb": chip.memory_used_mb,
            "util_pct": chip.util_pct,
            "temp_c": chip.chip_temp_c,
            "power_w": chip.power_w,
            "clock_mhz": chip.clock_mhz,
            "max_clock_mhz": chip.max_clock_mhz,
        }
        out[chip.chip_id] = {k: v for k, v in values.items() if v is not None}
    return out


def bm_smi_fingerprint(text: str) -> dict[str, str]:
    """``fp_tpu_sdk``, ``fp_tpu_driver``, ``fp_tpu_name``, ``fp_tpu_chips`` from one bm-smi table."""
    plain = strip_ansi(text)
    report = parse_bm_smi(plain)
    fp = {"fp_tpu_chips": str(len(report.chips))}
    if sdk := _SDK.search(plain):
        fp["fp_tpu_sdk"] = sdk.group(1)
    if driver := _DRIVER.search(plain):
        fp["fp_tpu_driver"] = driver.group(1)
    names = sorted({c.name for c in report.chips if c.name})
    if names:
        fp["fp_tpu_name"] = ",".join(names)
    return fp


# -- bmodels --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BmodelSize:
    """Device memory one bmodel file needs, in bytes (see the module docstring for how nets are combined)."""

    path: str
    device_bytes: int
    weight_bytes: int
    instruct_bytes: int
    runtime_bytes: int


def bmodel_size(path: str, info: ModelToolInfo) -> BmodelSize:
    whole = [e for e in info.entries if e.net is None]
    if whole:
        chosen = [whole[-1]]
    else:
        largest: dict[int | None, int] = {}
        picks = {}
        for i, e in enumerate(info.entries):
            if e.device_mem_bytes >= largest.get(e.net_index, -1):
                largest[e.net_index] = e.device_mem_bytes
                picks[e.net_index] = i
        chosen = [info.entries[i] for i in picks.values()]
    return BmodelSize(
        path=path,
        device_bytes=sum(e.device_mem_bytes for e in chosen),
        weight_bytes=sum(e.weight_bytes for e in chosen),
        instruct_bytes=sum(e.instruct_bytes for e in chosen),
        runtime_bytes=sum(e.runtime_bytes for e in chosen),
    )


def bmodel_paths(argv: Sequence[str]) -> list[str]:
    """Every ``*.bmodel`` named in a command's arguments (``x.bmodel``, ``a.bmodel,b.bmodel``, ``--m=x.bmodel``)."""
    out: list[str] = []
    for arg in argv[1:]:
        value = arg.split("=", 1)[1] if arg.startswith("-") and "=" in arg else arg
        for part in (p.strip() for p in value.split(",")):
            if part.endswith(".bmodel") and part not in out:
                out.append(part)
    return out


def shared_weight_problem(sizes: Sequence[BmodelSize]) -> str | None:
    """Why bmodels loaded together cannot share their weights (their weight sizes differ), or None."""
    if len({s.weight_bytes for s in sizes}) <= 1:
        return None
    listed = ", ".join(f"{posixpath.basename(s.path)} weight {s.weight_bytes} B" for s in sizes)
    return (
        f"bmodels loaded together must share identical weights, but model_tool --info reports {listed}; "
        "recompile them from the same weights (same model, quantisation and group size)"
    )


def bmodel_samples(sizes: Sequence[BmodelSize]) -> dict[str, float]:
    """Row columns (MiB) for the bmodels one run loads; shared weights are counted once."""
    if not sizes:
        return {}
    identical = shared_weight_problem(sizes) is None
    weight = sizes[0].weight_bytes if identical else sum(s.weight_bytes for s in sizes)
    instruct = sum(s.instruct_bytes for s in sizes)
    runtime = sum(s.runtime_bytes for s in sizes)
    device = weight + instruct + runtime if identical else sum(s.device_bytes for s in sizes)
    samples = {
        "bmodel_weight_bytes": float(weight),  # exact: shared weights must match to the byte
        "bmodel_device_mem_mib": round(device / _MIB, 3),
        "bmodel_weight_mib": round(weight / _MIB, 3),
        "bmodel_instruct_mib": round(instruct / _MIB, 3),
        "bmodel_runtime_mib": round(runtime / _MIB, 3),
    }
    if len(sizes) > 1:
        samples["bmodel_count"] = float(len(sizes))
        samples["bmodel_weights_identical"] = float(identical)
    return samples


# -- the device -----------------------------------------------------------------------------------------------


class SophgoBox(AcceleratorBox):
    """A Sophgo TPU box (see the module docstring)."""

    kind = "sophgo"
    columns = COLUMNS
    energy_source = "bm_smi"

    def __init__(self, spec: SophgoDevice) -> None:
        super().__init__(spec)
        self.sophgo = spec
        self._bmodels: dict[str, BmodelSize] = {}
        self._bmodels_lock = threading.Lock()
        self._watch_accelerators(self._read_chips, spec.chips, "chips", "bm-smi", "TPU chips")

    def _read_chips(self) -> dict[int, Reading]:
        return tpu_readings(parse_bm_smi(self.check_output(BM_SMI)))

    # -- hooks ------------------------------------------------------------------------------------------------
    def device_fingerprint(self) -> dict[str, str]:
        fp = self.host_fingerprint()
        try:
            fp.update(bm_smi_fingerprint(self.check_output(BM_SMI)))
        except OutputParseError as exc:
            log.warning("%s: bm-smi output not understood: %s", self.spec.id, exc)
        # read only (-p): the split is set by hand (memory_edit.sh -c …, then a reboot), never by the farm
        done = self.probe([self.sophgo.memory_edit, "-p"])
        split = memory_split(done.stdout) if done.exit_code == 0 else {}
        if not split:
            log.warning("%s: memory split not read (%s -p exited %s): rows will lack fp_tpu_mem_*_mib",
                        self.spec.id, self.sophgo.memory_edit, done.exit_code)  # fmt: skip
        fp.update(split)
        return fp

    # -- bmodels ----------------------------------------------------------------------------------------------
    def before_run(self, req: RunRequest, res: RunResult) -> None:
        names = bmodel_paths(req.argv)
        if not names:
            return
        base = req.workdir if req.workdir is not None else self.remote_home()
        sizes: list[BmodelSize] = []
        for name in names:
            path = posixpath.normpath(posixpath.join(base, name))
            art = next((a for a in req.artifacts if posixpath.normpath(a.dst) == path), None)
            if art is not None:
                # the file the run will load, pushed now so model_tool reads it (the generic push then skips it)
                res.bytes_pushed += self.ssh.push(local_copy(art), art.dst, art.mode).bytes_pushed
            size = self._bmodel_size(path, art.sha256 if art is not None else None)
            if size is None:
                return  # cannot read every file: no columns, no check (a missing file fails the run itself)
            sizes.append(size)
        res.samples.update(bmodel_samples(sizes))
        problem = shared_weight_problem(sizes)
        if problem is not None:
            log.warning("%s: run %s refused: %s", self.spec.id, req.run_id, problem)
            raise RunRefused(f"{self.spec.id}: --model_path {','.join(names)}: {problem}")

    def _bmodel_size(self, path: str, sha256: str | None) -> BmodelSize | None:
        if sha256 is not None:
            key = f"sha256:{sha256}"
        else:
            stat = self.probe(["stat", "-L", "-c", "%s %Y", path])
            if stat.exit_code != 0:
                log.info("%s: no bmodel at %s: %s", self.spec.id, path, stat.stderr.strip()[-200:])
                return None
            key = f"{path}:{stat.stdout.strip()}"
        with self._bmodels_lock:
            cached = self._bmodels.get(key)
        if cached is not None:
            return dataclasses.replace(cached, path=path)
        done = self.probe([MODEL_TOOL, "--info", path])
        try:
            if done.exit_code != 0:
                raise OutputParseError(f"exit {done.exit_code}: {done.stderr.strip()[-200:]}")
            size = bmodel_size(path, parse_model_tool_info(done.stdout))
        except OutputParseError as exc:
            log.warning("%s: %s --info %s: %s", self.spec.id, MODEL_TOOL, shlex.quote(path), exc)
            return None
        with self._bmodels_lock:
            self._bmodels[key] = size
        return size
