"""How the Azure Pipelines agent reads logging commands from one line of step output.

Follows `Command.TryParse` and `CommandStringConvertor.Unescape` of the agent
(https://github.com/microsoft/azure-pipelines-agent: ``src/Microsoft.VisualStudio.Services.Agent/Command.cs``,
``src/Agent.Sdk/CommandStringConvertor.cs``; the format is documented on
https://learn.microsoft.com/azure/devops/pipelines/scripts/logging-commands, and README "Azure DevOps logging
(`cicdkit/ado.py`)" says how the scripts use it): ``##vso[`` is found anywhere in a line, the first
``]`` after it ends the command info, the name splits on ``.`` into exactly area and event, properties follow the
first space and split on ``;``, each entry on its first ``=`` (entries without a value are dropped); area, event
and keys ignore case; values and data are unescaped ``%3B``, ``%0D``, ``%0A``, ``%5D``, then ``%AZP25``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PREFIX = "##vso["


@dataclass
class Command:
    area: str
    event: str
    properties: dict[str, str] = field(default_factory=dict)
    data: str = ""


def unescape(text: str) -> str:
    return text.replace("%3B", ";").replace("%0D", "\r").replace("%0A", "\n").replace("%5D", "]").replace("%AZP25", "%")


def has_command(line: str) -> bool:
    return PREFIX in line.lower()


def parse_line(line: str) -> Command | None:
    """The command the agent would execute for this line, or None (no command, or a malformed one)."""
    start = line.lower().find(PREFIX)
    if start < 0:
        return None
    rest = line[start + len(PREFIX) :]
    end = rest.find("]")
    if end < 0:
        return None
    info, data = rest[:end], rest[end + 1 :]
    name, _, props = info.partition(" ")
    parts = [part for part in name.split(".") if part]
    if len(parts) != 2:
        return None
    properties = {}
    for entry in props.split(";"):
        if not entry:
            continue
        key, sep, value = entry.partition("=")
        if sep and value:
            properties[key.strip().lower()] = unescape(value)
    return Command(parts[0].lower(), parts[1].lower(), properties, unescape(data))


def parse_output(text: str) -> list[Command]:
    """Every command in a block of output; lines split on LF as the agent reads a stream."""
    return [command for line in text.split("\n") if (command := parse_line(line.rstrip("\r"))) is not None]
