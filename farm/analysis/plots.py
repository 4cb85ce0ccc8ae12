"""Which plots fit a job (chosen from the axes and metrics it has) and drawing them as PNG with matplotlib.

Rules, first match wins (``x`` is the horizontal axis; one line per combination of the *line* columns; one
panel per combination of the *panel* columns):

1. LLM sparsity sweeps (axis ``sparsity`` and a tokens/s metric): tokens/s vs sparsity, lines = thread count
   and the other axes, panels = devices.
2. CPU/GPU split sweeps (axis ``part_ratio``): latency vs split ratio, lines = op shape (and partition
   dimension), panels = device × memory type (axes whose name contains ``memory``).
3. Batch sweeps with a throughput metric (axis ``batch_size``/``batch``/``bsz``): throughput vs batch size,
   one line per device (an NPU, a TPU chip) and other-axis combination.
4. Fallback: the main metric vs the numeric axis with the most values, lines = the other axes, panels =
   devices; with no numeric axis, a bar chart of the main metric per axis combination, one bar per device.

Besides these, :func:`energy_plots` draws energy per unit of work (``j_per_token``, ``pictures_per_j``) the way
the fallback draws a metric, when the job's rows have it.

Axes that only restate another one (zipped pairs such as threads ↔ cores) are left out of labels. Points are
medians over repeats; the whiskers span min–max. Drawing uses the object-oriented API on the Agg canvas
(no pyplot, no global backend switch), so it is safe inside a library and in threads.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farm.analysis.jobdata import SLOT, JobData, Row, axis_name, describe, group_rows, is_number
from farm.analysis.stats import finite, median

log = logging.getLogger(__name__)

_BATCH_AXES = ("p_batch_size", "p_batch", "p_bsz")
#: Energy per unit of work that :func:`energy_plots` draws (see farm.probes.power.per_unit_columns).
ENERGY_PER_UNIT = ("j_per_token", "pictures_per_j")
_MAX_PANELS = 16
_MAX_TICKS = 12
_PANEL_W, _PANEL_H = 5.2, 3.6


@dataclass(frozen=True)
class PlotSpec:
    """One figure: ``metric`` over ``x`` (``None``: bars over categories), lines and panels by columns."""

    metric: str
    x: str | None
    lines: tuple[str, ...]
    panels: tuple[str, ...]
    title: str
    filename: str
    rule: str


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower() or "plot"


def _spec(
    data: JobData, metric: str, x: str | None, lines: Sequence[str], panels: Sequence[str], *, rule: str
) -> PlotSpec:
    over = f" vs {axis_name(x)}" if x else ""
    title = f"{data.job}: {metric}{over}" + (" (synthetic)" if data.synthetic else "")
    name = f"{_slug(metric)}{'_vs_' + _slug(axis_name(x)) if x else '_by_point'}.png"
    return PlotSpec(metric, x, tuple(lines), tuple(panels), title, name, rule)


def choose_plots(data: JobData, metrics: Sequence[str] | None = None) -> list[PlotSpec]:
    """The plots that fit ``data`` (see the module docstring), for ``metrics`` if given."""
    if not data.measurements or not data.metrics:
        return []
    wanted = [m for m in (metrics or data.metrics) if m in data.metrics]
    if not wanted:
        return []
    axes = data.independent_axes()
    varying = [a for a in axes if len(data.values(a)) > 1]

    if "p_sparsity" in varying:
        rates = [m for m in wanted if m in ("decode_tokens_per_s", "prefill_tokens_per_s")]
        if rates:
            others = [a for a in varying if a != "p_sparsity"]
            others.sort(key=lambda a: 0 if a == "p_threads" else 1)
            return [_spec(data, m, "p_sparsity", others, [SLOT], rule="sparsity sweep") for m in rates]

    if "p_part_ratio" in varying:
        # Shapes are zipped axes; label a line by all of them, as each alone does not say which op it is.
        shape_like = [a for a in data.axes if a != "p_part_ratio" and len(data.values(a)) > 1]
        memory = [a for a in shape_like if "memory" in a]
        lines = [a for a in shape_like if a not in memory]
        latency = [m for m in wanted if "latency" in m] or wanted
        metric = latency[0]
        return [_spec(data, metric, "p_part_ratio", lines, [SLOT, *memory], rule="CPU/GPU split sweep")]

    batch = next((a for a in _BATCH_AXES if a in varying), None)
    throughput = [m for m in wanted if m.startswith("throughput")]
    if batch and throughput:
        others = [a for a in varying if a != batch]
        return [_spec(data, m, batch, [SLOT, *others], [], rule="batch-size sweep") for m in throughput[:2]]

    return [_generic(data, wanted[0], varying)]


def _generic(data: JobData, metric: str, varying: Sequence[str], rule: str = "generic") -> PlotSpec:
    numeric = [a for a in varying if a in data.numeric_axes()]
    if numeric:
        x = max(numeric, key=lambda a: (len(data.values(a)), -varying.index(a)))
        return _spec(data, metric, x, [a for a in varying if a != x], [SLOT], rule=f"{rule}: numeric axis")
    return _spec(data, metric, None, varying, [], rule=f"{rule}: categories")


def energy_plots(data: JobData) -> list[PlotSpec]:
    """Energy per unit of work (:data:`ENERGY_PER_UNIT`) against the grid axes, as the generic rule draws a
    metric, when the rows have it (runs with a valid energy reading only carry these columns)."""
    if not data.measurements:
        return []
    varying = [a for a in data.independent_axes() if len(data.values(a)) > 1]
    return [_generic(data, m, varying, rule="energy") for m in ENERGY_PER_UNIT if m in data.metrics]


# -- drawing ------------------------------------------------------------------------------------------------


def _medians(rows: Sequence[Row], metric: str, x: str) -> list[tuple[Any, float, float, float]]:
    out = []
    for (xv,), group in group_rows(rows, [x]).items():
        values = finite([r.get(metric) for r in group])
        if xv is not None and values:
            out.append((xv, median(values), min(values), max(values)))
    return out


def render(data: JobData, spec: PlotSpec, out_dir: Path) -> Path | None:
    """Draw ``spec`` into ``out_dir/spec.filename``; ``None`` if the job holds nothing to draw."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [r for r in data.measurements if finite([r.get(spec.metric)])]
    if not rows:
        return None
    panels = group_rows(rows, spec.panels) if spec.panels else {(): rows}
    if len(panels) > _MAX_PANELS:
        log.warning("%s: %d panels, drawing the first %d", spec.filename, len(panels), _MAX_PANELS)
        panels = dict(list(panels.items())[:_MAX_PANELS])
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(_PANEL_W * ncols, _PANEL_H * nrows + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.subplots(nrows, ncols, squeeze=False)
    for ax in grid.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (pkey, prow) in zip(grid.flat, panels.items(), strict=False):
        if spec.x is not None:
            _draw_lines(ax, prow, spec, spec.x)
        else:
            _draw_bars(ax, prow, spec)
        ax.set_title(describe(spec.panels, pkey) if spec.panels else "", fontsize=9)
        ax.set_ylabel(spec.metric, fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=8)
    fig.suptitle(spec.title + "\nmedian over repeats, whiskers min–max", fontsize=10)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / spec.filename
    fig.savefig(path, dpi=100)
    return path


def _draw_lines(ax: Any, rows: list[Row], spec: PlotSpec, x: str) -> None:
    lines = group_rows(rows, spec.lines) if spec.lines else {(): rows}
    xs_seen: set[Any] = set()
    for lkey, lrows in lines.items():
        points = _medians(lrows, spec.metric, x)
        if not points:
            continue
        xs = [p[0] for p in points]
        xs_seen.update(xs)
        ys = [p[1] for p in points]
        err = [[p[1] - p[2] for p in points], [p[3] - p[1] for p in points]]
        label = describe(spec.lines, lkey) if spec.lines else spec.metric
        ax.errorbar(xs, ys, yerr=err, marker="o", markersize=4, capsize=3, linewidth=1.4, label=label)
    ax.set_xlabel(axis_name(x), fontsize=9)
    if len(xs_seen) <= _MAX_TICKS and all(is_number(v) for v in xs_seen):
        ax.set_xticks(sorted(xs_seen))  # a grid axis has few values: mark exactly those
    if len(lines) > 1:
        ax.legend(fontsize=7, loc="best")


def _draw_bars(ax: Any, rows: list[Row], spec: PlotSpec) -> None:
    categories = group_rows(rows, spec.lines) if spec.lines else {(): rows}
    devices = sorted({r[SLOT] for r in rows})
    width = 0.8 / max(1, len(devices))
    labels = [describe(spec.lines, k) if spec.lines else data_label(k) for k in categories]
    for i, device in enumerate(devices):
        heights, lows, highs, xs = [], [], [], []
        for j, crows in enumerate(categories.values()):
            values = finite([r.get(spec.metric) for r in crows if r[SLOT] == device])
            if values:
                m = median(values)
                xs.append(j + i * width - 0.4 + width / 2)
                heights.append(m)
                lows.append(m - min(values))
                highs.append(max(values) - m)
        ax.bar(xs, heights, width=width, yerr=[lows, highs], capsize=3, label=device)
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right")
    if len(devices) > 1:
        ax.legend(fontsize=7, loc="best")


def data_label(key: Sequence[object]) -> str:
    return ", ".join(str(v) for v in key) or "all runs"


def render_all(data: JobData, specs: Sequence[PlotSpec], out_dir: Path) -> list[tuple[PlotSpec, Path]]:
    """Draw every spec; plots with nothing to draw are skipped."""
    drawn = []
    for spec in specs:
        path = render(data, spec, out_dir)
        if path is not None:
            drawn.append((spec, path))
    return drawn
