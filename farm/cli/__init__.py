"""The ``farm`` command line: one module per sub-command group, registered in :mod:`farm.cli.main`."""

from __future__ import annotations
