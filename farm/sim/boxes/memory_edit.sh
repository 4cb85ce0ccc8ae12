#!/usr/bin/env python3
"""Scripted stand-in for the Sophgo SDK's ``memory_edit.sh`` on a simulated TPU box (a Python script under the
real tool's name, so a job's ``memory_edit:`` path works unchanged).

``-p`` prints the device memory split (npu / vpu / vpp heaps, MiB) the way the tool's summary line does;
``FARM_SIM_MEM_SPLIT=npu,vpu,vpp`` sets it (default ``7615,3072,4096``). ``-c`` (change) is refused: the stand-in
never edits anything, and a farm must never call it. Output is labelled synthetic (on stderr).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the box runs this as a plain script; the type checker sees it inside the farm package
    from farm.sim.boxes._boxsim import label_synthetic
else:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _boxsim import label_synthetic


def main(argv: list[str]) -> int:
    label_synthetic("stderr")
    if argv[:1] == ["-p"]:
        npu, vpu, vpp = (int(v) for v in os.environ.get("FARM_SIM_MEM_SPLIT", "7615,3072,4096").split(","))
        print("Info: chip is bm1684x")
        print("Info: =======================================================================")
        print("Info: get ddr information ...")
        print(f"Info: npu:{npu} MiB vpu:{vpu} MiB vpp:{vpp} MiB")
        return 0
    if argv[:1] == ["-c"]:
        print("memory_edit.sh (stand-in): -c would rewrite the device tree; refused", file=sys.stderr)
        return 3
    print("usage: memory_edit.sh -p | -c -npu MiB -vpu MiB -vpp MiB", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
