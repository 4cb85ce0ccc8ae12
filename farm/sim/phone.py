"""``VirtualPhone``: one simulated Android device listening for an adb server on ``127.0.0.1:<port>``.

Each phone runs its own asyncio event loop in a daemon thread. asyncio fits the protocol: one TCP connection
multiplexes many streams with per-stream flow control, and scripted commands are long-lived coroutines that a
``kill`` cancels — with threads every stream and process would need its own thread plus locking around the
process table. The public methods are ordinary blocking calls, safe from any thread (tests, Ray actors, the
CLI).

Faults on demand: :meth:`VirtualPhone.drop_now`, :meth:`~VirtualPhone.drop_after`,
:meth:`~VirtualPhone.drop_on_command` (abort the TCP connections, optionally refuse new ones for a while, then
listen again), :meth:`~VirtualPhone.stop` / :meth:`~VirtualPhone.start` (same port, files kept) and
``refuse_auth`` (the server lists the phone as ``unauthorized``). ``rooted=True``: the phone has ``su`` and root
may write its cpufreq/devfreq/charging files (:mod:`farm.sim.device_settings`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from farm.sim import procfs
from farm.sim.adb_wire import AdbConnection, AdbStream, AuthMode, DeviceIdentity, ServiceHandler
from farm.sim.applets_settings import register_settings_commands
from farm.sim.battery import CONVENTIONS, FuelGauge, GaugeConvention
from farm.sim.commands import default_table
from farm.sim.device_settings import DeviceSettings
from farm.sim.filesystem import VirtualFS
from farm.sim.processes import ProcessTable
from farm.sim.shell_io import BufferSink, CommandTable, InputPipe
from farm.sim.shell_service import parse_shell_service, shell_service
from farm.sim.shell_session import run_command_line
from farm.sim.soc import DEFAULT_STORAGE, SOC_PROFILES, STORAGE_PROFILES
from farm.sim.state import PhoneState, SimConfig
from farm.sim.sync_service import sync_service
from farm.sim.synthetic import SYNTHETIC_PROP
from farm.sim.thermal import ThermalModel

logger = logging.getLogger(__name__)

FEATURES = ("shell_v2", "cmd", "stat_v2", "ls_v2", "fixed_push_mkdir")
DEFAULT_MODEL = "Farm Virtual Phone"
# The adb server probes 5555-5585 as emulator ports; a phone there would be listed twice.
_EMULATOR_PORTS = range(5554, 5586)
T = TypeVar("T")

__all__ = ["FEATURES", "PhoneCommandResult", "PhoneFaults", "SimConfig", "VirtualPhone", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A currently free TCP port outside the adb emulator range (the one helper for this: the virtual phones,
    the adb server and sshd the tests start, and the benches all take their ports from it)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if port not in _EMULATOR_PORTS:
            return port


@dataclass(frozen=True)
class PhoneCommandResult:
    """Outcome of :meth:`VirtualPhone.shell` (a command run on the phone without going through adb)."""

    exit_code: int
    stdout: str
    stderr: str


@dataclass
class PhoneFaults:
    """Counters of injected faults (what a test can assert on)."""

    drops: int = 0
    refused_connections: int = 0


class VirtualPhone:
    """A simulated phone; ``start()`` it, ``adb connect`` to :attr:`serial`, ``close()`` it when done."""

    def __init__(
        self,
        name: str = "vphone-0",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        soc: str = "sm8550",
        storage: str = DEFAULT_STORAGE,
        model: str = DEFAULT_MODEL,
        refuse_auth: bool = False,
        rooted: bool = False,
        require_auth: bool = False,
        config: SimConfig | None = None,
        root: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if soc not in SOC_PROFILES:
            raise ValueError(f"unknown SoC {soc!r}; known: {', '.join(sorted(SOC_PROFILES))}")
        if storage not in STORAGE_PROFILES:
            raise ValueError(f"unknown storage profile {storage!r}; known: {', '.join(sorted(STORAGE_PROFILES))}")
        if port in _EMULATOR_PORTS:
            raise ValueError(f"port {port} is in adb's emulator range 5554-5585; the phone would be listed twice")
        self.name = name
        self.host = host
        self.port = port or free_port(host)
        self.seed = seed
        self.refuse_auth = refuse_auth
        self.require_auth = require_auth
        self.faults = PhoneFaults()
        profile = SOC_PROFILES[soc]
        config = config or SimConfig()
        fs = VirtualFS(lambda _path: None, root)
        self.state = PhoneState(
            name=name,
            seed=seed,
            soc=profile,
            props=self._props(name, seed, profile.name, profile.platform, model),
            fs=fs,
            procs=ProcessTable(first_pid=4100 + seed % 1000),
            thermal=ThermalModel(heat_tau_s=config.heat_tau_s, cool_tau_s=config.cool_tau_s, clock=clock),
            config=config,
            on_command=self._on_command,
            storage=STORAGE_PROFILES[storage],
            device=DeviceSettings.for_soc(profile, rooted=rooted),
        )
        self.state.battery = FuelGauge(self.state.thermal, CONVENTIONS.get(soc, GaugeConvention()), clock)
        self.state.battery.charge_switch = lambda: self.state.device.charging_enabled
        self.state.props["ro.farm.sim.storage"] = storage  # which elastic-infer regime the stand-in models
        fs.lookup = functools.partial(procfs.lookup, self.state)
        self.commands: CommandTable = default_table()
        register_settings_commands(self.commands, rooted=rooted)
        self.identity = DeviceIdentity(self.state.props, FEATURES)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"vphone-{name}", daemon=True)
        self._thread.start()
        self._server: asyncio.Server | None = None
        self._conns: set[AdbConnection] = set()
        self._listening_wanted = False
        self._command_faults: list[tuple[str, float, float, bool]] = []
        self._closed = False

    @staticmethod
    def _props(name: str, seed: int, soc: str, platform: str, model: str) -> dict[str, str]:
        return {
            "ro.product.name": "farm_vphone",
            "ro.product.model": model,
            "ro.product.device": "vphone",
            "ro.product.brand": "farm",
            "ro.product.manufacturer": "Farm",
            "ro.product.cpu.abi": "arm64-v8a",
            "ro.board.platform": platform,
            "ro.soc.model": soc.upper(),
            "ro.hardware": "qcom" if soc.startswith("sm") else "mt",
            "ro.build.version.release": "14",
            "ro.build.version.sdk": "34",
            "ro.build.type": "user",
            "ro.build.fingerprint": f"farm/farm_vphone/vphone:14/FARM.SIM/{seed}:user/release-keys",
            "ro.serialno": f"{name}-{seed}",
            SYNTHETIC_PROP: "1",
            "ro.farm.seed": str(seed),
            "sys.boot_completed": "1",
        }

    # -- identity -----------------------------------------------------------------------------------------
    @property
    def serial(self) -> str:
        """What the adb server calls this phone after ``adb connect``."""
        return f"{self.host}:{self.port}"

    @property
    def listening(self) -> bool:
        return self._server is not None

    @property
    def connection_count(self) -> int:
        return len(self._conns)

    def inventory_entry(self, server_host: str = "127.0.0.1", server_port: int = 5037) -> dict[str, Any]:
        """This phone as an entry of the inventory YAML (``devices:`` list item)."""
        soc = self.state.soc
        return {
            "id": self.name,
            "kind": "android",
            "synthetic": True,
            "labels": {"soc": soc.name, "model": self.state.props["ro.product.model"]},
            "cores": {"little": list(soc.little), "big": list(soc.big)},
            "adb": {"serial": self.serial, "server_host": server_host, "server_port": server_port},
        }

    def shell(self, line: str, *, stdin: bytes = b"", timeout: float = 60.0) -> PhoneCommandResult:
        """Run ``line`` in the phone's shell directly, as a ``shell,v2`` stream would (no adb involved)."""

        async def run() -> PhoneCommandResult:
            out, err = BufferSink(), BufferSink()
            code = await run_command_line(
                self.state, self.commands, line, stdin=InputPipe(stdin), stdout=out, stderr=err
            )
            return PhoneCommandResult(code, out.data.decode(errors="replace"), err.data.decode(errors="replace"))

        return self._call(run(), timeout)

    # -- lifecycle ----------------------------------------------------------------------------------------
    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        if self._closed:
            coro.close()
            raise RuntimeError(f"virtual phone {self.name} is closed")
        fut: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return fut.result(timeout)

    def start(self) -> VirtualPhone:
        """Listen on :attr:`port` (the same one after a ``stop()``)."""
        self._call(self._start())
        logger.info("virtual phone %s listening on %s", self.name, self.serial)
        return self

    def stop(self) -> None:
        """Switch the phone off: stop listening, drop connections, kill its processes. Files are kept."""
        self._call(self._stop())

    def close(self) -> None:
        """Stop, end the event loop thread and delete the phone's files."""
        if self._closed:
            return
        self.stop()
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()
        self.state.fs.cleanup()

    def __enter__(self) -> VirtualPhone:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def _start(self) -> None:
        self._listening_wanted = True
        await self._listen()

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._handle, self.host, self.port, reuse_address=True)

    async def _unlisten(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            server.close()

    async def _stop(self) -> None:
        self._listening_wanted = False
        await self._unlisten()
        self._abort_connections()
        for proc in self.state.procs.running():
            self.state.procs.signal(proc.pid, 9)
        await asyncio.sleep(0)

    def _abort_connections(self) -> None:
        for conn in list(self._conns):
            conn.abort()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        auth = AuthMode.REFUSE if self.refuse_auth else AuthMode.ACCEPT if self.require_auth else AuthMode.NONE
        conn = AdbConnection(reader, writer, self.identity, self._resolve, auth)
        self._conns.add(conn)
        try:
            await conn.serve()
        finally:
            self._conns.discard(conn)

    def _resolve(self, service: str) -> ServiceHandler | None:
        if service.startswith("sync:"):
            return functools.partial(sync_service, self.state)
        if parse_shell_service(service) is not None:

            async def run_shell(stream: AdbStream) -> None:
                await shell_service(self.state, self.commands, stream, service)

            return run_shell
        return None

    # -- faults -------------------------------------------------------------------------------------------
    def drop_now(self, refuse_for: float = 0.0) -> None:
        """Abort every TCP connection now; with ``refuse_for`` also stop listening for that many seconds."""
        self._loop.call_soon_threadsafe(self._drop, refuse_for)

    def drop_after(self, seconds: float, *, refuse_for: float = 0.0) -> None:
        """Like :meth:`drop_now`, ``seconds`` from now."""
        self._loop.call_soon_threadsafe(self._loop.call_later, seconds, self._drop, refuse_for, True)

    def drop_on_command(
        self, substring: str, *, delay: float = 0.1, refuse_for: float = 0.0, hang_up: bool = True
    ) -> None:
        """Drop ``delay`` seconds after the next shell command line containing ``substring`` starts (once).
        ``hang_up=False``: the phone does not notice the drop and its running commands go on (a silent link)."""
        self._loop.call_soon_threadsafe(self._command_faults.append, (substring, delay, refuse_for, hang_up))

    def _on_command(self, line: str) -> None:
        for fault in list(self._command_faults):
            substring, delay, refuse_for, hang_up = fault
            if substring in line:
                self._command_faults.remove(fault)
                logger.info("virtual phone %s: dropping %.2fs after %r", self.name, delay, line)
                self._loop.call_later(delay, self._drop, refuse_for, hang_up)

    def _drop(self, refuse_for: float, hang_up: bool = True, /) -> None:
        self.faults.drops += 1
        for conn in list(self._conns):
            conn.abort(hang_up=hang_up)
        if refuse_for > 0 and self._server is not None:
            self._loop.create_task(self._refuse_for(refuse_for))

    async def _refuse_for(self, seconds: float) -> None:
        await self._unlisten()
        await asyncio.sleep(seconds)
        if self._listening_wanted:
            await self._listen()
