"""CoDL's ``codl_op_run`` stand-in on the virtual phone (see :mod:`farm.sim.workloads` for what it prints)."""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Sequence

from farm.sim.shell_io import CommandContext
from farm.sim.soc import opencl_facts
from farm.sim.standin_model import effective_speed, noisy, sleep_in_steps, slowdown_line
from farm.sim.synthetic import PHONE_BANNER

CODL_NAME = "codl_op_run"

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
    cpu_gflops = 14.0 * effective_speed(ctx, cores) * (0.92 ** (threads - 1))
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
    await ctx.err(f"{PHONE_BANNER}\n{slowdown_line(ctx)}")
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
    lats = [noisy(rng, base_ms * (first if i == 0 else 1.0), sd) for i in range(rounds)]
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
        await sleep_in_steps(ctx, wall * 0.1, 2, ctx.proc.vm_rss_kb, 96_000)
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
