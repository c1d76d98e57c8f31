"""What the simulator serves for each machine: signal kinds, value ranges, register layout.

The one place that says which Modbus register holds which signal, shared by the Modbus
server and the tag-map generator. It holds no values and opens no sockets.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Literal

from transactional.plant_file import MachineDef, PlantDefinition

ServedKind = Literal["state", "fault_code", "good_count", "reject_count", "process_value"]
RegisterType = Literal["uint16", "uint32", "float32"]
WordOrder = Literal["big", "little"]

COUNTER_MODULUS = 2**32
MAX_FAULT_CODE = 2**16 - 1
# Modbus TCP unit ids 1..247 address devices; 0 is broadcast, 248..255 are reserved.
MAX_MODBUS_UNITS = 247

STATE_ADDRESS = 0
FAULT_CODE_ADDRESS = 1
GOOD_COUNT_ADDRESS = 2
REJECT_COUNT_ADDRESS = 4
FIRST_PROCESS_VALUE_ADDRESS = 6

_FLOAT32_MAX = struct.unpack(">f", bytes.fromhex("7f7fffff"))[0]


def fault_code_signal(machine_code: str) -> str:
    """The pseudo-signal carrying a machine's fault code (0 when it is not faulted)."""
    return f"{machine_code}.fault_code"


def word_order(value: str) -> WordOrder:
    """Checks a word order given as text (a command-line option, a settings value)."""
    if value == "big":
        return "big"
    if value == "little":
        return "little"
    raise ValueError(f"word order {value!r}: use 'big' (high word first) or 'little'")


@dataclass(frozen=True)
class ServedSignal:
    """One value the simulator serves: a plant signal, or a machine's fault code."""

    code: str
    machine_code: str
    kind: ServedKind
    low_limit: float | None = None
    high_limit: float | None = None

    @property
    def browse_name(self) -> str:
        """The OPC UA browse name: State, GoodCount, ... or the capitalised code suffix."""
        fixed = {"state": "State", "fault_code": "FaultCode", "good_count": "GoodCount",
                 "reject_count": "RejectCount"}
        if self.kind in fixed:
            return fixed[self.kind]
        suffix = self.code.rsplit(".", 1)[-1]
        return suffix[:1].upper() + suffix[1:]

    def check(self, value: int | float) -> int | float:
        """The value as served; ValueError when it does not fit the signal's type."""
        if self.kind == "process_value":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{self.code}: process value {value!r} is not a number")
            number = float(value)
            if not math.isfinite(number) or abs(number) > _FLOAT32_MAX:
                raise ValueError(f"{self.code}: {value!r} does not fit a 32-bit float register")
            return number
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{self.code}: {value!r} is not a whole number")
        upper = {"state": 2**31 - 1, "fault_code": MAX_FAULT_CODE,
                 "good_count": COUNTER_MODULUS - 1, "reject_count": COUNTER_MODULUS - 1}
        if not 0 <= value <= upper[self.kind]:
            raise ValueError(f"{self.code}: {value} is outside 0..{upper[self.kind]}")
        return value


def machine_signals(machine: MachineDef) -> list[ServedSignal]:
    """A machine's served signals in plant-file order, its fault code after the state."""
    served: list[ServedSignal] = []
    fault = ServedSignal(fault_code_signal(machine.code), machine.code, "fault_code")
    for signal in machine.signals:
        served.append(ServedSignal(signal.code, machine.code, signal.kind,
                                   signal.low_limit, signal.high_limit))
        if signal.kind == "state":
            served.append(fault)
    if fault not in served:
        served.append(fault)
    return served


def plant_signals(plant: PlantDefinition) -> dict[str, ServedSignal]:
    """Every served signal of the plant by code; ValueError if a fault code would clash."""
    served: dict[str, ServedSignal] = {}
    for machine in plant.machines:
        for signal in machine_signals(machine):
            if signal.code in served:
                raise ValueError(
                    f"machine {machine.code}: signal code {signal.code!r} is used twice "
                    f"(the simulator serves each machine's fault code as "
                    f"{fault_code_signal(machine.code)!r})")
            served[signal.code] = signal
    return served


@dataclass(frozen=True)
class Register:
    """Where a signal sits in a device's holding (and input) register block."""

    address: int
    type: RegisterType

    @property
    def width(self) -> int:
        return 1 if self.type == "uint16" else 2


def register_map(machine: MachineDef) -> dict[str, Register]:
    """Signal code -> register for one machine's Modbus device.

    The block is fixed at the front (0 state, 1 fault code, 2-3 good, 4-5 reject) even when
    the machine lacks one of those signals, so every device of a plant reads the same way;
    process values follow as float32 pairs in plant-file order.
    """
    registers: dict[str, Register] = {
        fault_code_signal(machine.code): Register(FAULT_CODE_ADDRESS, "uint16")}
    address = FIRST_PROCESS_VALUE_ADDRESS
    for signal in machine.signals:
        if signal.kind == "state":
            registers[signal.code] = Register(STATE_ADDRESS, "uint16")
        elif signal.kind == "good_count":
            registers[signal.code] = Register(GOOD_COUNT_ADDRESS, "uint32")
        elif signal.kind == "reject_count":
            registers[signal.code] = Register(REJECT_COUNT_ADDRESS, "uint32")
        else:
            registers[signal.code] = Register(address, "float32")
            address += 2
    return registers


def register_count(machine: MachineDef) -> int:
    """How many registers a machine's device serves, from address 0."""
    process_values = sum(1 for signal in machine.signals if signal.kind == "process_value")
    return FIRST_PROCESS_VALUE_ADDRESS + 2 * process_values


def modbus_units(plant: PlantDefinition) -> dict[str, int]:
    """Machine code -> Modbus unit id, 1.. in plant-file order."""
    if len(plant.machines) > MAX_MODBUS_UNITS:
        raise ValueError(f"the plant has {len(plant.machines)} machines; one Modbus TCP server "
                         f"addresses at most {MAX_MODBUS_UNITS} units")
    return {machine.code: unit for unit, machine in enumerate(plant.machines, start=1)}


def encode(value: int | float, register_type: RegisterType, order: WordOrder) -> list[int]:
    """Register words for a value: big-endian bytes in each word, words in `order`."""
    if register_type == "uint16":
        return [int(value)]
    raw = struct.pack(">I", int(value)) if register_type == "uint32" else struct.pack(
        ">f", float(value))
    words = [int.from_bytes(raw[:2], "big"), int.from_bytes(raw[2:], "big")]
    return words if order == "big" else words[::-1]
