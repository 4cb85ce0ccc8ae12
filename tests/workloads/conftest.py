"""Helpers for adapter tests: captured outputs live in tests/data/<workload>/ (origins in SOURCES.md)."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data"


def read(workload: str, name: str) -> str:
    return (DATA / workload / name).read_text(encoding="utf-8")
