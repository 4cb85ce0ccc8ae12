"""Probe: Ascend ``npu-smi info`` (box-drawn table, 310P and 910 layouts) and its ``Key : value`` forms.

Table: two rows per chip, ``| <npu> <name> | <health> | <power> <temp> <hugepages a / b> |`` then
``| <chip> [<device>] | <bus id> | <aicore %> <used> / <total> [<used>/ <total>] |``. The usage pairs are
named by the header (``Memory-Usage``, ``HBM-Usage``, ``DDR-Usage``); without a header one pair is memory and
two are memory then HBM. Power or temperature printed as ``-``/``NA`` become None. A process table may follow.
``npu-smi info -t usages|memory|common -i <id>`` print ``Key : value`` lines instead; those fill the same
fields where a key says the same thing (rates in %, capacities in MB) and keep every line in ``raw``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from farm.errors import OutputParseError

_BUS_ID = re.compile(r"^[0-9A-Fa-f]{4}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-9A-Fa-f]$")
_ROW1_FIRST = re.compile(r"^(?P<npu>\d+)\s+(?P<name>\S.*)$")
_ROW1_THIRD = re.compile(r"^(?P<power>\S+)\s+(?P<temp>\S+)(?:\s+(?P<hp_used>\d+)\s*/\s*(?P<hp_total>\d+))?")
_ROW2_FIRST = re.compile(r"^(?P<chip>\d+)(?:\s+(?P<device>\d+))?$")
_PAIR = re.compile(r"(?P<used>\d+(?:\.\d+)?)\s*/\s*(?P<total>\d+(?:\.\d+)?)")
_USAGE_NAME = re.compile(r"([A-Za-z]+)-Usage", re.IGNORECASE)
_KV = re.compile(r"^\s*(?P<key>[A-Za-z][^:]*?)\s*:\s*(?P<value>.*?)\s*$")


@dataclass(frozen=True)
class NpuChip:
    """One chip of one NPU card. Sizes in MB as npu-smi prints them; None when not printed."""

    npu_id: int
    chip_id: int | None = None
    device_id: int | None = None
    name: str | None = None
    health: str | None = None
    power_w: float | None = None
    temp_c: float | None = None
    hugepages_used: int | None = None
    hugepages_total: int | None = None
    bus_id: str | None = None
    aicore_pct: float | None = None
    memory_used_mb: float | None = None
    memory_total_mb: float | None = None
    hbm_used_mb: float | None = None
    hbm_total_mb: float | None = None
    memory_usage_pct: float | None = None
    hbm_usage_pct: float | None = None
    raw: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NpuProcess:
    npu_id: int
    chip_id: int
    pid: int
    name: str
    memory_mb: float | None


@dataclass(frozen=True)
class _Card:
    """The first row of a table entry; applies to every chip row under it."""

    npu_id: int
    name: str
    health: str
    power_w: float | None
    temp_c: float | None
    hugepages_used: int | None
    hugepages_total: int | None


@dataclass(frozen=True)
class NpuSmiReport:
    chips: tuple[NpuChip, ...]
    processes: tuple[NpuProcess, ...] = ()


def _number(text: str) -> float | None:
    token = text.strip()
    if re.fullmatch(r"-?\d+(?:\.\d+)?", token):
        return float(token)
    return None  # "-", "NA", "N/A": not measured on this card


def _cells(line: str) -> list[str] | None:
    stripped = line.strip()
    if not stripped.startswith("|"):
        return None
    return [cell.strip() for cell in stripped.strip("|").split("|")]


def _usage_columns(pairs: list[tuple[float, float]], names: list[str]) -> dict[str, float]:
    if not names:
        names = ["memory", "hbm"][: len(pairs)] if len(pairs) <= 2 else []
    out: dict[str, float] = {}
    for (used, total), name in zip(pairs, names, strict=False):
        kind = "hbm" if name.lower() == "hbm" else "memory"
        out[f"{kind}_used_mb"] = used
        out[f"{kind}_total_mb"] = total
    return out


def _parse_table(text: str) -> NpuSmiReport | None:
    usage_names: list[str] = []
    chips: list[NpuChip] = []
    processes: list[NpuProcess] = []
    card: _Card | None = None
    in_processes = False
    for line in text.splitlines():
        cells = _cells(line)
        if cells is None or len(cells) < 2:
            continue
        joined = " ".join(cells)
        if "Bus-Id" in joined:
            usage_names = _USAGE_NAME.findall(cells[-1])
            in_processes = False
            continue
        if "Process id" in joined or "Process name" in joined:
            in_processes = True
            continue
        if in_processes:
            first = _ROW2_FIRST.match(cells[0])
            if first and first["device"] is not None and len(cells) >= 4 and cells[1].isdigit():
                processes.append(
                    NpuProcess(
                        npu_id=int(first["chip"]),
                        chip_id=int(first["device"]),
                        pid=int(cells[1]),
                        name=cells[2],
                        memory_mb=_number(cells[3]),
                    )
                )
            continue
        if len(cells) < 3:
            continue
        row1 = _ROW1_FIRST.match(cells[0])
        if row1 and not row1["name"].isdigit() and re.fullmatch(r"[A-Za-z]+", cells[1]):
            third = _ROW1_THIRD.match(cells[2])
            card = _Card(
                npu_id=int(row1["npu"]),
                name=row1["name"].strip(),
                health=cells[1],
                power_w=_number(third["power"]) if third else None,
                temp_c=_number(third["temp"]) if third else None,
                hugepages_used=int(third["hp_used"]) if third and third["hp_used"] else None,
                hugepages_total=int(third["hp_total"]) if third and third["hp_total"] else None,
            )
            continue
        row2 = _ROW2_FIRST.match(cells[0])
        if row2 and _BUS_ID.match(cells[1]) and card is not None:
            usage = cells[2]
            pairs = [(float(m["used"]), float(m["total"])) for m in _PAIR.finditer(usage)]
            aicore_token = usage.split()[0] if usage.split() else ""
            sizes = _usage_columns(pairs, usage_names)
            chips.append(
                NpuChip(
                    npu_id=card.npu_id,
                    chip_id=int(row2["chip"]),
                    device_id=int(row2["device"]) if row2["device"] is not None else None,
                    name=card.name,
                    health=card.health,
                    power_w=card.power_w,
                    temp_c=card.temp_c,
                    hugepages_used=card.hugepages_used,
                    hugepages_total=card.hugepages_total,
                    bus_id=cells[1],
                    aicore_pct=_number(aicore_token) if "/" not in aicore_token else None,
                    memory_used_mb=sizes.get("memory_used_mb"),
                    memory_total_mb=sizes.get("memory_total_mb"),
                    hbm_used_mb=sizes.get("hbm_used_mb"),
                    hbm_total_mb=sizes.get("hbm_total_mb"),
                )
            )
    if not chips:
        return None
    return NpuSmiReport(chips=tuple(chips), processes=tuple(processes))


_KV_FIELDS = {
    "aicore usage rate(%)": "aicore_pct",
    "ai core usage rate(%)": "aicore_pct",
    "memory usage rate(%)": "memory_usage_pct",
    "ddr usage rate(%)": "memory_usage_pct",
    "hbm usage rate(%)": "hbm_usage_pct",
    "memory capacity(mb)": "memory_total_mb",
    "ddr capacity(mb)": "memory_total_mb",
    "hbm capacity(mb)": "hbm_total_mb",
    "temperature(c)": "temp_c",
    "npu temperature(c)": "temp_c",
    "npu real-time power(w)": "power_w",
    "power(w)": "power_w",
}


def _parse_key_values(text: str) -> NpuSmiReport | None:
    npu_id: int | None = None
    sections: list[tuple[int | None, dict[str, str]]] = []
    for line in text.splitlines():
        match = _KV.match(line.strip().strip("|"))
        if not match:
            continue
        key, value = match["key"].strip(), match["value"].strip()
        lowered = key.lower()
        if lowered == "npu id":
            npu_id = int(value) if value.isdigit() else npu_id
            continue
        if lowered == "chip id" or not sections:
            sections.append((npu_id, {}))
        sections[-1][1][key] = value
    chips: list[NpuChip] = []
    for section_npu, raw in sections:
        values: dict[str, float] = {}
        for key, value in raw.items():
            target = _KV_FIELDS.get(re.sub(r"\s+", " ", key.lower()))
            number = _number(value)
            if target and number is not None:
                values[target] = number
        chip_id = raw.get("Chip ID")
        if not values and chip_id is None:
            continue
        chips.append(
            NpuChip(
                npu_id=section_npu if section_npu is not None else -1,
                chip_id=int(chip_id) if chip_id is not None and chip_id.isdigit() else None,
                power_w=values.get("power_w"),
                temp_c=values.get("temp_c"),
                aicore_pct=values.get("aicore_pct"),
                memory_total_mb=values.get("memory_total_mb"),
                hbm_total_mb=values.get("hbm_total_mb"),
                memory_usage_pct=values.get("memory_usage_pct"),
                hbm_usage_pct=values.get("hbm_usage_pct"),
                raw=dict(raw),
            )
        )
    return NpuSmiReport(chips=tuple(chips)) if chips else None


def parse_npu_smi(text: str) -> NpuSmiReport:
    """Read ``npu-smi info`` (table) or ``npu-smi info -t ... -i <id>`` (Key : value) output."""
    report = _parse_table(text) or _parse_key_values(text)
    if report is None:
        raise OutputParseError("npu_smi: no NPU table rows or 'Key : value' chip lines")
    return report
