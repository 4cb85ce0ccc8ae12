"""Scripted stand-ins for the benchmark binaries the farm runs on phones, with a documented speed model.

* **llama.cpp / elastic-infer** — any pushed executable whose basename starts with ``mymain`` or ``llama``
  (``mymain-t-aarch64``, ``mymain-nt-aarch64``, ``llama-cli``…). Takes the options of llama.cpp's ``main``
  (``-m -t -n -p -b -c -s -ngl --temp --attn-sp --ffn-sp``, sampling options, ``--num-cross-layers`` ahead of
  the fork) and refuses any other like llama.cpp (``error: unknown argument: X``, exit 1). Reads
  ``LLAMA_LOAD_SPARSE_TENSOR``, ``LLAMA_USE_OUT_DIM_INDEX_CACHE``, ``LLAMA_COMPUTING_THREAD_CPU_CORE_IDS``.
  The elastic-infer builds ``mymain-{nt,t}-aarch64`` also need ``libc++_shared.so`` and ``liburing.so.2.8``
  on ``LD_LIBRARY_PATH`` (else the linker's ``CANNOT LINK EXECUTABLE``) and a model of their weight layout
  (``-t-`` binary with a ``-t-`` model). Prints generated words on stdout and
  ``llm_load_tensors``/``llama_print_timings:`` lines on stderr.
* **CoDL** — basename ``codl_op_run``: parses its flags as gflags does with the tool's own definitions
  (:data:`CODL_FLAGS`; ``ERROR: unknown command line flag``, ``illegal value '2' specified for bool flag``);
  prints the OpenCL runtime lines (as the tool does on every run, CPU-only included), MACE-style
  ``Round <i>, latency <ms> ms`` lines and
  ``Stat: si 10, stat [..], std_pect [..]`` whose vectors follow ``MACE_DURATION_COLLECT_GRANULARITY``
  (empty unset, the round latency for ``Coarse``; for ``Fine`` the 8 data-sharing stages and the compute with
  ``--data_transform``, else the round latency as one stage — the real tool splits some ops further).

The numbers are a model, not a measurement, and every run says so on stderr (``# synthetic output from farm
virtual phone``). They are reproducible for a phone seed: the n-th run of a command line draws the same noise.
Reported times are "phone seconds"; the process itself runs for a scaled wall time
(:class:`farm.sim.state.SimConfig`) during which ``/proc/<pid>/status`` shows its memory growing.

Speed model (llama): per decoded token ``max(compute, ram_io, flash_io) + 0.15·min(compute, flash_io) + sync``;
``compute = params × active / Σ core speed`` (big core = 1, little = ``SocProfile.little_speed``);
``active = 1 − (attn_sp/3 + 2·ffn_sp/3)·0.9``; with ``LLAMA_LOAD_SPARSE_TENSOR=1`` the active weights stream
from flash each token at the phone's :class:`~farm.sim.soc.StorageProfile` bandwidth
(``LLAMA_USE_OUT_DIM_INDEX_CACHE=1`` serves ``cache_hit`` of them from RAM) and the resident set shrinks;
``sync`` is the profile's per-thread handshake, paid by decoding only. The prompt is evaluated densely in
batches of ``min(-b, prompt tokens)`` tokens per weight pass. The three storage profiles put a phone in each
regime of the elastic-infer bound analysis (``flash``, ``ram``, ``sync``).
"""

from __future__ import annotations

import asyncio
import math
import posixpath
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from farm.sim.shell_io import CommandContext, CommandTable
from farm.sim.soc import opencl_facts
from farm.sim.synthetic import PHONE_BANNER

LLAMA_PREFIXES = ("mymain", "llama")
CODL_NAME = "codl_op_run"

_BIG_CORE_S_PER_BPARAM = 0.11  # decode seconds per billion (active) parameters on one big core
_RAM_GBPS = 28.0
_FLASH_GBPS = 1.4
_BYTES_PER_PARAM = 0.5625  # Q4_0


# ---------------------------------------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------------------------------------
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

    cores = _cores_for(ctx, threads, ctx.env.get("LLAMA_COMPUTING_THREAD_CPU_CORE_IDS"))
    speed = _effective_speed(ctx, cores)
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
    eval_ms = sum(_noisy(rng, per_token_s, sd) for _ in range(runs)) * 1000.0
    ubatch = min(batch, prompt_tokens)
    passes = math.ceil(prompt_tokens / ubatch)
    prefill_compute = params_b * _BIG_CORE_S_PER_BPARAM * prompt_tokens / speed / (ubatch**0.35)
    prefill_io = passes * model_gb / _RAM_GBPS
    prompt_ms = _noisy(rng, max(prefill_compute, prefill_io), sd) * 1000.0
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
    await ctx.err(f"{PHONE_BANNER}\n")
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
# codl_op_run's gflags (test/codl_run/conv2d_test_v2.cc in csu-eis/CoDL): name → type and default.
CODL_FLAGS: dict[str, tuple[str, str]] = {
    "op_type": ("string", ""), "debug": ("bool", "false"), "data_transform": ("bool", "false"),
    "compute": ("bool", "false"), "warmup": ("bool", "false"), "cpu_affinity_policy": ("int32", "1"),
    "num_threads": ("int32", "-1"), "gpu_memory_type": ("int32", "0"), "rounds": ("int32", "1"),
    "cpu_dtype": ("int32", "1"), "gpu_dtype": ("int32", "1"), "part_dim": ("int32", "0"),
    "part_ratio": ("double", "1"), "cu_hint": ("int32", "0"), "input_shape": ("string", ""),
    "weight_shape": ("string", ""), "strides": ("string", ""), "wino_blk_size": ("int32", "0"),
    "pooling_type": ("int32", "1"), "transpose_a": ("bool", "false"), "transpose_b": ("bool", "false"),
}  # fmt: skip
CODL_OP_TYPES = ("Conv2D", "Pooling", "FullyConnected", "Deconv2D", "MatMul")
_GFLAGS_TRUE = {"true", "t", "yes", "y", "1"}
_GFLAGS_FALSE = {"false", "f", "no", "n", "0"}


def gflags_parse(argv: Sequence[str], flags: dict[str, tuple[str, str]]) -> dict[str, str]:
    """The flag values of ``argv`` as gflags reads them (``--f=v``, ``--f v``, ``--bool``, ``--nobool``; one or
    two dashes); ``ValueError`` with gflags' own message for an unknown flag, a missing or illegal value."""
    values = {name: default for name, (_, default) in flags.items()}
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            break
        if not arg.startswith("-") or arg == "-":
            continue  # a positional argument: gflags leaves it to the program
        name, eq, value = arg.lstrip("-").partition("=")
        kind = flags.get(name, ("", ""))[0]
        if not kind and name.startswith("no") and flags.get(name[2:], ("", ""))[0] == "bool" and not eq:
            values[name[2:]] = "false"
            continue
        if not kind:
            raise ValueError(f"unknown command line flag '{name}'")
        if kind == "bool":
            text = value.lower() if eq else "true"
            if text not in _GFLAGS_TRUE | _GFLAGS_FALSE:
                raise ValueError(f"illegal value '{value}' specified for bool flag '{name}'")
            values[name] = "true" if text in _GFLAGS_TRUE else "false"
            continue
        if not eq:
            if i >= len(argv):
                raise ValueError(f"flag '{arg}' is missing its argument; flag description: {name}")
            value = argv[i]
            i += 1
        try:
            if kind == "int32":
                int(value, 10)
            elif kind == "double":
                float(value)
        except ValueError:
            raise ValueError(f"illegal value '{value}' specified for {kind} flag '{name}'") from None
        values[name] = value
    return values


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
    """Modelled compute latency of one round in ms and the GPU share of the work (for the thermal load)."""
    op = opts["op_type"]
    inp = _shape(opts["input_shape"], 4, (1, 56, 56, 64))
    weight = _shape(opts["weight_shape"], 4, (64, 64, 3, 3))
    strides = _shape(opts["strides"], 2, (1, 1))
    ratio = min(1.0, max(0.0, float(opts["part_ratio"])))
    part_dim = int(opts["part_dim"])
    threads = int(opts["num_threads"])
    threads = threads if threads > 0 else 4
    mem_type = int(opts["gpu_memory_type"])
    policy = int(opts["cpu_affinity_policy"])
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


def codl_data_sharing_ms(opts: dict[str, str]) -> list[float]:
    """The 8 data-sharing stages CoDL times with ``--data_transform`` (dt/map in, map out, sync, unmap in/out,
    dt out, sync 2), ms: transforms scale with the bytes moved, map/unmap and syncs are near-constant."""
    n, h, w, c = _shape(opts["input_shape"], 4, (1, 56, 56, 64))
    o, _, _, _ = _shape(opts["weight_shape"], 4, (64, 64, 3, 3))
    sh, sw = _shape(opts["strides"], 2, (1, 1))
    data_in = n * h * w * c * 4
    data_out = n * math.ceil(h / sh) * math.ceil(w / sw) * o * 4
    return [data_in / 2.4e6, 0.03 + data_in / 40e6, 0.03 + data_out / 40e6, 0.02,
            0.02, 0.02, data_out / 2.4e6, 0.02]  # fmt: skip


def _opencl_lines(ctx: CommandContext) -> str:
    facts = opencl_facts(ctx.state.soc.gpu)
    where = "I mace/core/runtime/opencl/opencl_runtime.cc"
    return (
        f"{where}:530] Creating OpenCL runtime\n"
        f"{where}:545] Using platform: {facts.platform}\n"
        f"{where}:604] OpenCL device: {ctx.state.soc.gpu}\n"
        f"{where}:605] OpenCL device version: {facts.version}\n"
        f"{where}:767] OpenCLRuntime: global_mem_cacheline_size 64, global_mem_cache_size "
        f"{facts.global_mem_cache_size}, compute_units {facts.compute_units}, warp_size 0, max_wgp_size "
        f"{facts.max_wgp_size}, kwg_size 0\n"
    )


def _vector_text(values: list[float]) -> str:
    """MACE's ``VectorToString``: ``[a,b]``, and nothing at all for an empty vector."""
    return "[" + ",".join(f"{v:.6g}" for v in values) + "]" if values else ""


async def codl_op_run(ctx: CommandContext) -> int:
    """``codl_op_run``: per-round latencies of one partitioned operator (see the module docstring)."""
    try:
        opts = gflags_parse(ctx.argv[1:], CODL_FLAGS)
    except ValueError as exc:
        await ctx.err(f"ERROR: {exc}\n")
        return 1
    await ctx.err(f"{PHONE_BANNER}\n")
    where = "I mace/test/codl_run/conv2d_test_v2.cc"
    if opts["op_type"] not in CODL_OP_TYPES:
        # The tool logs the error and then dereferences its null test parameters.
        await ctx.err(f"E mace/test/codl_run/conv2d_test_v2.cc:167] Unsupported op type: {opts['op_type']}\n")
        await ctx.err("Segmentation fault\n")
        return 139
    for name in ("debug", "data_transform", "compute", "cpu_affinity_policy", "num_threads", "cpu_dtype",
                 "gpu_memory_type", "gpu_dtype", "cu_hint", "part_dim", "part_ratio", "rounds"):  # fmt: skip
        await ctx.err(f"{where}:88] {name}: {opts[name]}\n")
    try:
        compute_ms, gpu_share = model_codl_latency_ms(ctx, opts)
    except ValueError as exc:
        await ctx.err(f"E mace/test/codl_run/conv2d_test_v2.cc:61] bad shape: {exc}\n")
        return 1
    rounds = int(opts["rounds"])
    granularity = ctx.env.get("MACE_DURATION_COLLECT_GRANULARITY", "")
    transform = opts["data_transform"] == "true"
    stages = codl_data_sharing_ms(opts) if transform else []
    base_ms = (compute_ms if opts["compute"] == "true" else 0.02) + math.fsum(stages)
    rng = ctx.state.rng_for(" ".join(ctx.argv) + "\0" + granularity)
    sd = ctx.state.config.noise
    first = 1.0 if opts["warmup"] == "true" else 1.8
    lats = [_noisy(rng, base_ms * (first if i == 0 else 1.0), sd) for i in range(rounds)]
    if granularity == "Fine":
        parts = stages + ([compute_ms] if opts["compute"] == "true" else []) if transform else [1.0]
        split = [[lat * p / math.fsum(parts) for p in parts] for lat in lats]
    elif granularity == "Coarse":
        split = [[lat] for lat in lats]
    else:
        split = []
    wall = ctx.state.config.wall_seconds(sum(lats) / 1000.0)
    ctx.proc.threads = max(1, int(opts["num_threads"])) + 2
    ctx.state.thermal.set_load(ctx.proc.pid, cpu=(1.0 - gpu_share) * 0.6, gpu=gpu_share)
    try:
        # The tool creates its OpenCL runtime whatever the split (the recipe's CPU-only run prints it too).
        await ctx.err(_opencl_lines(ctx))
        await _sleep_in_steps(ctx, wall * 0.1, 2, ctx.proc.vm_rss_kb, 96_000)
        for i, lat in enumerate(lats):
            await ctx.err(f"{where}:197] Round {i}, latency {lat:.6g} ms\n")
            await asyncio.sleep(wall * 0.9 / rounds)
        # The tool's DurationCollector: means and SD% over the items after si (0 and nan when there are none).
        kept = split[_CODL_SI:]
        stat: list[float] = []
        std_pct: list[float] = []
        for k in range(len(split[0]) if split else 0):
            column = [item[k] for item in kept]
            mean = math.fsum(column) / len(column) if column else 0.0
            var = math.fsum((x - mean) ** 2 for x in column) / len(column) if column else 0.0
            stat.append(mean)
            std_pct.append(100.0 * math.sqrt(var) / mean if mean else math.nan)
        await ctx.err(
            f"{where}:213] Stat: si {_CODL_SI}, stat {_vector_text(stat)}, std_pect {_vector_text(std_pct)}\n"
        )
    finally:
        ctx.state.thermal.clear_load(ctx.proc.pid)
    return 0


def register_workloads(table: CommandTable) -> None:
    for prefix in LLAMA_PREFIXES:
        table.register_binary(prefix, llama_binary)
    table.register_binary(CODL_NAME, codl_op_run)
