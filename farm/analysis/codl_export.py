"""Export single-op latency measurements as the per-SoC CSV datasets CoDL's latency predictors train on.

CoDL (github csu-eis/CoDL, ``codl-eval-tools``) keeps one directory of CSVs per SoC and one file per dataset
model, e.g. ``t_conv2d_op_cpu.csv`` with the header ``CNN,T_OP,SD_T_OP,PDIM,PRATIO,IH,IW,IC,OC,KH,KW,SH,SW,
DH,DW,FLOPS,PARAMS`` (``MLConv2dOpDatasetInfo``); its loaders read columns by name with pandas. We write
``<out>/<soc>/t_<op>_op.csv``, one row per op configuration, columns in CoDL's order (labels, spread,
partition, features) plus two of ours at the end:

- ``T_OP``: median over repeats of ``latency_ms`` (codl_op_run's mean round latency after warm-up), ms;
- ``SD_T_OP``: sample standard deviation of ``latency_ms`` over repeats, ms (empty with a single run);
- ``PDIM``: ``part_dim`` as codl_op_run takes it: 1 = H, 2 = W, 3 = IC, 4 = OC;
- ``PRATIO``: ``part_ratio``, the share of the op on the GPU: 0 = CPU only … 1 = GPU only;
- ``IH,IW,IC`` from ``input_shape`` ``N,H,W,C``; ``OC,KH,KW`` from ``weight_shape`` ``O,I,KH,KW``;
  ``SH,SW`` from ``strides`` ``SH,SW`` (one number means both);
- ``GPU_MEM_TYPE`` (ours): ``gpu_memory_type`` (0 CPU buffer, 1 GPU buffer, 2 GPU image). CoDL fixes the
  memory type per collection, so filter on it before training when a sweep mixes types;
- ``N`` (ours): the number of runs behind the row.

Each value comes from the grid parameter ``p_<name>`` or, when the job kept it fixed, from the
``--<name>=`` flag in the row's ``command``. ``DH,DW,FLOPS,PARAMS`` are not written: codl_op_run takes no
dilation and CoDL derives FLOPS/PARAMS with its own helpers. Op type file stems follow CoDL's names
(``Conv2D`` → ``conv2d``, ``FullyConnected`` → ``fc``, ``Pooling`` → ``pooling``, ``Deconv2D`` →
``deconv2d``, ``MatMul`` → ``matmul``). The SoC is the first of :data:`SOC_COLUMNS` a row has, else its
device id.
"""

from __future__ import annotations

import csv
import logging
import re
import shlex
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from farm.analysis.jobdata import DEVICE, JobData, Row, point_sort_key
from farm.analysis.stats import finite, median
from farm.errors import ConfigError

log = logging.getLogger(__name__)

#: Columns tried, in order, for a row's SoC name.
SOC_COLUMNS = ("fp_soc", "p_soc", "fp_label_soc", "fp_board_platform", "fp_ro_board_platform")
COLUMNS = (
    "T_OP",
    "SD_T_OP",
    "PDIM",
    "PRATIO",
    "IH",
    "IW",
    "IC",
    "OC",
    "KH",
    "KW",
    "SH",
    "SW",
    "GPU_MEM_TYPE",
    "N",
)
OP_STEMS = {
    "conv2d": "conv2d",
    "fullyconnected": "fc",
    "pooling": "pooling",
    "deconv2d": "deconv2d",
    "matmul": "matmul",
}
METRIC = "latency_ms"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "unknown"


def _flags(command: str) -> dict[str, str]:
    """``--name=value`` and ``--name value`` pairs of a shell-quoted command line."""
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
    return out


def _ints(text: str, count: int, what: str) -> list[int]:
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if len(parts) != count:
        raise ValueError(f"{what} {text!r}: expected {count} comma-separated integers")
    return [int(float(p)) for p in parts]


@dataclass(frozen=True)
class OpConfig:
    soc: str
    op: str
    pdim: int | None
    pratio: float
    ih: int
    iw: int
    ic: int
    oc: int
    kh: int
    kw: int
    sh: int
    sw: int
    mem: int | None


def _value(row: Row, flags: dict[str, str], name: str) -> Any:
    value = row.get(f"p_{name}")
    return value if value is not None else flags.get(name)


def soc_of(row: Row, soc_column: str | None = None) -> str:
    for column in (soc_column,) if soc_column else SOC_COLUMNS:
        value = row.get(column) if column else None
        if value not in (None, ""):
            return str(value)
    return str(row[DEVICE])


def op_config(row: Row, soc_column: str | None = None) -> OpConfig:
    """The op configuration a measurement row ran; ``ValueError`` naming what is missing or malformed."""
    flags = _flags(row.get("command") or "")
    shape = _value(row, flags, "input_shape")
    weight = _value(row, flags, "weight_shape")
    if shape is None or weight is None:
        raise ValueError("no input_shape/weight_shape parameter or flag")
    _, ih, iw, ic = _ints(shape, 4, "input_shape")
    oc, _, kh, kw = _ints(weight, 4, "weight_shape")
    strides = _value(row, flags, "strides")
    if strides is None:
        raise ValueError("no strides parameter or flag")
    parts = _ints(strides, len(str(strides).split(",")), "strides")
    if len(parts) not in (1, 2):
        raise ValueError(f"strides {strides!r}: expected 'SH,SW' or one number")
    sh, sw = parts[0], parts[-1]
    ratio = _value(row, flags, "part_ratio")
    if ratio is None:
        raise ValueError("no part_ratio parameter or flag")
    pdim = _value(row, flags, "part_dim")
    mem = _value(row, flags, "gpu_memory_type")
    op = str(_value(row, flags, "op_type") or "unknown")
    return OpConfig(
        soc=soc_of(row, soc_column),
        op=op,
        pdim=None if pdim is None else int(float(pdim)),
        pratio=float(ratio),
        ih=ih,
        iw=iw,
        ic=ic,
        oc=oc,
        kh=kh,
        kw=kw,
        sh=sh,
        sw=sw,
        mem=None if mem is None else int(float(mem)),
    )


@dataclass(frozen=True)
class ExportResult:
    files: dict[Path, int]  # file → data rows written
    skipped: dict[str, int] = field(default_factory=dict)  # reason → measurement rows left out
    synthetic: bool = False


def _csv_row(cfg: OpConfig, values: list[float]) -> list[Any]:
    sd = statistics.stdev(values) if len(values) > 1 else ""
    return [
        median(values),
        sd,
        "" if cfg.pdim is None else cfg.pdim,
        cfg.pratio,
        cfg.ih,
        cfg.iw,
        cfg.ic,
        cfg.oc,
        cfg.kh,
        cfg.kw,
        cfg.sh,
        cfg.sw,
        "" if cfg.mem is None else cfg.mem,
        len(values),
    ]


def export_codl_dataset(
    data: JobData, out_dir: Path, soc_column: str | None = None, source: str = "export codl-dataset"
) -> ExportResult:
    """Write the per-SoC, per-op CSVs of ``data`` under ``out_dir`` (see the module docstring)."""
    if METRIC not in data.metrics:
        measured = ", ".join(data.metrics) or "none"
        raise ConfigError.single(
            source, "job", f"job {data.job!r} has no {METRIC} measurements to export (measured: {measured})"
        )
    if soc_column is not None and soc_column not in data.columns:
        raise ConfigError.single(source, "--soc-column", f"job {data.job!r} has no column {soc_column!r}")
    groups: dict[OpConfig, list[float]] = {}
    skipped: Counter[str] = Counter()
    for row in data.measurements:
        values = finite([row.get(METRIC)])
        if not values:
            skipped[f"no {METRIC}"] += 1
            continue
        try:
            cfg = op_config(row, soc_column)
        except ValueError as exc:
            skipped[str(exc)] += 1
            continue
        groups.setdefault(cfg, []).extend(values)
    if not groups:
        reasons = "; ".join(f"{n} × {why}" for why, n in skipped.items())
        raise ConfigError.single(source, "job", f"job {data.job!r}: no row describes a single op ({reasons})")
    by_file: dict[Path, list[tuple[OpConfig, list[float]]]] = {}
    for cfg, values in groups.items():
        stem = OP_STEMS.get(cfg.op.lower(), _slug(cfg.op).lower())
        by_file.setdefault(out_dir / _slug(cfg.soc) / f"t_{stem}_op.csv", []).append((cfg, values))
    written: dict[Path, int] = {}
    for path, entries in sorted(by_file.items()):
        entries.sort(
            key=lambda e: point_sort_key(
                [
                    e[0].ih,
                    e[0].iw,
                    e[0].ic,
                    e[0].oc,
                    e[0].kh,
                    e[0].kw,
                    e[0].sh,
                    e[0].sw,
                    e[0].mem,
                    e[0].pdim,
                    e[0].pratio,
                ]
            )
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(COLUMNS)
            writer.writerows(_csv_row(cfg, values) for cfg, values in entries)
        written[path] = len(entries)
        log.info("wrote %d rows to %s", len(entries), path)
    return ExportResult(written, dict(skipped), data.synthetic)
