"""Device kinds: inventory ``kind`` → the Device class that drives it. A new kind is one module plus one line."""

from __future__ import annotations

import importlib

from actors.device import Device
from farm.specs.inventory import DeviceSpec, HostDevice

_KINDS: dict[str, str] = {
    "host": "actors.host:LocalHost",
    "host+ssh": "actors.ssh_host:SshHost",
    "android": "actors.phone:Phone",
    "sophgo": "actors.sophgo:SophgoBox",
    "ascend": "actors.ascend:AscendServer",
}


def make_device(spec: DeviceSpec) -> Device:
    key = "host+ssh" if isinstance(spec, HostDevice) and spec.ssh is not None else spec.kind
    module_name, _, attr = _KINDS[key].partition(":")
    cls: type[Device] = getattr(importlib.import_module(module_name), attr)
    return cls(spec)
