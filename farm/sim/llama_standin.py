"""The llama.cpp / elastic-infer stand-in of the virtual phone (see :mod:`farm.sim.workloads` for its model)."""

from __future__ import annotations

import asyncio
import math
import posixpath
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from farm.sim.shell_io import CommandContext
from farm.sim.standin_model import cores_for, effective_speed, noisy, sleep_in_steps, slowdown_line
from farm.sim.synthetic import PHONE_BANNER

LLAMA_PREFIXES = ("mymain", "llama")

_BIG_CORE_S_PER_BPARAM = 0.11  # decode seconds per billion (active) parameters on one big core
_RAM_GBPS = 28.0
_FLASH_GBPS = 1.4
_BYTES_PER_PARAM = 0.5625  # Q4_0

# The options of llama.cpp's `main` (2023-24 builds, as the elastic-infer fork) the stand-in knows: name → canonical
# key, or None for options that take a value the model ignores. Flags without a value are in _LLAMA_SWITCHES.
_LLAMA_OPTS: dict[str, str | None] = {
    "-m": "model", "--model": "model",
    "-t": "threads", "--threads": "threads",
    "-n": "n_predict", "--n-predict": "n_predict",
    "-p": "prompt", "--prompt": "prompt",
    "-b": "batch", "--batch-size": "batch",
    "-c": "ctx", "--ctx-size": "ctx",
    "-s": "seed", "--seed": "seed",
    "--attn-sp": "attn_sp",
    "--ffn-sp": "ffn_sp",
    # the elastic-infer authors' next knob (default 4); the stand-in takes it ahead of their binary
    "--num-cross-layers": "num_cross_layers",
    "-ngl": "n_gpu_layers", "--n-gpu-layers": "n_gpu_layers",
    "--temp": "temp",
    "-f": None, "--file": None, "--top-k": None, "--top-p": None, "--min-p": None, "--repeat-penalty": None,
    "--repeat-last-n": None, "-ub": None, "--ubatch-size": None, "-tb": None, "--threads-batch": None,
    "--keep": None, "--mirostat": None, "--log-file": None,
}  # fmt: skip
_LLAMA_SWITCHES = {"--mlock", "--no-mmap", "-e", "--escape", "--verbose-prompt", "--ignore-eos", "--no-warmup",
                   "--simple-io", "--no-display-prompt", "--log-disable"}  # fmt: skip
# The elastic-infer builds link these two libraries dynamically (the recipe pushes them beside the binaries).
ELASTIC_BINARY = re.compile(r"^mymain-(?P<layout>nt|t)-aarch64$")
ELASTIC_LIBS = ("libc++_shared.so", "liburing.so.2.8")
_SYSTEM_LIB_DIRS = ("/system/lib64", "/vendor/lib64", "/apex/com.android.runtime/lib64/bionic")
_WORDS = ("the", "model", "runs", "on", "a", "phone", "with", "sparse", "weights", "and", "tokens", "flow", "fast")


def llama_options(argv: Sequence[str]) -> dict[str, str]:
    """``{key: value}`` of a llama.cpp command line; ``ValueError`` with llama.cpp's message for a bad one."""
    values: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        key, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if arg in _LLAMA_SWITCHES:
            i += 1
            continue
        if key not in _LLAMA_OPTS:
            raise ValueError(f"unknown argument: {arg}")
        if not eq and i + 1 >= len(argv):
            raise ValueError(f"missing value for {arg}")  # llama.cpp: "error: invalid parameter for argument"
        value = inline if eq else argv[i + 1]
        canonical = _LLAMA_OPTS[key]
        if canonical is not None:
            values[canonical] = value
        i += 1 if eq else 2
    return values


@dataclass(frozen=True)
class LlamaRun:
    """The modelled timings of one llama.cpp run, in phone milliseconds."""

    load_ms: float
    prompt_tokens: int
    prompt_ms: float
    runs: int
    eval_ms: float
    sample_ms: float
    rss_kb: int
    model_mib: float
    kv_mib: float

    @property
    def total_ms(self) -> float:
        return self.load_ms + self.prompt_ms + self.eval_ms + self.sample_ms


def _params_billion(model_path: str) -> float:
    m = re.search(r"(\d+(?:\.\d+)?)\s*([bBmM])(?![a-zA-Z])", model_path.rsplit("/", 1)[-1])
    if not m:
        return 7.0
    value = float(m[1])
    return value if m[2] in "bB" else value / 1000.0


def model_llama_run(
    ctx: CommandContext, opts: dict[str, str], rng: random.Random, params_b: float
) -> tuple[LlamaRun, int]:
    threads = max(1, int(opts.get("threads", "4")))
    n_predict = max(1, int(opts.get("n_predict", "32")))
    batch = max(1, int(opts.get("batch", "512")))
    n_ctx = max(64, int(opts.get("ctx", "512")))
    attn_sp = min(0.95, max(0.0, float(opts.get("attn_sp", "0"))))
    ffn_sp = min(0.95, max(0.0, float(opts.get("ffn_sp", "0"))))
    cross_layers = max(1, int(opts.get("num_cross_layers", "4")))
    float(opts.get("temp", "0.8"))  # a malformed number fails like llama.cpp's std::stof
    prompt = opts.get("prompt", "Hello")
    prompt_tokens = max(1, round(len(prompt.split()) * 1.3) + 1)
    sparse_load = ctx.env.get("LLAMA_LOAD_SPARSE_TENSOR", "0") == "1"
    index_cache = ctx.env.get("LLAMA_USE_OUT_DIM_INDEX_CACHE", "0") == "1"
    storage = ctx.state.storage
    sd = ctx.state.config.noise

    cores = cores_for(ctx, threads, ctx.env.get("LLAMA_COMPUTING_THREAD_CPU_CORE_IDS"))
    speed = effective_speed(ctx, cores)
    # The sparsity flags sparsify decoding; the prompt is evaluated densely.
    active = 1.0 - (attn_sp / 3 + 2 * ffn_sp / 3) * 0.9
    model_gb = params_b * _BYTES_PER_PARAM
    compute_s = params_b * _BIG_CORE_S_PER_BPARAM * active / speed
    ram_s = model_gb * active / _RAM_GBPS
    flash_s = 0.0
    miss = (1.0 - storage.cache_hit) if index_cache else 1.0
    if sparse_load:
        # Loading a window of `num_cross_layers` layers ahead hides part of the read behind compute (4: none).
        overlap = min(0.5, 0.1 * max(0, cross_layers - 4))
        flash_s = model_gb * active * miss / storage.flash_gbps * (1.0 - overlap)
    # Decoding synchronises the compute threads with the loading thread every token; prefill does not.
    sync_s = storage.sync_ms_per_thread / 1000.0 * threads * (1.0 + 0.5 * (len(set(cores)) < threads))
    per_token_s = max(compute_s, ram_s, flash_s) + 0.15 * min(compute_s, flash_s) + sync_s

    runs = n_predict - 1
    eval_ms = sum(noisy(rng, per_token_s, sd) for _ in range(runs)) * 1000.0
    ubatch = min(batch, prompt_tokens)
    passes = math.ceil(prompt_tokens / ubatch)
    prefill_compute = params_b * _BIG_CORE_S_PER_BPARAM * prompt_tokens / speed / (ubatch**0.35)
    prefill_io = passes * model_gb / _RAM_GBPS
    prompt_ms = noisy(rng, max(prefill_compute, prefill_io), sd) * 1000.0
    load_ms = noisy(rng, 0.35 + (0.0 if sparse_load else model_gb / (_FLASH_GBPS * 1.6)), sd) * 1000.0
    sample_ms = noisy(rng, 0.004 * n_predict, sd) * 1000.0
    kv_mib = n_ctx * params_b * 0.0714  # ≈256 MiB at 7B / 512 ctx (f16 K+V)
    model_mib = model_gb * 1024
    resident_mib = model_mib * (0.15 + (0.45 * active if index_cache else 0.0)) if sparse_load else model_mib
    rss_kb = int((resident_mib + kv_mib + 40.0) * 1024)
    run = LlamaRun(load_ms, prompt_tokens, prompt_ms, runs, eval_ms, sample_ms, rss_kb, model_mib, kv_mib)
    return run, threads


def _timing_line(label: str, ms: float, count: int | None = None, unit: str = "tokens") -> str:
    head = f"llama_print_timings: {label:>16} = {ms:10.2f} ms"
    if count is None:
        return head + "\n"
    per = ms / count if count else math.inf
    tps = 1000.0 * count / ms if ms > 0 else math.inf
    pad = "  " if unit == "runs" else ""
    return f"{head} / {count:5d} {unit}{pad} ({per:8.2f} ms per token, {tps:8.2f} tokens per second)\n"


def _missing_library(ctx: CommandContext) -> str | None:
    """The first library of an elastic-infer build the dynamic linker would not find, else ``None``."""
    dirs = [d for d in ctx.env.get("LD_LIBRARY_PATH", "").split(":") if d] + list(_SYSTEM_LIB_DIRS)
    for lib in ELASTIC_LIBS:
        if not any(ctx.state.fs.exists(ctx.path(posixpath.join(d, lib))) for d in dirs):
            return lib
    return None


def _layout_error(binary: str, model: str) -> str | None:
    """The elastic-infer builds read weights in their own layout: ``-t-`` binaries need ``-t-`` models."""
    match = ELASTIC_BINARY.match(posixpath.basename(binary))
    if match is None:
        return None
    want = match["layout"]
    name = posixpath.basename(model)
    other = "t" if want == "nt" else "nt"
    if re.search(rf"-{other}-", name) and not re.search(rf"-{want}-", name):
        return f"{posixpath.basename(binary)} reads {want} weights, {name} holds {other} weights"
    return None


async def llama_binary(ctx: CommandContext) -> int:
    """``mymain*`` / ``llama-*``: a llama.cpp run with modelled speed (see the module docstring)."""
    binary = ctx.argv[0]
    if ELASTIC_BINARY.match(posixpath.basename(binary)) and (lib := _missing_library(ctx)) is not None:
        await ctx.err(f'CANNOT LINK EXECUTABLE "{binary}": library "{lib}" not found: needed by main executable\n')
        return 1
    await ctx.err(f"{PHONE_BANNER}\n{slowdown_line(ctx)}")
    try:
        opts = llama_options(ctx.argv[1:])
    except ValueError as exc:
        await ctx.err(f"error: {exc}\n")
        return 1
    model = opts.get("model")
    if not model or not ctx.state.fs.exists(ctx.path(model)):
        await ctx.err(f"llama_model_load: error loading model: failed to open {model}: No such file or directory\n")
        await ctx.err("main: error: unable to load model\n")
        return 1
    if (mismatch := _layout_error(binary, model)) is not None:
        await ctx.err(f"llama_model_load: error loading model: {mismatch}\nmain: error: unable to load model\n")
        return 1
    try:
        rng = ctx.state.rng_for(" ".join(ctx.argv) + "\0" + _env_key(ctx))
        run, threads = model_llama_run(ctx, opts, rng, _params_billion(model))
    except ValueError as exc:
        await ctx.err(f"error: invalid argument: {exc}\n")
        return 1
    if "n_gpu_layers" in opts:
        await ctx.err("warning: not compiled with GPU offload support, --n-gpu-layers option will be ignored\n")

    cfg = ctx.state.config
    wall = cfg.wall_seconds(run.total_ms / 1000.0)
    ctx.proc.threads = threads + 1
    cpu_load = min(1.0, effective_speed(ctx, cores_for(ctx, threads, None)) / len(ctx.state.soc.cpus))
    ctx.state.thermal.set_load(ctx.proc.pid, cpu=cpu_load)
    try:
        await ctx.err(
            f"llm_load_tensors: ggml ctx size =    0.11 MiB\n"
            f"llm_load_tensors:        CPU buffer size = {run.model_mib:8.2f} MiB\n"
        )
        start_rss = ctx.proc.vm_rss_kb
        load_share = run.load_ms / run.total_ms
        await sleep_in_steps(ctx, wall * load_share, 5, start_rss, int(run.rss_kb * 0.9))
        n_ctx = opts.get("ctx", "512")
        await ctx.err(
            f"llama_new_context_with_model: n_ctx      = {n_ctx}\n"
            f"llama_kv_cache_init:        CPU KV buffer size = {run.kv_mib:8.2f} MiB\n"
            f"system_info: n_threads = {threads} / {len(ctx.state.soc.cpus)} | NEON = 1 | ARM_FMA = 1 |\n"
        )
        await ctx.out(opts.get("prompt", "Hello"))
        await asyncio.sleep(wall * run.prompt_ms / run.total_ms)
        ctx.proc.set_rss(run.rss_kb)
        steps = max(1, min(run.runs, 10))
        words = [rng.choice(_WORDS) for _ in range(run.runs + 1)]
        per_step = wall * (run.eval_ms + run.sample_ms) / run.total_ms / steps
        for k in range(steps):
            chunk = words[k * len(words) // steps : (k + 1) * len(words) // steps]
            await ctx.out(" " + " ".join(chunk))
            await asyncio.sleep(per_step)
        await ctx.out("\n")
        await ctx.err(
            "\n"
            + _timing_line("load time", run.load_ms)
            + _timing_line("sample time", run.sample_ms, run.runs + 1, "runs")
            + _timing_line("prompt eval time", run.prompt_ms, run.prompt_tokens)
            + _timing_line("eval time", run.eval_ms, run.runs, "runs")
            + _timing_line("total time", run.total_ms)
        )
    finally:
        ctx.state.thermal.clear_load(ctx.proc.pid)
    return 0


def _env_key(ctx: CommandContext) -> str:
    keys = (
        "LLAMA_LOAD_SPARSE_TENSOR",
        "LLAMA_USE_OUT_DIM_INDEX_CACHE",
        "LLAMA_COMPUTING_THREAD_CPU_CORE_IDS",
    )
    return ",".join(f"{k}={ctx.env.get(k, '')}" for k in keys)
