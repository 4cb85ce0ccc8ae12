#!/usr/bin/env python3
"""Scripted stand-in for an LLM-TPU ``python_demo/pipeline.py`` (Sophgo BM1684X) on a simulated TPU box.

Takes the demos' flags (``-m/--model_path`` one or more comma-separated bmodels, ``-d/--devid``, ``-p/--prompt``,
``-c/--config_path``, ``-t/--tokenizer_path``, ``--generation_mode``; unknown flags are ignored as some demos add
their own), loads the bmodel (it must exist: push a dummy file), then answers each question and prints the demos'
``FTL: <s> s`` and ``TPS: <x> token/s`` lines. Questions come from ``--prompt``, else stdin lines until
``exit``/``q``/EOF, else one built-in question. Decode speed follows the parameter count in the model's name
(``7b``, ``1.8b``) and its quantisation; the printed FTL/TPS are measured on this script's own simulated work with
the demos' formulas. ``--memory_prealloc`` (weight reuse, with ``--is_decrypt`` as the real demo requires) refuses
bmodels of different sizes; ``--mode debug`` writes ``output_0.npz`` and ``output_1.npz`` (per-block tensors, like
a ``-DCMAKE_TYPE=DUMP`` build) into the cwd. Device memory is held on ``--devid`` while it runs (``bm-smi`` shows
it). Output is labelled synthetic. ``FARM_SIM_TPU_COUNT`` chips exist; another ``--devid`` fails like
``bm_dev_request``.
"""

from __future__ import annotations

import argparse
import os
import re
import struct
import sys
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the box runs this as a plain script; the type checker sees it inside the farm package
    from farm.sim.boxes._boxsim import device_count, holding, label_synthetic, stable_fraction
else:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _boxsim import device_count, holding, label_synthetic, stable_fraction
ANSWER = "This answer is synthetic: the stand-in emits placeholder tokens at the simulated decode speed."


def speeds(model: str) -> tuple[float, float, int]:
    """(decode tokens/s, prefill seconds, weight MB) for a bmodel named like ``qwen2-7b_int4_seq512_1dev``."""
    m = re.search(r"(\d+(?:\.\d+)?)b", model.lower())
    params_b = float(m.group(1)) if m else 7.0
    seq_m = re.search(r"seq(?:_?len(?:gth)?)?_?(\d+)", model.lower())
    seq = int(seq_m.group(1)) if seq_m else 512
    bits = 8 if "int8" in model.lower() else 16 if ("bf16" in model.lower() or "f16" in model.lower()) else 4
    jitter = 0.97 + 0.06 * stable_fraction(model, time.time_ns())
    tps = 70.0 / params_b * (4 / bits) ** 0.7 * jitter  # memory-bound decode: bytes of weights per token
    prefill = 0.09 * params_b * (seq / 512) * jitter
    weight_mb = int(params_b * 1024 * bits / 8 * 1.1)
    return tps, prefill, weight_mb


def main() -> int:
    parser = argparse.ArgumentParser(prog="pipeline.py")
    parser.add_argument("-m", "--model_path", "--model_path_list", dest="model_path", required=True)
    parser.add_argument("-c", "--config_path", default="../support/processor")
    parser.add_argument("-t", "--tokenizer_path", default="../support/token_config")
    parser.add_argument("-d", "--devid", default="0")
    parser.add_argument("-p", "--prompt", default=None)
    parser.add_argument("--generation_mode", default="greedy")
    parser.add_argument("--memory_prealloc", action="store_true")
    parser.add_argument("--is_decrypt", action="store_true")
    parser.add_argument("--mode", default="normal", choices=["normal", "debug"])
    args, _unknown = parser.parse_known_args()
    label_synthetic()
    if args.memory_prealloc != args.is_decrypt:
        print("memory_prealloc and is_decrypt are only supported together", file=sys.stderr)
        return 2
    devids = [int(d) for d in str(args.devid).split(",") if d.strip()]
    chips = device_count("FARM_SIM_TPU_COUNT", 1)
    for devid in devids:
        if devid >= chips:
            print(f"bm_dev_request failed, devid={devid}: no such device (box has {chips})", file=sys.stderr)
            return 255
    models = args.model_path.split(",")
    for model in models:
        if not Path(model).is_file():
            print(f"[BMRT][load_bmodel:1084] FATAL:can not open bmodel file [{model}]", file=sys.stderr)
            return 1

    if args.memory_prealloc and len({Path(m).stat().st_size for m in models}) > 1:
        print("[BMRT] FATAL: weight reuse needs identical weights in every bmodel", file=sys.stderr)
        return 1
    tps, prefill_s, weight_mb = speeds(models[0])
    with holding_all(devids, weight_mb):  # device memory is taken as the weights load
        load_start = time.time()
        for devid in devids:
            print(f"Device [ {devid} ] loading ....", flush=True)
        for model in models:
            print(f"Model[{model}] loading ....")
            print(f"[BMRT][load_bmodel:1084] INFO:Loading bmodel from [{model}]. Thanks for your patience...")
        time.sleep(0.2 + weight_mb / 40000)  # weights stream to device memory
        print("Done!")
        print(f"Load Time: {time.time() - load_start:.3f} s", flush=True)
        for question in questions(args.prompt):
            answer(question, prefill_s, tps)
        if args.mode == "debug":  # chat.cpp built with -DCMAKE_TYPE=DUMP: per-block outputs in the cwd
            for idx in range(2):
                dump_npz(Path(f"output_{idx}.npz"), models[0], idx)
    return 0


def npy(shape: tuple[int, ...], values: list[float]) -> bytes:
    """One float32 array in NumPy's .npy format (version 1.0), standard library only."""
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}"
    header += " " * (-(len(header) + 11) % 64) + "\n"
    return (
        b"\x93NUMPY\x01\x00"
        + struct.pack("<H", len(header))
        + header.encode()
        + struct.pack(f"<{len(values)}f", *values)
    )


def dump_npz(path: Path, model: str, idx: int) -> None:
    """``output_<idx>.npz`` holding hidden_states / present_key / present_value (small, synthetic values)."""
    if path.exists():  # cnpy appends to an existing archive: the recipe says to remove old dumps first
        print(f"warning: {path} exists; dumps are appended to it", file=sys.stderr)
    with zipfile.ZipFile(path, "a") as zf:
        for name, shape in (
            ("hidden_states", (1, 8, 16)),
            ("present_key", (1, 8, 2, 8)),
            ("present_value", (1, 8, 2, 8)),
        ):
            n = 1
            for d in shape:
                n *= d
            values = [stable_fraction(model, idx, name, i) - 0.5 for i in range(n)]
            zf.writestr(f"{name}.npy", npy(shape, values))


def questions(prompt: str | None) -> list[str]:
    if prompt is not None:
        return [prompt]
    asked: list[str] = []
    if not sys.stdin.isatty():
        for line in sys.stdin:
            if line.strip() in ("exit", "q", "quit"):
                break
            if line.strip():
                asked.append(line.strip())
    return asked or ["Briefly, what is a tensor processor?"]


def answer(question: str, prefill_s: float, tps: float) -> None:
    """One turn, timed with the demos' formulas (FTL = prefill + first token, TPS over the later tokens)."""
    n_tokens = int(os.environ.get("FARM_SIM_TOKENS", "16"))
    print(f"\nQuestion: {question}\n\nAnswer: ", end="", flush=True)
    first_start = time.time()
    time.sleep(prefill_s)
    first_end = time.time()
    words = (ANSWER.split() * (n_tokens // 10 + 1))[:n_tokens]
    tok_num = 0
    for word in words:
        time.sleep(1 / tps)
        print(word, end=" ", flush=True)
        tok_num += 1
    next_end = time.time()
    print()
    print(f"FTL: {first_end - first_start:.3f} s")
    print(f"TPS: {tok_num / (next_end - first_end):.3f} token/s", flush=True)


class holding_all:
    def __init__(self, devids: list[int], mb: int) -> None:
        self._cms = [holding("tpu", d, mb // max(1, len(devids))) for d in devids]

    def __enter__(self) -> None:
        for cm in self._cms:
            cm.__enter__()

    def __exit__(self, *exc: object) -> None:
        for cm in reversed(self._cms):
            cm.__exit__(None, None, None)


if __name__ == "__main__":
    sys.exit(main())
