"""Stand-in hardware registry: CPU, PHU (photonic unit) and GPU with a toy cost model (synthetic)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass
class Unit:
    name: str
    flops_per_s: float
    pj_per_flop: float
    fixed_s: float  # per operator: launch, or the PHU's electro-optic conversion
    fixed_pj: float


class Hardware:
    registered: ClassVar[list[Hardware]] = []

    def __init__(self, clock_speed: float) -> None:
        self.clock_speed = float(clock_speed)
        Hardware.registered.append(self)

    @staticmethod
    def _hardware_reset() -> None:
        Hardware.registered = []

    def unit(self) -> Unit:
        raise NotImplementedError


class CPU(Hardware):
    def __init__(self, clock_speed: float, num_cores: int) -> None:
        super().__init__(clock_speed)
        self.num_cores = int(num_cores)

    def unit(self) -> Unit:
        return Unit("cpu", self.clock_speed * self.num_cores * 16, 8.0, 2e-6, 2e3)


class PHU(Hardware):
    def __init__(self, clock_speed: float, num_cores: int, num_multiplex: int) -> None:
        super().__init__(clock_speed)
        self.num_cores = int(num_cores)
        self.num_multiplex = int(num_multiplex)

    def unit(self) -> Unit:
        # an optical matrix-vector engine: 2048 multiply-adds per multiplexed channel per cycle
        return Unit("phu", self.clock_speed * self.num_cores * self.num_multiplex * 2 * 2048, 0.4, 5e-5, 1.5e7)


class GPU(Hardware):
    def __init__(self, clock_speed: float, gpc: int, tpc_per_gpc: int, sm_per_tpc: int, fp32_cores_per_sm: int,
                 tc_per_sm: int) -> None:  # fmt: skip
        super().__init__(clock_speed)
        self.cores = int(gpc) * int(tpc_per_gpc) * int(sm_per_tpc) * int(fp32_cores_per_sm)
        self.tensor_cores = int(gpc) * int(tpc_per_gpc) * int(sm_per_tpc) * int(tc_per_sm)

    def unit(self) -> Unit:
        return Unit("gpu", self.clock_speed * (self.cores * 2 + self.tensor_cores * 16), 3.0, 2e-5, 5e5)


def initilize_hardware(hardware: list[Hardware]) -> dict[str, Unit]:  # sic: the real package's spelling
    units = [h.unit() for h in hardware]
    if not units:
        raise ValueError("no hardware registered")
    return {u.name: u for u in units}
