"""The elastic-infer bound analysis on hand-made timings: each verdict, its numbers, axis detection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from farm.analysis.bound import FLASH, RAM, SYNC, UNDETERMINED, analyze_bound, classify, loading_state
from farm.errors import ConfigError
from tests.analysis.jobs import job


def _runs(device: str, sparsity: float, load: int, prefill: list[float], decode: list[float]) -> list[dict[str, Any]]:
    return [
        {
            "slot": device,
            "p_sparsity": sparsity,
            "p_load_sparse": load,
            "p_index_cache": load,
            "repeat": i,
            "prefill_ms_per_token": p,
            "decode_ms_per_token": d,
        }
        for i, (p, d) in enumerate(zip(prefill, decode, strict=True))
    ]


def bound_rows() -> list[dict[str, Any]]:
    rows = [
        # sparsity 0: T_enc 11, T_dec 100 → 0.11 < 0.2: synchronization-bound (loading-on runs do not matter)
        *_runs("phone-1", 0.0, 0, [10, 11, 12], [100, 110, 90]),
        *_runs("phone-1", 0.0, 1, [10, 10, 10], [300, 300, 300]),
        # sparsity 0.5: T_enc 50, T_dec 100 → 0.5; T'_dec 155 → 1.55 ≥ 1.2: Flash-IO-bound
        *_runs("phone-1", 0.5, 0, [50, 50, 50], [100, 100, 102]),
        *_runs("phone-1", 0.5, 1, [50, 50, 50], [150, 160, 155]),
        # sparsity 0.9: T_enc 60, T_dec 102 → 0.588; T'_dec 106 → 1.039 < 1.2: RAM-IO-bound
        *_runs("phone-1", 0.9, 0, [60, 60], [100, 104]),
        *_runs("phone-1", 0.9, 1, [60, 60], [105, 107]),
    ]
    # phone-2 recorded only rates (older build) and never ran with loading on.
    rows += [
        {"slot": "phone-2", "p_sparsity": 0.5, "p_load_sparse": 0, "p_index_cache": 0, "repeat": i,
         "prefill_tokens_per_s": 20.0, "decode_tokens_per_s": 10.0}
        for i in range(2)
    ]  # fmt: skip
    rows.append({**rows[0], "warmup": True, "decode_ms_per_token": 1.0})  # a warm-up never counts
    return rows


def test_verdicts_and_numbers(tmp_path: Path) -> None:
    result = analyze_bound(job(tmp_path, "bound", bound_rows()))
    assert result.loading_axis == "p_load_sparse" and result.folded_axes == ["p_index_cache"]
    by = {(r.device, r.point["sparsity"]): r for r in result.rows}
    assert list(by) == [("phone-1", 0.0), ("phone-1", 0.5), ("phone-1", 0.9), ("phone-2", 0.5)]

    sync = by[("phone-1", 0.0)]
    assert (sync.t_enc_ms, sync.t_dec_ms, sync.t_dec_on_ms) == (11.0, 100.0, 300.0)
    assert sync.enc_dec_ratio == pytest.approx(0.11) and sync.verdict == SYNC
    assert (sync.n_off, sync.n_on) == (3, 3)

    flash = by[("phone-1", 0.5)]
    assert (flash.t_enc_ms, flash.t_dec_ms, flash.t_dec_on_ms) == (50.0, 100.0, 155.0)
    assert flash.enc_dec_ratio == pytest.approx(0.5) and flash.load_ratio == pytest.approx(1.55)
    assert flash.verdict == FLASH and flash.load_p_value is not None and flash.load_p_value < 0.05
    assert "T'_dec/T_dec = 1.55 ≥ 1.2" in flash.reason

    ram = by[("phone-1", 0.9)]
    assert ram.t_dec_ms == 102.0 and ram.load_ratio == pytest.approx(106 / 102)
    assert ram.enc_dec_ratio == pytest.approx(60 / 102) and ram.verdict == RAM

    only_off = by[("phone-2", 0.5)]  # rates converted: 1000 / 20 = 50 ms, 1000 / 10 = 100 ms
    assert (only_off.t_enc_ms, only_off.t_dec_ms, only_off.t_dec_on_ms) == (50.0, 100.0, None)
    assert only_off.verdict == UNDETERMINED and "no loading-on runs" in only_off.reason

    payload = result.to_json()
    assert payload["loading_axis"] == "load_sparse" and payload["folded_axes"] == ["index_cache"]
    assert "T_enc/T_dec < 0.2" in payload["method"]


def test_thresholds_change_the_verdict(tmp_path: Path) -> None:
    result = analyze_bound(job(tmp_path, "bound", bound_rows()), sync_ratio=0.6, ram_ratio=1.6)
    verdicts = {(r.device, r.point["sparsity"]): r.verdict for r in result.rows}
    assert verdicts[("phone-1", 0.9)] == SYNC  # 0.588 < 0.6
    assert verdicts[("phone-1", 0.5)] == SYNC  # 0.5 < 0.6
    result = analyze_bound(job(tmp_path, "bound2", bound_rows()), ram_ratio=1.6)
    assert {r.point["sparsity"]: r.verdict for r in result.rows if r.device == "phone-1"}[0.5] == RAM  # 1.55 < 1.6


def test_loading_axis_detection_and_errors(tmp_path: Path) -> None:
    rows = [{**r, "p_loading": "on" if r["p_load_sparse"] else "off"} for r in bound_rows()]
    rows = [{k: v for k, v in r.items() if k not in ("p_load_sparse", "p_index_cache")} for r in rows]
    data = job(tmp_path, "named", rows)
    assert analyze_bound(data).loading_axis == "p_loading"
    assert analyze_bound(data, loading_axis="loading").rows[1].verdict == FLASH
    with pytest.raises(ConfigError, match="has no axis 'nope'"):
        analyze_bound(data, loading_axis="nope")
    with pytest.raises(ConfigError, match="neither on nor off"):
        analyze_bound(data, loading_axis="sparsity")
    plain = job(tmp_path, "plain", [{"p_threads": 4, "decode_ms_per_token": 1.0}])
    with pytest.raises(ConfigError, match="LLAMA_LOAD_SPARSE_TENSOR"):
        analyze_bound(plain)


def test_classify_and_loading_state() -> None:
    assert classify(None, 100.0, 120.0, 0.2, 1.2)[0] == UNDETERMINED
    assert classify(10.0, 100.0, None, 0.2, 1.2)[0] == SYNC
    assert classify(50.0, 100.0, 120.0, 0.2, 1.2)[0] == FLASH  # exactly at the threshold counts as ≫
    assert [loading_state(v) for v in (0, 1, True, "OFF", "on", "2", 0.5)] == [
        False,
        True,
        True,
        False,
        True,
        None,
        None,
    ]


def test_each_verdict_names_the_runs_and_env_it_compared(tmp_path: Path) -> None:
    rows = [
        {**r, "run_id": f"{r['p_load_sparse']}-{r['repeat']}"}
        for r in _runs("phone-1", 0.5, 0, [50, 50], [100, 100]) + _runs("phone-1", 0.5, 1, [50, 50], [150, 160])
    ]
    (row,) = analyze_bound(job(tmp_path / "a", "axes", rows)).rows
    assert (row.off_runs, row.on_runs) == (["0-0", "0-1"], ["1-0", "1-1"])
    assert (row.off_env, row.on_env) == ("axes load_sparse=0 index_cache=0", "axes load_sparse=1 index_cache=1")
    # rows that record their env: its LLAMA_* variables are what the verdict names
    env = {
        load: f'{{"LLAMA_LOAD_SPARSE_TENSOR": "{load}", "LLAMA_USE_OUT_DIM_INDEX_CACHE": "1", "LD_LIBRARY_PATH": "/x"}}'
        for load in (0, 1)
    }
    (row,) = analyze_bound(job(tmp_path / "b", "env", [{**r, "env": env[r["p_load_sparse"]]} for r in rows])).rows
    assert row.off_env == "env LLAMA_LOAD_SPARSE_TENSOR=0 LLAMA_USE_OUT_DIM_INDEX_CACHE=1"
    assert row.on_env == "env LLAMA_LOAD_SPARSE_TENSOR=1 LLAMA_USE_OUT_DIM_INDEX_CACHE=1"
