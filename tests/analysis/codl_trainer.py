"""A small reader of CoDL latency datasets, written from the trainer's own loading code.

csu-eis/CoDL ``codl-eval-tools/codl-lat-predict``: ``utils/data_loader.py`` reads each file with
``pandas.read_csv`` (header row, columns by name), adds derived columns (``add_col_by_mul``), filters rows
(``add_filter``), splits 70/30 and takes ``df[features]`` and ``df[target]``; which loader, features, targets and
filters go with which file is in ``tools/train_and_eval_{codl,mulayer}_lat_predictors.sh``, ``ka_fit.py`` and
``flops_lr_fit.py``. This reader does the same with the csv module and is stricter where pandas would guess: a
data row with more fields than the header (pandas would turn the extra leading fields into an index and shift
every name) or a non-numeric feature or target fails.
"""

from __future__ import annotations

import csv
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

_OPS: dict[str, Callable[[float, float], bool]] = {"<": operator.lt, ">": operator.gt, "==": operator.eq}


@dataclass(frozen=True)
class Loader:
    name: str  # the DataLoader class the trainer uses
    features: list[str]
    targets: list[str]
    products: dict[str, tuple[str, ...]] = field(default_factory=dict)  # add_col_by_mul
    filters: list[tuple[str, str, float]] = field(default_factory=list)  # add_filter


_POOLING = Loader("PoolingDataLoader", ["PARAMS"], ["COST"], {"PARAMS": ("IH", "IW", "IC")},
                  [("SD_COST", "<", 5), ("COST", ">", 0.5)])  # fmt: skip
LOADERS: dict[str, Loader] = {
    "t_data_sharing.csv": Loader(
        "DataSharingDataLoader",
        ["FLOPS_IN", "FLOPS_OUT"],
        ["T_DT_IN", "T_MAP_IN", "T_MAP_OUT", "T_DT_OUT"],
        {"FLOPS_IN": ("IH", "IW", "IC"), "FLOPS_OUT": ("OH", "OW", "OC")},
    ),
    "t_pooling_cpu_direct_max.csv": _POOLING,
    "t_pooling_gpu_direct_max.csv": _POOLING,
    "t_pooling_cpu_direct_avg.csv": _POOLING,
    "t_pooling_gpu_direct_avg.csv": _POOLING,
    **{f"t_mulayer_conv2d_{d}.csv": Loader("Conv2dDataLoader", ["F0", "F1"], ["COST"]) for d in ("cpu", "gpu")},
    **{f"t_mulayer_fc_{d}.csv": Loader("FullyConnectedDataLoader", ["F0", "F1"], ["COST"]) for d in ("cpu", "gpu")},
    **{f"t_mulayer_pooling_{d}.csv": Loader("PoolingDataLoader", ["F0", "F1"], ["COST"]) for d in ("cpu", "gpu")},
}


@dataclass(frozen=True)
class Loaded:
    rows: int  # data rows in the file
    kept: int  # rows left after the trainer's filters
    train: int  # rows in the 70 % training split
    features: list[list[float]]
    targets: list[list[float]]


def load(path: Path) -> Loaded:
    """Load ``path`` the way the trainer does; ``AssertionError``/``KeyError``/``ValueError`` when it cannot."""
    loader = LOADERS[path.name]
    with path.open(newline="", encoding="utf-8") as fh:
        table = list(csv.reader(fh))
    header, body = table[0], table[1:]
    assert len(set(header)) == len(header), f"{path.name}: duplicate column names {header}"
    for i, line in enumerate(body, start=2):
        assert len(line) == len(header), f"{path.name}:{i}: {len(line)} fields under a {len(header)}-column header"
    frame = [dict(zip(header, line, strict=True)) for line in body]
    numeric: list[dict[str, float]] = []
    for record in frame:
        values = {k: float(v) for k, v in record.items() if k != "CNN" and v != ""}
        for column, factors in loader.products.items():
            if all(f in values for f in factors):  # PoolingDataLoader adds PARAMS only when IH exists
                values[column] = math.prod(values[f] for f in factors)
        numeric.append(values)
    kept = [v for v in numeric if all(_OPS[op](v[col], limit) for col, op, limit in loader.filters)]
    features = [[v[f] for f in loader.features] for v in kept]
    targets = [[v[t] for t in loader.targets] for v in kept]
    for row in features + targets:
        assert all(math.isfinite(x) for x in row), f"{path.name}: non-finite value in {row}"
    return Loaded(len(body), len(kept), round(len(kept) * 0.7), features, targets)
