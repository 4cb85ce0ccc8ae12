"""Fixtures of the integration tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from farm import runtime
from farm.client import ControllerOptions, FarmClient
from farm.specs.inventory import Inventory
from tests.runtime.helpers import wait_until


@pytest.fixture
def farm(local_ray: None, tmp_path: Path) -> Iterator[Any]:
    """``farm(inventory, **options)`` starts a controller (small health interval and grace) on ``tmp_path/res``."""
    clients: list[FarmClient] = []

    def start(inv: Inventory, **opts: Any) -> FarmClient:
        options = ControllerOptions(**{"health_interval_s": 1.0, "offline_grace_s": 5.0, **opts})
        client = FarmClient.start(inv, str(tmp_path / "res"), options=options)
        clients.append(client)
        return client

    yield start
    for c in clients:
        with contextlib.suppress(Exception):
            c.shutdown(timeout=30)
        c.kill()
    wait_until(lambda: runtime.find_controller() is None, timeout=30)
