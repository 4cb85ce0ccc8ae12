"""Farm's simulated devices, as the rest of Farm sees them: how they mark output synthetic, where the stand-ins are.

Every marker lives here and nowhere else:

* :data:`SYNTHETIC_LINE` — printed by every scripted box tool of ``farm/sim/boxes`` and by ``farm-lightcode`` when
  the stand-in ``lightcode`` package answers; a run whose output carries it is marked ``synthetic``
  (:func:`marks_synthetic`).
* :data:`SYNTHETIC_PROP` — the property a virtual phone sets to ``1``; a phone that says so has every row marked
  ``synthetic``.
* :data:`PHONE_BANNER` — the stderr line of every scripted benchmark binary on a virtual phone.
* :data:`PLACEHOLDER_HEAD` — the first words of the placeholder artifacts ``farm sim artifacts`` writes.

:data:`BOXES_DIR` and :data:`LIGHTCODE_DIR` are the stand-ins shipped inside the package (a built wheel carries
them, with their exec bits): put ``BOXES_DIR`` on a test box's ``PATH`` and ``LIGHTCODE_DIR`` on ``PYTHONPATH``.

Standard library only and importing nothing of Farm: the box tools, run as plain scripts by whatever ``python3`` the
box has, load this file by its path (``farm/sim/boxes/_boxsim.py``).
"""

from __future__ import annotations

from pathlib import Path

SYNTHETIC_LINE = "[farm-sim] SYNTHETIC OUTPUT: scripted stand-in from farm/sim/boxes, not a real device"
SYNTHETIC_PROP = "ro.farm.synthetic"
PHONE_BANNER = "# synthetic output from farm virtual phone"
PLACEHOLDER_HEAD = "FARM SYNTHETIC PLACEHOLDER"

BOXES_DIR = Path(__file__).resolve().parent / "boxes"
LIGHTCODE_DIR = Path(__file__).resolve().parent / "lightcode"
# The box tools as docs/boxes.md lists them (each an executable script in BOXES_DIR).
BOX_TOOLS = ("bm-smi", "npu-smi", "model_tool", "memory_edit.sh", "pipeline.py", "demo_bsz.py", "docker")


def marks_synthetic(*texts: str) -> bool:
    """Whether any of ``texts`` (a tool's stdout, stderr…) carries the stand-ins' synthetic label."""
    return any(SYNTHETIC_LINE in text for text in texts)
