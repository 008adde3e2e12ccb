"""Reduce the Databricks bundle JSON schema to the field-type table the config loader normalises with.

Usage (from the repository root):

    python tests/data/bundle_types/generate.py SCHEMA.json --version "databricks/cli v1.13.0-4-g7bbe285213" \
        > ci_cd_scripts/cicdkit/data/bundle_types.json

SCHEMA.json is ``bundle/schema/jsonschema.json`` of the databricks/cli repository (what
``databricks bundle schema`` prints). The table keeps only structure: for each named type its known fields (with
their types and the required ones), a map or list element type, an enum's values, or a scalar kind
(``bool``/``int``/``float``/``string``/``any``). No description or other text of the schema is copied. README
"Configuration", **Types**, says how the loader uses it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

ORIGIN = "https://github.com/databricks/cli/blob/main/bundle/schema/jsonschema.json"
SCALARS = {"boolean": "bool", "integer": "int", "number": "float", "string": "string"}
# Fields the loader sets that the schema leaves out (``bundle:"readonly"`` in the reference's Go structs, or
# filled in by it: the job API defaults), so that they are known fields of the resolved tree.
SDK = "#/$defs/github.com/databricks/databricks-sdk-go/service/"
CLI = "#/$defs/github.com/databricks/cli/bundle/"
READONLY = {
    "config.Bundle": {"target": "string", "environment": "string", "mode": CLI + "config.Mode", "force": "bool"},
    "config.Git": {"commit": "string", "bundle_root_path": "string", "actual_branch": "string", "inferred": "bool"},
    "config.Workspace": {"current_user": "any", "metadata_service_url": "string"},
    "variable.Variable": {"value": "any"},
    "resources.Job": {
        "deployment": SDK + "jobs.JobDeployment",
        "edit_mode": SDK + "jobs.JobEditMode",
        "format": SDK + "jobs.Format",
    },
    "resources.Volume": {"volume_path": "string"},
}
# Types the reference reads as strings (SDK types with their own JSON form).
STRING_TYPES = ("time.Time", "duration.Duration")


class Reducer:
    def __init__(self, schema: dict) -> None:
        self.defs = schema["$defs"]
        self.types: dict[str, Any] = {}
        self.names: dict[str, str] = {}

    def resolve(self, ref: str) -> dict:
        node: Any = self.defs
        for part in ref.removeprefix("#/$defs/").split("/"):
            node = node[part]
        return node

    def name_of(self, ref: str) -> str:
        """The short name of a definition (``jobs.Task``), the full path when two would clash."""
        if ref not in self.names:
            short = ref.rsplit("/", 1)[-1]
            taken = set(self.names.values())
            self.names[ref] = short if short not in taken else ref.removeprefix("#/$defs/")
        return self.names[ref]

    def type_of(self, node: dict) -> str:
        """The type expression of a schema node: a scalar kind, ``map:T``, ``list:T`` or a named type."""
        if "$ref" in node:
            ref = node["$ref"]
            target = self.resolve(ref)
            short = ref.rsplit("/", 1)[-1]
            if short in STRING_TYPES:
                return "string"
            if ref.startswith("#/$defs/map/"):
                return "map:" + self.type_of(target["oneOf"][0]["additionalProperties"])
            if ref.startswith("#/$defs/slice/"):
                return "list:" + self.type_of(target["oneOf"][0]["items"])
            concrete = self.concrete(target)
            if concrete.get("type") in SCALARS and "enum" not in concrete:
                return SCALARS[concrete["type"]]
            if not concrete:
                return "any"
            name = self.name_of(ref)
            if name not in self.types:
                self.types[name] = None  # recursion guard (a for_each task holds a task)
                self.types[name] = self.describe(concrete)
            return name
        concrete = self.concrete(node)
        if "enum" in concrete or concrete.get("type") == "object":
            raise ValueError(f"inline structured type without a $ref: {sorted(concrete)}")
        return SCALARS.get(concrete.get("type"), "any")

    @staticmethod
    def concrete(node: dict) -> dict:
        """The alternative of a ``oneOf`` that is not a ``${...}`` reference pattern."""
        for alternative in node.get("oneOf") or node.get("anyOf") or [node]:
            if "pattern" not in alternative:
                return alternative
        return {}

    def describe(self, node: dict) -> Any:
        if "enum" in node:
            return {"enum": [str(value) for value in node["enum"]]}
        if node.get("type") == "object":
            if "properties" in node:
                entry: dict[str, Any] = {
                    "fields": {key: self.type_of(value) for key, value in sorted(node["properties"].items())}
                }
                if node.get("required"):
                    entry["required"] = sorted(node["required"])
                return entry
            extra = node.get("additionalProperties")
            return {"map": self.type_of(extra) if isinstance(extra, dict) else "any"}
        if node.get("type") == "array":
            return {"list": self.type_of(node.get("items") or {})}
        return SCALARS.get(node.get("type"), "any")


def reduce(schema: dict, version: str) -> dict:
    reducer = Reducer(schema)
    root = {key: reducer.type_of(value) for key, value in sorted(schema["properties"].items())}
    for name, fields in READONLY.items():
        entry = reducer.types[name]
        for key, kind in fields.items():
            entry["fields"][key] = reducer.type_of({"$ref": kind}) if kind.startswith("#") else kind
        entry["fields"] = dict(sorted(entry["fields"].items()))
    return {
        "origin": ORIGIN,
        "version": version,
        "regenerate": "python tests/data/bundle_types/generate.py SCHEMA.json --version VERSION "
        "> ci_cd_scripts/cicdkit/data/bundle_types.json",
        "root": {"fields": root},
        "types": dict(sorted(reducer.types.items())),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("schema", help="bundle/schema/jsonschema.json of databricks/cli")
    parser.add_argument("--version", required=True, help="which databricks/cli version the schema is from")
    args = parser.parse_args(argv)
    with open(args.schema, encoding="utf-8") as handle:
        table = reduce(json.load(handle), args.version)
    json.dump(table, sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
