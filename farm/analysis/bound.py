"""Elastic-infer bound analysis: is sparse decoding synchronization-, Flash-IO- or RAM-IO-bound?

The method (from the elastic-infer seed), per device × grid point (typically × sparsity):

1. With sparse-tensor loading **off** (``LLAMA_LOAD_SPARSE_TENSOR=0``) compare the prefill time per token
   ``T_enc`` with the decode time per token ``T_dec``. If ``T_enc / T_dec < sync_ratio`` (T_enc ≪ T_dec) the
   decode step waits on synchronization, not on data: **synchronization-bound**.
2. Otherwise compare the decode time per token with loading + caching **on**, ``T'_dec``, to ``T_dec``: if
   ``T'_dec / T_dec ≥ ram_ratio`` (T'_dec ≫ T_dec) fetching weights from storage dominates:
   **Flash-IO-bound**; else (T'_dec ≈ T_dec) the weights come from memory fast enough: **RAM-IO-bound**.

In the recipe, step 4-1 is the step-3 pipeline (``mymain-t-aarch64``, 50 % sparsity, the index cache as in
step 3) with loading off; step 4-2 the same with loading and cache on (``jobs/elastic-infer-bound.yaml``).
``T_enc``/``T_dec`` are llama.cpp's ``prompt eval time`` / ``eval time`` per token (``prefill_ms_per_token`` /
``decode_ms_per_token``, or ``1000 / *_tokens_per_s`` where a row has only the rate), medians over repeats.
The loading axis is the grid axis that sets ``LLAMA_LOAD_SPARSE_TENSOR``; axes that only restate it (``step``,
or an ``index_cache`` zipped with it) are folded into it. Every verdict names the runs behind each side and
their env (the row's ``env`` column when the results have one, else the loading axis and its folded axes). A
Welch t-test p-value of T'_dec against T_dec is given for context, not used by the verdict.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from farm.analysis.jobdata import (
    SLOT,
    JobData,
    Row,
    axis_name,
    bijective,
    describe,
    group_rows,
    is_number,
)
from farm.analysis.stats import finite, median, welch_t_test
from farm.errors import ConfigError

DEFAULT_SYNC_RATIO = 0.2
DEFAULT_RAM_RATIO = 1.2
#: Axis names tried, in order, when ``--loading-axis`` is not given.
LOADING_AXES = ("load", "loading", "load_sparse")

SYNC, FLASH, RAM, UNDETERMINED = "synchronization-bound", "Flash-IO-bound", "RAM-IO-bound", "undetermined"

_OFF = {"0", "off", "false", "no"}
_ON = {"1", "on", "true", "yes"}


def loading_state(value: object) -> bool | None:
    """True/False for a loading-axis value that means on/off (1/0, true/false, on/off); ``None`` otherwise."""
    if isinstance(value, bool):
        return value
    if is_number(value):
        return None if value not in (0, 1) else bool(value)
    text = str(value).strip().lower()
    return True if text in _ON else False if text in _OFF else None


def detect_loading_axis(data: JobData, name: str | None, source: str) -> str:
    """The column of the loading axis: ``name`` if given, else the first of :data:`LOADING_AXES` present."""
    axes = ", ".join(axis_name(a) for a in data.axes) or "none"
    if name is not None:
        column = name if name.startswith("p_") else f"p_{name}"
        if column not in data.axes:
            raise ConfigError.single(source, "--loading-axis", f"job {data.job!r} has no axis {name!r} (axes: {axes})")
        return column
    for candidate in LOADING_AXES:
        if f"p_{candidate}" in data.axes:
            return f"p_{candidate}"
    raise ConfigError.single(
        source,
        "--loading-axis",
        f"job {data.job!r} has none of the axes {', '.join(LOADING_AXES)}: name the axis that sets "
        f"LLAMA_LOAD_SPARSE_TENSOR (axes: {axes})",
    )


def _positive(value: object) -> float | None:
    number = finite([value])
    return number[0] if number and number[0] > 0 else None


def _ms_per_token(row: Row, phase: str) -> float | None:
    ms = _positive(row.get(f"{phase}_ms_per_token"))
    if ms is not None:
        return ms
    rate = _positive(row.get(f"{phase}_tokens_per_s"))
    return 1000.0 / rate if rate is not None else None


def _times(rows: Sequence[Row], phase: str) -> list[float]:
    return [t for t in (_ms_per_token(r, phase) for r in rows) if t is not None]


@dataclass(frozen=True)
class BoundRow:
    """The numbers and verdict for one device × grid point."""

    device: str
    point: dict[str, Any]
    n_off: int
    n_on: int
    t_enc_ms: float | None
    t_dec_ms: float | None
    t_dec_on_ms: float | None
    enc_dec_ratio: float | None
    load_ratio: float | None
    load_p_value: float | None
    verdict: str
    reason: str
    off_runs: list[str] = field(default_factory=list)  # run ids behind T_enc and T_dec (loading off)
    on_runs: list[str] = field(default_factory=list)  # run ids behind T'_dec (loading on)
    off_env: str = ""  # the env (or axis values) of the loading-off runs
    on_env: str = ""


@dataclass(frozen=True)
class BoundAnalysis:
    job: str
    loading_axis: str
    folded_axes: list[str]
    sync_ratio: float
    ram_ratio: float
    method: str
    rows: list[BoundRow]
    synthetic: bool

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["loading_axis"] = axis_name(self.loading_axis)
        out["folded_axes"] = [axis_name(a) for a in self.folded_axes]
        return out


def method_text(sync_ratio: float, ram_ratio: float) -> str:
    return (
        f"loading off: T_enc/T_dec < {sync_ratio:g} → {SYNC}; otherwise loading on: "
        f"T'_dec/T_dec ≥ {ram_ratio:g} → {FLASH}, below → {RAM}. "
        "T_enc = prefill ms/token, T_dec = decode ms/token (loading off), "
        "T'_dec = decode ms/token (loading on); medians over repeats."
    )


def classify(
    t_enc: float | None, t_dec: float | None, t_dec_on: float | None, sync_ratio: float, ram_ratio: float
) -> tuple[str, str, float | None, float | None]:
    """(verdict, reason, T_enc/T_dec, T'_dec/T_dec) from the three medians (``None`` where not measured)."""
    if t_enc is None or t_dec is None:
        return UNDETERMINED, "no loading-off runs with prefill and decode timings", None, None
    enc_dec = t_enc / t_dec
    load = t_dec_on / t_dec if t_dec_on is not None else None
    enc_text = f"T_enc/T_dec = {enc_dec:.3g}"
    if enc_dec < sync_ratio:
        return SYNC, f"{enc_text} < {sync_ratio:g}", enc_dec, load
    enc_text += f" ≥ {sync_ratio:g}"
    if load is None:
        return UNDETERMINED, f"{enc_text} and no loading-on runs", enc_dec, None
    load_text = f"T'_dec/T_dec = {load:.3g}"
    if load >= ram_ratio:
        return FLASH, f"{enc_text}; {load_text} ≥ {ram_ratio:g}", enc_dec, load
    return RAM, f"{enc_text}; {load_text} < {ram_ratio:g}", enc_dec, load


_ENV_PREFIXES = ("LLAMA_",)


def _env_of(row: Row) -> dict[str, str] | None:
    """The ``LLAMA_*`` variables of a row's recorded env (a mapping, JSON object or ``K=V`` lines), if any."""
    raw = row.get("env")
    if raw in (None, ""):
        return None
    env: object = raw
    if isinstance(raw, str):
        try:
            env = json.loads(raw)
        except ValueError:
            env = dict(part.split("=", 1) for part in raw.replace(";", "\n").splitlines() if "=" in part)
    if not isinstance(env, dict):
        return None
    return {str(k): str(v) for k, v in sorted(env.items()) if str(k).startswith(_ENV_PREFIXES)}


def side_env(rows: Sequence[Row], axes: Sequence[str]) -> str:
    """How one side of the comparison was configured: its distinct recorded envs, else its axis values."""
    envs = {json.dumps(e, sort_keys=True) for e in (_env_of(r) for r in rows) if e is not None}
    if envs:
        return "env " + " | ".join(" ".join(f"{k}={v}" for k, v in json.loads(e).items()) for e in sorted(envs))
    values = {tuple((axis_name(a), r.get(a)) for a in axes) for r in rows}
    return "axes " + " | ".join(" ".join(f"{k}={v}" for k, v in combo) for combo in sorted(values, key=str))


def analyze_bound(
    data: JobData,
    loading_axis: str | None = None,
    sync_ratio: float = DEFAULT_SYNC_RATIO,
    ram_ratio: float = DEFAULT_RAM_RATIO,
    source: str = "analyze bound",
) -> BoundAnalysis:
    """Classify every device × grid point of ``data`` (see the module docstring)."""
    if not sync_ratio > 0 or not ram_ratio > 0:
        raise ConfigError.single(source, "--sync-ratio/--ram-ratio", "thresholds must be positive")
    axis = detect_loading_axis(data, loading_axis, source)
    rows = data.measurements
    unknown = sorted({str(r.get(axis)) for r in rows if loading_state(r.get(axis)) is None})
    if unknown:
        raise ConfigError.single(
            source,
            "--loading-axis",
            f"axis {axis_name(axis)!r} has values that are neither on nor off: {unknown}",
        )
    # Axes switched together with loading (index_cache in the seed job) are part of "loading on/off".
    folded = [a for a in data.axes if a != axis and bijective(rows, axis, a)]
    point_axes = [a for a in data.axes if a != axis and a not in folded]
    out: list[BoundRow] = []
    for key, group in group_rows(rows, [SLOT, *point_axes]).items():
        off = [r for r in group if loading_state(r.get(axis)) is False]
        on = [r for r in group if loading_state(r.get(axis)) is True]
        enc, dec, dec_on = _times(off, "prefill"), _times(off, "decode"), _times(on, "decode")
        t_enc = median(enc) if enc else None
        t_dec = median(dec) if dec else None
        t_dec_on = median(dec_on) if dec_on else None
        verdict, reason, enc_dec, load = classify(t_enc, t_dec, t_dec_on, sync_ratio, ram_ratio)
        test = welch_t_test(dec, dec_on)
        out.append(
            BoundRow(
                device=key[0],
                point={axis_name(a): v for a, v in zip(point_axes, key[1:], strict=True)},
                n_off=len(off),
                n_on=len(on),
                t_enc_ms=t_enc,
                t_dec_ms=t_dec,
                t_dec_on_ms=t_dec_on,
                enc_dec_ratio=enc_dec,
                load_ratio=load,
                load_p_value=test.p if test else None,
                verdict=verdict,
                reason=reason,
                off_runs=sorted({str(r["run_id"]) for r in off}),
                on_runs=sorted({str(r["run_id"]) for r in on}),
                off_env=side_env(off, [axis, *folded]),
                on_env=side_env(on, [axis, *folded]),
            )
        )
    return BoundAnalysis(
        job=data.job,
        loading_axis=axis,
        folded_axes=folded,
        sync_ratio=sync_ratio,
        ram_ratio=ram_ratio,
        method=method_text(sync_ratio, ram_ratio),
        rows=out,
        synthetic=data.synthetic,
    )


def point_label(row: BoundRow) -> str:
    return describe([f"p_{k}" for k in row.point], list(row.point.values())) or "all runs"
