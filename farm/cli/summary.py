"""The table printed after a sweep: one line per grid point × device with median metrics over repeats."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from farm.cli.common import short, stdout
from farm.errors import FarmError

# The metrics shown first when present, in this order; others follow alphabetically (capped).
PREFERRED = (
    "decode_tokens_per_s",
    "prefill_tokens_per_s",
    "latency_ms",
    "throughput_samples_per_s",
    "first_token_latency_s",
    "makespan_s",
    "peak_rss_mb",
)
MAX_METRICS = 4


def print_summary(root: str, job: str, status: dict[str, Any]) -> None:
    console = stdout()
    counts = ", ".join(f"{n} {s}" for s, n in sorted(status["statuses"].items())) or "no runs"
    skipped = f", {status['skipped']} skipped (already ok)" if status["skipped"] else ""
    if status.get("not_started"):
        skipped += f", {status['not_started']} not started"
    console.print(f"[bold]{job}[/] ({status['job_id']}): {status['state']}: {counts}{skipped}")
    try:
        from farm.results import connect

        con = connect(root)
        try:
            sql = "SELECT * FROM runs WHERE job = ? AND status = 'ok' AND NOT warmup"
            table = con.sql(sql, params=[job]).to_arrow_table()
        finally:
            con.close()
    except FarmError as exc:
        console.print(f"[yellow]no result table: {exc}[/]")
        return
    rows = table.to_pylist()
    if not rows:
        return
    columns = table.column_names
    params = _independent([c for c in columns if c.startswith("p_")], rows)
    numeric = {
        c for c in columns if rows and isinstance(rows[0].get(c), float | int) and not isinstance(rows[0].get(c), bool)
    }
    metrics = [m for m in PREFERRED if m in numeric]
    if not metrics:
        metrics = sorted(c for c in numeric if _is_metric(c))
    metrics = metrics[:MAX_METRICS]
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["device_id"], *(r.get(p) for p in params)), []).append(r)
    out = Table(title=f"{job}: median over repeats (ok runs)", show_edge=False)
    out.add_column("device")
    for p in params:
        out.add_column(p[2:])
    out.add_column("n", justify="right")
    for m in metrics:
        out.add_column(_label(m), justify="right")
    for key in sorted(groups, key=lambda k: tuple(_sort_key(x) for x in k)):
        rs = groups[key]
        cells = [str(key[0]), *(short(v) for v in key[1:]), str(len(rs))]
        for m in metrics:
            vals = sorted(r[m] for r in rs if isinstance(r.get(m), int | float))
            cells.append(f"{_median(vals):.2f}" if vals else "")
        out.add_row(*cells)
    console.print(out)
    hint = "SELECT * FROM runs WHERE job = '" + job + "'"  # noqa: S608 - printed as a hint, never executed
    console.print(f'[dim]query: farm query "{hint}" --results {root}[/]')


def _independent(params: list[str], rows: list[dict[str, Any]]) -> list[str]:
    """Drop parameters that only restate an earlier one (zip partners such as threads ↔ cores)."""
    kept: list[str] = []
    for p in params:
        restates = any(
            len({(str(r.get(k)), str(r.get(p))) for r in rows})
            == len({str(r.get(k)) for r in rows})
            == len({str(r.get(p)) for r in rows})
            for k in kept
        )
        if not restates:
            kept.append(p)
    return kept


def _is_metric(col: str) -> bool:
    skip = ("p_", "fp_", "temp_gate", "cooldown_")
    fixed = {"attempt", "repeat", "duration_s", "exit_code", "bytes_pushed", "dispatch_latency_s"}
    return not col.startswith(skip) and col not in fixed


def _label(metric: str) -> str:
    """``decode_tokens_per_s`` → ``decode tok/s``: compact headers keep the table inside 80 columns."""
    for suffix, unit in (("_tokens_per_s", " tok/s"), ("_per_s", "/s"), ("_mb", " MB"), ("_ms", " ms"), ("_s", " s")):
        if metric.endswith(suffix):
            return metric[: -len(suffix)].replace("_", " ") + unit
    return metric.replace("_", " ")


def _sort_key(value: Any) -> tuple[int, float, str]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def _median(vals: list[float]) -> float:
    n = len(vals)
    return vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) / 2
