"""The per-job report: statistics per grid point × device, status counts, failures, environment, plots.

:func:`build_report` computes a :class:`Report` from a :class:`~farm.analysis.jobdata.JobData`;
:func:`write_report` writes it as ``report.md``, ``report.html``, ``stats.csv`` (every metric) and
``plots/*.png``. Markdown and HTML are rendered from the same list of blocks, so they always say the same.
"""

from __future__ import annotations

import csv
import html
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from farm.analysis.jobdata import SLOT, JobData, axis_name, describe, format_value, group_rows
from farm.analysis.plots import choose_plots, energy_plots, render_all
from farm.analysis.stats import Summary, finite, summarize

log = logging.getLogger(__name__)

DEFAULT_CV_THRESHOLD = 0.05
#: Metrics given a table in the markdown/HTML report when none are chosen (all are in stats.csv).
MAX_SHOWN_METRICS = 4
_HASH_SHOWN = 12


@dataclass(frozen=True)
class PointStats:
    """One metric over the repeats of one grid point on one device."""

    device: str
    point: tuple[Any, ...]
    metric: str
    summary: Summary
    noisy: bool


@dataclass(frozen=True)
class Failure:
    """A row that is not a measurement because the run did not succeed."""

    run_id: str
    device: str
    attempt: int
    point: str
    status: str
    error: str
    recovered: bool  # a later attempt of the same run succeeded


@dataclass(frozen=True)
class Report:
    job: str
    root: str
    axes: tuple[str, ...]
    metrics: tuple[str, ...]  # every metric with statistics
    shown: tuple[str, ...]  # the metrics given a table
    cv_threshold: float
    stats: list[PointStats]
    status_counts: dict[str, int]
    warmup_rows: int
    failures: list[Failure]
    fingerprints: dict[str, dict[str, list[str]]]  # device → fp column → distinct values
    synthetic: bool
    rows: int

    @property
    def noisy(self) -> list[PointStats]:
        return [s for s in self.stats if s.noisy and s.metric in self.shown]


def _fingerprints(data: JobData) -> dict[str, dict[str, list[str]]]:
    out: dict[str, dict[str, list[str]]] = {}
    for (device,), rows in group_rows(data.rows, [SLOT]).items():
        out[device] = {c: sorted({str(r[c]) for r in rows if r.get(c) is not None}) for c in data.fingerprints}
    return out


def build_report(
    data: JobData, metrics: Sequence[str] | None = None, cv_threshold: float = DEFAULT_CV_THRESHOLD
) -> Report:
    """Statistics of ``metrics`` (default: every metric; the first few shown) for every point × device."""
    chosen = tuple(metrics) if metrics else data.metrics
    shown = chosen if metrics else chosen[:MAX_SHOWN_METRICS]
    keys = [SLOT, *data.axes]
    stats: list[PointStats] = []
    for key, rows in group_rows(data.measurements, keys).items():
        for metric in chosen:
            values = finite([r.get(metric) for r in rows])
            if not values:
                continue
            summary = summarize(values)
            noisy = summary.cv is not None and summary.cv > cv_threshold
            stats.append(PointStats(key[0], key[1:], metric, summary, noisy))
    ok_runs = {r["run_id"] for r in data.rows if r["status"] == "ok"}
    failures = [
        Failure(
            run_id=r["run_id"],
            device=r[SLOT],
            attempt=r["attempt"],
            point=describe(data.axes, [r.get(a) for a in data.axes]),
            status=r["status"],
            error=r.get("error") or "",
            recovered=r["run_id"] in ok_runs,
        )
        for r in data.rows
        if r["status"] != "ok"
    ]
    return Report(
        job=data.job,
        root=data.root,
        axes=data.axes,
        metrics=chosen,
        shown=shown,
        cv_threshold=cv_threshold,
        stats=stats,
        status_counts=dict(Counter(r["status"] for r in data.rows).most_common()),
        warmup_rows=sum(1 for r in data.rows if r["warmup"]),
        failures=failures,
        fingerprints=_fingerprints(data),
        synthetic=data.synthetic,
        rows=len(data.rows),
    )


# -- blocks shared by the markdown and HTML renderings ------------------------------------------------------


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class TableBlock:
    header: list[str]
    rows: list[list[str]]
    numeric: list[bool] = field(default_factory=list)


@dataclass(frozen=True)
class Image:
    alt: str
    path: str  # relative to the report


Block = Heading | Paragraph | TableBlock | Image


def _num(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}g}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _short(value: str) -> str:
    # Hashes are 64 hex digits: the head identifies them in a table.
    if len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:_HASH_SHOWN] + "…"
    return value


def _blocks(report: Report, plots: Sequence[tuple[str, str]], plot_note: str | None) -> list[Block]:
    blocks: list[Block] = [Heading(1, f"Report: {report.job}")]
    synthetic = (
        " **Includes synthetic results** (simulated devices): not measurements of real hardware."
        if report.synthetic
        else ""
    )
    blocks.append(
        Paragraph(
            f"Results root `{report.root}`: {report.rows} rows ({report.warmup_rows} warm-up) on "
            f"{len(report.fingerprints)} device(s); grid axes: "
            f"{', '.join(axis_name(a) for a in report.axes) or 'none'}.{synthetic}"
        )
    )
    blocks.append(
        Paragraph(
            "Statistics are over the repeats of each grid point on each device, from rows with status `ok` "
            "that are not warm-ups: median; p90 by linear interpolation between closest ranks; CV = sample "
            f"standard deviation / mean, flagged when above {_pct(report.cv_threshold)}."
        )
    )
    blocks.append(Heading(2, "Runs by status"))
    blocks.append(TableBlock(["status", "rows"], [[s, str(n)] for s, n in report.status_counts.items()], [False, True]))
    if report.failures:
        blocks.append(Heading(2, f"Failures ({len(report.failures)})"))
        blocks.append(
            TableBlock(
                ["run_id", "device", "attempt", "point", "status", "error", "retried ok"],
                [
                    [
                        f.run_id,
                        f.device,
                        str(f.attempt),
                        f.point,
                        f.status,
                        f.error,
                        "yes" if f.recovered else "no",
                    ]
                    for f in report.failures
                ],
            )
        )
    blocks.extend(_environment_blocks(report))
    for metric in report.shown:
        blocks.extend(_metric_blocks(report, metric))
    extra = [m for m in report.metrics if m not in report.shown]
    if extra:
        blocks.append(Paragraph(f"More metrics in `stats.csv`: {', '.join(extra)}."))
    blocks.append(Heading(2, "Noisy points"))
    if report.noisy:
        blocks.append(
            TableBlock(
                ["metric", "device", "point", "n", "CV"],
                [
                    [s.metric, s.device, describe(report.axes, s.point), str(s.summary.n), _pct(s.summary.cv)]
                    for s in report.noisy
                ],
                [False, False, False, True, True],
            )
        )
    else:
        blocks.append(Paragraph(f"No point of the shown metrics has a CV above {_pct(report.cv_threshold)}."))
    blocks.append(Heading(2, "Plots"))
    if plot_note:
        blocks.append(Paragraph(plot_note))
    for alt, path in plots:
        blocks.append(Image(alt, path))
    return blocks


def _environment_blocks(report: Report) -> list[Block]:
    devices = list(report.fingerprints)
    columns = sorted({c for fp in report.fingerprints.values() for c in fp})
    blocks: list[Block] = [Heading(2, "Environment")]
    if not columns:
        return [*blocks, Paragraph("No fingerprint columns (`fp_*`) were recorded.")]
    rows = []
    changed = []
    for column in columns:
        cells = [column]
        for device in devices:
            values = report.fingerprints[device].get(column, [])
            if len(values) > 1:
                changed.append(f"{device}: {column}")
                cells.append(f"⚠ {len(values)} values: " + "; ".join(_short(v) for v in values))
            else:
                cells.append(_short(values[0]) if values else "—")
        rows.append(cells)
    blocks.append(TableBlock(["fingerprint", *devices], rows))
    if changed:
        blocks.append(Paragraph("The environment changed during the job on: " + ", ".join(changed) + "."))
    return blocks


def _metric_blocks(report: Report, metric: str) -> list[Block]:
    stats = [s for s in report.stats if s.metric == metric]
    header = ["device", *(axis_name(a) for a in report.axes), "n", "median", "p90", "CV", ""]
    rows = [
        [
            s.device,
            *(format_value(v) for v in s.point),
            str(s.summary.n),
            _num(s.summary.median),
            _num(s.summary.p90),
            _pct(s.summary.cv),
            "⚠ noisy" if s.noisy else "",
        ]
        for s in stats
    ]
    numeric = [False] * (1 + len(report.axes)) + [True] * 4 + [False]
    return [Heading(2, f"Results: {metric}"), TableBlock(header, rows, numeric)]


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: Sequence[Block]) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}\n")
        elif isinstance(block, Paragraph):
            out.append(block.text + "\n")
        elif isinstance(block, TableBlock):
            numeric = block.numeric or [False] * len(block.header)
            out.append("| " + " | ".join(_md_cell(h) or " " for h in block.header) + " |")
            out.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
            out.extend("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows)
            out.append("")
        else:
            out.append(f"![{block.alt}]({block.path})\n")
    return "\n".join(out)


_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}"
    "table{border-collapse:collapse;margin:0.5em 0 1.5em}"
    "th,td{border:1px solid #ccc;padding:3px 8px;font-size:13px}th{background:#f3f3f3}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}img{max-width:100%;border:1px solid #eee}"
    "code{background:#f5f5f5;padding:0 3px}"
)


def _html_text(text: str) -> str:
    # The paragraphs use `code` and **bold** markdown spans: render those two, escape everything else.
    parts = html.escape(text).split("`")
    text = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    bold = text.split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(bold))


def render_html(blocks: Sequence[Block], title: str) -> str:
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"]
    out.append(f"<style>{_CSS}</style></head><body>")
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            out.append(f"<p>{_html_text(block.text)}</p>")
        elif isinstance(block, TableBlock):
            numeric = block.numeric or [False] * len(block.header)
            out.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in block.header) + "</tr>")
            for row in block.rows:
                cells = "".join(
                    f"<td{' class=n' if n else ''}>{html.escape(c)}</td>" for c, n in zip(row, numeric, strict=False)
                )
                out.append(f"<tr>{cells}</tr>")
            out.append("</table>")
        else:
            alt = html.escape(block.alt, quote=True)
            out.append(f"<p><img src='{html.escape(block.path, quote=True)}' alt='{alt}'></p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_stats_csv(report: Report, path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(
            [
                SLOT,
                *report.axes,
                "metric",
                "n",
                "median",
                "p90",
                "mean",
                "stdev",
                "cv",
                "min",
                "max",
                "noisy",
            ]
        )
        for s in report.stats:
            m = s.summary
            writer.writerow(
                [
                    s.device,
                    *("" if v is None else v for v in s.point),
                    s.metric,
                    m.n,
                    m.median,
                    m.p90,
                    m.mean,
                    "" if m.stdev is None else m.stdev,
                    "" if m.cv is None else m.cv,
                    m.min,
                    m.max,
                    s.noisy,
                ]
            )


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    html: Path
    stats_csv: Path
    plots: list[Path]
    plot_note: str | None


def write_report(report: Report, data: JobData, out_dir: Path, with_plots: bool = True) -> ReportFiles:
    """Write the report files under ``out_dir`` (created); plots only if matplotlib is installed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plots: list[tuple[str, str]] = []
    paths: list[Path] = []
    note: str | None = None
    if with_plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            note = "Plots skipped: matplotlib is not installed (`pip install 'farm[report]'`)."
            log.warning("report %s: %s", report.job, note)
        else:
            specs = choose_plots(data, report.shown)
            specs += [e for e in energy_plots(data) if e.filename not in {s.filename for s in specs}]
            for spec, path in render_all(data, specs, out_dir / "plots"):
                paths.append(path)
                plots.append((f"{spec.title} ({spec.rule})", f"plots/{path.name}"))
            if not plots:
                note = "No plot: the job has no measurement to draw."
    else:
        note = "Plots not requested."
    blocks = _blocks(report, plots, note)
    md = out_dir / "report.md"
    md.write_text(render_markdown(blocks), encoding="utf-8")
    page = out_dir / "report.html"
    page.write_text(render_html(blocks, f"Report: {report.job}"), encoding="utf-8")
    stats_csv = out_dir / "stats.csv"
    write_stats_csv(report, stats_csv)
    return ReportFiles(md, page, stats_csv, paths, note)
