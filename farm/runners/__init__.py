"""Benchmark programs the farm ships itself, run as ``python -m farm.runners.<name>`` on a device."""

from __future__ import annotations
