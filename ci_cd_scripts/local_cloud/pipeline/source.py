"""Pipeline YAML as the Azure Pipelines parser sees it, with the file and line of every node kept.

Every scalar is a string (the service resolves no YAML types: ``true`` and ``1`` are text until a typed parameter
or an expression reads them). Mappings, sequences and strings are `Marked` subclasses of dict, list and str that
carry ``file`` and ``line``, so an error anywhere later names the place the author wrote:
``error: pipelines/x.yml:12: strategy: matrix is not supported by the local runner``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from cicdkit.errors import InputError


class PipelineError(InputError):
    """Bad pipeline input found before anything ran (exit 2): the message starts with FILE:LINE when known."""

    def __init__(self, node: Any, message: str, *, hint: str | None = None) -> None:
        place = where(node)
        super().__init__(f"{place}: {message}" if place else message, hint=hint)


def unsupported(node: Any, construct: str, hint: str | None = None) -> PipelineError:
    return PipelineError(node, f"{construct} is not supported by the local runner", hint=hint)


class Marked:
    file: str = ""
    line: int = 0


class MStr(str, Marked):
    pass


class MDict(dict, Marked):
    pass


class MList(list, Marked):
    pass


def mark(value: Any, like: Any) -> Any:
    """`value` carrying the mark of `like` (a str, dict or list; other values are returned unchanged)."""
    if not isinstance(like, Marked) or isinstance(value, bool):
        return value
    if isinstance(value, str):
        result: Any = MStr(value)
    elif isinstance(value, dict):
        result = MDict(value)
    elif isinstance(value, list):
        result = MList(value)
    else:
        return value
    result.file, result.line = like.file, like.line
    return result


def key_of(mapping: dict, name: str) -> Any:
    """The key `name` of `mapping` as written (it carries its own line), else the mapping."""
    return next((key for key in mapping if key == name), mapping)


def where(node: Any) -> str:
    if isinstance(node, Marked) and node.file:
        return f"{node.file}:{node.line}" if node.line else node.file
    return ""


class _Loader(yaml.SafeLoader):
    """No implicit types; every node becomes a Marked value with its file and (1-based) line."""

    display_name = ""


_Loader.yaml_implicit_resolvers = {}


def _stamp(loader: _Loader, node: yaml.Node, value: Marked) -> Marked:
    value.file = loader.display_name
    value.line = node.start_mark.line + 1
    return value


def _scalar(loader: _Loader, node: yaml.ScalarNode) -> MStr:
    return _stamp(loader, node, MStr(loader.construct_scalar(node)))


def _sequence(loader: _Loader, node: yaml.SequenceNode):
    result = _stamp(loader, node, MList())
    yield result
    result.extend(loader.construct_sequence(node, deep=True))


def _mapping(loader: _Loader, node: yaml.MappingNode):
    result = _stamp(loader, node, MDict())
    yield result
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            raise PipelineError(_stamp(loader, key_node, MStr("")), "a mapping key must be text")
        if key in result:
            raise PipelineError(key, f"duplicate key {key!r}")
        result[key] = loader.construct_object(value_node, deep=True)


_Loader.add_constructor("tag:yaml.org,2002:str", _scalar)
_Loader.add_constructor("tag:yaml.org,2002:seq", _sequence)
_Loader.add_constructor("tag:yaml.org,2002:map", _mapping)
for _tag in ("null", "bool", "int", "float", "timestamp"):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _scalar)


def display_path(path: Path, root: Path) -> str:
    """`path` relative to `root` when inside it (how errors name files), else absolute."""
    try:
        return os.path.relpath(path, root) if path.resolve().is_relative_to(root.resolve()) else str(path)
    except ValueError:
        return str(path)


def load_file(path: Path, root: Path) -> Any:
    """The YAML document in `path`, marked; `PipelineError` naming the file and line if it cannot be read."""
    shown = display_path(path, root)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PipelineError(None, f"{shown}: no such file") from None
    except OSError as error:
        raise PipelineError(None, f"{shown}: cannot read: {error.strerror or error}") from None
    loader = _Loader(text)
    loader.display_name = shown
    try:
        document = loader.get_single_data()
    except yaml.YAMLError as error:
        mark_ = getattr(error, "problem_mark", None)
        line = f":{mark_.line + 1}" if mark_ is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise PipelineError(None, f"{shown}{line}: not valid YAML: {problem}") from None
    finally:
        loader.dispose()
    if document is None or document == "":
        return _stamp_empty(shown)
    return document


def _stamp_empty(shown: str) -> MDict:
    empty = MDict()
    empty.file, empty.line = shown, 1
    return empty
