"""The ``bench_mode:`` profile of a job or an inventory device: the device state runs are measured in.

Every knob is optional; a knob left out (or ``null``) is not touched. YAML 1.1 reads ``on``/``off`` as booleans,
so ``screen: off`` and ``airplane: on`` mean what they say. What each knob does per device kind, what it needs,
and how the device's own settings are restored: ``docs/measurement.md`` (``## Bench mode``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class BenchMode(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    governor: str | None = Field(
        default="performance",
        pattern=r"^[a-z][a-z0-9_-]{0,31}$",
        description="cpufreq governor of every policy (phones with root, hosts with writable sysfs)",
    )
    pin: Literal["max", "min"] | None = Field(
        default="max", description="scaling_min_freq = scaling_max_freq = the policy's cpuinfo max (or min)"
    )
    gpu: Literal["max", "min"] | None = Field(default="max", description="GPU devfreq pinned (phones with root)")
    screen: bool | None = Field(default=False, description="screen on (true) or off (false)")
    airplane: bool | None = Field(default=True, description="airplane mode")
    stay_awake: bool | None = Field(default=False, description="Android's stay-awake-while-charging")
    charging: bool | None = Field(default=False, description="battery charging, where the kernel offers a switch")
    turbo: bool | None = Field(default=False, description="hosts: turbo / boost")
    on_failure: Literal["error", "warn"] = Field(
        default="error", description="a setting that did not take fails the run (error) or is recorded (warn)"
    )

    def profile(self) -> dict[str, object]:
        """The knobs as plain data (what rows record as the requested profile)."""
        return self.model_dump(mode="json")
