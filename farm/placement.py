"""Where a device actor runs: the Ray node named by the device's ``node`` (id, label, resource, IP or hostname).

Part of the Ray glue; :mod:`farm.client` lists the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from farm.errors import ConfigError
from farm.specs.inventory import DeviceSpec

NODE_LABEL = "farm-node"


def resolve_node(name: str, nodes: list[dict[str, Any]]) -> str:
    """The Ray node id for ``name``: a node id, the value of the node label ``farm-node``, a custom resource the
    node carries (e.g. started with ``--resources '{"lab-host-1": 1}'``), or a unique IP / hostname."""
    alive = [n for n in nodes if n.get("Alive", n.get("alive", True))]
    matchers: list[Callable[[dict[str, Any]], bool]] = [
        lambda n: n.get("NodeID") == name,
        lambda n: (n.get("Labels") or {}).get(NODE_LABEL) == name,
        lambda n: name in (n.get("Resources") or {}),
        lambda n: n.get("NodeManagerAddress") == name or n.get("NodeManagerHostname") == name,
    ]
    for match in matchers:
        found = [n for n in alive if match(n)]
        if len(found) == 1:
            return str(found[0]["NodeID"])
        if len(found) > 1:
            raise ConfigError.single(
                "inventory",
                "node",
                f"{name!r} names {len(found)} Ray nodes; use a node id, label or resource",
            )
    known = ", ".join(sorted({str(n.get("NodeManagerHostname", n.get("NodeID"))) for n in alive}))
    raise ConfigError.single("inventory", "node", f"no live Ray node named {name!r} (nodes: {known})")


def device_actor_options(dev: DeviceSpec, max_restarts: int = -1) -> dict[str, Any]:
    """Ray actor options for a device: on its node (hard affinity), restartable, one thread per slot + control."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    opts: dict[str, Any] = {
        # Unnamed on purpose: a restarted controller creates fresh device actors while the old ones may still be
        # dying, and a name would make the two collide.
        "num_cpus": 0,  # a device actor waits on its device; it must not take a CPU slot from Ray's scheduler
        "max_restarts": max_restarts,
        "max_task_retries": 0,  # a run is retried by the scheduler (as a recorded infra_error), never silently
        "max_concurrency": max(len(dev.slots()), 8) + 4,  # slots may be discovered at start
    }
    if dev.node is not None:
        node_id = resolve_node(dev.node, ray.nodes())  # type: ignore[no-untyped-call]
        opts["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)
    return opts
