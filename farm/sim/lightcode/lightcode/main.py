"""Stand-in graph search and threshold search (synthetic; the real ones schedule TVM Relay graphs).

``graph_search`` picks, operator by operator, the unit that minimises the optimization target (``time``,
``energy``; ``always_phu`` puts every matmul on the PHU and the rest on the cheapest-in-time unit), paying a
transfer cost when consecutive operators run on different units, by dynamic programming over the chain.
``threshold_search`` prints, like the real one, the set of sequence lengths at which some operator's best
unit changes.
"""

from __future__ import annotations

from .hardware import Unit
from .models import Model

TRANSFER_S_PER_BYTE = 1 / 256e9
TRANSFER_PJ_PER_BYTE = 40.0
_MAX_SEQ = 1 << 16


def _cost(unit: Unit, flops: float) -> tuple[float, float]:
    return unit.fixed_s + flops / unit.flops_per_s, unit.fixed_pj + flops * unit.pj_per_flop


def _weight(optimization: str, t: float, e: float) -> float:
    return e if optimization == "energy" else t


def graph_search(model: Model, optimization: str, available_hardware: dict[str, Unit], moc_sequence_length: int,
                 profiles: bool = True, colect_data: bool = False) -> dict[str, object]:  # fmt: skip
    if optimization not in ("time", "energy", "always_phu"):
        raise ValueError(f"unknown optimization {optimization!r}")
    seq = int(moc_sequence_length)
    moved_bytes = seq * model.hidden * 2
    # best[u] = (weight, time, energy, phu nodes) of the prefix whose last operator ran on unit u
    best: dict[str, tuple[float, float, float, int]] = {"cpu": (0.0, 0.0, 0.0, 0)}
    nodes = model.nodes(seq)
    for _name, flops, is_mm in nodes:
        units = list(available_hardware)
        if optimization == "always_phu" and is_mm and "phu" in available_hardware:
            units = ["phu"]
        elif not is_mm:
            units = [u for u in units if u != "phu"] or units  # the PHU only multiplies
        step = {}
        for u in units:
            t_run, e_run = _cost(available_hardware[u], flops)
            options = []
            for prev, (_w, t, e, phu) in best.items():
                moved = prev != u
                t2 = t + t_run + (moved_bytes * TRANSFER_S_PER_BYTE if moved else 0.0)
                e2 = e + e_run + (moved_bytes * TRANSFER_PJ_PER_BYTE if moved else 0.0)
                options.append((_weight(optimization, t2, e2), t2, e2, phu + (u == "phu")))
            step[u] = min(options)
        best = step
    _w, makespan, energy, phu_nodes = min(best.values())
    return {
        "moc_sequence_length": seq,
        "Makespan": makespan,
        "total_energy": energy if profiles else None,
        "num_nodes": len(nodes),
        "phu_nodes": phu_nodes,
        "synthetic": True,
    }


def threshold_search(model: Model, optimization: str, available_hardware: dict[str, Unit]) -> None:
    def choice(index: int, seq: int) -> str:
        flops = model.layer_ops(seq)[index][1]
        return min(available_hardware, key=lambda u: _weight(optimization, *_cost(available_hardware[u], flops)))

    thresholds: set[int] = set()
    for index, (_name, _flops, is_mm) in enumerate(model.layer_ops(1)):
        if not is_mm:
            continue
        lo, current = 1, choice(index, 1)
        hi = 2
        while hi <= _MAX_SEQ:
            if choice(index, hi) != current:
                a, b = lo, hi  # the switch lies in (a, b]: bisect for the first length with the new unit
                while b - a > 1:
                    mid = (a + b) // 2
                    a, b = (mid, b) if choice(index, mid) == current else (a, mid)
                thresholds.add(b)
                current = choice(index, hi)
            lo, hi = hi, hi * 2
    print(thresholds)
