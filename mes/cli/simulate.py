"""`mes simulate`: a line simulator serving the plant's machines over OPC UA and Modbus."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ingest.simulator.cli import simulate as run_simulator
from ingest.simulator.cli import sparkplug_target
from mes.cli.common import fail, sample_plant, user_errors

simulate_app = typer.Typer(add_completion=False)


@simulate_app.command("simulate")
@user_errors
def simulate(
    plant: Annotated[Path | None, typer.Option(
        help="plant file, .toml or .yaml (default: the sample plant)")] = None,
    opcua_port: Annotated[int, typer.Option(help="OPC UA port; 0 picks a free one")] = 4840,
    modbus_port: Annotated[int, typer.Option(help="Modbus TCP port; 0 picks a free one")] = 5020,
    seed: Annotated[int, typer.Option(help="the same seed plays the same day")] = 0,
    speed: Annotated[float, typer.Option(help="simulated seconds per real second")] = 1.0,
    word_order: Annotated[str, typer.Option(
        metavar="big|little", help="Modbus 32-bit values: high word first (big) or last")] = "big",
    counter_start: Annotated[int, typer.Option(
        help="part counters start here (near 4294967295 shows a rollover)")] = 0,
    tag_map_out: Annotated[Path | None, typer.Option(
        help="write the collector tag map for this simulator to this file")] = None,
    tag_map_protocol: Annotated[str, typer.Option(
        metavar="opcua|modbus|both|sparkplug", help="which protocol the tag map reads")
    ] = "opcua",
    sparkplug_broker: Annotated[str | None, typer.Option(
        metavar="HOST:PORT", help="also publish every machine as a Sparkplug B device to "
                                  "this MQTT broker")] = None,
    sparkplug_group: Annotated[str, typer.Option(help="Sparkplug B group id")] = "open-mes",
    sparkplug_node: Annotated[str, typer.Option(help="Sparkplug B edge node id")
                              ] = "simulator",
) -> None:
    """Play the plant's machines over OPC UA, Modbus TCP and Sparkplug B until Ctrl+C."""
    try:
        target = (None if sparkplug_broker is None
                  else sparkplug_target(sparkplug_broker, sparkplug_group, sparkplug_node))
        run_simulator(plant or sample_plant(), opcua_port, modbus_port, seed, speed, word_order,
                      counter_start, tag_map_out, tag_map_protocol, target)
    except (ValueError, OSError) as error:
        raise fail(str(error)) from None
