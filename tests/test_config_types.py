"""Typing the config like the bundle schema (cicdkit/config_types.py, config_located.py) and the generator of its
table (tests/data/bundle_types/generate.py): the reference's normalisation rules one by one, locations that survive
the loader's copies and merges, and the generated table's shape."""

from __future__ import annotations

import copy
import importlib.util
import json

import pytest
from helpers import ROOT

from cicdkit import config, config_types
from cicdkit.config_located import Diagnostic, Located, Location, located_json
from cicdkit.config_merge import merge

GENERATOR = ROOT / "tests" / "data" / "bundle_types" / "generate.py"
AT = Location("f.yml", 3, 5)


def typed(value, kind):
    warnings: list = []
    result = config_types._Walker(warnings).value(value, kind, "x", AT)
    return (None if result is config_types._DROP else result), [str(w) for w in warnings]


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        ("true", "bool", True),
        ("on", "bool", True),
        ("NO", "bool", False),
        ("${var.flag}", "bool", "${var.flag}"),  # a reference left unresolved stays as written
        ("42", "int", 42),
        ("-7", "int", -7),
        (3.0, "int", 3),
        ("${resources.jobs.j.id}", "int", "${resources.jobs.j.id}"),
        ("0.5", "float", 0.5),
        ("1e3", "float", 1000.0),
        (2, "float", 2.0),
        (True, "string", "true"),
        (25, "string", "25"),
        (0.5, "string", "0.5"),
        (1e16, "string", "10000000000000000"),
        (2.0, "string", "2"),
        ({"a": True, "b": 1}, "map:string", {"a": "true", "b": "1"}),
        (["1", "x", "2"], "list:int", [1, 2]),  # the element that does not parse is dropped
        ({"k": [1, {"v": True}]}, "any", {"k": [1, {"v": True}]}),
    ],
)
def test_values_are_converted_as_the_reference_does(value, kind, expected):
    assert typed(value, kind)[0] == expected


@pytest.mark.parametrize(
    ("value", "kind", "warning"),
    [
        ("maybe", "bool", "f.yml:3:5: expected bool, found string (at x)"),
        ("many", "int", 'f.yml:3:5: cannot parse "many" as an integer (at x)'),
        ("1 000", "int", 'f.yml:3:5: cannot parse "1 000" as an integer (at x)'),
        (str(2**63), "int", f'f.yml:3:5: cannot parse "{2**63}" as an integer (at x)'),
        (1.5, "int", 'f.yml:3:5: cannot accurately represent "1.5" as integer due to precision loss (at x)'),
        (True, "int", "f.yml:3:5: expected int, found bool (at x)"),
        ("half", "float", 'f.yml:3:5: cannot parse "half" as a floating point number (at x)'),
        ("1e400", "float", 'f.yml:3:5: cannot parse "1e400" as a floating point number (at x)'),
        (None, "string", "f.yml:3:5: expected a string value, found null (at x)"),
        ({"a": 1}, "string", "f.yml:3:5: expected string, found map (at x)"),
        ([1], "map:string", "f.yml:3:5: expected map, found sequence (at x)"),
        ("text", "list:string", "f.yml:3:5: expected sequence, found string (at x)"),
    ],
)
def test_mismatches_warn_and_drop(value, kind, warning):
    assert typed(value, kind) == (None, [warning])


def test_unknown_fields_enums_and_required_fields_in_a_struct():
    job = {Located("name", Location("f.yml", 2, 3)): "j", Located("nmae", Location("f.yml", 3, 3)): "x"}
    job["schedule"] = {"quartz_cron_expression": "0 0 * * * ?", "pause_status": Located("OFF", Location("f.yml", 5, 9))}
    result, warnings = typed(job, "resources.Job")
    assert result == {"name": "j", "schedule": {"quartz_cron_expression": "0 0 * * * ?", "pause_status": "OFF"}}
    assert warnings == [
        "f.yml:3:3: unknown field: nmae (at x)",
        'f.yml:5:9: invalid value "OFF" for enum field. Valid values are [UNPAUSED PAUSED] (at x.schedule.pause_status)',
        'f.yml:3:5: required field "timezone_id" is not set (at x.schedule)',
    ]
    # An enum value still holding a reference is not judged.
    assert (
        typed({"pause_status": "${var.p}", "timezone_id": "UTC", "quartz_cron_expression": "x"}, "jobs.CronSchedule")[1]
        == []
    )


def test_locations_survive_copies_merges_and_references(tmp_path):
    data = located_json('{\n  "a": {"b": ["x", 1]}\n}', "c.json")
    key = next(iter(data))
    assert key.location == Location("c.json", 2, 3) and data["a"]["b"][0].location == Location("c.json", 2, 15)
    assert next(iter(copy.deepcopy(data))).location == key.location
    merged = merge(data, {"a": {"c": "y"}})
    assert next(iter(merged)).location == key.location and json.dumps(merged) == '{"a": {"b": ["x", 1], "c": "y"}}'
    diagnostic = Diagnostic("unknown field: z", "a", key.location)
    assert (
        copy.deepcopy(diagnostic).location == key.location and str(diagnostic) == "c.json:2:3: unknown field: z (at a)"
    )
    # An interpolated reference stands where it was written.
    (tmp_path / "databricks.yml").write_text(
        "bundle: {name: b}\nvariables: {n: {default: lots}}\nresources:\n  jobs:\n    j:\n      name: j\n"
        "      timeout_seconds: ${var.n}\n",
        encoding="utf-8",
    )
    loaded = config.load(tmp_path, current_user="u@example.com", environ={})
    (warning,) = loaded.warnings
    assert (warning.location.line, warning.location.column) == (7, 24) and "cannot parse" in warning.summary


def test_the_table_is_structure_only_and_names_its_origin():
    table = config_types.table()
    assert table["origin"].startswith("https://github.com/databricks/cli/") and "v1.13.0" in table["version"]
    assert "generate.py" in table["regenerate"]
    kinds = {"bool", "int", "float", "string", "any"}

    def check(kind):
        while kind.startswith(("map:", "list:")):
            kind = kind.split(":", 1)[1]
        assert kind in kinds or kind in table["types"], kind

    for spec in table["types"].values():
        assert set(spec) <= {"fields", "required", "enum", "map", "list"}
        for kind in (spec.get("fields") or {}).values():
            check(kind)
        assert all(" " not in value for value in spec.get("enum", ()))  # values, never prose
    assert table["types"]["resources.Job"]["fields"]["tasks"] == "list:jobs.Task"
    assert table["types"]["jobs.Task"]["required"] == ["task_key"]


def test_the_generator_reduces_a_schema():
    spec = importlib.util.spec_from_file_location("generate", GENERATOR)
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    pattern = {"type": "string", "pattern": r"\$\{var\.x\}"}
    defs = {
        "string": {"type": "string"},
        "int": {"oneOf": [{"type": "integer"}, pattern]},
        "map": {"string": {"oneOf": [{"type": "object", "additionalProperties": {"$ref": "#/$defs/string"}}, pattern]}},
        "x": {
            "T": {"oneOf": [{"type": "object", "description": "prose", "properties": {
                "n": {"$ref": "#/$defs/int", "description": "more prose"},
                "tags": {"$ref": "#/$defs/map/string"},
                "mode": {"$ref": "#/$defs/x/M"},
                "child": {"$ref": "#/$defs/x/T"},
            }, "required": ["n"]}, pattern]},
            "M": {"oneOf": [{"type": "string", "enum": ["A", "B"]}, pattern]},
        },
    }  # fmt: skip
    schema = {"$defs": defs, "properties": {"t": {"$ref": "#/$defs/x/T"}}}
    generate.READONLY = {}
    table = generate.reduce(schema, "test")
    assert table["root"] == {"fields": {"t": "T"}}
    assert table["types"] == {
        "M": {"enum": ["A", "B"]},
        "T": {"fields": {"child": "T", "mode": "M", "n": "int", "tags": "map:string"}, "required": ["n"]},
    }
    assert "prose" not in json.dumps(table)


def test_each_problem_is_reported_once_though_files_are_typed_as_read_and_again_once_resolved(tmp_path):
    (tmp_path / "databricks.yml").write_text(
        "bundle: {name: b}\nvariables: {n: {default: many}}\nresources:\n  jobs:\n    j:\n      name: j\n"
        "      nmae: x\n      description: null\n      timeout_seconds: ${var.n}\n"
        "targets:\n  dev:\n    resources: {jobs: {j: {tagz: {}}}}\n",
        encoding="utf-8",
    )
    loaded = config.load(tmp_path, current_user="u@example.com", environ={})
    assert sorted(w.summary for w in loaded.warnings) == [
        'cannot parse "many" as an integer',
        "expected a string value, found null",
        "unknown field: nmae",
        "unknown field: tagz",
    ]
    assert [w.path for w in loaded.warnings if w.summary == "unknown field: tagz"] == ["targets.dev.resources.jobs.j"]
