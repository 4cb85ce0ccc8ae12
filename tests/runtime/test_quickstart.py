"""The README's main command, end to end: real llama.cpp on Gemma 3 270M through ``farm run``."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.cli.main import main
from tests.runtime.helpers import rows

pytestmark = [pytest.mark.ray, pytest.mark.llama]

JOB = Path(__file__).parents[2] / "jobs" / "quickstart.yaml"


def test_quickstart_sweep_lands_real_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "res"
    assert main(["run", str(JOB), "--results", str(results), "--no-progress"]) == 0
    got = rows(results, "quickstart")
    # 2 batch sizes × 2 thread counts × 2 prompts × 2 repeats; warm-ups are not recorded
    assert len(got) == 16 and {r["status"] for r in got} == {"ok"}
    assert {(r["p_batch"], r["p_threads"], r["p_prompt"]) for r in got} == {
        (b, t, p) for b in (16, 128) for t in (1, 2) for p in ("short", "long")
    }
    for r in got:
        assert r["decode_tokens_per_s"] > 0 and r["prefill_tokens_per_s"] > 0
        assert r["decode_tokens"] == 31  # -n 32: the first token comes from the prompt pass
        assert 100 < r["peak_rss_mib"] < 4000  # the model is ~250 MB; RSS comes from the OS, not llama.cpp
        assert r["fp_cpu_model"] and r["fp_pkg_llama_cpp_python"] != "not-installed"
        assert len(r["fp_model_sha256"]) == 64 and r["fp_model_file"].endswith(".gguf")
        assert not r["synthetic"] and not r["warmup"]
    long_prompt = [r["prefill_tokens"] for r in got if r["p_prompt"] == "long"]
    short_prompt = [r["prefill_tokens"] for r in got if r["p_prompt"] == "short"]
    assert min(long_prompt) > 5 * max(short_prompt)
    out = capsys.readouterr().out
    assert "quickstart" in out and "decode" in out and "16 ok" not in out  # the summary counts all 24 runs
    assert "24 ok" in out
