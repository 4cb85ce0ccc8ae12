"""Specs: the data the user writes (job and inventory YAML) as frozen pydantic models, and how they are loaded."""

from __future__ import annotations

from farm.specs.inventory import (
    AdbConnection,
    AndroidDevice,
    AscendDevice,
    DeviceSpec,
    HostDevice,
    Inventory,
    SophgoDevice,
    SshConnection,
    load_inventory,
)
from farm.specs.job import Artifact, Cooldown, DeviceSelector, JobSpec, load_job

__all__ = [
    "AdbConnection",
    "AndroidDevice",
    "Artifact",
    "AscendDevice",
    "Cooldown",
    "DeviceSelector",
    "DeviceSpec",
    "HostDevice",
    "Inventory",
    "JobSpec",
    "SophgoDevice",
    "SshConnection",
    "load_inventory",
    "load_job",
]
