"""Serves a plant's machines over Modbus TCP (pymodbus): one unit id per machine, 1.. in order.

Each unit serves `layout.register_map` as holding and input registers, read-only; past the
block a read gets exception 2, an unknown unit exception 0x0B.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimAction, SimData, SimDevice

from ingest.simulator.layout import (
    Register,
    WordOrder,
    encode,
    modbus_units,
    plant_signals,
    register_count,
    register_map,
)
from transactional.plant_file import PlantDefinition

_UINT16_MAX = 2**16 - 1


class ModbusServer:
    """A Modbus TCP server whose registers follow the simulator's values."""

    def __init__(self, plant: PlantDefinition, host: str = "127.0.0.1", port: int = 5020,
                 word_order: WordOrder = "big") -> None:
        self.plant = plant
        self.host = host
        self._port = port
        self.word_order = word_order
        self.signals = plant_signals(plant)
        self.units = modbus_units(plant)
        self._registers: dict[int, list[int]] = {}
        self._slots: dict[str, tuple[list[int], Register]] = {}
        models = {model.code: model for model in plant.state_models}
        for machine in plant.machines:
            unit = self.units[machine.code]
            too_big = [state.code for state in models[machine.state_model].states
                       if state.code > _UINT16_MAX]
            if too_big:
                raise ValueError(f"machine {machine.code}: state codes {too_big} do not fit "
                                 f"the 16-bit Modbus state register")
            block = [0] * register_count(machine)
            self._registers[unit] = block
            for code, register in register_map(machine).items():
                self._slots[code] = (block, register)
        self._server: ModbusTcpServer | None = None

    @property
    def port(self) -> int:
        """The bound port (the chosen one once a server started on port 0)."""
        return self._port

    @property
    def running(self) -> bool:
        return self._server is not None

    def registers(self, unit: int) -> list[int]:
        """A copy of one unit's register block as it is served now."""
        return list(self._registers[unit])

    def write(self, signal_code: str, value: int | float) -> None:
        """Put a value into its registers; the next read serves it."""
        try:
            block, register = self._slots[signal_code]
        except KeyError:
            raise ValueError(f"the simulator serves no signal {signal_code!r}") from None
        value = self.signals[signal_code].check(value)
        if register.type == "uint16" and value > _UINT16_MAX:
            raise ValueError(f"{signal_code}: {value} does not fit a 16-bit register")
        # Both words of a 32-bit value change in one statement, and requests are served on
        # the same event loop, so no read sees half of an update.
        block[register.address:register.address + register.width] = encode(
            value, register.type, self.word_order)

    def write_many(self, changes: Iterable[tuple[str, int | float]]) -> None:
        for code, value in changes:
            self.write(code, value)

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError(f"the Modbus server at {self.host}:{self._port} is already running")
        devices = [
            SimDevice(
                id=unit,
                # readonly: like a PLC's status block, clients read it and cannot set it.
                simdata=[SimData(0, count=len(block), values=0, datatype=DataType.REGISTERS,
                                 readonly=True)],
                action=self._serve_from(block))
            for unit, block in self._registers.items()]
        # Unit 0 stands for every unit not configured: answer as a gateway whose target
        # does not respond (exception 0x0B), which tells a collector its unit id is wrong.
        devices.append(SimDevice(
            id=0, simdata=[SimData(0, count=65536, values=0, datatype=DataType.REGISTERS,
                                   readonly=True)],
            action=_no_such_unit))
        server = ModbusTcpServer(devices, address=(self.host, self._port))
        try:
            await server.serve_forever(background=True)
        except RuntimeError as error:
            await server.shutdown()  # type: ignore[no-untyped-call]
            raise OSError(f"cannot serve Modbus TCP at {self.host}:{self._port}: the port is "
                          f"taken or the address is not this machine's") from error
        listener = server.transport
        if self._port == 0 and isinstance(listener, asyncio.Server) and listener.sockets:
            self._port = listener.sockets[0].getsockname()[1]
        self._server = server

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()  # type: ignore[no-untyped-call]

    @staticmethod
    def _serve_from(block: list[int]) -> SimAction:
        async def copy_block(function_code: int, start_address: int, address: int, count: int,
                             current_registers: list[int],
                             set_values: list[int] | list[bool] | None) -> ExcCodes | None:
            # pymodbus keeps its own copy of the registers; refresh the requested range
            # from the simulator's block just before it answers.
            offset = address - start_address
            current_registers[offset:offset + count] = block[address:address + count]
            return None

        return copy_block



async def _no_such_unit(function_code: int, start_address: int, address: int, count: int,
                        current_registers: list[int],
                        set_values: list[int] | list[bool] | None) -> ExcCodes | None:
    return ExcCodes.GATEWAY_NO_RESPONSE
