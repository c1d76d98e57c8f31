"""`mes opcua browse`: the variables an OPC UA server offers, to write a tag map from.

Walks the Objects folder (the standard address space of namespace 0 is left out) to a given
depth and lists each variable's node id as the server spells it (its namespace index
included), data type and current value; it can print them as a starting tag map. It
subscribes to nothing and stores nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIdNames


@dataclass(frozen=True)
class BrowsedVariable:
    node_id: str
    path: str        # browse names from the Objects folder, joined by "/"
    data_type: str
    value: str
    status: str      # the status code's name: "Good", "BadNotReadable", ...


def _data_type_name(data_type: ua.NodeId, names: dict[ua.NodeId, str]) -> str:
    if data_type in names:
        return names[data_type]
    if data_type.NamespaceIndex == 0 and isinstance(data_type.Identifier, int):
        return ObjectIdNames.get(data_type.Identifier, data_type.to_string())
    return data_type.to_string()


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dt.datetime):
        return value.isoformat()
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


async def browse(endpoint: str, depth: int = 4, timeout: float = 5.0) -> list[BrowsedVariable]:
    """Every variable under the Objects folder down to `depth` levels, in browse order."""
    found: list[tuple[ua.NodeId, str]] = []
    async with Client(endpoint, timeout=timeout) as client:
        await _walk(client.nodes.objects, "", depth, found, set())
        if not found:
            return []
        node_ids = [node_id for node_id, _ in found]
        types = await client.uaclient.read_attributes(node_ids, AttributeIds.DataType)
        values = await client.uaclient.read_attributes(node_ids, AttributeIds.Value)
        names: dict[ua.NodeId, str] = {}
        for data_value in types:
            type_id = data_value.Value.Value if data_value.Value is not None else None
            if (isinstance(type_id, ua.NodeId) and type_id not in names
                    and type_id.NamespaceIndex != 0):
                # A server's own data type: its browse name says more than its id.
                browse_name = await client.get_node(type_id).read_browse_name()
                names[type_id] = browse_name.Name or type_id.to_string()
    variables = []
    for (node_id, path), type_value, data_value in zip(found, types, values, strict=True):
        type_id = type_value.Value.Value if type_value.Value is not None else None
        type_name = (_data_type_name(type_id, names) if isinstance(type_id, ua.NodeId)
                     else "?")
        status = data_value.StatusCode.name if data_value.StatusCode is not None else "Good"
        raw = data_value.Value.Value if data_value.Value is not None else None
        variables.append(BrowsedVariable(node_id.to_string(), path, type_name,
                                         "-" if raw is None else _shown(raw), status))
    return variables


async def _walk(node: Node, path: str, depth: int, found: list[tuple[ua.NodeId, str]],
                seen: set[ua.NodeId]) -> None:
    if depth <= 0:
        return
    children = await node.get_children_descriptions()
    for child in children:
        node_id = child.NodeId
        if (child.NodeClass not in (ua.NodeClass.Object, ua.NodeClass.Variable)
                or node_id.NamespaceIndex == 0 or node_id in seen):
            continue  # the standard address space (Server, ...), or met before
        seen.add(node_id)
        child_id = ua.NodeId(node_id.Identifier, node_id.NamespaceIndex, node_id.NodeIdType)
        child_path = f"{path}/{child.BrowseName.Name}" if path else child.BrowseName.Name
        if child.NodeClass == ua.NodeClass.Variable:
            found.append((child_id, child_path))
        # Variables can have children too (properties, structure fields).
        await _walk(Node(node.session, child_id), child_path, depth - 1, found, seen)


def render_table(variables: list[BrowsedVariable]) -> str:
    if not variables:
        return "no variables found (try a larger --depth)"
    widths = [max(len(header), *(len(getattr(v, field)) for v in variables))
              for header, field in (("node id", "node_id"), ("path", "path"),
                                    ("type", "data_type"))]
    lines = [f"{'node id':<{widths[0]}}  {'path':<{widths[1]}}  {'type':<{widths[2]}}  value"]
    for v in variables:
        value = v.value if v.status == "Good" else f"{v.value} ({v.status})"
        lines.append(f"{v.node_id:<{widths[0]}}  {v.path:<{widths[1]}}  "
                     f"{v.data_type:<{widths[2]}}  {value}")
    return "\n".join(lines)


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def tag_map_stub(endpoint: str, variables: list[BrowsedVariable], name: str = "plc") -> str:
    """A starting tag map: one entry per variable, each signal still to be named."""
    lines = [
        "# A starting tag map from `mes opcua browse`: give each node the code of the plant",
        "# signal it carries (see `mes plant load`), remove the nodes you do not collect,",
        "# and check it with `mes collect --check --tag-map FILE`.",
        "[[opcua]]",
        f"name = {_toml_string(name)}",
        f"endpoint = {_toml_string(endpoint)}",
        "publishing_interval_ms = 100",
        "nodes = [",
    ]
    for v in variables:
        # A string identifier often is the tag's name (the simulator's is the signal code).
        _, string_id, identifier = v.node_id.partition(";s=")
        guess = identifier if string_id else v.path.replace("/", ".")
        lines.append(f"  {{ signal = {_toml_string(guess)}, node = {_toml_string(v.node_id)} }},"
                     f"  # {v.data_type}, now {v.value}")
    lines.append("]")
    return "\n".join(lines) + "\n"
