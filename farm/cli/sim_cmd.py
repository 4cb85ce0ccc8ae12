"""``farm sim phones`` / ``farm sim artifacts``: rehearse a job on virtual phones before spending device time.

``farm sim phones`` serves virtual phones to an adb server and prints their inventory until Ctrl-C; the
inventory YAML on stdout can be saved and passed to ``farm run``; every device in it is marked
``synthetic: true``. ``farm sim artifacts JOB`` writes a labelled placeholder for every artifact of the job that
does not exist yet (the recipe's binaries, libraries, models), so the job runs as shipped on virtual phones,
whose scripted stand-ins go by file name. Existing files are never touched.
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
from farm.sim.soc import SOC_PROFILES, STORAGE_PROFILES
from farm.sim.synthetic import PLACEHOLDER_HEAD
from farm.specs.job import load_job

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
    phones.add_argument(
        "--storage",
        default=",".join(STORAGE_PROFILES),
        help="storage profiles given to the phones in turn, comma-separated: which regime the elastic-infer "
        f"stand-in models ({', '.join(STORAGE_PROFILES)}; default: all three in turn)",
    )
    phones.add_argument(
        "--rooted",
        action="store_true",
        help="give the phones su and root-writable cpufreq/devfreq/charging files (bench mode's root paths); "
        "default: stock phones, which refuse those writes",
    )
    phones.set_defaults(func=run_phones)
    arts = what.add_parser(
        "artifacts",
        help="write labelled placeholders for a job's missing artifacts (rehearsal on virtual phones only)",
        description="For every artifact `src` of JOB that does not exist, write a small text file that says it is "
        "a synthetic placeholder. Virtual phones run their scripted stand-ins by file name, so the job runs as "
        "shipped; a real phone cannot use these files. Existing files are kept.",
    )
    arts.add_argument("job", help="job YAML file")
    arts.set_defaults(func=run_artifacts)


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
    storages = [s.strip() for s in args.storage.split(",") if s.strip()]
    unknown = [s for s in storages if s not in STORAGE_PROFILES]
    if unknown or not storages:
        issues.append(
            ("--storage", f"unknown profile(s) {unknown or [args.storage]}; known: {', '.join(STORAGE_PROFILES)}")
        )
    if issues:
        raise ConfigError(SOURCE, issues)
    args.storages = storages
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

    # SIGINT too, explicitly: a process started in the background by a non-interactive shell (`farm sim phones &` in a
    # script) inherits SIGINT ignored, and Python then raises no KeyboardInterrupt; `kill -INT` must still stop it.
    previous = {sig: signal.signal(sig, on_term) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for k in range(args.count):
            storage = args.storages[k % len(args.storages)]
            phone = VirtualPhone(
                f"vphone-{k}",
                port=ports[k] if ports else 0,
                seed=args.seed + k,
                soc=args.soc,
                storage=storage,
                rooted=args.rooted,
            ).start()
            phones.append(phone)
            server.connect(phone.serial)
        server.wait_for([p.serial for p in phones], "device", timeout=15)
        inventory = {"devices": [p.inventory_entry(server.host, server.port) for p in phones]}
        sys.stdout.write(f"# synthetic devices from `farm sim phones`; serving until Ctrl-C (pid {os.getpid()})\n")
        for phone in phones:
            profile = phone.state.storage.name
            sys.stdout.write(
                f"# {phone.name}: storage profile {profile!r} (elastic-infer stand-in: {profile} regime)\n"
            )
        sys.stdout.write(yaml.safe_dump(inventory, sort_keys=False, default_flow_style=None))
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for phone in phones:
            server.disconnect(phone.serial)
            phone.close()
        if not was_running:
            server.kill()
    return 0


def placeholder_text(job: str, name: str) -> str:
    return (
        f"{PLACEHOLDER_HEAD}: not the real {name}.\n"
        f"Written by `farm sim artifacts` for job {job} so the job can be rehearsed on virtual phones\n"
        "(`farm sim phones`), whose scripted stand-ins go by file name. Results of such runs are synthetic.\n"
        f"Replace this file with the real {name} before running the job on a real device.\n"
    )


def run_artifacts(args: argparse.Namespace) -> int:
    job = load_job(args.job)
    for art in job.artifacts:
        path = job.artifact_path(art).resolve()
        if path.exists():
            sys.stdout.write(f"kept     {path}\n")
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(placeholder_text(job.name, path.name), encoding="utf-8")
        if art.mode is not None:
            path.chmod(art.mode)
        sys.stdout.write(f"wrote    {path} (synthetic placeholder)\n")
    return 0
