"""Device-minutes saved by adaptive repeats against a fixed repeat count, at the same interval width.

The real farm (local Ray, the controller, the Phone device actors) drives the real adb server and virtual phones
(farm/sim) running the stand-in of a shipped phone job (:data:`JOB`, its three thread counts; artifacts stood in
by ``farm sim artifacts``). The phones differ only in their run-to-run noise (``--noise``, one value per phone:
a quiet and a noisy device), as real phones of one farm do. One invocation runs the job twice:

- fixed: ``repeat: MAX``; every point on every phone gets MAX measured repeats;
- adaptive: ``repeat: {min: MIN, max: MAX, ci: CI%}``; each point on each phone stops once the interval of the
  headline (``decode_tokens_per_s``) is within ±CI % (or at MAX).

Then, from the fixed job's rows, the **smallest fixed count N** (≥ MIN) whose interval (same rule, the first N
repeats) is within ±CI % on every point and phone: the best a fixed count chosen in advance could have done
(an oracle: in practice one picks it before seeing the data). Device-minutes are the rows' ``duration_s`` plus
``cooldown_wait_s`` (the thermal gate), warm-ups included (recorded). Ratios are adaptive / fixed.

Everything is synthetic (virtual phones); the ratios say how the rule behaves on the stand-in's noise, thermal
drift and the farm's overheads, not what a real phone saves.

    .venv/bin/python bench/adaptive_repeats.py [--min 3] [--max 12] [--ci 2] [--method t] [--noise 0.005,0.03]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine, print_machine, virtual_phone_farm
from farm.cli.main import main as farm_main
from farm.client import FarmClient, JobState
from farm.plan import ANY_SLOT, run_id
from farm.results import ResultsStore
from farm.sim.phone import SimConfig, VirtualPhone
from farm.specs.job import load_job
from farm.stability import StoppingRule, interval

REPO = Path(__file__).resolve().parents[1]
JOB = REPO / "jobs" / "elastic-infer-baseline.yaml"
METRIC = "decode_tokens_per_s"


def job_file(folder: Path, name: str, repeat: int | dict[str, Any]) -> Path:
    data: dict[str, Any] = yaml.safe_load(JOB.read_text())
    data.update(name=name, repeat=repeat, record_warmup=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def device_minutes(rows: list[dict[str, Any]]) -> float:
    return float(sum(r["duration_s"] + (r.get("cooldown_wait_s") or 0.0) for r in rows)) / 60.0


def point_of(row: dict[str, Any]) -> tuple[str, tuple[tuple[str, Any], ...]]:
    return row["slot"], tuple(sorted((k[2:], v) for k, v in row.items() if k.startswith("p_") and v is not None))


def oracle_fixed(rows: list[dict[str, Any]], rule: StoppingRule, job: str) -> tuple[int, float, float]:
    """The smallest N whose interval is within the target on every point; its device-minutes and worst width."""
    series: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    warm: list[dict[str, Any]] = []
    for r in rows:
        (warm if r["warmup"] else series[point_of(r)]).append(r)
    for runs in series.values():
        runs.sort(key=lambda r: r["repeat"])

    def width(n: int) -> float:
        worst = 0.0
        for (slot, params), runs in series.items():
            values = [r[METRIC] for r in runs[:n] if r["status"] == "ok" and r.get(METRIC) is not None]
            iv = interval(rule, values, run_id(job, slot or ANY_SLOT, dict(params), 0))
            worst = max(worst, iv.rel_pct if iv else float("inf"))
        return worst

    n = next((k for k in range(rule.min, rule.max + 1) if width(k) <= rule.ci_pct), rule.max)
    return n, device_minutes(warm + [r for runs in series.values() for r in runs[:n]]), width(n)


def run_job(client: FarmClient, path: Path, root: str) -> list[dict[str, Any]]:
    job = load_job(path)
    status = client.wait(client.submit(job, str(path), ship=False), 3600)
    if status.state is not JobState.DONE or not status.all_ok:
        raise RuntimeError(f"{job.name}: {status}")
    table = ResultsStore(root).table(job.name)
    return table.to_pylist() if table is not None else []


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min", type=int, default=3)
    ap.add_argument("--max", type=int, default=12)
    ap.add_argument("--ci", type=float, default=2.0, help="target half-width, %% of the mean (default 2)")
    ap.add_argument("--method", choices=("t", "bootstrap"), default="t")
    ap.add_argument("--noise", default="0.005,0.03", help="relative sd of each phone's noise (one per phone)")
    ap.add_argument("--seed", type=int, default=0, help="the phones' seeds start here")
    args = ap.parse_args()
    noises = [float(x) for x in args.noise.split(",")]
    info = machine()
    tmp = Path(tempfile.mkdtemp(prefix="farm-adaptive-bench-"))
    folder = tmp / "jobs"
    folder.mkdir()
    fixed_path = job_file(folder, "fixed", args.max)
    adaptive_spec = {"min": args.min, "max": args.max, "ci": args.ci, "method": args.method}
    adaptive_path = job_file(folder, "adaptive", adaptive_spec)
    if farm_main(["sim", "artifacts", str(fixed_path)]) != 0:  # labelled placeholders at the job's artifact paths
        return 1
    root = str(tmp / "results")
    phones = [
        VirtualPhone(f"vphone-{k}", seed=args.seed + k, config=SimConfig(0.02, 0.1, 0.6, noise)).start()
        for k, noise in enumerate(noises)
    ]
    started = time.monotonic()
    with virtual_phone_farm(tmp / "adb-home", phones, root) as client:
        fixed = run_job(client, fixed_path, root)
        adaptive = run_job(client, adaptive_path, root)
    elapsed = time.monotonic() - started
    rule = StoppingRule(args.min, args.max, args.ci, method=args.method, seed=load_job(fixed_path).seed)
    n_best, best_min, best_width = oracle_fixed(fixed, rule, "fixed")
    closing = [r for r in adaptive if r.get("repeat_count") is not None]
    widths = [r["ci_rel_pct"] if r["ci_rel_pct"] is not None else float("inf") for r in closing]
    ad_min, max_min = device_minutes(adaptive), device_minutes(fixed)
    print(f"\nadaptive repeats (synthetic: virtual phones, elastic-infer llama stand-in, {len(phones)} phones)")
    print(f"  rule              {args.method}, 95 % interval of {METRIC} within ±{args.ci:g} %, {args.min}..{args.max}")
    print(f"  phones' noise     {', '.join(f'{n:g}' for n in noises)} (relative sd)")
    counts = ", ".join(f"{r['slot']} t={r['p_threads']}: {r['repeat_count']:.0f}" for r in closing)
    print(f"  adaptive repeats  {counts}")
    print(f"  adaptive          {ad_min:.3f} device-min, worst width ±{max(widths):.2f} %")
    print(f"  fixed N={n_best:<2} (best) {best_min:.3f} device-min, worst width ±{best_width:.2f} %")
    print(f"  fixed N={args.max:<2} (max)  {max_min:.3f} device-min")
    print(f"  ratio             adaptive / best fixed {ad_min / best_min:.2f}, / fixed max {ad_min / max_min:.2f}")
    print(f"  wall time         {elapsed:.0f} s")
    print_machine(info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
