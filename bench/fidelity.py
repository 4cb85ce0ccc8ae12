"""Fidelity: does running through the farm change the number? Decode tokens/s of the quickstart runner measured
through ``farm`` (local Ray, host device, controller, adapter) vs the same runner called directly, same parameters,
alternating A/B in one process so machine noise hits both alike. Target: farm / direct ≥ 0.97.

How many pairs: the ratio of two medians of a few noisy runs moves by itself. After the runs, the pairs are resampled
(bootstrap, fixed seed) to show how far the ratio spreads at fewer pairs, and the fewest pairs from which on the
ratio's 5th percentile stays within 3 % below the measured ratio is printed: with that many pairs a farm that changes
nothing (a true ratio of 1) is not read as a miss of 0.97 one time in twenty. The default is what that gave on the
shared 2-core VM under load (docs/benchmarks.md).

    .venv/bin/python bench/fidelity.py [--pairs 14] [--tokens 64] [--threads 1]
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from farm.client import ControllerOptions, FarmClient, start_ray, stop_ray
from farm.results import ResultsStore
from farm.specs.inventory import local_inventory
from farm.specs.job import load_job
from farm.workloads import make_adapter


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=14)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    argv = [
        str(Path(sys.executable).parent / "farm-llama"),
        "--model-package",
        "gemma3",
        "-p",
        "Once upon a time",
        "-n",
        str(args.tokens),
        "-t",
        str(args.threads),
        "-b",
        "64",
        "--seed",
        "42",
        "--no-repack",
    ]
    adapter = make_adapter("llama_cpp")
    tmp = Path(tempfile.mkdtemp(prefix="farm-fidelity-"))
    job_path = tmp / "fidelity.yaml"
    job_path.write_text(
        yaml.safe_dump({"name": "fidelity", "workload": "llama_cpp", "command": argv, "devices": {"kind": "host"}})
    )
    job = load_job(job_path)
    start_ray()
    client = FarmClient.start(local_inventory(), str(tmp / "res"), options=ControllerOptions(flush_rows=1))
    store = ResultsStore(str(tmp / "res"))
    subprocess.run(argv, capture_output=True, check=True)  # warm the page cache for both arms
    farm_tps: list[float] = []
    direct_tps: list[float] = []
    for i in range(args.pairs):
        for arm in ("farm", "direct") if i % 2 == 0 else ("direct", "farm"):
            if arm == "farm":
                job_id = client.submit(job, str(job_path), ship=False, rerun=True)
                st = client.wait(job_id, 300)
                assert st.statuses == {"ok": 1}, st
                table = store.table("fidelity").to_pylist()
                farm_tps.append(max(table, key=lambda r: r["attempt"])["decode_tokens_per_s"])
            else:
                done = subprocess.run(argv, capture_output=True, text=True, check=True)
                direct_tps.append(adapter.parse(done.stdout + "\n" + done.stderr)["decode_tokens_per_s"])
    client.shutdown()
    stop_ray()
    f, d = statistics.median(farm_tps), statistics.median(direct_tps)
    print(f"farm   decode tok/s: {', '.join(f'{x:.2f}' for x in farm_tps)}")
    print(f"direct decode tok/s: {', '.join(f'{x:.2f}' for x in direct_tps)}")
    print(f"fidelity (median farm / median direct, {args.pairs} alternating pairs): {f / d:.3f}  (target >= 0.97)")
    needed = None
    for n in range(3, args.pairs + 1):
        lo, hi = ratio_range(farm_tps, direct_tps, n)
        print(f"  at {n:2d} pairs the ratio's 90 % range (bootstrap) is {lo:.3f}..{hi:.3f}")
        if lo / (f / d) < 0.97:
            needed = None
        elif needed is None:
            needed = n
    print(f"pairs needed (5th percentile within 3 % below the ratio): {needed or f'more than {args.pairs}'}")
    return 0


def ratio_range(farm: list[float], direct: list[float], n: int, draws: int = 2000) -> tuple[float, float]:
    """5th and 95th percentiles of median(farm)/median(direct) over ``n`` pairs resampled from the measured ones."""
    rng = random.Random(17)
    pairs = list(zip(farm, direct, strict=True))
    ratios = []
    for _ in range(draws):
        sample = [rng.choice(pairs) for _ in range(n)]
        ratios.append(statistics.median(p[0] for p in sample) / statistics.median(p[1] for p in sample))
    ratios.sort()
    return ratios[int(0.05 * draws)], ratios[int(0.95 * draws) - 1]


if __name__ == "__main__":
    raise SystemExit(main())
