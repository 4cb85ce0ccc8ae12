"""Fidelity: does running through the farm change the number? Decode tokens/s of the quickstart runner measured
through ``farm`` (local Ray, host device, controller, adapter) vs the same runner called directly, same parameters,
alternating A/B in one process so machine noise hits both alike. Target: farm / direct ≥ 0.97.

    .venv/bin/python bench/fidelity.py [--pairs 6] [--tokens 64] [--threads 1]
"""

from __future__ import annotations

import argparse
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
    ap.add_argument("--pairs", type=int, default=6)
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
