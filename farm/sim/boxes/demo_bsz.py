#!/usr/bin/env python3
"""Scripted stand-in for the LLaMA-Adapter ``demo_bsz.py`` (Ascend ModelZoo-PyTorch) on an Ascend 310P3 server.

Configured like the real script: by the module constants below, which the recipe edits by hand (a farm job sets
them in a rendered copy, see ``farm/script_constants.py``). ``DEVICE_ID`` is the logical NPU among those
``ASCEND_RT_VISIBLE_DEVICES`` lists (all NPUs when unset); an id the box lacks fails like ``aclrtSetDevice``.
Prints like the real script (``[result]:`` with one decoded string per picture, ``[tiral time] <ms>`` — sic —
per loop, ``[avg_time]: <ms>``) plus the stage times of the patched ``llama_adapter_bsz.py`` after every
``generate()`` as ``[clip_time]: <ms>`` … ``[decode_time]: <ms>``. Each batch sleeps a latency that grows
sub-linearly with the batch size, so throughput rises with batching as on the card; the printed times are
measured on those sleeps. Device memory is held on the card while it runs (``npu-smi info`` shows it). Output
is labelled synthetic.
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
    # a job pushes a rendered copy of this file elsewhere: find the helpers beside it or on the box's PATH
    _dirs = [Path(__file__).resolve().parent, *map(Path, os.environ.get("PATH", "").split(os.pathsep))]
    sys.path.insert(0, str(next((d for d in _dirs if (d / "_boxsim.py").is_file()), _dirs[0])))
    from _boxsim import device_count, holding, label_synthetic, stable_fraction

DEVICE_ID = 0
DEVICE = "cpu"
IMG_SIZE = 224
BATCH_SIZE = 5
INFER_LOOP = 5
LLAMA_DIR = "/path/to/LLaMA/"
CLIP_DIR = "/path/to/clip/"
BIAS_DIR = "/path/to/BIAS-7B"
PIC_FILE_PATH = "/path/to/picture"

# stage shares of one generate() (clip, pre, forward, post, decode): fixed cost + per picture, in seconds
STAGES = (("clip", 0.012, 0.009), ("pre", 0.006, 0.001), ("forward", 0.075, 0.045), ("post", 0.004, 0.002),
          ("decode", 0.009, 0.002))  # fmt: skip
ANSWER = "synthetic caption from the stand-in"


def generate(card: int, i: int) -> list[str]:
    jitter = 0.98 + 0.04 * stable_fraction(card, BATCH_SIZE, i, time.time_ns())
    for stage, fixed, per_picture in STAGES:
        t0 = time.time()
        time.sleep((fixed + per_picture * BATCH_SIZE) * jitter)
        print(f"[{stage}_time]: {(time.time() - t0) * 1000:.3f}")
    return [f"{ANSWER} #{i * BATCH_SIZE + k + 1}" for k in range(BATCH_SIZE)]


def main() -> int:
    label_synthetic()
    visible = [int(v) for v in os.environ.get("ASCEND_RT_VISIBLE_DEVICES", "").split(",") if v.strip()]
    cards = device_count("FARM_SIM_NPU_COUNT", 2)
    physical = visible or list(range(cards))
    if len(physical) <= DEVICE_ID or physical[DEVICE_ID] >= cards:
        print(f"[ERROR] aclrtSetDevice({DEVICE_ID}) failed, error code 107001 (visible: {physical})", file=sys.stderr)
        return 1
    card = physical[DEVICE_ID]
    with holding("npu", card, 6200 + 310 * BATCH_SIZE):
        time.sleep(0.3)  # model load
        print("[result]:", generate(card, 0), flush=True)
        sum_time = 0.0
        for i in range(INFER_LOOP):
            start_time = time.time()
            result = generate(card, i + 1)
            cur_time = (time.time() - start_time) * 1000
            sum_time += cur_time
            print("[result]:", result)
            print("[tiral time]", cur_time, flush=True)
    print("[avg_time]:", sum_time / INFER_LOOP)
    return 0


if __name__ == "__main__":
    sys.exit(main())
