"""Transports: the only code that does device I/O (local subprocess, adb, ssh)."""

from __future__ import annotations

from actors.transports.base import Completed, PushResult, Transport

__all__ = ["Completed", "PushResult", "Transport"]
