#!/usr/bin/env python3
"""Scripted stand-in for the LightCode hardware simulator's graph search (a host workload).

Builds the operator graph of one transformer layer for ``--seq_len`` tokens, then chooses for each operator
the unit that runs it (CPU cores, the photonic unit PHU, or a GPU when ``--gpu_sms`` > 0) by dynamic
programming over the chain, minimising the ``--target`` (``time``, ``energy``, or ``always_phu`` which forces
matmuls onto the PHU), counting transfer costs between units. Prints the result as a Python dict with
``Makespan`` (s), ``total_energy`` (pJ) and ``num_nodes``, like the simulator. The hardware figures are a toy
model: the output is labelled synthetic.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the box runs this as a plain script; the type checker sees it inside the farm package
    from farm.sim.boxes._boxsim import label_synthetic
else:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _boxsim import label_synthetic
HIDDEN = 1024
PJ_PER_FLOP = {"cpu": 8.0, "phu": 0.6, "gpu": 2.5}
TRANSFER_S_PER_BYTE = 1 / 16e9
TRANSFER_PJ_PER_BYTE = 40.0


def layer_graph(seq: int) -> list[tuple[str, float, bool]]:
    """(name, flops, is_matmul) per operator of one layer, in execution order."""
    h = HIDDEN
    mm = [
        ("q_proj", 2 * seq * h * h),
        ("k_proj", 2 * seq * h * h),
        ("v_proj", 2 * seq * h * h),
        ("qk", 2 * seq * seq * h),
        ("softmax", 5 * seq * seq),
        ("av", 2 * seq * seq * h),
        ("o_proj", 2 * seq * h * h),
        ("norm", 8 * seq * h),
        ("ffn_up", 8 * seq * h * h),
        ("act", 4 * seq * 4 * h),
        ("ffn_down", 8 * seq * h * h),
        ("residual", 2 * seq * h),
    ]
    return [(n, float(f), n not in ("softmax", "norm", "act", "residual")) for n, f in mm]


def main() -> int:
    p = argparse.ArgumentParser(prog="lightcode_sim.py")
    p.add_argument("--target", choices=["time", "energy", "always_phu"], default="time")
    p.add_argument("--seq_len", type=int, default=128)
    p.add_argument("--cpu_clock_ghz", type=float, default=2.4)
    p.add_argument("--cpu_cores", type=int, default=8)
    p.add_argument("--phu_clock_ghz", type=float, default=10.0)
    p.add_argument("--phu_cores", type=int, default=4)
    p.add_argument("--phu_multiplex", type=int, default=8)
    p.add_argument("--gpu_sms", type=int, default=0)
    p.add_argument("--layers", type=int, default=12)
    a = p.parse_args()
    label_synthetic()
    rate = {  # FLOP/s per unit
        "cpu": a.cpu_clock_ghz * 1e9 * a.cpu_cores * 16,
        "phu": a.phu_clock_ghz * 1e9 * a.phu_cores * a.phu_multiplex * 2,
    }
    if a.gpu_sms > 0:
        rate["gpu"] = 1.4e9 * a.gpu_sms * 128
    nodes = layer_graph(a.seq_len) * a.layers
    act_bytes = a.seq_len * HIDDEN * 2
    # best[u] = (cost, time, energy) of the prefix ending with the current node on unit u
    best: dict[str, tuple[float, float, float]] = {"cpu": (0.0, 0.0, 0.0)}
    for _name, flops, is_mm in nodes:
        units = ["phu"] if (a.target == "always_phu" and is_mm) else list(rate)
        step: dict[str, tuple[float, float, float]] = {}
        for u in units:
            t_run, e_run = flops / rate[u], flops * PJ_PER_FLOP[u]
            options = []
            for prev, (_c, t, e) in best.items():
                moved = prev != u
                t2 = t + t_run + (act_bytes * TRANSFER_S_PER_BYTE if moved else 0)
                e2 = e + e_run + (act_bytes * TRANSFER_PJ_PER_BYTE if moved else 0)
                options.append((e2 if a.target == "energy" else t2, t2, e2))
            step[u] = min(options)
        best = step
        time.sleep(0.0005)  # the real search evaluates many more candidates per node
    _cost, makespan, energy = min(best.values())
    print({"Makespan": makespan, "total_energy": energy, "num_nodes": len(nodes), "target": a.target})
    return 0


if __name__ == "__main__":
    sys.exit(main())
