"""The ``ascend`` device kind: an Ascend 310P / 910 server over SSH, one slot per NPU.

What an Ascend server adds to an SSH device (:mod:`actors.ssh_device`, :mod:`actors.box`):

* **Slots** — the inventory's ``npus:``, else the NPUs ``npu-smi info`` lists when the actor starts (once; if the
  server cannot be asked then, the single default slot ``npu0`` is used and a warning says to list ``npus:``).
  A slot's index is the logical device id the CANN runtime uses: the table's ``Device`` / ``Phy-ID`` column
  when it has one (a 310P Duo card holds two), else the NPU id. ``{device.npu}`` renders it.
* **NPU binding** — every run gets ``ASCEND_RT_VISIBLE_DEVICES=<index>`` unless the job's ``env`` sets it.
* **Sampler** — one ``npu-smi info`` per poll for the whole server (:class:`~actors.box.BoxMonitor`), each
  run keeping its own NPU's maxima: ``npu_mem_peak_mb`` (``Memory-Usage`` used, MB: the DDR of a 310P, the
  small control memory of a 910), ``npu_hbm_peak_mb`` (``HBM-Usage`` used; 910 only), ``npu_aicore_max_pct``
  (``AICore(%)``), ``npu_power_max_w`` (``Power(W)``, where the card reports it), ``temp_max_c``, plus
  ``sampler_polls`` / ``sampler_poll_ms``.
* **Fingerprint** — the remote host's (:meth:`~actors.ssh_device.SshDevice.host_fingerprint`) plus ``fp_npu_name``
  (``310P3``), ``fp_npu_count``, ``fp_npu_smi`` and ``fp_npu_driver`` from the ``npu-smi info`` header, and
  from ``npu-smi info -t board -i <npu>`` ``fp_npu_driver`` (``Software Version``) and ``fp_npu_firmware``
  (``Firmware Version``) when the server prints them; per run, where the run executes (the host or the job's
  ``exec: {docker: …}`` container, asked once per container): ``fp_cann`` (the toolkit's
  ``ascend_toolkit_install.info`` under ``$ASCEND_TOOLKIT_HOME``, default
  ``/usr/local/Ascend/ascend-toolkit/latest``), ``fp_torch``, ``fp_torch_npu`` (installed versions), and
  ``fp_container``.
* **Temperature** — the hottest NPU (a reading under 2 s old is reused), for the thermal gate.
"""

from __future__ import annotations

import logging
import re

from actors.box import AcceleratorBox, Reading
from actors.messages import RunRequest
from farm.errors import OutputParseError
from farm.probes.npu_smi import NpuChip, NpuSmiReport, parse_npu_smi
from farm.specs.inventory import AscendDevice, Slot

log = logging.getLogger(__name__)

NPU_SMI = ("npu-smi", "info")
VISIBLE_DEVICES = "ASCEND_RT_VISIBLE_DEVICES"
COLUMNS = {
    "mem_used_mb": "npu_mem_peak_mb",
    "hbm_used_mb": "npu_hbm_peak_mb",
    "aicore_pct": "npu_aicore_max_pct",
    "power_w": "npu_power_max_w",
    "temp_c": "temp_max_c",
}
# CANN toolkit and PyTorch adapter versions where the run executes (the host, or inside the job's container).
# importlib.metadata reads the installed versions without importing torch_npu (which would initialise an NPU).
_RUNTIME_SCRIPT = r"""
d=${ASCEND_TOOLKIT_HOME:-/usr/local/Ascend/ascend-toolkit/latest}
echo __farm_section__cann; cat "$d"/*/ascend_toolkit_install.info 2>/dev/null
echo __farm_section__python
for py in python3 python; do
  command -v "$py" >/dev/null 2>&1 || continue
  "$py" -c 'import importlib.metadata as m
for n in ("torch", "torch_npu"):
    try:
        print(n, m.version(n))
    except Exception:
        pass' 2>/dev/null
  break
done
exit 0
"""
_HEADER = re.compile(r"npu-smi\s+(?P<tool>\S+)\s+Version\s*:\s*(?P<driver>\S+)", re.IGNORECASE)
_KEY_VALUE = re.compile(r"^\s*(?P<key>[A-Za-z][^:]*?)\s*:\s*(?P<value>.*?)\s*$")


def npu_index(chip: NpuChip) -> int:
    """The logical device id of a chip row: its Device / Phy-ID column, else its NPU id."""
    return chip.device_id if chip.device_id is not None else chip.npu_id


def npu_readings(report: NpuSmiReport) -> dict[int, Reading]:
    """Per logical device id: ``mem_used_mb``, ``hbm_used_mb``, ``aicore_pct``, ``temp_c`` (those printed)."""
    out: dict[int, Reading] = {}
    for chip in report.chips:
        values = {
            "mem_used_mb": chip.memory_used_mb,
            "hbm_used_mb": chip.hbm_used_mb,
            "aicore_pct": chip.aicore_pct,
            "power_w": chip.power_w,
            "temp_c": chip.temp_c,
        }
        out[npu_index(chip)] = {k: v for k, v in values.items() if v is not None}
    return out


def runtime_fingerprint(text: str) -> dict[str, str]:
    """``fp_cann`` (``version=`` of the toolkit's install info), ``fp_torch``, ``fp_torch_npu``."""
    fp: dict[str, str] = {}
    section = ""
    for line in text.splitlines():
        if line.startswith("__farm_section__"):
            section = line.removeprefix("__farm_section__").strip()
        elif section == "cann" and line.startswith("version=") and "fp_cann" not in fp:
            fp["fp_cann"] = line.partition("=")[2].strip()
        elif section == "python" and len(parts := line.split()) == 2 and parts[0] in ("torch", "torch_npu"):
            fp[f"fp_{parts[0]}"] = parts[1]
    return fp


def npu_smi_fingerprint(text: str) -> dict[str, str]:
    """``fp_npu_name``, ``fp_npu_count``, ``fp_npu_smi``, ``fp_npu_driver`` from one ``npu-smi info`` table."""
    report = parse_npu_smi(text)
    fp = {"fp_npu_count": str(len({npu_index(c) for c in report.chips}))}
    names = sorted({c.name for c in report.chips if c.name})
    if names:
        fp["fp_npu_name"] = ",".join(names)
    if header := _HEADER.search(text):
        fp["fp_npu_smi"] = header["tool"]
        fp["fp_npu_driver"] = header["driver"]
    return fp


def board_fingerprint(text: str) -> dict[str, str]:
    """``fp_npu_driver`` / ``fp_npu_firmware`` from ``npu-smi info -t board`` ``Key : value`` lines."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = _KEY_VALUE.match(line)
        if match:
            values.setdefault(match["key"].lower(), match["value"])
    fp = {}
    if values.get("software version"):
        fp["fp_npu_driver"] = values["software version"]
    if values.get("firmware version"):
        fp["fp_npu_firmware"] = values["firmware version"]
    return fp


class AscendServer(AcceleratorBox):
    """An Ascend NPU server (see the module docstring)."""

    kind = "ascend"
    columns = COLUMNS
    energy_source = "npu_smi"

    def __init__(self, spec: AscendDevice) -> None:
        super().__init__(spec)
        self.ascend = spec
        self._runtimes: dict[str, dict[str, str]] = {}  # container name ("" = the host) → versions
        self._watch_accelerators(self._read_npus, spec.npus, "npus", "npu-smi", "NPUs")

    def _report(self) -> NpuSmiReport:
        return parse_npu_smi(self.check_output(NPU_SMI))

    def _read_npus(self) -> dict[int, Reading]:
        return npu_readings(self._report())

    # -- hooks ------------------------------------------------------------------------------------------------
    def slot_env(self, slot: Slot) -> dict[str, str]:
        return {VISIBLE_DEVICES: str(slot.index or 0)}

    def run_fingerprint(self, req: RunRequest) -> dict[str, str]:
        """CANN, torch and torch_npu versions where the run executes (asked once per container)."""
        where = req.docker or ""
        if where not in self._runtimes:
            argv = ["sh", "-c", _RUNTIME_SCRIPT]
            if req.docker is not None:
                argv = ["docker", "exec", req.docker, *argv]
            done = self.probe(argv)
            self._runtimes[where] = runtime_fingerprint(done.stdout) if done.exit_code == 0 else {}
            if done.exit_code != 0:
                log.warning("%s: cannot read CANN/torch_npu versions in %s: %s", self.spec.id, where or "the host",
                            done.stderr.strip()[-200:])  # fmt: skip
        fp = dict(self._runtimes[where])
        if where:
            fp["fp_container"] = where
        return fp

    def device_fingerprint(self) -> dict[str, str]:
        fp = self.host_fingerprint()
        try:
            text = self.check_output(NPU_SMI)
            fp.update(npu_smi_fingerprint(text))
            first = min(c.npu_id for c in parse_npu_smi(text).chips)
        except OutputParseError as exc:
            log.warning("%s: npu-smi output not understood: %s", self.spec.id, exc)
            return fp
        board = self.probe(["npu-smi", "info", "-t", "board", "-i", str(first)])
        if board.exit_code == 0:
            fp.update(board_fingerprint(board.stdout))
        return fp
