"""``farm sim phones``: serve virtual phones to an adb server and print their inventory until Ctrl-C.

The inventory YAML on stdout can be saved and passed to ``farm run`` to rehearse a job on synthetic devices;
every device in it is marked ``synthetic: true``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

import yaml

from farm.cli.common import port
from farm.errors import ConfigError
from farm.sim.adb_server import AdbServer
from farm.sim.phone import VirtualPhone
from farm.sim.soc import SOC_PROFILES

SOURCE = "command line"
_EMULATOR_PORTS = range(5554, 5586)
MAX_PHONES = 256  # one thread set and one TCP port each


def register(sub: Any) -> None:
    p = sub.add_parser("sim", help="virtual devices for rehearsing jobs (synthetic results)")
    what = p.add_subparsers(dest="sim_command", metavar="WHAT", parser_class=type(p))
    what.required = True
    phones = what.add_parser("phones", help="serve virtual Android phones to an adb server")
    phones.add_argument("--count", type=int, default=1, help="how many phones (default 1)")
    phones.add_argument(
        "--base-port", type=int, default=0, help="first phone port, the others follow (default: free ports)"
    )
    phones.add_argument(
        "--adb-port",
        type=port,
        default=os.environ.get("ANDROID_ADB_SERVER_PORT", "5037"),  # argparse applies ``type`` to it when used
        help="adb server port, started if not running (default $ANDROID_ADB_SERVER_PORT or 5037)",
    )
    phones.add_argument("--seed", type=int, default=0, help="seed of the first phone, +1 for each next (default 0)")
    phones.add_argument("--soc", default="sm8550", help=f"SoC profile: {', '.join(sorted(SOC_PROFILES))}")
    phones.set_defaults(func=run_phones)


def _check(args: argparse.Namespace) -> list[int]:
    issues: list[tuple[str, str]] = []
    if not 1 <= args.count <= MAX_PHONES:
        issues.append(("--count", f"must be from 1 to {MAX_PHONES}"))
    if args.soc not in SOC_PROFILES:
        issues.append(("--soc", f"unknown SoC {args.soc!r}; known: {', '.join(sorted(SOC_PROFILES))}"))
    ports = [args.base_port + k for k in range(max(args.count, 0))] if args.base_port else []
    if ports and (ports[0] < 1024 or ports[-1] > 65535):
        issues.append(("--base-port", f"ports {ports[0]}-{ports[-1]} are outside 1024-65535"))
    if any(p in _EMULATOR_PORTS for p in ports):
        issues.append(("--base-port", "ports 5554-5585 are scanned by adb as emulators; pick another range"))
    if issues:
        raise ConfigError(SOURCE, issues)
    return ports


def run_phones(args: argparse.Namespace) -> int:
    ports = _check(args)
    server = AdbServer(args.adb_port)
    was_running = server.is_running()
    server.start()
    phones: list[VirtualPhone] = []
    stop = threading.Event()

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        for k in range(args.count):
            phone = VirtualPhone(f"vphone-{k}", port=ports[k] if ports else 0, seed=args.seed + k, soc=args.soc).start()
            phones.append(phone)
            server.connect(phone.serial)
        server.wait_for([p.serial for p in phones], "device", timeout=15)
        inventory = {"devices": [p.inventory_entry(server.host, server.port) for p in phones]}
        sys.stdout.write(f"# synthetic devices from `farm sim phones`; serving until Ctrl-C (pid {os.getpid()})\n")
        sys.stdout.write(yaml.safe_dump(inventory, sort_keys=False, default_flow_style=None))
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        for phone in phones:
            server.disconnect(phone.serial)
            phone.close()
        if not was_running:
            server.kill()
    return 0
