#!/usr/bin/env python3
"""Scripted stand-in for the LLaMA-Adapter ``demo_bsz.py`` image-captioning demo on an Ascend 310P3 server.

Honours ``BATCH_SIZE`` (pictures per batch, default 1) and ``ASCEND_RT_VISIBLE_DEVICES`` (the first id listed
is the card used; an id the box lacks fails like ``aclrtSetDevice``). Each batch sleeps a latency that grows
sub-linearly with the batch size, so throughput rises with batching as on the real card; the printed latency
and ``pictures/s`` are measured on those sleeps. ``FARM_SIM_ITERS`` sets the number of timed batches (default
5, after one warm-up). Device memory is held on the card while it runs (``npu-smi info`` shows it). Output is
labelled synthetic.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the box runs this as a plain script; the type checker sees it inside the farm package
    from farm.sim.boxes._boxsim import device_count, holding, label_synthetic, stable_fraction
else:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _boxsim import device_count, holding, label_synthetic, stable_fraction
BATCH_OVERHEAD_S = 0.106
PER_PICTURE_S = 0.059


def main() -> int:
    label_synthetic()
    try:
        batch = int(os.environ.get("BATCH_SIZE", "1"))
        iters = int(os.environ.get("FARM_SIM_ITERS", "5"))
    except ValueError as exc:
        print(f"invalid BATCH_SIZE/FARM_SIM_ITERS: {exc}", file=sys.stderr)
        return 2
    visible = [v for v in os.environ.get("ASCEND_RT_VISIBLE_DEVICES", "0").split(",") if v.strip()]
    card = int(visible[0]) if visible else 0
    cards = device_count("FARM_SIM_NPU_COUNT", 2)
    if card >= cards:
        print(
            f"[ERROR] aclrtSetDevice({card}) failed, error code 107001 (box has {cards} NPUs)",
            file=sys.stderr,
        )
        return 1
    print(f"[INFO] acl init success, open device {card} success (ASCEND_RT_VISIBLE_DEVICES={','.join(visible)})")
    print(f"batch_size: {batch}", flush=True)
    with holding("npu", card, 6200 + 310 * batch):
        time.sleep(0.3)  # model load
        latencies = []
        for i in range(iters + 1):
            t0 = time.time()
            jitter = 0.98 + 0.04 * stable_fraction(card, batch, i, time.time_ns())
            time.sleep((BATCH_OVERHEAD_S + PER_PICTURE_S * batch) * jitter)
            lat = time.time() - t0
            if i == 0:
                print(f"[warmup] batch latency {lat:.3f} s", flush=True)
                continue
            latencies.append(lat)
            print(f"[iter {i}/{iters}] batch latency {lat:.3f} s", flush=True)
    mean = sum(latencies) / len(latencies)
    print(f"average latency: {mean * 1000:.2f} ms/batch")
    print(f"throughput: {batch / mean:.2f} pictures/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
