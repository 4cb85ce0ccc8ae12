"""Scripted benchmark stand-ins: output shape, the direction of each modelled effect, reproducibility."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from farm.sim.phone import SimConfig, VirtualPhone

FAST = SimConfig(time_scale=0.001, min_wall_s=0.02, max_wall_s=0.05)
EVAL = re.compile(
    r"^llama_print_timings:\s+eval time =\s*([\d.]+) ms /\s*(\d+) runs .*?([\d.]+) tokens per second\)$", re.M
)
PROMPT = re.compile(
    r"^llama_print_timings: prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens "
    r".*?([\d.]+) tokens per second\)$",
    re.M,
)
ROUND = re.compile(r"^I \S+:\d+\] Round (\d+), latency ([\d.]+) ms$", re.M)
STAT = re.compile(r"^I \S+:\d+\] Stat: si (\d+), stat \[([\d.]+)\], std_pect \[([\d.]+)\]$", re.M)


def _phone(seed: int = 1) -> VirtualPhone:
    p = VirtualPhone(f"w{seed}", seed=seed, config=FAST)
    fs = p.state.fs
    fs.mkdir("/data/local/tmp/b", parents=True)
    for name in ("mymain", "llama-cli", "codl_op_run"):
        fs.write_bytes(f"/data/local/tmp/b/{name}", b"\x7fELF")
        fs.chmod(f"/data/local/tmp/b/{name}", 0o755)
    fs.write_bytes("/data/local/tmp/b/llama-2-7b.gguf", b"GGUF")
    fs.write_bytes("/data/local/tmp/b/tiny-270m.gguf", b"GGUF")
    return p


@pytest.fixture
def phone() -> Iterator[VirtualPhone]:
    p = _phone()
    yield p
    p.close()


def _decode_tps(phone: VirtualPhone, args: str, env: str = "") -> float:
    r = phone.shell(f"cd /data/local/tmp/b && {env} ./mymain -m llama-2-7b.gguf -n 8 {args}")
    assert r.exit_code == 0, r.stderr
    m = EVAL.search(r.stderr)
    assert m is not None, r.stderr
    return float(m[3])


def test_llama_output_shape(phone: VirtualPhone) -> None:
    r = phone.shell("/data/local/tmp/b/llama-cli -m /data/local/tmp/b/llama-2-7b.gguf -t 8 -n 4 -p 'one two three'")
    assert r.stderr.startswith("# synthetic output from farm virtual phone\n")
    assert EVAL.search(r.stderr)[2] == "3"  # type: ignore[index]
    assert PROMPT.search(r.stderr)[2] == "5"  # type: ignore[index]  # 3 words × 1.3 + BOS
    assert re.search(r"^llama_print_timings:\s+load time =\s+[\d.]+ ms$", r.stderr, re.M)
    assert re.search(r"^llama_print_timings:\s+total time =\s+[\d.]+ ms$", r.stderr, re.M)
    assert r.stdout.startswith("one two three ")


def test_speed_effects(phone: VirtualPhone) -> None:
    assert _decode_tps(phone, "-t 1") < _decode_tps(phone, "-t 2") < _decode_tps(phone, "-t 4")
    assert _decode_tps(phone, "-t 4 --attn-sp 0.5 --ffn-sp 0.8") > _decode_tps(phone, "-t 4")
    flash = _decode_tps(phone, "-t 4", "LLAMA_LOAD_SPARSE_TENSOR=1")
    cached = _decode_tps(phone, "-t 4", "LLAMA_LOAD_SPARSE_TENSOR=1 LLAMA_USE_OUT_DIM_INDEX_CACHE=1")
    assert flash < cached <= _decode_tps(phone, "-t 4") * 1.1
    # Four threads pinned on little cores are slower than four on big cores.
    assert _decode_tps(phone, "-t 4", "LLAMA_COMPUTING_THREAD_CPU_CORE_IDS=0,1,2,3") < _decode_tps(phone, "-t 4")
    assert _decode_tps(phone, "-t 4 -m tiny-270m.gguf") > 10 * _decode_tps(phone, "-t 4")


def test_prefill_batches(phone: VirtualPhone) -> None:
    prompt = "-p '" + " ".join(["word"] * 60) + "'"

    def prefill(batch: int) -> float:
        r = phone.shell(f"cd /data/local/tmp/b && ./mymain -m llama-2-7b.gguf -t 4 -n 2 -b {batch} {prompt}")
        return float(PROMPT.search(r.stderr)[3])  # type: ignore[index]

    assert prefill(64) > 2 * prefill(1)


def test_same_seed_same_numbers_repeats_differ() -> None:
    cmd = "cd /data/local/tmp/b && ./mymain -m llama-2-7b.gguf -t 4 -n 8"
    a, b = _phone(5), _phone(5)
    try:
        first = [EVAL.search(a.shell(cmd).stderr)[1] for _ in range(2)]  # type: ignore[index]
        second = [EVAL.search(b.shell(cmd).stderr)[1] for _ in range(2)]  # type: ignore[index]
    finally:
        a.close()
        b.close()
    assert first == second
    assert first[0] != first[1]


def test_codl_rounds_and_partition_effects(phone: VirtualPhone) -> None:
    def mean_latency(args: str) -> float:
        r = phone.shell(f"/data/local/tmp/b/codl_op_run --op_type Conv2D --rounds 12 {args}")
        assert r.exit_code == 0, r.stderr
        rounds = ROUND.findall(r.stderr)
        assert [int(i) for i, _ in rounds] == list(range(12))
        m = STAT.search(r.stderr)
        assert m is not None and m[1] == "10"
        return float(m[2])

    cpu_only = mean_latency("--part_ratio 0 --num_threads 4")
    gpu_only = mean_latency("--part_ratio 1 --gpu_memory_type 2")
    split = mean_latency("--part_ratio 0.8 --part_dim 4 --num_threads 4 --gpu_memory_type 2")
    assert split < min(cpu_only, gpu_only)
    assert mean_latency("--part_ratio 0 --num_threads 1") > cpu_only
    assert mean_latency("--part_ratio 1 --gpu_memory_type 0") > gpu_only
    assert mean_latency("--part_ratio 1 --input_shape 1,112,112,64") > 3 * gpu_only


def test_killed_scripted_run_drops_thermal_load(phone: VirtualPhone) -> None:
    slow = VirtualPhone("slow", config=SimConfig(time_scale=1.0, min_wall_s=0.3, max_wall_s=0.3))
    try:
        slow.state.fs.write_bytes("/data/local/tmp/mymain", b"x")
        slow.state.fs.chmod("/data/local/tmp/mymain", 0o755)
        slow.state.fs.write_bytes("/data/local/tmp/m.gguf", b"x")
        r = slow.shell("/data/local/tmp/mymain -m /data/local/tmp/m.gguf -n 4")
        assert r.exit_code == 0
        assert not slow.state.thermal.busy()
        # After the run the big cores are warmer than idle and the run's memory peak was recorded.
        assert slow.state.thermal.temperature_c(1) > slow.state.thermal.zones[1].idle_c
    finally:
        slow.close()
