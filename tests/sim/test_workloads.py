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
ELASTIC = "/data/local/tmp/elastic-infer"


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
        coarse = "MACE_DURATION_COLLECT_GRANULARITY=Coarse"
        r = phone.shell(f"{coarse} /data/local/tmp/b/codl_op_run --op_type Conv2D --compute --rounds 12 {args}")
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


def _elastic_phone(storage: str = "flash") -> VirtualPhone:
    p = VirtualPhone(f"e-{storage}", seed=3, config=FAST, storage=storage)
    fs = p.state.fs
    fs.mkdir(ELASTIC, parents=True)
    for name in ("mymain-t-aarch64", "mymain-nt-aarch64"):
        fs.write_bytes(f"{ELASTIC}/{name}", b"FARM SYNTHETIC PLACEHOLDER")
        fs.chmod(f"{ELASTIC}/{name}", 0o755)
    for name in (
        "libc++_shared.so",
        "liburing.so.2.8",
        "Llama-2-7b-chat-hf-t-Q4_0.gguf",
        "Llama-2-7b-chat-hf-nt-Q4_0.gguf",
    ):
        fs.write_bytes(f"{ELASTIC}/{name}", b"FARM SYNTHETIC PLACEHOLDER")
    return p


RECIPE = ("-ngl 999 -m ./Llama-2-7b-chat-hf-{layout}-Q4_0.gguf -n 4 -p 'Once upon a time' --temp -1.0 "
          "--attn-sp {sp} --ffn-sp {sp} -b 1 -t 8")  # fmt: skip
PREFIX = f"cd {ELASTIC} && export LD_LIBRARY_PATH={ELASTIC}" + '"${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"'


def test_elastic_infer_builds_run_the_recipe_and_fail_like_the_real_ones() -> None:
    phone = _elastic_phone()
    try:
        run = phone.shell(f"{PREFIX} && ./mymain-t-aarch64 {RECIPE.format(layout='t', sp='0.50')}")
        assert run.exit_code == 0 and EVAL.search(run.stderr) and "--n-gpu-layers option will be ignored" in run.stderr
        # without LD_LIBRARY_PATH the dynamic linker does not find the pushed libraries
        bare = phone.shell(f"cd {ELASTIC} && ./mymain-t-aarch64 {RECIPE.format(layout='t', sp='0.50')}")
        assert bare.exit_code == 1 and 'library "libc++_shared.so" not found' in bare.stderr
        # an option llama.cpp does not have, a missing value, the other weight layout
        for args, message in (
            ("-m ./Llama-2-7b-chat-hf-t-Q4_0.gguf --attn_sp 0.5", "error: unknown argument: --attn_sp"),
            ("-m ./Llama-2-7b-chat-hf-t-Q4_0.gguf -t", "error: missing value for -t"),
            ("-m ./Llama-2-7b-chat-hf-nt-Q4_0.gguf", "mymain-t-aarch64 reads t weights"),
        ):
            r = phone.shell(f"{PREFIX} && ./mymain-t-aarch64 {args}")
            assert r.exit_code == 1 and message in r.stderr, (args, r.stderr)
    finally:
        phone.close()


def _step_times(storage: str) -> tuple[float, float, float]:
    """(T_enc, T_dec) with loading off and T'_dec with loading on, ms per token, as recipe step 4 measures."""
    phone = _elastic_phone(storage)
    try:
        times = []
        for load in ("0", "1"):
            env = f"LLAMA_LOAD_SPARSE_TENSOR={load} LLAMA_USE_OUT_DIM_INDEX_CACHE=1"
            r = phone.shell(f"{PREFIX} && {env} ./mymain-t-aarch64 {RECIPE.format(layout='t', sp='0.50')}")
            assert r.exit_code == 0, r.stderr
            times.append((float(PROMPT.search(r.stderr)[1]) / float(PROMPT.search(r.stderr)[2]),  # type: ignore[index]
                          float(EVAL.search(r.stderr)[1]) / float(EVAL.search(r.stderr)[2])))  # type: ignore[index]  # fmt: skip
        return times[0][0], times[0][1], times[1][1]
    finally:
        phone.close()


def test_storage_profiles_put_decoding_in_each_bound_regime() -> None:
    enc, dec, dec_on = _step_times("sync")
    assert enc / dec < 0.2  # synchronisation dominates decoding only
    enc, dec, dec_on = _step_times("flash")
    assert enc / dec > 0.2 and dec_on / dec > 2.0
    enc, dec, dec_on = _step_times("ram")
    assert enc / dec > 0.2 and 0.9 < dec_on / dec < 1.2


def test_codl_flags_are_gflags_with_the_tools_types(phone: VirtualPhone) -> None:
    tool = "/data/local/tmp/b/codl_op_run"
    for args, message in (
        ("--warmup=2", "ERROR: illegal value '2' specified for bool flag 'warmup'"),
        ("--rounds=abc", "ERROR: illegal value 'abc' specified for int32 flag 'rounds'"),
        ("--part-ratio=0.5", "ERROR: unknown command line flag 'part-ratio'"),
        ("--rounds", "ERROR: flag '--rounds' is missing its argument"),
    ):
        r = phone.shell(f"{tool} --op_type=Conv2D {args}")
        assert r.exit_code == 1 and message in r.stderr, (args, r.stderr)
    assert phone.shell(f"{tool} --op_type=Conv3D --compute").exit_code == 139
    # the recipe's command line, with the collector's Fine granularity and data transform: 8 stages + compute
    seed = (f"{tool} --compute --cpu_affinity_policy=1 --rounds=21 --gpu_memory_type=1 --num_threads=4 --part_dim=4 "
            '--part_ratio=0.000000 --cu_hint=1 --op_type=Conv2D --input_shape="1,418,418,3" --weight_shape="32,3,3,3" '
            '--strides="1,1"')  # fmt: skip
    plain = phone.shell(seed)
    assert plain.exit_code == 0 and "Stat: si 10, stat , std_pect \n" in plain.stderr
    assert "OpenCLRuntime: global_mem_cacheline_size 64" in plain.stderr  # created even for a CPU-only run
    fine = phone.shell(f"MACE_DURATION_COLLECT_GRANULARITY=Fine {seed} --data_transform --nodebug")
    stat = re.search(r"Stat: si 10, stat \[([^\]]*)\], std_pect \[([^\]]*)\]", fine.stderr)
    assert fine.exit_code == 0 and stat is not None and len(stat[1].split(",")) == 9
    gpu = phone.shell(seed.replace("--part_ratio=0.000000 --cu_hint=1", "--part_ratio=1 --cu_hint=2"))
    assert "OpenCL device: Adreno (TM) 740" in gpu.stderr and "compute_units 6" in gpu.stderr


def test_slowdown_knob_scales_the_cpu_speed_and_says_so() -> None:
    """FARM_SIM_SLOWDOWN (synthetic, for bench/regress.py): the same run on two phones of one seed sees the same
    noise, so the latency ratio is the factor; the row records it through a farm-fp line."""
    cmd = "/data/local/tmp/b/codl_op_run --op_type Conv2D --compute --rounds 12 --part_ratio 0 --num_threads 4"
    stats = []
    for env in ("", "FARM_SIM_SLOWDOWN=1.05 ", "FARM_SIM_SLOWDOWN=fast "):
        p = _phone()
        try:
            r = p.shell(f"MACE_DURATION_COLLECT_GRANULARITY=Coarse {env}{cmd}")
        finally:
            p.close()
        assert r.exit_code == 0, r.stderr
        m = STAT.search(r.stderr)
        assert m is not None
        stats.append((float(m[2]), "farm-fp: fp_sim_slowdown=1.05" in r.stderr))
    (base, base_fp), (slow, slow_fp), (bad, bad_fp) = stats
    assert slow / base == pytest.approx(1.05, rel=1e-4) and slow_fp and not base_fp
    assert bad == base and not bad_fp  # not a number: ignored
