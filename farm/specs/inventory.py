"""The inventory: which devices a farm has, how to reach them, and which Ray node each is attached to.

One entry per physical device. A device offers one or more *slots* (the unit the scheduler leases): a phone or a
host has one; a Sophgo box one per TPU chip; an Ascend server one per NPU. Slot ids are ``<device>`` for
single-slot devices and ``<device>/chip<N>`` / ``<device>/npu<N>`` otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from farm.specs.bench import BenchMode
from farm.specs.loading import Document, FieldIssues, read_document, validate_document
from farm.specs.types import HostName, Ident, Index, Labels, Number, PathText, Port, Text, UserName


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AdbConnection(_Spec):
    serial: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9\[][A-Za-z0-9._:\[\]-]*$")
    server_host: HostName = "127.0.0.1"
    server_port: Port = 5037

    @property
    def is_tcp(self) -> bool:
        """Phones attached over ``adb connect host:port`` need reconnecting after a drop; USB ones do not."""
        return ":" in self.serial


class SshConnection(_Spec):
    host: HostName
    port: Port = 22
    user: UserName
    key_file: PathText | None = None
    known_hosts: PathText = "~/.ssh/known_hosts"
    password_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    connect_timeout_s: Number = Field(default=10.0, gt=0, le=3600)


class EnergyMeter(_Spec):
    """An external power meter of one device: a command run on the device's node that prints watts, one number
    per line, while it runs (a wrapper around a Monsoon or Joulescope, say); see docs/measurement.md."""

    command: list[Annotated[Text, Field(min_length=1)]] = Field(min_length=1, max_length=64)


class Slot(_Spec):
    """One leasable unit of a device, as the scheduler and result rows see it."""

    slot_id: str
    device_id: str
    kind: str
    node: str | None
    labels: dict[str, str]
    index: int | None = None  # chip / NPU index for multi-slot devices


class _Device(_Spec):
    id: Ident
    node: Annotated[Text, Field(min_length=1, max_length=256)] | None = None
    labels: Labels = Field(default_factory=dict)
    cores: dict[Text, list[Index]] | None = None
    synthetic: bool = False
    idle_temp_c: Number | None = Field(default=None, gt=-50, lt=150)
    bench_mode: BenchMode | None = None  # the device's default profile; a job's own `bench_mode:` wins
    energy_meter: EnergyMeter | None = None

    def slots(self) -> list[Slot]:
        return [Slot(slot_id=self.id, device_id=self.id, kind=self.kind_name, node=self.node, labels=self.labels)]

    @property
    def kind_name(self) -> str:
        return str(getattr(self, "kind"))  # noqa: B009 - every concrete subclass defines the literal


class AndroidDevice(_Device):
    kind: Literal["android"]
    adb: AdbConnection


class HostDevice(_Device):
    kind: Literal["host"]
    ssh: SshConnection | None = None  # None: this machine, through the local transport


class _MultiSlotDevice(_Device):
    ssh: SshConnection

    def _indexed_slots(self, indexes: list[int] | None, prefix: str) -> list[Slot]:
        # Until discovery runs on the box, an unspecified list is planned as one slot (index 0).
        return [
            Slot(
                slot_id=f"{self.id}/{prefix}{i}",
                device_id=self.id,
                kind=self.kind_name,
                node=self.node,
                labels=self.labels,
                index=i,
            )
            for i in (indexes if indexes is not None else [0])
        ]


def _unique(values: list[int] | None) -> list[int] | None:
    if values is not None and len(set(values)) != len(values):
        raise ValueError("indexes must be unique")
    return values


class SophgoDevice(_MultiSlotDevice):
    kind: Literal["sophgo"]
    chips: list[Index] | None = Field(default=None, min_length=1)
    memory_edit: PathText = Field(
        default="memory_edit.sh",
        min_length=1,
        description="the SDK's memory_edit.sh (path or name on the box's PATH); run with -p only, to read the split",
    )

    @field_validator("chips")
    @classmethod
    def _unique_chips(cls, value: list[int] | None) -> list[int] | None:
        return _unique(value)

    def slots(self) -> list[Slot]:
        return self._indexed_slots(self.chips, "chip")


class AscendDevice(_MultiSlotDevice):
    kind: Literal["ascend"]
    npus: list[Index] | None = Field(default=None, min_length=1)

    @field_validator("npus")
    @classmethod
    def _unique_npus(cls, value: list[int] | None) -> list[int] | None:
        return _unique(value)

    def slots(self) -> list[Slot]:
        return self._indexed_slots(self.npus, "npu")


DeviceSpec = Annotated[
    AndroidDevice | SophgoDevice | AscendDevice | HostDevice,
    Field(discriminator="kind"),
]


class Inventory(_Spec):
    devices: list[DeviceSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> Inventory:
        issues = _duplicate_ids({"devices": [{"id": d.id} for d in self.devices]})
        if issues:
            raise FieldIssues(issues)
        return self

    def slots(self) -> list[Slot]:
        return [slot for dev in self.devices for slot in dev.slots()]

    def device(self, device_id: str) -> DeviceSpec:
        for dev in self.devices:
            if dev.id == device_id:
                return dev
        raise KeyError(device_id)


def local_inventory() -> Inventory:
    """The default when no inventory is given: this machine as one ``host`` device."""
    import socket

    return Inventory(devices=[HostDevice(kind="host", id=_host_id(socket.gethostname()))])


def _host_id(hostname: str) -> str:
    import re

    cleaned = re.sub(r"[^A-Za-z0-9._-]", "-", hostname).strip("-.") or "localhost"
    return cleaned[:128]


def load_inventory(path: str | Path) -> Inventory:
    return inventory_from_document(read_document(Path(path)))


def inventory_from_document(doc: Document) -> Inventory:
    return validate_document(Inventory, doc, _duplicate_ids)


def _duplicate_ids(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Device ids must be unique; works on raw data too (entries without a string id are skipped)."""
    devices = data.get("devices")
    seen: dict[str, int] = {}
    issues = []
    for i, dev in enumerate(devices if isinstance(devices, list) else []):
        dev_id = dev.get("id") if isinstance(dev, Mapping) else None
        if not isinstance(dev_id, str):
            continue
        if dev_id in seen:
            issues.append((f"devices[{i}].id", f"duplicate device id {dev_id!r} (first at devices[{seen[dev_id]}])"))
        seen.setdefault(dev_id, i)
    return issues
