"""Export ``codl_op_run`` measurements as the per-SoC dataset CoDL's latency collector writes and its trainer reads.

CoDL (github csu-eis/CoDL, ``codl-eval-tools``): ``tools/collect_all_op_latency.sh`` runs ``codl_op_run`` per op
shape with the GPU (``--part_ratio=1 --cu_hint=2``) or the CPU (``--part_ratio=0 --cu_hint=1``) and writes
``lat_datasets/<soc>/t_*.csv``; ``codl-lat-predict`` (``utils/data_loader.py`` via ``ka_fit.py`` and
``flops_lr_fit.py``) reads them with pandas, by column name. We write, under ``<out>/<soc>/``:

- ``t_mulayer_<conv2d|fc|pooling>_<cpu|gpu>.csv`` — ``COST,SD_COST,PDIM,PRATIO,FLOPS,F0,F1`` (pooling without
  ``FLOPS``): every CPU-only or GPU-only run of that op; ``F0,F1`` as CoDL computes them (conv: ``IH·IW·IC`` and
  ``(KH/SH)²·OC``; fc: ``IH·IW·IC`` and ``OC``; pooling: input and output sizes);
- ``t_pooling_<cpu|gpu>_direct_<avg|max>.csv`` — ``CNN,COST,T_COST,SD_COST,PDIM,PRATIO,IH,IW,IC,OC,KH,KW,SH,SW``
  (``--pooling_type`` 1 = avg, 2 = max; ``T_COST`` 0 as the collector writes it);
- ``t_data_sharing.csv`` — ``T_DT_IN,T_MAP_IN,T_MAP_OUT,T_SYNC,T_UNMAP_IN,T_UNMAP_OUT,T_DT_OUT,T_SYNC_2,
  IH,IW,IC,OH,OW,OC,DATA_IN,DATA_OUT``: runs with ``--data_transform`` whose Stat line holds the 8 stages
  (``MACE_DURATION_COLLECT_GRANULARITY=Fine``). CoDL's collector appends the SD and partition values to these
  lines without naming them in the header; we write the named columns only, so pandas maps every name to its
  value.

CoDL fixes the GPU memory type for a whole collection (``collect_op_latency.sh … buffer|image``): when a job's
runs on a SoC used several ``--gpu_memory_type`` values, each gets its own folder, ``<soc>-gpu_buffer`` and
``<soc>-gpu_image`` (CPU runs go with the value they were started with). Also
``<out>/soc/<soc>.yaml`` (``global_mem_cache_size``, ``compute_units``, ``max_work_group_size``,
``kernel_wave_size``) from the OpenCL runtime line the runs printed (``fp_opencl_*`` columns). The log's
``warp_size`` is 0 on current drivers; then ``kernel_wave_size`` is the value CoDL's own SoC files use for
that GPU family (Adreno 64, Mali 8) and the yaml says so in a comment.

Values: ``COST`` is the median over repeats of the tool's own ``Stat`` mean (``codl_stat_0_ms`` when the Stat
line holds one entry, else ``latency_ms``, the mean of the rounds after ``si``), ms; ``SD_COST`` the median of its
``std_pect`` (percent; else the rounds' SD in percent), which the trainer filters on (``SD_COST < 5``).
``PDIM``/``PRATIO`` are ``--part_dim``/``--part_ratio``; ``CNN`` is the ``cnn`` grid value, else ``FARM``.
Output shapes: convolutions SAME (``ceil(in / stride)``), pooling VALID (``(in − k) // stride + 1``), as in
CoDL's op datasets. Every value comes from the grid parameter ``p_<flag>`` or the flag in the row's
``command``.

Not written: CoDL's per-implementation conv/fc files (``t_conv2d_cpu_{direct,gemm,winograd…}``,
``t_conv2d_gpu_direct``, ``t_fc_cpu_gemv``, ``t_fc_gpu_direct``): their labels are per-tile and per-warp times
derived with CoDL's thread-pool and OpenCL work-group calculations from ``Fine`` stage timings; the summary names
them with the reason. Co-execution runs (``0 < part_ratio < 1``) are not in any trainer file.
"""

from __future__ import annotations

import csv
import logging
import math
import re
import shlex
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from farm.analysis.jobdata import SLOT, JobData, Row, point_sort_key
from farm.analysis.stats import finite, median
from farm.errors import ConfigError

log = logging.getLogger(__name__)


def _columns(header: str) -> list[str]:
    return header.split(",")


#: Columns tried, in order, for a row's SoC name.
SOC_COLUMNS = ("fp_soc", "p_soc", "fp_label_soc", "fp_board_platform", "fp_ro_board_platform")
MULAYER_COLUMNS = _columns("COST,SD_COST,PDIM,PRATIO,FLOPS,F0,F1")
MULAYER_POOLING_COLUMNS = _columns("COST,SD_COST,PDIM,PRATIO,F0,F1")
POOLING_COLUMNS = _columns("CNN,COST,T_COST,SD_COST,PDIM,PRATIO,IH,IW,IC,OC,KH,KW,SH,SW")
DATA_SHARING_COLUMNS = _columns(
    "T_DT_IN,T_MAP_IN,T_MAP_OUT,T_SYNC,T_UNMAP_IN,T_UNMAP_OUT,T_DT_OUT,T_SYNC_2,IH,IW,IC,OH,OW,OC,DATA_IN,DATA_OUT"
)
DATA_SHARING_STAGES = 8
#: CoDL's trainer files this export cannot fill, and why.
NOT_EXPORTED = {
    "t_conv2d_cpu_{direct,gemm,winograd,winograd_gemm}.csv, t_conv2d_gpu_direct.csv, t_fc_cpu_gemv.csv, "
    "t_fc_gpu_direct.csv": "labels are per-tile / per-warp times CoDL derives from Fine stage timings with its "
    "thread-pool and OpenCL work-group calculations",
}
_MEM_NAMES = {0: "cpu_buffer", 1: "gpu_buffer", 2: "gpu_image"}
_OP_STEMS = {"conv2d": "conv2d", "fullyconnected": "fc", "pooling": "pooling"}
_WAVE_BY_FAMILY = (("adreno", 64), ("mali", 8))
_OPENCL_FP = ("fp_opencl_global_mem_cache_size", "fp_opencl_compute_units", "fp_opencl_max_wgp_size")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "unknown"


def command_flags(command: str) -> dict[str, str]:
    """``--name=value``, ``--name value`` and bare ``--switch`` (``"true"``) of a shell-quoted command line."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    out: dict[str, str] = {}
    for i, word in enumerate(words):
        if not word.startswith("--"):
            continue
        name, eq, value = word[2:].partition("=")
        if eq:
            out[name] = value
        elif i + 1 < len(words) and not words[i + 1].startswith("--"):
            out[name] = words[i + 1]
        else:
            out[name] = "true"
    return out


def _ints(text: object, count: int, what: str) -> list[int]:
    parts = [p.strip() for p in str(text).strip('"').split(",") if p.strip()]
    if len(parts) != count:
        raise ValueError(f"{what} {text!r}: expected {count} comma-separated integers")
    return [int(float(p)) for p in parts]


def soc_of(row: Row, soc_column: str | None = None) -> str:
    for column in (soc_column,) if soc_column else SOC_COLUMNS:
        value = row.get(column) if column else None
        if value not in (None, ""):
            return str(value)
    return str(row[SLOT])


@dataclass(frozen=True)
class OpRun:
    """What one measurement row ran, in the terms of CoDL's dataset files."""

    soc: str
    op: str  # conv2d | fc | pooling | …
    device: str  # cpu | gpu | cpu+gpu
    data_transform: bool
    pdim: int
    pratio: float
    cnn: str
    ih: int
    iw: int
    ic: int
    oc: int
    kh: int
    kw: int
    sh: int
    sw: int
    pooling_type: int
    mem: int  # --gpu_memory_type: 0 CPU buffer, 1 GPU buffer, 2 GPU image

    def out_hw(self) -> tuple[int, int]:
        if self.op == "pooling":
            return (self.ih - self.kh) // self.sh + 1, (self.iw - self.kw) // self.sw + 1
        if self.op == "fc":
            return 1, 1
        return math.ceil(self.ih / self.sh), math.ceil(self.iw / self.sw)


def op_run(row: Row, soc_column: str | None = None) -> OpRun:
    """The op a row ran; ``ValueError`` naming what is missing or malformed."""
    flags = command_flags(row.get("command") or "")

    def value(name: str, default: str | None = None) -> str:
        got = row.get(f"p_{name}")
        text = str(got) if got is not None else flags.get(name, default)
        if text is None:
            raise ValueError(f"no {name} parameter or flag")
        return text

    op_type = value("op_type")
    _, ih, iw, ic = _ints(value("input_shape"), 4, "input_shape")
    oc, _, kh, kw = _ints(value("weight_shape"), 4, "weight_shape")
    strides = _ints(value("strides", "1,1"), len(value("strides", "1,1").split(",")), "strides")
    if len(strides) not in (1, 2):
        raise ValueError(f"strides {value('strides')!r}: expected 'SH,SW' or one number")
    ratio = float(value("part_ratio", "1"))
    hint = int(float(value("cu_hint", "0")))
    device = "cpu" if hint == 1 or ratio == 0.0 else "gpu" if hint == 2 or ratio == 1.0 else "cpu+gpu"
    transform = value("data_transform", "false").lower() in ("true", "1", "yes", "t", "y")
    return OpRun(
        soc=soc_of(row, soc_column),
        op=_OP_STEMS.get(op_type.lower(), _slug(op_type).lower()),
        device=device,
        data_transform=transform,
        pdim=int(float(value("part_dim", "0"))),
        pratio=ratio,
        cnn=str(row.get("p_cnn") or "FARM"),
        ih=ih,
        iw=iw,
        ic=ic,
        oc=oc,
        kh=kh,
        kw=kw,
        sh=strides[0],
        sw=strides[-1],
        pooling_type=int(float(value("pooling_type", "1"))),
        mem=int(float(value("gpu_memory_type", "0"))),
    )


def _cost(row: Row) -> tuple[float | None, float | None]:
    """The run's latency (the tool's Stat mean, else the adapter's) and its SD in percent."""
    # One Stat entry (Coarse) is the round latency; several (Fine) are stages: then the rounds' mean is the cost.
    coarse = not finite([row.get("codl_stat_1_ms")])
    cost = (finite([row.get("codl_stat_0_ms")]) if coarse else []) or finite([row.get("latency_ms")])
    sd = finite([row.get("codl_std_pct_0")]) if coarse else []
    if not sd and cost and (std := finite([row.get("latency_std_ms")])) and cost[0] > 0:
        sd = [100.0 * std[0] / cost[0]]
    return (cost[0] if cost else None), (sd[0] if sd else None)


def _stages(row: Row) -> list[float] | None:
    values = [finite([row.get(f"codl_stat_{k}_ms")]) for k in range(DATA_SHARING_STAGES + 1)]
    if any(not v for v in values[:DATA_SHARING_STAGES]):
        return None
    return [v[0] for v in values[:DATA_SHARING_STAGES]]


@dataclass(frozen=True)
class ExportResult:
    files: dict[Path, int]  # file → data rows written
    skipped: dict[str, int] = field(default_factory=dict)  # reason → measurement rows left out
    soc_files: dict[Path, str] = field(default_factory=dict)  # SoC yaml → where kernel_wave_size came from
    no_soc_file: list[str] = field(default_factory=list)  # SoCs whose runs printed no usable OpenCL facts
    not_exported: dict[str, str] = field(default_factory=lambda: dict(NOT_EXPORTED))
    synthetic: bool = False


def _mulayer_row(run: OpRun, cost: float, sd: float | None) -> list[Any]:
    oh, ow = run.out_hw()
    head = [cost, "" if sd is None else sd, run.pdim, run.pratio]
    if run.op == "pooling":
        return [*head, run.ih * run.iw * run.ic, oh * ow * run.ic]
    if run.op == "fc":
        flops = run.ih * run.iw * run.ic * run.oc
        return [*head, flops, run.ih * run.iw * run.ic, run.oc]
    flops = oh * ow * run.oc * (2 * run.kh * run.kw * run.ic + 1)  # CoDL's CalcConvFlops, batch 1
    return [*head, flops, run.ih * run.iw * run.ic, (run.kh / run.sh) ** 2 * run.oc]


def _pooling_row(run: OpRun, cost: float, sd: float | None) -> list[Any]:
    return [run.cnn, cost, 0, "" if sd is None else sd, run.pdim, run.pratio, run.ih, run.iw, run.ic, run.ic,
            run.kh, run.kw, run.sh, run.sw]  # fmt: skip


def _data_sharing_row(run: OpRun, stages: list[float]) -> list[Any]:
    oh, ow = run.out_hw()
    return [*stages, run.ih, run.iw, run.ic, oh, ow, run.oc, run.ih * run.iw * run.ic, oh * ow * run.oc]


def _classify(run: OpRun, row: Row) -> tuple[str, list[str]] | str:
    """(file name, header) the row belongs to, or the reason it is left out."""
    if run.device == "cpu+gpu":
        return "co-execution run (0 < part_ratio < 1): CoDL's trainer files hold CPU-only and GPU-only runs"
    if run.data_transform:
        if _stages(row) is None:
            return "--data_transform run without the 8 Fine stages (set MACE_DURATION_COLLECT_GRANULARITY=Fine)"
        return "t_data_sharing.csv", DATA_SHARING_COLUMNS
    if run.op not in ("conv2d", "fc", "pooling"):
        return f"op {run.op}: CoDL's collector keeps no coarse dataset for it"
    header = MULAYER_POOLING_COLUMNS if run.op == "pooling" else MULAYER_COLUMNS
    return f"t_mulayer_{run.op}_{run.device}.csv", header


def _soc_yaml(rows: list[Row]) -> tuple[str, str] | None:
    facts = {}
    for column in (*_OPENCL_FP, "fp_opencl_warp_size", "fp_opencl_device"):
        values = [r.get(column) for r in rows if r.get(column) not in (None, "")]
        if values:
            facts[column] = str(Counter(values).most_common(1)[0][0])
    if not all(c in facts for c in _OPENCL_FP):
        return None
    warp = int(facts.get("fp_opencl_warp_size", "0") or 0)
    device = facts.get("fp_opencl_device", "")
    if warp > 0:
        wave, source = warp, "warp_size of the OpenCL runtime line"
    else:
        family = next(((name, size) for name, size in _WAVE_BY_FAMILY if name in device.lower()), None)
        if family is None:
            return None
        wave, source = family[1], f"CoDL's value for {family[0].capitalize()} GPUs (the driver reports warp_size 0)"
    text = (
        f"# from the OpenCL runtime line of {device or 'the GPU'}; kernel_wave_size: {source}\n"
        f"global_mem_cache_size: {int(facts['fp_opencl_global_mem_cache_size'])}\n"
        f"compute_units: {int(facts['fp_opencl_compute_units'])}\n"
        f"max_work_group_size: {int(facts['fp_opencl_max_wgp_size'])}\n"
        f"kernel_wave_size: {wave}\n"
    )
    return text, source


def export_codl_dataset(
    data: JobData, out_dir: Path, soc_column: str | None = None, source: str = "export codl-dataset"
) -> ExportResult:
    """Write the collector's file set for every SoC in ``data`` under ``out_dir`` (see the module docstring)."""
    if soc_column is not None and soc_column not in data.columns:
        raise ConfigError.single(source, "--soc-column", f"job {data.job!r} has no column {soc_column!r}")
    groups: dict[tuple[str, str, tuple[str, ...], OpRun], list[Row]] = {}
    skipped: Counter[str] = Counter()
    by_soc: dict[str, list[Row]] = {}
    for row in data.measurements:
        try:
            run = op_run(row, soc_column)
        except ValueError as exc:
            skipped[str(exc)] += 1
            continue
        by_soc.setdefault(run.soc, []).append(row)
        target = _classify(run, row)
        if isinstance(target, str):
            skipped[target] += 1
            continue
        if _cost(row)[0] is None:
            skipped["no latency (codl_stat_0_ms or latency_ms)"] += 1
            continue
        name, header = target
        groups.setdefault((run.soc, name, tuple(header), run), []).append(row)
        if run.op == "pooling" and not run.data_transform:
            kind = {1: "avg", 2: "max"}.get(run.pooling_type, str(run.pooling_type))
            pooling_file = f"t_pooling_{run.device}_direct_{kind}.csv"
            groups.setdefault((run.soc, pooling_file, tuple(POOLING_COLUMNS), run), []).append(row)
    if not groups:
        reasons = "; ".join(f"{n} × {why}" for why, n in skipped.items()) or "no ok measurements"
        raise ConfigError.single(source, "job", f"job {data.job!r}: no row fits a CoDL dataset file ({reasons})")
    mems: dict[str, set[int]] = {}
    for soc, _, _, run in groups:
        mems.setdefault(soc, set()).add(run.mem)
    files: dict[Path, tuple[list[str], list[tuple[OpRun, list[Any]]]]] = {}
    for (soc, name, columns, run), rows in groups.items():
        folder = _slug(soc) if len(mems[soc]) == 1 else f"{_slug(soc)}-{_MEM_NAMES.get(run.mem, f'mem{run.mem}')}"
        if name == "t_data_sharing.csv":
            stages = [_stages(r) for r in rows]
            line = _data_sharing_row(run, [median([s[k] for s in stages if s]) for k in range(DATA_SHARING_STAGES)])
        else:
            costs = [_cost(r) for r in rows]
            cost = median([c for c, _ in costs if c is not None])
            sds = [s for _, s in costs if s is not None]
            sd = median(sds) if sds else None
            line = _pooling_row(run, cost, sd) if name.startswith("t_pooling_") else _mulayer_row(run, cost, sd)
        entry = files.setdefault(out_dir / folder / name, (list(columns), []))
        entry[1].append((run, line))
    written: dict[Path, int] = {}
    for path, (header, lines) in sorted(files.items()):
        lines.sort(key=lambda e: point_sort_key([e[0].ih, e[0].iw, e[0].ic, e[0].oc, e[0].kh, e[0].sh, e[0].pratio]))
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(line for _, line in lines)
        written[path] = len(lines)
        log.info("wrote %d rows to %s", len(lines), path)
    soc_files: dict[Path, str] = {}
    no_soc_file: list[str] = []
    for soc, rows in sorted(by_soc.items()):
        made = _soc_yaml(rows)
        if made is None:
            no_soc_file.append(soc)
            continue
        path = out_dir / "soc" / f"{_slug(soc)}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(made[0], encoding="utf-8")
        soc_files[path] = made[1]
    return ExportResult(written, dict(skipped), soc_files, no_soc_file, dict(NOT_EXPORTED), data.synthetic)
