"""Scripted stand-ins for the benchmark binaries the farm runs on phones, with a documented speed model.

* **llama.cpp / elastic-infer** — any pushed executable whose basename starts with ``mymain`` or ``llama``
  (``mymain``, ``llama-cli``, ``llama-simple``…). Reads ``-m -t -n -p -b -c --attn-sp --ffn-sp`` and the env
  vars ``LLAMA_LOAD_SPARSE_TENSOR``, ``LLAMA_USE_OUT_DIM_INDEX_CACHE``,
  ``LLAMA_COMPUTING_THREAD_CPU_CORE_IDS``; prints generated words on stdout and
  ``llm_load_tensors``/``llama_print_timings:`` lines on stderr.
* **CoDL** — basename ``codl_op_run``: MACE-style ``I file:line] Round <i>, latency <ms> ms`` lines and a
  ``Stat: si <n>, stat [..], std_pect [..]`` summary on stderr.

The numbers are a model, not a measurement, and every run says so on stderr (``# synthetic output from farm
virtual phone``). They are reproducible for a phone seed: the n-th run of a command line draws the same noise.
Reported times are "phone seconds"; the process itself runs for a scaled wall time
(:class:`farm.sim.state.SimConfig`) during which ``/proc/<pid>/status`` shows its memory growing.

Speed model (llama): per decoded token ``max(compute, ram_io, flash_io)`` plus a per-thread synchronisation
cost; ``compute = params × active / Σ core speed`` (big core = 1, little = ``SocProfile.little_speed``);
``active = 1 − (attn_sp/3 + 2·ffn_sp/3)·0.9``; with ``LLAMA_LOAD_SPARSE_TENSOR=1`` the active weights stream
from flash each token (``LLAMA_USE_OUT_DIM_INDEX_CACHE=1`` serves most of them from a RAM cache) and the
resident set shrinks. Prefill batches ``min(-b, prompt tokens)`` tokens per weight pass.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from farm.sim.commands import CommandContext, CommandTable
from farm.sim.state import SYNTHETIC_BANNER

LLAMA_PREFIXES = ("mymain", "llama")
CODL_NAME = "codl_op_run"

_BIG_CORE_S_PER_BPARAM = 0.11  # decode seconds per billion (active) parameters on one big core
_RAM_GBPS = 28.0
_FLASH_GBPS = 1.4
_BYTES_PER_PARAM = 0.5625  # Q4_0
_SYNC_S_PER_THREAD = 0.0025
_CACHE_HIT = 0.85


# ---------------------------------------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------------------------------------
def _option_values(argv: Sequence[str], names: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """``{canonical: value}`` for ``-x V`` / ``--long V`` / ``--long=V`` options in ``names``."""
    values: dict[str, str] = {}
    bad: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        key, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if key in names:
            if eq:
                values[names[key]] = inline
            elif i + 1 < len(argv):
                values[names[key]] = argv[i + 1]
                i += 1
            else:
                bad.append(arg)
        i += 1
    return values, bad


def _cores_for(ctx: CommandContext, threads: int, core_ids: str | None) -> list[int]:
    """The cores ``threads`` threads run on: pinned ids if given, else the big cores first within the mask."""
    soc = ctx.state.soc
    if core_ids:
        pinned = [int(c) for c in re.split(r"[,\s]+", core_ids.strip()) if c.isdigit() and int(c) in soc.cpus]
        if pinned:
            return [pinned[k % len(pinned)] for k in range(threads)]
    allowed = [c for c in sorted(soc.big, reverse=True) + sorted(soc.little) if ctx.proc.cpus_allowed >> c & 1]
    allowed = allowed or list(soc.cpus)
    return [allowed[k % len(allowed)] for k in range(threads)]


def _effective_speed(ctx: CommandContext, cores: list[int]) -> float:
    """Σ core speed, where threads sharing one core share its speed (oversubscription gains nothing)."""
    soc = ctx.state.soc
    return sum(soc.core_speed(c) for c in set(cores))


async def _sleep_in_steps(ctx: CommandContext, seconds: float, steps: int, rss_from: int, rss_to: int) -> None:
    for k in range(1, steps + 1):
        await asyncio.sleep(seconds / steps)
        ctx.proc.set_rss(rss_from + (rss_to - rss_from) * k // steps)


def _noisy(rng: random.Random, value: float, sd: float) -> float:
    return value * math.exp(rng.gauss(0.0, sd))


# ---------------------------------------------------------------------------------------------------------
# llama.cpp stand-in
# ---------------------------------------------------------------------------------------------------------
_LLAMA_OPTS = {
    "-m": "model", "--model": "model",
    "-t": "threads", "--threads": "threads",
    "-n": "n_predict", "--n-predict": "n_predict",
    "-p": "prompt", "--prompt": "prompt",
    "-b": "batch", "--batch-size": "batch",
    "-c": "ctx", "--ctx-size": "ctx",
    "-s": "seed", "--seed": "seed",
    "--attn-sp": "attn_sp",
    "--ffn-sp": "ffn_sp",
}  # fmt: skip
_WORDS = (
    "the",
    "model",
    "runs",
    "on",
    "a",
    "phone",
    "with",
    "sparse",
    "weights",
    "and",
    "tokens",
    "flow",
    "fast",
)


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
    prompt = opts.get("prompt", "Hello")
    prompt_tokens = max(1, round(len(prompt.split()) * 1.3) + 1)
    sparse_load = ctx.env.get("LLAMA_LOAD_SPARSE_TENSOR", "0") == "1"
    index_cache = ctx.env.get("LLAMA_USE_OUT_DIM_INDEX_CACHE", "0") == "1"
    sd = ctx.state.config.noise

    cores = _cores_for(ctx, threads, ctx.env.get("LLAMA_COMPUTING_THREAD_CPU_CORE_IDS"))
    speed = _effective_speed(ctx, cores)
    active = 1.0 - (attn_sp / 3 + 2 * ffn_sp / 3) * 0.9
    model_gb = params_b * _BYTES_PER_PARAM
    compute_s = params_b * _BIG_CORE_S_PER_BPARAM * active / speed
    ram_s = model_gb * active / _RAM_GBPS
    flash_s = 0.0
    if sparse_load:
        miss = (1.0 - _CACHE_HIT) if index_cache else 1.0
        flash_s = model_gb * active * miss / _FLASH_GBPS
    sync_s = _SYNC_S_PER_THREAD * threads * (1.0 + 0.5 * (len(set(cores)) < threads))
    per_token_s = max(compute_s, ram_s, flash_s) + 0.15 * min(compute_s, flash_s) + sync_s

    runs = n_predict - 1
    eval_ms = sum(_noisy(rng, per_token_s, sd) for _ in range(runs)) * 1000.0
    ubatch = min(batch, prompt_tokens)
    passes = math.ceil(prompt_tokens / ubatch)
    prefill_compute = params_b * _BIG_CORE_S_PER_BPARAM * active * prompt_tokens / speed / (ubatch**0.35)
    prefill_io = passes * max(ram_s, flash_s)
    prompt_ms = _noisy(rng, prefill_compute + prefill_io + sync_s * passes, sd) * 1000.0
    load_ms = _noisy(rng, 0.35 + (0.0 if sparse_load else model_gb / (_FLASH_GBPS * 1.6)), sd) * 1000.0
    sample_ms = _noisy(rng, 0.004 * n_predict, sd) * 1000.0
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


async def llama_binary(ctx: CommandContext) -> int:
    """``mymain`` / ``llama-*``: a llama.cpp run with modelled speed (see the module docstring)."""
    await ctx.err(f"{SYNTHETIC_BANNER}\n")
    opts, bad = _option_values(ctx.argv[1:], _LLAMA_OPTS)
    if bad:
        await ctx.err(f"error: missing value for {bad[0]}\n")
        return 1
    model = opts.get("model")
    if not model or not ctx.state.fs.exists(ctx.path(model)):
        await ctx.err(f"llama_model_load: error loading model: failed to open {model}: No such file or directory\n")
        await ctx.err("main: error: unable to load model\n")
        return 1
    try:
        rng = ctx.state.rng_for(" ".join(ctx.argv) + "\0" + _env_key(ctx))
        run, threads = model_llama_run(ctx, opts, rng, _params_billion(model))
    except ValueError as exc:
        await ctx.err(f"error: invalid argument: {exc}\n")
        return 1

    cfg = ctx.state.config
    wall = cfg.wall_seconds(run.total_ms / 1000.0)
    ctx.proc.threads = threads + 1
    cpu_load = min(1.0, _effective_speed(ctx, _cores_for(ctx, threads, None)) / len(ctx.state.soc.cpus))
    ctx.state.thermal.set_load(ctx.proc.pid, cpu=cpu_load)
    try:
        await ctx.err(
            f"llm_load_tensors: ggml ctx size =    0.11 MiB\n"
            f"llm_load_tensors:        CPU buffer size = {run.model_mib:8.2f} MiB\n"
        )
        start_rss = ctx.proc.vm_rss_kb
        load_share = run.load_ms / run.total_ms
        await _sleep_in_steps(ctx, wall * load_share, 5, start_rss, int(run.rss_kb * 0.9))
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


# ---------------------------------------------------------------------------------------------------------
# CoDL codl_op_run stand-in
# ---------------------------------------------------------------------------------------------------------
_CODL_OPTS = {
    f"--{k}": k
    for k in (
        "op_type", "compute", "warmup", "cpu_affinity_policy", "num_threads", "gpu_memory_type", "rounds",
        "part_dim", "part_ratio", "cu_hint", "input_shape", "weight_shape", "strides",
    )
}  # fmt: skip
_CODL_SI = 10  # codl_op_run skips this many rounds before its statistics


def _shape(text: str, n: int, default: tuple[int, ...]) -> tuple[int, ...]:
    parts = [int(p) for p in re.split(r"[,x\s]+", text.strip().strip('"')) if p]
    return tuple(parts) if len(parts) == n else default


def codl_flops(op: str, inp: tuple[int, ...], weight: tuple[int, ...], strides: tuple[int, ...]) -> float:
    n, h, w, c = inp
    o, i, kh, kw = weight
    oh, ow = max(1, h // strides[0]), max(1, w // strides[1])
    if op == "Pooling":
        return float(n * oh * ow * c * kh * kw)
    if op == "FullyConnected":
        return 2.0 * n * h * w * c * o
    if op == "MatMul":
        return 2.0 * n * h * w * c
    if op == "Deconv2D":
        return 2.0 * n * h * w * strides[0] * strides[1] * o * i * kh * kw
    return 2.0 * n * oh * ow * o * i * kh * kw


def model_codl_latency_ms(ctx: CommandContext, opts: dict[str, str]) -> tuple[float, float]:
    """Modelled latency of one round in ms and the GPU share of the work (for the thermal load)."""
    op = opts.get("op_type", "Conv2D")
    inp = _shape(opts.get("input_shape", "1,56,56,64"), 4, (1, 56, 56, 64))
    weight = _shape(opts.get("weight_shape", "64,64,3,3"), 4, (64, 64, 3, 3))
    strides = _shape(opts.get("strides", "1,1"), 2, (1, 1))
    ratio = min(1.0, max(0.0, float(opts.get("part_ratio", "1.0"))))
    part_dim = int(opts.get("part_dim", "4"))
    threads = max(1, int(opts.get("num_threads", "4")))
    mem_type = int(opts.get("gpu_memory_type", "2"))
    policy = int(opts.get("cpu_affinity_policy", "1"))
    soc = ctx.state.soc

    pool = {1: sorted(soc.big), 2: sorted(soc.little), 4: sorted(soc.little)}.get(
        policy, sorted(soc.big) + sorted(soc.little)
    )
    cores = [pool[k % len(pool)] for k in range(threads)]
    cpu_gflops = 14.0 * _effective_speed(ctx, cores) * (0.92 ** (threads - 1))
    mali = "Mali" in soc.gpu
    gpu_gflops = {0: 60.0, 1: 160.0 if mali else 120.0, 2: 120.0 if mali else 190.0}.get(mem_type, 120.0)
    flops = codl_flops(op, inp, weight, strides)
    cpu_ms = (1.0 - ratio) * flops / (cpu_gflops * 1e6)
    gpu_ms = ratio * flops / (gpu_gflops * 1e6) + (0.06 if ratio > 0 else 0.0)
    latency = max(cpu_ms, gpu_ms)
    if 0.0 < ratio < 1.0:
        out_elems = inp[0] * inp[1] * inp[2] * weight[0]
        # IC partitions need a reduction of partial outputs; H/W/OC partitions only exchange slices.
        share = {1: 0.6, 2: 0.6, 3: 2.0, 4: 0.8}.get(part_dim, 1.0)
        latency += 0.05 + share * out_elems * 4 / 8e9 * 1e3
    return latency, ratio


async def codl_op_run(ctx: CommandContext) -> int:
    """``codl_op_run``: per-round latencies of one partitioned operator (see the module docstring)."""
    await ctx.err(f"{SYNTHETIC_BANNER}\n")
    opts, bad = _option_values(ctx.argv[1:], _CODL_OPTS)
    try:
        if bad:
            raise ValueError(f"missing value for {bad[0]}")
        latency_ms, gpu_share = model_codl_latency_ms(ctx, opts)
        rounds = max(1, int(opts.get("rounds", "20")))
    except ValueError as exc:
        await ctx.err(f"E codl_op_run.cc:61] bad flag: {exc}\n")
        return 1
    rng = ctx.state.rng_for(" ".join(ctx.argv))
    lats = [_noisy(rng, latency_ms * (1.8 if i == 0 else 1.0), ctx.state.config.noise) for i in range(rounds)]
    wall = ctx.state.config.wall_seconds(sum(lats) / 1000.0)
    ctx.proc.threads = int(opts.get("num_threads", "4")) + 2
    ctx.state.thermal.set_load(ctx.proc.pid, cpu=(1.0 - gpu_share) * 0.6, gpu=gpu_share)
    try:
        await _sleep_in_steps(ctx, wall * 0.1, 2, ctx.proc.vm_rss_kb, 96_000)
        for i, lat in enumerate(lats):
            await ctx.err(f"I mace/test/codl_run/codl_op_run.cc:214] Round {i}, latency {lat:.6g} ms\n")
            await asyncio.sleep(wall * 0.9 / rounds)
        si = _CODL_SI if rounds > _CODL_SI else 0
        kept = lats[si:]
        mean = sum(kept) / len(kept)
        std_pct = 100.0 * math.sqrt(sum((x - mean) ** 2 for x in kept) / len(kept)) / mean
        await ctx.err(
            f"I mace/test/codl_run/codl_op_run.cc:236] Stat: si {si}, stat [{mean:.6g}], std_pect [{std_pct:.6g}]\n"
        )
    finally:
        ctx.state.thermal.clear_load(ctx.proc.pid)
    return 0


def register_workloads(table: CommandTable) -> None:
    for prefix in LLAMA_PREFIXES:
        table.register_binary(prefix, llama_binary)
    table.register_binary(CODL_NAME, codl_op_run)
