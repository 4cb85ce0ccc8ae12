"""The LightCode runner: the simulator's graph search or threshold search for one set of grid values.

Usage (the LightCode jobs' command)::

    farm-lightcode graph --model gpt2_prefill --optimization time --seq-len 1400 \\
        --cpu-clock-ghz 3.208 --cpu-cores 1 --phu-clock-ghz 9.7 --phu-cores 1 --phu-multiplex 20 \\
        [--gpu-clock-ghz 1.98 --gpc 8 --tpc-per-gpc 9 --sm-per-tpc 2 --cores-per-sm 128 --tc-per-sm 4]
    farm-lightcode thresholds --model gpt2_prefill --optimization energy <same hardware flags>

It does what the LightCode how-to does by hand: ``hardware.Hardware._hardware_reset()``, registers a CPU
(clock, cores), a PHU (clock, cores, multiplex) and, when ``--gpu-clock-ghz`` is given, a GPU (clock and its
cluster shape), ``hardware.initilize_hardware(...)``, then ``main.graph_search(models.<model>, optimization,
hardware, moc_sequence_length=N, profiles=True)`` or ``main.threshold_search(models.<model>, optimization,
hardware)``. Clocks are given in GHz (the package takes Hz).

stdout, for the ``lightcode`` workload adapter: the graph search's result mapping as printed by the package
(``Makespan`` in s, ``total_energy`` in pJ, ``num_nodes``) plus ``phu_nodes`` — the nodes placed on the
photonic unit — when the installed package reports it (``phu_nodes``, ``photonic_nodes`` or
``num_photonic_nodes`` in its result; otherwise left out, with a note on stderr); for the threshold search
``{"thresholds": [...], ...}``, the sorted sequence lengths at which the optimizer switches hardware (from its
return value, or from the set it prints, as the package's own ``threshold_search`` does). Lines
``farm-fp: fp_lightcode=...`` name the package version and location for the row's fingerprint.

When ``lightcode`` cannot be imported the runner exits 2 with a message saying how to install it: the package is
not on PyPI, and nothing is downloaded at run time.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import importlib.metadata
import io
import json
import sys
from collections.abc import Sequence
from typing import Any

from farm.sim.synthetic import SYNTHETIC_LINE

PROG = "farm-lightcode"
_PHU_KEYS = ("phu_nodes", "photonic_nodes", "num_photonic_nodes")
_GHZ = 1e9


class RunnerError(Exception):
    """A reason to exit non-zero; ``exit_code`` 2 is bad input or a missing package, 1 anything else."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def import_lightcode() -> tuple[Any, Any, Any]:
    """``(main, hardware, models)`` of the installed package; RunnerError (exit 2) when it is missing."""
    try:
        return tuple(importlib.import_module(f"lightcode.{m}") for m in ("main", "hardware", "models"))  # type: ignore[return-value]
    except ImportError as exc:
        raise RunnerError(
            "the lightcode package is not installed on this host "
            f"({exc}). Install the simulator into the Python that runs {PROG} "
            "(git clone https://github.com/RyanTomich/LightCode && pip install -e LightCode), or put its "
            "checkout on PYTHONPATH (the job's env:). Farm does not download it.",
            exit_code=2,
        ) from exc


def package_facts() -> list[str]:
    """``farm-fp:`` lines naming the simulator that ran."""
    package = importlib.import_module("lightcode")
    try:
        version = importlib.metadata.version("lightcode")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    lines = [f"farm-fp: fp_lightcode={version}", f"farm-fp: fp_lightcode_path={getattr(package, '__file__', '')}"]
    if getattr(package, "SYNTHETIC", False):
        lines.insert(0, SYNTHETIC_LINE)
    return lines


def register_hardware(hardware: Any, args: argparse.Namespace) -> Any:
    hardware.Hardware._hardware_reset()
    units = [
        hardware.CPU(args.cpu_clock_ghz * _GHZ, args.cpu_cores),
        hardware.PHU(args.phu_clock_ghz * _GHZ, args.phu_cores, args.phu_multiplex),
    ]
    if args.gpu_clock_ghz is not None:
        units.append(
            hardware.GPU(
                args.gpu_clock_ghz * _GHZ,
                args.gpc,
                args.tpc_per_gpc,
                args.sm_per_tpc,
                args.cores_per_sm,
                args.tc_per_sm,
            )
        )
    return hardware.initilize_hardware(units)


def pick_model(models: Any, name: str) -> Any:
    model = getattr(models, name, None)
    if model is None or name.startswith("_") or not hasattr(model, "sequence_length"):
        known = sorted(n for n, v in vars(models).items() if not n.startswith("_") and hasattr(v, "sequence_length"))
        raise RunnerError(f"unknown --model {name!r}; lightcode.models has: {', '.join(known) or 'none'}", 2)
    return model


def graph(main: Any, model: Any, args: argparse.Namespace, hw: Any) -> dict[str, Any]:
    result = main.graph_search(model, args.optimization, hw, moc_sequence_length=args.seq_len, profiles=True)
    if not isinstance(result, dict) or "Makespan" not in result:
        raise RunnerError(f"graph_search returned {type(result).__name__} without 'Makespan': {result!r}"[:300])
    out = {k: v for k, v in result.items() if isinstance(v, int | float | str | bool) or v is None}
    phu = next((result[k] for k in _PHU_KEYS if k in result), None)
    if phu is None:
        print(f"{PROG}: this lightcode reports no photonic node count; phu_nodes left out", file=sys.stderr)
    else:
        out["phu_nodes"] = phu
    out.setdefault("moc_sequence_length", args.seq_len)
    return out


def thresholds(main: Any, model: Any, args: argparse.Namespace, hw: Any) -> dict[str, Any]:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        returned = main.threshold_search(model, args.optimization, hw)
    sys.stdout.write(printed.getvalue())
    found = returned
    if found is None:  # the package prints the set instead of returning it
        for line in reversed(printed.getvalue().splitlines()):
            with contextlib.suppress(ValueError, SyntaxError):
                found = ast.literal_eval(line.strip())
                break
    if isinstance(found, dict):
        found = list(found.values())
    if not isinstance(found, set | list | tuple | frozenset) or not all(isinstance(v, int | float) for v in found):
        raise RunnerError(f"threshold_search gave no set of sequence lengths (returned {returned!r})"[:300])
    values = sorted(found)
    return {"thresholds": values, "threshold_count": len(values), "optimization": args.optimization}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description="LightCode graph search or threshold search")
    p.add_argument("search", choices=["graph", "thresholds"])
    p.add_argument("--model", default="gpt2_prefill", help="a Model of lightcode.models (default gpt2_prefill)")
    p.add_argument("--optimization", required=True, choices=["time", "energy", "always_phu"])
    p.add_argument("--seq-len", type=int, default=None, help="moc_sequence_length (graph search)")
    p.add_argument("--cpu-clock-ghz", type=float, default=3.208)
    p.add_argument("--cpu-cores", type=int, default=1)
    p.add_argument("--phu-clock-ghz", type=float, default=9.7)
    p.add_argument("--phu-cores", type=int, default=1)
    p.add_argument("--phu-multiplex", type=int, default=20)
    p.add_argument("--gpu-clock-ghz", type=float, default=None, help="register a GPU with this fp32 clock")
    p.add_argument("--gpc", type=int, default=8)
    p.add_argument("--tpc-per-gpc", type=int, default=9)
    p.add_argument("--sm-per-tpc", type=int, default=2)
    p.add_argument("--cores-per-sm", type=int, default=128)
    p.add_argument("--tc-per-sm", type=int, default=4)
    args = p.parse_args(list(argv))
    if args.search == "graph" and (args.seq_len is None or args.seq_len < 1):
        p.error("graph search needs --seq-len N (N >= 1)")
    for name in ("cpu_clock_ghz", "phu_clock_ghz", "cpu_cores", "phu_cores", "phu_multiplex"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        lc_main, hardware, models = import_lightcode()
        for line in package_facts():
            print(line)
        model = pick_model(models, args.model)
        hw = register_hardware(hardware, args)
        result = (graph if args.search == "graph" else thresholds)(lc_main, model, args, hw)
    except RunnerError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.exit_code
    print(json.dumps(result, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
