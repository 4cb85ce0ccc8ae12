"""Finding the phones an adb server sees and writing them as inventory entries (``farm devices discover``).

On one machine: ask its adb server (``adb devices -l``) and read each ready phone's identity through the same
:class:`~actors.phone.Phone` probe the farm uses (model, SoC, core clusters, ``ro.farm.synthetic``). On a Ray
cluster: one Ray task per alive node does the same against that node's own adb server, and each entry gets the
``node`` it was found on, so its device actor will be placed there. Phones that are not ready (``unauthorized``,
``offline``) are reported apart, never written as entries.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from dataclasses import dataclass, field
from typing import Any

import yaml

from farm.errors import InfraError
from farm.sim.synthetic import SYNTHETIC_PROP
from farm.specs.inventory import AndroidDevice, Inventory

log = logging.getLogger(__name__)


@dataclass
class Discovery:
    """Inventory entries for ready phones, and ``(where, serial, state)`` of the phones that were not ready."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    not_ready: list[tuple[str, str, str]] = field(default_factory=list)

    def extend(self, other: Discovery) -> None:
        self.entries += other.entries
        self.not_ready += other.not_ready


def device_id(model: str, serial: str) -> str:
    """A stable inventory id from the phone's model and adb serial (``pixel-7-r5ct1234abc``)."""
    raw = f"{model}-{serial}" if model else serial
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", raw).strip("-.").lower()
    return cleaned[:128] or "phone"


def discover_phones(server_host: str = "127.0.0.1", server_port: int = 5037, node: str | None = None) -> Discovery:
    """The phones the adb server at ``server_host:server_port`` lists, probed one by one."""
    from actors.phone import Phone
    from actors.transports.adb import adb_devices

    where = node or "this machine"
    found = Discovery()
    for dev in adb_devices(server_host, server_port):
        serial, state = dev["serial"], dev["state"]
        if state != "device":
            found.not_ready.append((where, serial, state))
            continue
        adb = {"serial": serial, "server_host": server_host, "server_port": server_port}
        probe = AndroidDevice.model_validate({"id": "probe", "kind": "android", "adb": adb})
        try:
            layout = Phone(probe).layout()
        except InfraError as exc:
            log.warning("%s: %s: probe failed: %s", where, serial, exc)
            found.not_ready.append((where, serial, f"probe failed: {exc}"))
            continue
        props = layout.props
        model = props.get("ro.product.model", dev.get("model", ""))
        soc = (props.get("ro.soc.model") or props.get("ro.board.platform", "")).lower()
        big = set(layout.big_cores)
        entry: dict[str, Any] = {"id": device_id(model, serial), "kind": "android"}
        if node:
            entry["node"] = node
        entry["labels"] = {k: v for k, v in (("soc", soc), ("model", model)) if v}
        if big and len(big) < len(layout.cpu_max_khz):
            entry["cores"] = {"little": sorted(set(layout.cpu_max_khz) - big), "big": sorted(big)}
        if props.get(SYNTHETIC_PROP) == "1":
            entry["synthetic"] = True
        entry["adb"] = adb
        found.entries.append(entry)
    return found


def _node_name(node: dict[str, Any], nodes: list[dict[str, Any]]) -> str:
    """How the inventory should name ``node``: its ``farm-node`` label, else a unique hostname, else its id."""
    from farm.placement import NODE_LABEL

    label = (node.get("Labels") or {}).get(NODE_LABEL)
    if label:
        return str(label)
    host = node.get("NodeManagerHostname")
    if host and sum(1 for n in nodes if n.get("NodeManagerHostname") == host) == 1:
        return str(host)
    return str(node["NodeID"])


def discover_on_cluster(server_port: int = 5037) -> Discovery:
    """:func:`discover_phones` on every alive node of the connected Ray cluster (one task per node)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n.get("Alive", True)]  # type: ignore[no-untyped-call]
    task: Any = ray.remote(num_cpus=0, max_retries=0)(discover_phones)
    refs = []
    for node in nodes:
        strategy = NodeAffinitySchedulingStrategy(node_id=node["NodeID"], soft=False)
        name = _node_name(node, nodes)
        refs.append((name, task.options(scheduling_strategy=strategy).remote("127.0.0.1", server_port, name)))
    found = Discovery()
    for name, ref in refs:
        try:
            found.extend(ray.get(ref))
        except Exception as exc:  # one node without adb must not hide the others' phones
            found.not_ready.append((name, "*", f"discovery failed: {exc}"))
    return found


def inventory_yaml(found: Discovery) -> str:
    """The entries as an inventory file (validated: what is printed loads)."""
    Inventory.model_validate({"devices": found.entries})
    head = "# phones found by `farm devices discover`; review ids, labels and cores before use\n"
    return head + yaml.safe_dump({"devices": found.entries}, sort_keys=False, default_flow_style=None)


def run_discover(args: argparse.Namespace) -> int:
    """``farm devices discover``: YAML on stdout, not-ready phones on stderr; exit 1 when none is ready."""
    if args.address:
        from farm import runtime

        runtime.init_ray(args.address)
        found = discover_on_cluster(args.adb_port)
    else:
        found = discover_phones("127.0.0.1", args.adb_port)
    for where, serial, state in found.not_ready:
        hint = " (accept the RSA key prompt on the phone)" if state == "unauthorized" else ""
        print(f"farm: {where}: {serial} is {state}{hint}; not listed", file=sys.stderr)
    if not found.entries:
        print(f"farm: no ready phone found (adb server port {args.adb_port})", file=sys.stderr)
        return 1
    sys.stdout.write(inventory_yaml(found))
    return 0
