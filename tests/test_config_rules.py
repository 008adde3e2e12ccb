"""One or more cases for every rule of the bundle configuration (README "Configuration"; the reference is
`databricks bundle validate` of the public Databricks CLI), mostly in-process through `config.load` (fast), with a
few subprocess runs of validate_config.py for the output shape."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from helpers import run_script, script_env

from cicdkit import config
from cicdkit.errors import ConfigError

USER = "tester@databricks.com"


def write(folder: Path, files: dict) -> Path:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(content) if isinstance(content, dict) else textwrap.dedent(content)
        path.write_text(text, encoding="utf-8")
    return folder


def load(folder: Path, files: dict, *, target=None, variables=(), environ=None, current_user=USER, root="."):
    write(folder, files)
    return config.load(
        folder / root, target=target, variables=variables, environ=environ or {}, current_user=current_user
    )


def error(folder: Path, files: dict, **kwargs) -> str:
    with pytest.raises(ConfigError) as caught:
        load(folder, files, **kwargs)
    return caught.value.one_line()


# ---------------------------------------------------------------------------------------------- files


def test_root_file_names_in_a_folder(tmp_path):
    for name in ("config.json", "databricks.yml", "databricks.yaml", "bundle.yml", "bundle.yaml"):
        folder = tmp_path / name.replace(".", "_")
        folder.mkdir()
        content = {"bundle": {"name": name}} if name.endswith(".json") else f"bundle:\n  name: {name}\n"
        assert load(folder, {name: content}).tree["bundle"]["name"] == name


def test_two_root_files_is_an_error(tmp_path):
    message = error(tmp_path, {"config.json": {"bundle": {"name": "a"}}, "databricks.yml": "bundle: {name: b}\n"})
    assert "multiple bundle root configuration files found in" in message


def test_folder_without_root_file(tmp_path):
    assert "no config.json or databricks.yml found" in error(tmp_path, {"other.yml": "a: 1\n"})


def test_yaml_and_json_give_the_same_tree(tmp_path):
    body = {"bundle": {"name": "same"}, "variables": {"n": {"default": 3}}, "targets": {"t": {}}}
    a = load(tmp_path / "a", {"config.json": body}).tree
    b = load(
        tmp_path / "b", {"databricks.yml": "bundle: {name: same}\nvariables: {n: {default: 3}}\ntargets: {t: }\n"}
    ).tree
    assert a["variables"] == b["variables"] and a["bundle"]["target"] == b["bundle"]["target"] == "t"


def test_yaml_reads_like_yaml_1_2(tmp_path):
    cfg = load(
        tmp_path,
        {
            "databricks.yml": "bundle:\n  name: x\nvariables:\n  a: {default: yes}\n  d: {default: 2024-01-01}\n"
            "  b: {default: true}\n  a: {default: on}\n"
        },
    )
    variables = cfg.tree["variables"]
    assert variables["a"]["value"] == "on"  # duplicate key: last wins; 'on' is a string, not a bool
    assert variables["d"]["value"] == "2024-01-01" and variables["b"]["value"] is True


def test_unknown_keys_warn_and_are_dropped(tmp_path):
    cfg = load(
        tmp_path,
        {
            "config.json": {
                "bundle": {"name": "x", "nmae": "y"},
                "bogus": 1,
                "targets": {"t": {"presets": {"name_prefx": "p"}}},
            }
        },
    )
    assert "bogus" not in cfg.tree and any("unknown field: bogus" in w for w in cfg.warnings)
    assert "nmae" not in cfg.tree["bundle"] and any("unknown field: nmae" in w for w in cfg.warnings)
    assert any("unknown field: name_prefx (at targets.t.presets.name_prefx" in w for w in cfg.warnings)


# -------------------------------------------------------------------------------------------- targets


def test_no_targets_synthesises_default(tmp_path):
    cfg = load(tmp_path, {"config.json": {"bundle": {"name": "x"}}})
    assert cfg.target == "default" and cfg.tree["bundle"]["target"] == "default"
    assert cfg.tree["bundle"]["environment"] == "default" and "targets" not in cfg.tree


def test_single_target_is_selected_even_when_null(tmp_path):
    assert load(tmp_path, {"databricks.yml": "bundle: {name: x}\ntargets:\n  only:\n"}).target == "only"


def test_several_targets_without_default(tmp_path):
    assert "please specify target" in error(tmp_path, {"config.json": {"targets": {"a": {}, "b": {}}}})


def test_target_from_environment_and_flag(tmp_path):
    files = {"config.json": {"targets": {"a": {"default": True}, "b": {}, "c": {}}}}
    assert load(tmp_path, files, environ={"DATABRICKS_BUNDLE_TARGET": "b"}).target == "b"
    assert load(tmp_path, files, environ={"DATABRICKS_BUNDLE_ENV": "c"}).target == "c"
    assert load(tmp_path, files, target="c", environ={"DATABRICKS_BUNDLE_TARGET": "b"}).target == "c"
    assert load(tmp_path, files).target == "a"


def test_unknown_target_lists_available(tmp_path):
    message = error(tmp_path, {"config.json": {"targets": {"dev": {}, "prod": {}}}}, target="qa")
    assert "qa: no such target. Available targets: dev, prod" in message


def test_reference_in_default_never_selects(tmp_path):
    files = {"config.json": {"variables": {"d": {"default": True}}, "targets": {"a": {"default": "${var.d}"}, "b": {}}}}
    assert "please specify target" in error(tmp_path, files)


def test_legacy_environments_and_compute_id(tmp_path):
    cfg = load(tmp_path, {"databricks.yml": "environments:\n  old:\n    compute_id: 0101-abc\n"})
    assert cfg.target == "old" and cfg.tree["bundle"]["cluster_id"] == "0101-abc"
    both = error(tmp_path / "b", {"databricks.yml": "environments: {a: }\ntargets: {b: }\n"})
    assert "both 'environments' and 'targets' are specified; only 'targets' should be used" in both


# --------------------------------------------------------------------------------------------- merge


def test_generic_merge_maps_lists_scalars(tmp_path):
    files = {
        "config.json": {
            "bundle": {"name": "x"},
            "permissions": [{"level": "CAN_VIEW", "group_name": "users"}],
            "presets": {"tags": {"team": "data"}},
            "resources": {
                "jobs": {"j": {"name": "j", "tags": {"a": "1"}, "email_notifications": {"on_failure": ["a@x"]}}}
            },
            "run_as": {"user_name": "top@x"},
            "targets": {
                "t": {
                    "bundle": {"name": "renamed"},
                    "permissions": [{"level": "CAN_MANAGE", "user_name": "ops@x"}],
                    "presets": {"tags": {"env": "t"}},
                    "resources": {"jobs": {"j": {"tags": {"b": "2"}, "email_notifications": {"on_failure": ["b@x"]}}}},
                    "run_as": {"service_principal_name": "sp"},
                }
            },
        }
    }
    tree = load(tmp_path, files).tree
    assert tree["bundle"]["name"] == "renamed"
    assert [p["level"] for p in tree["permissions"]] == ["CAN_VIEW", "CAN_MANAGE"]
    assert tree["presets"]["tags"] == {"team": "data", "env": "t"}
    job = tree["resources"]["jobs"]["j"]
    assert job["tags"] == {"a": "1", "b": "2", "team": "data", "env": "t"}
    assert job["email_notifications"]["on_failure"] == ["a@x", "b@x"]
    assert tree["run_as"] == {"service_principal_name": "sp"}


def test_merge_of_different_kinds_fails_with_target_name(tmp_path):
    files = {
        "databricks.yml": """
        variables:
          tasks: {default: []}
        resources:
          jobs:
            j:
              tasks: ${var.tasks}
        targets:
          dev:
            resources:
              jobs:
                j:
                  tasks: [{task_key: a}]
        """
    }
    message = error(tmp_path, files)
    assert "failed to perform target override for target=dev" in message
    assert "failed to merge target=dev field=resources: cannot merge string with sequence" in message


def test_target_mode_cluster_id_git_and_unknown_keys(tmp_path):
    cfg = load(
        tmp_path, {"databricks.yml": "targets:\n  t:\n    cluster_id: c-1\n    git: {branch: main}\n    include: [x]\n"}
    )
    assert cfg.tree["bundle"]["cluster_id"] == "c-1" and cfg.tree["bundle"]["git"]["branch"] == "main"
    assert any("unknown field: include" in w for w in cfg.warnings)


def test_sync_lists_are_appended(tmp_path):
    files = {
        "databricks.yml": "sync: {include: [src/*]}\ntargets:\n  a: {sync: {include: [tests/*], exclude: [dist]}}\n"
        "  b: {default: true, sync: {include: [fixtures/*]}}\n"
    }
    assert load(tmp_path, files, target="a").tree["sync"]["include"] == ["src/*", "tests/*"]
    assert load(tmp_path, files).tree["sync"] == {"paths": ["."], "include": ["src/*", "fixtures/*"]}


# -------------------------------------------------------------------------------------- keyed merges


def test_tasks_merge_by_key_and_are_sorted(tmp_path):
    files = {
        "databricks.yml": """
        resources:
          jobs:
            j:
              tasks:
                - task_key: zeta
                  new_cluster: {spark_version: "13.3", num_workers: 1}
                  libraries: [{pypi: {package: a}}]
                - task_key: alpha
                  notebook_task: {notebook_path: /Shared/a}
                - notebook_task: {notebook_path: /Shared/nokey}
        targets:
          t:
            resources:
              jobs:
                j:
                  tasks:
                    - task_key: zeta
                      new_cluster: {num_workers: 4}
                      libraries: [{pypi: {package: b}}]
                    - notebook_task: {notebook_path: /Shared/nokey2}
        """
    }
    tasks = load(tmp_path, files).tree["resources"]["jobs"]["j"]["tasks"]
    assert [task["task_key"] for task in tasks] == ["", "alpha", "zeta"]
    assert tasks[0]["notebook_task"]["notebook_path"] == "/Shared/nokey2"
    assert tasks[2]["new_cluster"] == {"spark_version": "13.3", "num_workers": 4}
    assert [lib["pypi"]["package"] for lib in tasks[2]["libraries"]] == ["a", "b"]


def test_job_clusters_and_parameters_keep_first_order_and_keys_from_variables(tmp_path):
    files = {
        "databricks.yml": """
        variables:
          key: {default: main}
          cluster: {type: complex, default: {spark_version: "15.4", num_workers: 2}}
        resources:
          jobs:
            j:
              job_clusters:
                - {job_cluster_key: "${var.key}", new_cluster: "${var.cluster}"}
                - {job_cluster_key: other, new_cluster: {num_workers: 1}}
              parameters:
                - {name: p, default: "1"}
                - {name: q, default: "2"}
        targets:
          t:
            resources:
              jobs:
                j:
                  job_clusters:
                    - {job_cluster_key: main, new_cluster: {num_workers: 8}}
                  parameters:
                    - {name: p, default: "9"}
        """
    }
    job = load(tmp_path, files).tree["resources"]["jobs"]["j"]
    assert [c["job_cluster_key"] for c in job["job_clusters"]] == ["main", "other"]
    assert job["job_clusters"][0]["new_cluster"] == {"spark_version": "15.4", "num_workers": 8}
    assert job["parameters"] == [{"name": "p", "default": "9"}, {"name": "q", "default": "2"}]


def test_pipeline_clusters_by_label_apps_and_grants(tmp_path):
    files = {
        "databricks.yml": """
        resources:
          pipelines:
            p:
              name: p
              clusters: [{num_workers: 1}, {label: Maintenance, num_workers: 1}]
          apps:
            a:
              name: a
              resources: [{name: db, sql_warehouse: {id: "1"}}, {name: db, job: {id: "2"}}]
          schemas:
            s:
              name: s
              catalog_name: c
              grants: [{principal: g, privileges: [USE_SCHEMA]}, {principal: g, privileges: [SELECT, USE_SCHEMA]}]
        targets:
          t:
            resources:
              pipelines:
                p:
                  clusters: [{label: default, num_workers: 3}, {label: maintenance, spark_conf: {a: b}}]
        """
    }
    resources = load(tmp_path, files).tree["resources"]
    clusters = resources["pipelines"]["p"]["clusters"]
    assert clusters == [
        {"label": "default", "num_workers": 3},
        {"label": "maintenance", "num_workers": 1, "spark_conf": {"a": "b"}},
    ]
    assert resources["apps"]["a"]["resources"] == [{"name": "db", "job": {"id": "2"}}]
    assert resources["schemas"]["s"]["grants"] == [{"principal": "g", "privileges": ["USE_SCHEMA", "SELECT"]}]


# -------------------------------------------------------------------------------------------- include


def test_include_globs_order_and_relative_paths(tmp_path):
    files = {
        "config.json": {"bundle": {"name": "x"}, "include": ["conf/*.yml", "extra.json", "nothing/*.yml"]},
        "conf/b.yml": "resources: {jobs: {b: {name: b}}}\nsync: {include: [./data/*.csv]}\n",
        "conf/a.yml": "resources: {jobs: {a: {name: a}}}\ntargets: {t: {variables: {v: from-include}}}\n"
        "variables: {v: {default: base}}\n",
        "extra.json": {"resources": {"jobs": {"c": {"name": "c"}}}},
    }
    cfg = load(tmp_path, files)
    assert cfg.tree["include"] == ["conf/a.yml", "conf/b.yml", "extra.json"]
    assert [p.name for p in cfg.files] == ["config.json", "a.yml", "b.yml", "extra.json"]
    assert list(cfg.tree["resources"]["jobs"]) == ["a", "b", "c"]
    assert cfg.tree["variables"]["v"]["value"] == "from-include"  # targets may come from an included file
    assert cfg.tree["sync"]["include"] == ["conf/data/*.csv"]


def test_nested_include_warns(tmp_path):
    cfg = load(
        tmp_path, {"config.json": {"include": ["a.yml"]}, "a.yml": "include: [b.yml]\n", "b.yml": "bundle: {name: b}\n"}
    )
    assert any("Include section is defined outside root file" in w for w in cfg.warnings)
    assert cfg.tree["include"] == ["a.yml"]


@pytest.mark.parametrize(
    "entry, files, expected",
    [
        ("/etc/x.yml", {}, "/etc/x.yml: includes must be relative paths"),
        ("missing.yml", {}, "missing.yml defined in 'include' section does not match any files"),
        ("*.txt", {"notes.txt": "hi"}, "Files in the 'include' configuration section must be YAML or JSON files."),
    ],
)
def test_include_errors(tmp_path, entry, files, expected):
    assert expected in error(tmp_path, {"config.json": {"include": [entry]}, **files})


def test_same_resource_key_in_two_files(tmp_path):
    files = {
        "config.json": {"include": ["a.yml"], "resources": {"jobs": {"x": {"name": "x"}}}},
        "a.yml": "resources: {pipelines: {x: {name: y}}}\n",
    }
    assert "multiple resources or scripts have been defined with the same key: x" in error(tmp_path, files)


def test_resource_key_with_reference(tmp_path):
    message = error(tmp_path, {"databricks.yml": "resources: {jobs: {'${var.env}_job': {name: x}}}\n"})
    assert 'resource key "${var.env}_job" must not contain variable references' in message


# ------------------------------------------------------------------------------------------ variables


def test_precedence_cli_env_file_default(tmp_path):
    files = {
        "databricks.yml": "variables:\n  a: {default: d}\n  b: {default: d}\n  c: {default: d}\n  d: {default: d}\n",
        ".databricks/bundle/default/variable-overrides.json": {"a": "file", "b": "file", "c": "file"},
    }
    cfg = load(
        tmp_path,
        files,
        variables=["a=cli=x"],
        environ={"BUNDLE_VAR_a": "env", "BUNDLE_VAR_b": "env", "BUNDLE_VAR_zz": "ignored"},
    )
    values = {name: body["value"] for name, body in cfg.tree["variables"].items()}
    assert values == {"a": "cli=x", "b": "env", "c": "file", "d": "d"}


def test_target_default_replaces_lookup_and_lookup_replaces_default(tmp_path):
    files = {
        "databricks.yml": """
        variables:
          a: {lookup: {cluster: shared}}
          b: {default: x}
        targets:
          t:
            variables:
              a: from-target
              b: {lookup: {warehouse: wh}, description: ignored}
        """
    }
    cfg = load(tmp_path, files, variables=["b=id-1"])
    variables = cfg.tree["variables"]
    assert variables["a"] == {"default": "from-target", "value": "from-target"}
    assert variables["b"] == {"lookup": {"warehouse": "wh"}, "value": "id-1"}


def test_lookup_without_a_workspace_stays_a_placeholder_with_a_warning(tmp_path):
    files = {
        "databricks.yml": """
        variables: {c: {lookup: {cluster: shared}}}
        resources: {jobs: {j: {name: j, tasks: [{task_key: a, existing_cluster_id: "${var.c}"}]}}}
        """
    }
    cfg = load(tmp_path, files)
    assert cfg.unresolved_lookups == ["c"] and "value" not in cfg.tree["variables"]["c"]
    assert cfg.tree["resources"]["jobs"]["j"]["tasks"][0]["existing_cluster_id"] == "${var.c}"
    (warning,) = [w for w in cfg.warnings if "lookup" in w]
    assert warning.location.line == 2 and "lookup variable c (cluster: shared) is not resolved" in warning


def test_lookup_referencing_lookup(tmp_path):
    files = {"databricks.yml": "variables:\n  a: {lookup: {cluster: x}}\n  b: {lookup: {job: '${var.a}'}}\n"}
    assert "lookup variables cannot contain references to another lookup variables" in error(
        tmp_path, files, environ={"BUNDLE_VAR_a": "1"}
    )


def test_complex_target_value_replaces_and_shorthand_forms(tmp_path):
    files = {
        "databricks.yml": """
        variables:
          cluster: {type: complex, default: {spark_version: "13.3", num_workers: 1}}
          tags: {default: {team: data}}
          other: {default: {default: 1}}
        targets:
          t:
            variables:
              cluster: {num_workers: 4}
              tags: {team: ops, cost: x}
              other: {default: {default: 2}}
        """
    }
    variables = load(tmp_path, files).tree["variables"]
    assert variables["cluster"]["value"] == {"num_workers": 4}
    assert variables["tags"]["value"] == {"team": "ops", "cost": "x"}
    assert variables["other"]["value"] == {"default": 2}


@pytest.mark.parametrize(
    "files, kwargs, expected",
    [
        (
            {"databricks.yml": "variables: {a: {default: x}}\n"},
            {"variables": ["b=1"]},
            "variable b has not been defined",
        ),
        (
            {"databricks.yml": "variables: {a: {default: x}}\n"},
            {"variables": ["a"]},
            "unexpected flag value for variable assignment: a",
        ),
        (
            {"databricks.yml": "variables: {a: {default: x}}\n"},
            {"variables": ["a=1", "a=2"]},
            "failed to assign 2 to a: variable has already been assigned value: 1",
        ),
        (
            {"databricks.yml": "variables: {a: {default: x, value: fixed}}\n"},
            {"variables": ["a=1"]},
            "variable has already been assigned value: fixed",
        ),
        (
            {"databricks.yml": "variables: {a: {type: complex, default: {}}}\n"},
            {"variables": ["a=1"]},
            "setting variables of complex type via --var flag is not supported: a",
        ),
        (
            {"databricks.yml": "variables: {a: {type: complex, default: {}}}\n"},
            {"environ": {"BUNDLE_VAR_a": "1"}},
            "setting via environment variables (BUNDLE_VAR_a) is not supported for complex variable a",
        ),
        (
            {"databricks.yml": "variables: {a: }\n"},
            {},
            "no value assigned to required variable a. Variables are usually "
            'assigned in databricks.yml, and they can be overridden using "--var", the BUNDLE_VAR_a environment variable',
        ),
        (
            {"databricks.yml": "variables: {a: {default: 1}}\ntargets: {t: {variables: {b: 2}}}\n"},
            {},
            "failed to perform target override for target=t: variable b is not defined but is assigned a value",
        ),
    ],
)
def test_variable_errors(tmp_path, files, kwargs, expected):
    assert expected in error(tmp_path, files, **kwargs)


@pytest.mark.parametrize(
    "content, expected",
    [
        ("{not json", "failed to parse variables file"),
        ('["a"]', "invalid format"),
        ('{"c": "x"}', "variable c is of type complex, but the value in the variable file is not a complex type"),
        ('{"s": {"a": 1}}', "variable s is not of type complex, but the value in the variable file is a complex type"),
    ],
)
def test_overrides_file_errors(tmp_path, content, expected):
    files = {
        "databricks.yml": "variables:\n  c: {type: complex, default: {}}\n  s: {default: x}\n",
        ".databricks/bundle/default/variable-overrides.json": content,
    }
    assert expected in error(tmp_path, files)


def test_invalid_type_warns(tmp_path):
    cfg = load(tmp_path, {"databricks.yml": "variables: {a: {type: string, default: x}}\n"})
    assert any('invalid value "string" for enum field. Valid values are [complex]' in w for w in cfg.warnings)


def test_coercion_into_typed_fields_keeps_variable_string(tmp_path):
    files = {
        "databricks.yml": """
        variables: {workers: {default: "1"}, retry: {default: x}, runs: {default: 7}}
        resources:
          jobs:
            j:
              max_concurrent_runs: ${var.runs}
              tasks:
                - task_key: a
                  retry_on_timeout: ${var.retry}
                  new_cluster: {num_workers: "${var.workers}"}
        """
    }
    cfg = load(tmp_path, files, variables=["workers=2", "retry=true"])
    task = cfg.tree["resources"]["jobs"]["j"]["tasks"][0]
    assert task["new_cluster"]["num_workers"] == 2 and task["retry_on_timeout"] is True
    assert cfg.tree["resources"]["jobs"]["j"]["max_concurrent_runs"] == 7
    assert cfg.tree["variables"]["workers"]["value"] == "2"
    # As the reference does: a warning at the file and line of the reference, and the value dropped.
    bad = load(tmp_path / "bad", files, variables=["workers=many", "retry=true"])
    assert "num_workers" not in bad.tree["resources"]["jobs"]["j"]["tasks"][0]["new_cluster"]
    assert any(
        w.endswith('cannot parse "many" as an integer (at resources.jobs.j.tasks[0].new_cluster.num_workers)')
        and w.startswith(f"{tmp_path / 'bad' / 'databricks.yml'}:10:38: ")
        for w in bad.warnings
    ), bad.warnings


# -------------------------------------------------------------------------------------- references


def test_pure_and_embedded_references(tmp_path):
    files = {
        "databricks.yml": """
        bundle: {name: shop}
        variables:
          n: {default: 25}
          f: {default: 0.5}
          b: {default: true}
          m: {default: {k: [1, 2]}}
          text: {default: "n=${var.n} f=${var.f} b=${var.b} origin=${bundle.git.origin_url}."}
          pure: {default: "${var.m}"}
          item: {default: "${var.m.k[1]}"}
          long: {default: "${variables.n.value}/${variables.n.default}"}
          left: {default: "${resources.jobs.x.id} ${foo.bar} ${ x } ${0x} $${var.n}"}
        """
    }
    values = {k: v["value"] for k, v in load(tmp_path, files).tree["variables"].items()}
    assert values["text"] == "n=25 f=0.5 b=true origin=."
    assert values["pure"] == {"k": [1, 2]} and values["item"] == 2 and values["long"] == "25/25"
    assert values["left"] == "${resources.jobs.x.id} ${foo.bar} ${ x } ${0x} $25"


def test_nested_references_and_builtins(tmp_path):
    files = {
        "databricks.yml": """
        bundle: {name: shop}
        variables:
          a: {default: "${var.b}-a"}
          b: {default: "${bundle.name}-${bundle.target}-${workspace.current_user.short_name}"}
          c: {type: complex, default: {path: "${workspace.file_path}", who: "${var.a}"}}
        targets: {dev: }
        """
    }
    variables = load(tmp_path, files).tree["variables"]
    assert variables["a"]["value"] == "shop-dev-tester-a"
    assert variables["c"]["value"] == {
        "path": "/Workspace/Users/tester@databricks.com/.bundle/shop/dev/files",
        "who": "shop-dev-tester-a",
    }


def test_cycle_and_unknown_reference(tmp_path):
    cycle = error(tmp_path / "a", {"databricks.yml": "variables: {a: {default: '${var.a}'}}\n"})
    assert "cycle detected in field resolution: variables.a.default -> var.a -> var.a" in cycle
    unknown = error(
        tmp_path / "b", {"databricks.yml": "variables: {host: {default: h}}\nworkspace: {root_path: '/x/${var.hst}'}\n"}
    )
    assert "reference does not exist: ${var.hst}" in unknown and "did you mean: ${var.host}" in unknown
    several = error(
        tmp_path / "c",
        {"databricks.yml": "variables: {aa: {default: 1}, ab: {default: 2}}\nsync: {include: ['${var.ac}']}\n"},
    )
    assert "did you mean one of: ${var.aa}, ${var.ab}" in several
    field = error(tmp_path / "d", {"databricks.yml": "sync: {include: ['${bundle.nam}']}\n"})
    assert "reference does not exist: ${bundle.nam}" in field and "${bundle.name}" in field


def test_map_cannot_be_interpolated(tmp_path):
    message = error(tmp_path, {"databricks.yml": "variables: {m: {default: {a: 1}}, s: {default: 'x ${var.m}'}}\n"})
    assert "cannot interpolate non-primitive value of type map into string" in message


def test_too_deep_references_warn(tmp_path):
    files = {
        "databricks.yml": "variables:\n  a: {type: complex, default: {x: '${var.b}'}}\n"
        "  b: {type: complex, default: {y: '${var.a}'}}\n"
    }
    assert any(
        "Variables references are too deep, stopping resolution after 11 rounds" in w
        for w in load(tmp_path, files).warnings
    )


def test_reference_inside_reference_name(tmp_path):
    files = {
        "databricks.yml": "variables:\n  tail: {default: x}\n  foo_x: {default: found}\n  r: {default: '${var.foo_${var.tail}}'}\n"
    }
    assert load(tmp_path, files).tree["variables"]["r"]["value"] == "found"


def test_auth_fields_and_bundle_name_warn(tmp_path):
    cfg = load(
        tmp_path,
        {
            "databricks.yml": "bundle: {name: 'b ${var.v}'}\nvariables: {v: {default: x}}\n"
            "workspace: {host: '${var.v}'}\n"
        },
    )
    assert cfg.tree["workspace"]["host"] == "${var.v}" and cfg.tree["bundle"]["name"] == "b x"
    assert any(
        "Variable interpolation is not supported for fields that configure authentication" in w for w in cfg.warnings
    )
    assert any("Please do not use variable interpolation in the name of your bundle" in w for w in cfg.warnings)


def test_volume_path_is_computed_and_other_resource_references_stay(tmp_path):
    files = {
        "databricks.yml": """
        variables: {v: {default: "${resources.volumes.vol.volume_path}"}, j: {default: "${resources.jobs.x.id}"}}
        resources:
          volumes: {vol: {catalog_name: main, schema_name: s, name: libs}}
        """
    }
    variables = load(tmp_path, files).tree["variables"]
    assert variables["v"]["value"] == "/Volumes/main/s/libs" and variables["j"]["value"] == "${resources.jobs.x.id}"


# ---------------------------------------------------------------------------------------- workspace


@pytest.mark.parametrize(
    "root_path, expected_root, expected_files",
    [
        (
            None,
            "/Workspace/Users/tester@databricks.com/.bundle/demo/qa",
            "/Workspace/Users/tester@databricks.com/.bundle/demo/qa/files",
        ),
        ("/Shared/x", "/Workspace/Shared/x", "/Workspace/Shared/x/files"),
        ("/Workspace/Shared/x", "/Workspace/Shared/x", "/Workspace/Shared/x/files"),
        ("/Volumes/c/s/v", "/Volumes/c/s/v", "/Volumes/c/s/v/files"),
        ("${var.p}", "/Users/me", "/Users/me/files"),
        ("rel/x", "rel/x", "rel/x/files"),
    ],
)
def test_workspace_paths(tmp_path, root_path, expected_root, expected_files):
    workspace = {"root_path": root_path} if root_path else {}
    cfg = load(
        tmp_path,
        {
            "config.json": {
                "bundle": {"name": "demo"},
                "workspace": workspace,
                "variables": {"p": {"default": "/Users/me"}},
                "targets": {"qa": {}},
            }
        },
    )
    assert cfg.tree["workspace"]["root_path"] == expected_root
    assert cfg.tree["workspace"]["file_path"] == expected_files
    assert cfg.tree["workspace"]["state_path"] == expected_root + "/state"


def test_unknown_user_leaves_references_literal(tmp_path):
    cfg = load(
        tmp_path,
        {"databricks.yml": "bundle: {name: b}\nvariables: {u: {default: '${workspace.current_user.userName}'}}\n"},
        current_user=None,
    )
    assert cfg.tree["variables"]["u"]["value"] == "${workspace.current_user.userName}"
    assert cfg.tree["workspace"]["root_path"] == "~/.bundle/b/default"
    assert any("the current user is unknown" in w for w in cfg.warnings)


def test_service_principal_short_name_from_display_name(tmp_path):
    me = {"userName": "8c5e1a2b-0000-4000-8000-000000000001", "displayName": "CI Deployer"}
    cfg = load(tmp_path, {"databricks.yml": "bundle: {name: b}\n"}, current_user=me)
    assert cfg.tree["workspace"]["current_user"]["short_name"] == "ci_deployer"


# --------------------------------------------------------------------------------------------- sync


def test_sync_selection_with_gitignore_include_exclude(tmp_path):
    files = {
        "databricks.yml": "sync:\n  include: [build/keep.txt]\n  exclude: ['./*.log', 'docs/', '!docs/keep.md', 'nothing-*']\n",
        ".gitignore": "build/\n*.tmp\n",
        "src/a.py": "",
        "src/b.tmp": "",
        "src/.gitignore": "secret.py\n",
        "src/secret.py": "",
        "build/keep.txt": "",
        "build/drop.txt": "",
        "app.log": "",
        "docs/x.md": "",
        "docs/keep.md": "",
        ".databricks/state": "",
        "README.md": "",
    }
    cfg = load(tmp_path, files)
    synced, warnings = cfg.sync_files()
    assert synced == [
        ".gitignore",
        "README.md",
        "build/keep.txt",
        "databricks.yml",
        "docs/keep.md",
        "src/.gitignore",
        "src/a.py",
    ]
    assert warnings == ["Pattern nothing-* does not match any files"]
    assert cfg.tree["sync"]["exclude"] == ["*.log", "docs", "!docs/keep.md", "nothing-*"]


def test_sync_paths_infer_root_and_empty_paths(tmp_path):
    files = {
        "bundle/databricks.yml": "sync: {paths: [../common, .], include: [x.txt]}\n",
        "common/lib.py": "",
        "bundle/x.txt": "",
    }
    cfg = load(tmp_path, files, root="bundle")
    assert cfg.sync_root == tmp_path and cfg.tree["sync"]["paths"] == ["common", "bundle"]
    assert cfg.tree["sync"]["include"] == ["bundle/x.txt"]
    assert cfg.sync_files()[0] == ["bundle/databricks.yml", "bundle/x.txt", "common/lib.py"]
    empty = load(tmp_path / "e", {"databricks.yml": "sync: {paths: []}\n"})
    assert empty.sync_files() == ([], [])


def test_nothing_to_sync_warns(tmp_path):
    cfg = load(tmp_path, {"databricks.yml": "sync: {exclude: ['*']}\n"})
    assert (
        cfg.sync_files()[1][-1]
        == "There are no files to sync, please check your .gitignore and sync.exclude configuration"
    )


# ----------------------------------------------------------------------------------- modes, presets


def test_development_mode_cluster_override_and_pause(tmp_path):
    files = {
        "databricks.yml": """
        bundle: {name: b}
        resources:
          jobs:
            j:
              name: j
              schedule: {quartz_cron_expression: "0 0 * * * ?", timezone_id: UTC}
              trigger: {pause_status: UNPAUSED, periodic: {interval: 1, unit: HOURS}}
              tasks:
                - {task_key: a, new_cluster: {num_workers: 1}}
                - {task_key: b, pipeline_task: {pipeline_id: p}}
          pipelines:
            p: {name: p}
        targets:
          dev: {mode: development, cluster_id: c-1, presets: {name_prefix: ""}}
        """
    }
    tree = load(tmp_path, files).tree
    job = tree["resources"]["jobs"]["j"]
    assert job["tasks"][0] == {"task_key": "a", "existing_cluster_id": "c-1"}
    assert "existing_cluster_id" not in job["tasks"][1]
    assert job["schedule"]["pause_status"] == "PAUSED" and job["trigger"]["pause_status"] == "UNPAUSED"
    assert job["name"] == "[dev tester] j"
    assert tree["resources"]["pipelines"]["p"] == {
        "name": "[dev tester] p",
        "development": True,
        "continuous": False,
        "tags": {"dev": "tester"},
    }


@pytest.mark.parametrize(
    "target, expected",
    [
        (
            {"mode": "development", "presets": {"trigger_pause_status": "UNPAUSED"}},
            "target with 'mode: development' cannot set trigger pause status to UNPAUSED by default",
        ),
        (
            {"mode": "development", "presets": {"name_prefix": "team-"}},
            "prefix should contain the current username or ${workspace.current_user.short_name}",
        ),
        (
            {"mode": "development", "workspace": {"root_path": "/Shared/x"}},
            "root_path must start with '~/' or contain the current username",
        ),
        (
            {"mode": "development", "workspace": {"artifact_path": "/Volumes/a/b/c"}},
            "artifact_path should contain the current username",
        ),
        (
            {"mode": "staging"},
            "unsupported value 'staging' specified for 'mode': must be either 'development' or 'production'",
        ),
        (
            {"presets": {"trigger_pause_status": "MAYBE"}},
            "Invalid value for trigger_pause_status, should be PAUSED or UNPAUSED",
        ),
        (
            {
                "mode": "production",
                "workspace": {"root_path": "/Shared/p"},
                "resources": {"pipelines": {"p": {"development": True}}},
            },
            "target with 'mode: production' cannot include a pipeline with 'development: true'",
        ),
    ],
)
def test_mode_errors(tmp_path, target, expected):
    files = {
        "config.json": {"bundle": {"name": "b"}, "resources": {"jobs": {"j": {"name": "j"}}}, "targets": {"t": target}}
    }
    assert expected in error(tmp_path, files)


def test_production_root_path_rules(tmp_path):
    top_level = {
        "bundle": {"name": "b"},
        "workspace": {"root_path": "/Shared/b"},
        "resources": {"jobs": {"j": {"name": "j"}}},
        "targets": {"prod": {"mode": "production"}},
    }
    assert "must set 'workspace.root_path'" in error(tmp_path / "a", {"config.json": top_level})
    sp = load(tmp_path / "b", {"config.json": top_level}, current_user="8c5e1a2b-0000-4000-8000-000000000001")
    assert any("should set 'workspace.root_path'" in w for w in sp.warnings)
    run_as = json.loads(json.dumps(top_level))
    run_as["run_as"] = {"service_principal_name": "sp"}  # given to every job that has no run_as
    run_as["targets"]["prod"]["cluster_id"] = "c-1"
    cfg = load(tmp_path / "c", {"config.json": run_as})
    assert any("Setting a cluster override for a target that uses 'mode: production'" in w for w in cfg.warnings)
    assert cfg.tree["resources"]["jobs"]["j"]["run_as"] == {"service_principal_name": "sp"}


def test_presets_prefixes_and_tags_in_any_mode(tmp_path):
    files = {
        "databricks.yml": """
        presets: {name_prefix: "[prefix]", tags: {team: data}, jobs_max_concurrent_runs: 3}
        resources:
          jobs: {j: {name: j, tags: {team: keep}}}
          schemas: {s: {name: s, catalog_name: c}}
          experiments: {e: {name: /Shared/exp}}
          clusters: {c: {cluster_name: c}}
          volumes: {v: {name: v, catalog_name: c, schema_name: s}}
        """
    }
    resources = load(tmp_path, files).tree["resources"]
    assert resources["jobs"]["j"]["name"] == "[prefix]j" and resources["jobs"]["j"]["tags"] == {"team": "keep"}
    assert resources["jobs"]["j"]["max_concurrent_runs"] == 3
    assert resources["schemas"]["s"]["name"] == "prefix_s"
    assert resources["experiments"]["e"]["name"] == "/Shared/[prefix]exp"
    assert resources["clusters"]["c"] == {"cluster_name": "[prefix]c", "custom_tags": {"team": "data"}}
    assert resources["volumes"]["v"]["name"] == "v"


def test_identifier_prefix_normalisation():
    from cicdkit import config_resources

    assert config_resources.identifier_prefix("[dev tester] ") == "dev_tester_"
    assert config_resources.identifier_prefix("prefix-") == "prefix"
    assert config_resources.identifier_prefix("[prefix]") == "prefix_"


def test_job_defaults_and_local_path_translation(tmp_path):
    files = {
        "databricks.yml": "bundle: {name: b}\ninclude: [jobs/*.yml]\n",
        "jobs/etl.yml": "resources:\n  jobs:\n    etl:\n      tasks:\n"
        "        - {task_key: a, notebook_task: {notebook_path: ../src/nb.py}}\n"
        "        - {task_key: b, spark_python_task: {python_file: ./run.py}}\n",
        "src/nb.py": "# Databricks notebook source\n",
        "jobs/run.py": "print(1)\n",
    }
    job = load(tmp_path, files).tree["resources"]["jobs"]["etl"]
    files_path = "/Workspace/Users/tester@databricks.com/.bundle/b/default/files"
    assert job["tasks"][0]["notebook_task"]["notebook_path"] == f"{files_path}/src/nb"
    assert job["tasks"][1]["spark_python_task"]["python_file"] == f"{files_path}/jobs/run.py"
    assert job["name"] == "Untitled" and job["max_concurrent_runs"] == 1 and job["queue"] == {"enabled": True}
    assert job["deployment"]["metadata_file_path"].endswith("/b/default/state/metadata.json")
    missing = error(
        tmp_path / "m",
        {
            "databricks.yml": "resources: {jobs: {j: {tasks: [{task_key: a, notebook_task: {notebook_path: gone.py}}]}}}\n"
        },
    )
    assert "notebook gone.py not found" in missing


# ----------------------------------------------------------------------------------------- deploy


def test_deploy_section_is_merged_and_exposed(tmp_path):
    files = {
        "config.json": {
            "variables": {"kv": {"default": "kv-base"}},
            "workspace": {"host": "https://adb-1.1.azuredatabricks.net"},
            "deploy": {"keyvault": {"name": "${var.kv}", "secrets": ["a"]}},
            "targets": {
                "t": {"deploy": {"clusters": ["c1"], "keyvault": {"name": "kv-t"}, "concurrency": "${var.n}"}},
                "u": {"default": True},
            },
        }
    }
    files["config.json"]["variables"]["n"] = {"default": "4"}
    cfg = load(tmp_path, files, target="t")
    assert cfg.deploy == {"keyvault": {"name": "kv-t", "secrets": ["a"]}, "concurrency": 4, "clusters": ["c1"]}
    assert cfg.host == "https://adb-1.1.azuredatabricks.net" and cfg.tree["deploy"] == cfg.deploy
    assert load(tmp_path, files).deploy["keyvault"]["name"] == "kv-base"


@pytest.mark.parametrize(
    "deploy, expected",
    [
        ({"clusters": "c1"}, "deploy.clusters must be a list, found string"),
        ({"concurrency": 0}, "deploy.concurrency must be at least 1"),
        ({"libraries_path": "/tmp/libs"}, "deploy.libraries_path must start with /Volumes/, /Workspace/ or dbfs:/"),
        ({"keyvault": {"secrets": "a"}}, "deploy.keyvault.secrets must be a list of secret names"),
    ],
)
def test_deploy_errors(tmp_path, deploy, expected):
    assert expected in error(tmp_path, {"config.json": {"deploy": deploy}})


# ----------------------------------------------------------------------------- validate output (subprocess)


def test_validate_json_output_shape(tmp_path):
    write(
        tmp_path,
        {
            "config.json": {
                "bundle": {"name": "b"},
                "variables": {"z": {"default": 1}, "a": {"default": None}},
                "targets": {"dev": {"default": True}, "prod": {}},
            }
        },
    )
    result = run_script(
        "validate_config.py",
        "--config",
        tmp_path,
        "--output",
        "json",
        "--current-user",
        USER,
        "--var",
        "a=x",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    tree = json.loads(result.stdout)
    assert "targets" not in tree and tree["bundle"]["target"] == tree["bundle"]["environment"] == "dev"
    assert result.stdout == json.dumps(tree, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert tree["variables"]["a"] == {"value": "x"}


def test_validate_text_and_strict(tmp_path):
    write(tmp_path, {"config.json": {"bundle": {"name": "b"}, "oops": 1}})
    text = run_script("validate_config.py", "--config", tmp_path / "config.json", "--current-user", USER)
    assert text.returncode == 0 and "Name: b" in text.stdout and "Found 1 warning" in text.stdout
    assert f"warning: {tmp_path / 'config.json'}:1:27: unknown field: oops" in text.stderr
    strict = run_script("validate_config.py", "--config", tmp_path, "--current-user", USER, "--strict")
    assert strict.returncode == 2 and "1 warning was found. Warnings are not allowed in strict mode" in strict.stderr


def test_validate_without_user_or_credentials_warns(tmp_path):
    write(tmp_path, {"config.json": {"bundle": {"name": "b"}}})
    result = run_script("validate_config.py", "--config", tmp_path, "--output", "json", env=script_env())
    assert result.returncode == 0
    assert "the current user is unknown" in result.stderr
    assert json.loads(result.stdout)["workspace"]["root_path"] == "~/.bundle/b/default"


def test_repo_config_validates_for_every_target():
    for target in ("local", "dev", "test", "prod"):
        result = run_script(
            "validate_config.py",
            "-t",
            target,
            "--current-user",
            "ci@example.com",
            "--strict",
            "--output",
            "json",
            cwd=Path(__file__).resolve().parents[1],
        )
        assert result.returncode == 0, (target, result.stderr)
        tree = json.loads(result.stdout)
        assert tree["bundle"]["target"] == target and tree["deploy"]["notebooks_path"].startswith("/Workspace/")
    default = run_script(
        "validate_config.py", "--current-user", "ci@example.com", cwd=Path(__file__).resolve().parents[1]
    )
    assert "Target: dev" in default.stdout and "Validation OK!" in default.stdout


# ------------------------------------------------------------------------------------- more edges


def test_include_may_climb_with_dotdot(tmp_path):
    files = {"app/config.json": {"include": ["../common/*.yml"]}, "common/vars.yml": "variables: {v: {default: s}}\n"}
    cfg = load(tmp_path, files, root="app")
    assert cfg.tree["include"] == ["../common/vars.yml"] and cfg.tree["variables"]["v"]["value"] == "s"


def test_bundle_root_with_glob_characters(tmp_path):
    folder = tmp_path / "a[1]"
    folder.mkdir()
    assert "Bundle root path contains glob pattern characters" in error(folder, {"config.json": {"include": ["x.yml"]}})


def test_embedded_null_and_lookup_beaten_by_environment(tmp_path):
    files = {
        "databricks.yml": "variables:\n  c: {lookup: {cluster: shared}}\n  s: {default: 'l=${variables.c.default}'}\n"
    }
    variables = load(tmp_path, files, environ={"BUNDLE_VAR_c": "0101-abc"}).tree["variables"]
    assert variables["c"]["value"] == "0101-abc" and variables["s"]["value"] == "l=<nil>"


def test_cluster_id_from_environment_only_in_development(tmp_path):
    files = {
        "databricks.yml": "resources: {jobs: {j: {tasks: [{task_key: a, job_cluster_key: k}]}}}\n"
        "targets:\n  dev: {mode: development, default: true}\n  prod: {mode: production, "
        "workspace: {root_path: /Shared/p}}\n"
    }
    dev = load(tmp_path, files, environ={"DATABRICKS_CLUSTER_ID": "c-9"}).tree["resources"]["jobs"]["j"]["tasks"][0]
    prod = load(tmp_path, files, target="prod", environ={"DATABRICKS_CLUSTER_ID": "c-9"})
    assert dev == {"task_key": "a", "existing_cluster_id": "c-9"}
    assert prod.tree["resources"]["jobs"]["j"]["tasks"][0] == {"task_key": "a", "job_cluster_key": "k"}


def test_artifacts(tmp_path):
    files = {"sub/a.yml": "artifacts:\n  wheel: {type: whl, path: ./pkg}\n", "config.json": {"include": ["sub/a.yml"]}}
    artifact = load(tmp_path, files).tree["artifacts"]["wheel"]
    assert artifact == {"type": "whl", "path": str(tmp_path / "sub" / "pkg"), "build": "python setup.py bdist_wheel"}
    assert "Artifact not properly configured" in error(tmp_path / "n", {"databricks.yml": "artifacts: {a: }\n"})
    assert "Valid values are [whl jar]" in error(tmp_path / "t", {"databricks.yml": "artifacts: {a: {type: zip}}\n"})


# ------------------------------------------------------------------------------------ bundle.git (subprocess)

# Real repositories made with git, isolated from the machine's git configuration, read through
# validate_config.py the way a pipeline step reads them.
GIT_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Tester",
    "GIT_AUTHOR_EMAIL": "tester@example.com",
    "GIT_COMMITTER_NAME": "Tester",
    "GIT_COMMITTER_EMAIL": "tester@example.com",
}
ORIGIN = "https://dev.azure.com/org/p/_git/repo"
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(folder: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(folder), *args], env=script_env(**GIT_ENV), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout.strip()


def make_repo(folder: Path, files: dict | None = None, origin: str | None = ORIGIN) -> Path:
    """A repository on branch main with one commit holding `files` (default: proj/databricks.yml)."""
    folder.mkdir(parents=True)
    git(folder, "init", "-q", "-b", "main")
    write(folder, files or {"proj/databricks.yml": "bundle: {name: g}\n"})
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", "first")
    if origin:
        git(folder, "remote", "add", "origin", origin)
    return folder


def bundle_git(config_folder: Path, **env: str | None) -> dict:
    result = run_script(
        "validate_config.py",
        "--config",
        config_folder,
        "--output",
        "json",
        "--current-user",
        USER,
        env=script_env(**GIT_ENV, **env),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)["bundle"].get("git", {})


@needs_git
def test_git_details_of_a_normal_clone(tmp_path):
    files = {"proj/databricks.yml": "variables: {b: {default: '${bundle.git.branch}@${bundle.git.commit}'}}\n"}
    repo = make_repo(tmp_path / "repo", files)
    git(repo, "tag", "main")  # a tag named like the branch must not turn the branch into "heads/main"
    commit = git(repo, "rev-parse", "HEAD")
    result = run_script(
        "validate_config.py",
        "--config",
        repo / "proj",
        "--output",
        "json",
        "--current-user",
        USER,
        env=script_env(**GIT_ENV),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    tree = json.loads(result.stdout)
    assert tree["bundle"]["git"] == {
        "actual_branch": "main",
        "branch": "main",
        "commit": commit,
        "origin_url": ORIGIN,
        "bundle_root_path": "proj",
        "inferred": True,
    }
    assert tree["variables"]["b"]["value"] == f"main@{commit}"


@needs_git
def test_git_details_in_a_worktree(tmp_path):
    """A `git worktree` keeps refs and config in the main repository's common dir, not in its own git dir."""
    repo = make_repo(tmp_path / "repo")
    worktree = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", "-b", "feature/x", str(worktree))
    (worktree / "proj" / "more.txt").write_text("x\n")
    git(worktree, "add", "-A")
    git(worktree, "commit", "-q", "-m", "on the branch")
    git(repo, "pack-refs", "--all")  # refs/heads/feature/x now only in the common dir's packed-refs
    commit = git(worktree, "rev-parse", "HEAD")
    assert commit != git(repo, "rev-parse", "HEAD")
    assert bundle_git(worktree / "proj") == {
        "actual_branch": "feature/x",
        "branch": "feature/x",
        "commit": commit,
        "origin_url": ORIGIN,
        "bundle_root_path": "proj",
        "inferred": True,
    }


@needs_git
def test_git_details_on_a_detached_head(tmp_path):
    """Azure Pipelines checks out a commit, not a branch: there is no actual branch, only the commit."""
    repo = make_repo(tmp_path / "repo")
    first = git(repo, "rev-parse", "HEAD")
    git(repo, "commit", "-q", "--allow-empty", "-m", "second")
    git(repo, "checkout", "-q", "--detach", first)
    assert bundle_git(repo / "proj", BUILD_SOURCEBRANCH="refs/heads/main") == {
        "commit": first,
        "origin_url": ORIGIN,
        "bundle_root_path": "proj",
    }
    # A branch set in the config is kept as the intended branch; the actual one stays unknown.
    write(repo, {"proj/databricks.yml": "bundle: {git: {branch: main}}\n"})
    assert bundle_git(repo / "proj") == {
        "branch": "main",
        "commit": first,
        "origin_url": ORIGIN,
        "bundle_root_path": "proj",
    }


@needs_git
def test_git_details_of_a_shallow_clone(tmp_path):
    """`fetchDepth: 1` in a pipeline gives a clone with one commit and no history."""
    source = make_repo(tmp_path / "source", {"databricks.yml": "bundle: {name: g}\n"}, origin=None)
    for n in range(3):
        git(source, "commit", "-q", "--allow-empty", "-m", f"later {n}")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth", "1", source.as_uri(), str(clone))
    assert git(clone, "rev-parse", "--is-shallow-repository") == "true"
    assert bundle_git(clone) == {
        "actual_branch": "main",
        "branch": "main",
        "commit": git(source, "rev-parse", "HEAD"),
        "origin_url": source.as_uri(),
        "bundle_root_path": ".",
        "inferred": True,
    }


@needs_git
def test_git_origin_url_loses_its_credentials(tmp_path):
    repo = make_repo(tmp_path / "repo", origin="https://build:SECRET-PAT@dev.azure.com/org/p/_git/repo")
    result = run_script(
        "validate_config.py",
        "--config",
        repo / "proj",
        "--output",
        "json",
        "--current-user",
        USER,
        env=script_env(**GIT_ENV),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["bundle"]["git"]["origin_url"] == ORIGIN
    assert "SECRET-PAT" not in result.stdout + result.stderr
    git(repo, "remote", "set-url", "origin", "HTTPS://SECRET-PAT@dev.azure.com/org/p/_git/repo")
    assert bundle_git(repo / "proj")["origin_url"] == "HTTPS://dev.azure.com/org/p/_git/repo"


@needs_git
def test_git_values_set_in_the_config_win_over_the_checkout(tmp_path):
    """As in the reference, a configured branch, commit or origin_url is kept; actual_branch is always git's."""
    files = {"proj/databricks.yml": "bundle: {git: {branch: release, commit: abc123, origin_url: 'https://x/y'}}\n"}
    repo = make_repo(tmp_path / "repo", files)
    assert bundle_git(repo / "proj") == {
        "actual_branch": "main",
        "branch": "release",
        "commit": "abc123",
        "origin_url": "https://x/y",
        "bundle_root_path": "proj",
    }


@needs_git
def test_git_details_before_the_first_commit(tmp_path):
    """`git init` and no commit yet: HEAD names an unborn branch, there is no commit to report."""
    repo = tmp_path / "repo"
    write(repo, {"proj/databricks.yml": "bundle: {name: g}\n"})
    git(repo, "init", "-q", "-b", "start")
    assert bundle_git(repo / "proj") == {
        "actual_branch": "start",
        "branch": "start",
        "bundle_root_path": "proj",
        "inferred": True,
    }


def test_git_details_outside_a_repository(tmp_path):
    write(tmp_path / "plain", {"databricks.yml": "bundle: {name: g, git: {branch: main}}\n"})
    assert bundle_git(tmp_path / "plain", GIT_CEILING_DIRECTORIES=str(tmp_path)) == {"branch": "main"}


@needs_git
def test_git_details_without_git_installed(tmp_path):
    """Without a git executable the fields stay unset, as outside a repository; validation still succeeds."""
    repo = make_repo(tmp_path / "repo")
    no_git = tmp_path / "empty-path"
    no_git.mkdir()
    assert bundle_git(repo / "proj", PATH=str(no_git)) == {}


GITIGNORE_TREE = {
    ".gitignore": "build/\n*.pyc\n__pycache__/\nlogs\n/data/raw/\nnode_modules\n.env\n",
    "docs/.gitignore": "*.md\n!keep.md\n",
    "docs/sub/.gitignore": "!y.md\n",
    **{
        name: "x\n"
        for name in (
            "src/a.py",
            "src/pkg/b.py",
            "src/pkg/c.pyc",
            "build/out.txt",
            "docs/x.md",
            "docs/keep.md",
            "docs/sub/y.md",
            "logs/a.log",
            "data/raw/big.csv",
            "data/keep.csv",
            "node_modules/x/i.js",
            "README.md",
            ".env",
            "src/pkg/__pycache__/z.pyc",
            "sp ace/f.txt",
            "weird/[x].py",
            "nested/build/deep.txt",
            "nested/keep/build.txt",
        )
    },
}


def test_sync_selection_agrees_with_git(tmp_path):
    """The .gitignore handling matches `git ls-files --others --exclude-standard` on the same untracked tree."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    write(tmp_path, GITIGNORE_TREE)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".git" / "info").mkdir(exist_ok=True)
    (tmp_path / ".git" / "info" / "exclude").write_text("weird/\n")
    listed = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard", "-z"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    expected = sorted(name for name in listed.split("\0") if name)
    from cicdkit import config_sync

    assert config_sync.select_files(tmp_path, ["."], [], []) == expected
    assert "src/a.py" in expected and "docs/sub/y.md" in expected and "build/out.txt" not in expected


def test_sync_paths_that_are_files_ignored_folders_or_symlinks(tmp_path):
    files = {
        "databricks.yml": "sync: {paths: [README.md, build, src]}\n",
        ".gitignore": "build/\n",
        "README.md": "x",
        "build/out.txt": "x",
        "src/a.py": "x",
        "outside.txt": "x",
    }
    write(tmp_path, files)
    (tmp_path / "src" / "link.py").symlink_to(tmp_path / "outside.txt")
    cfg = load(tmp_path, {})
    assert cfg.sync_files()[0] == ["README.md", "src/a.py"]


# --------------------------------------------------------------------------------------- null sections


NULL_SECTIONS = (
    "bundle",
    "include",
    "workspace",
    "variables",
    "artifacts",
    "resources",
    "sync",
    "permissions",
    "presets",
    "run_as",
    "deploy",
    "targets",
)


@pytest.mark.parametrize("section", NULL_SECTIONS)
def test_a_null_section_is_absent(tmp_path, section):
    """JSON null (or YAML `key:` with only a comment) reads as if the key were not there, as in the reference."""
    cases = {"root": {"config.json": {section: None}}}
    if section not in ("include", "targets"):
        cases["include"] = {"config.json": {"include": ["extra.json"]}, "extra.json": {section: None}}
        cases["target"] = {"config.json": {"targets": {"t": {section: None}}}}
    for where, files in cases.items():
        tree = load(tmp_path / where, files).tree
        target = "t" if where == "target" else "default"
        assert tree["workspace"]["root_path"] == f"/Workspace/Users/{USER}/.bundle//{target}"
        assert tree["bundle"]["target"] == target


def test_empty_yaml_sections_validate_as_a_subprocess(tmp_path):
    write(
        tmp_path,
        {
            "databricks.yml": """\
        bundle:
          name: empty
        workspace:
          # only a comment
        variables:
        sync:
        targets:
          dev:
            workspace:
            variables:
        """
        },
    )
    result = run_script(
        "validate_config.py", "--config", tmp_path, "--current-user", USER, "--output", "json", env=script_env()
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert json.loads(result.stdout)["bundle"]["name"] == "empty"


def test_yaml_anchors_and_aliases_still_work(tmp_path):
    """Aliases are allowed (databricks.yml files use them); only the expanded size and depth are capped."""
    tree = load(
        tmp_path,
        {
            "databricks.yml": """\
        variables:
          a:
            default: &shared {x: 1}
            type: complex
          b:
            default: *shared
            type: complex
        """
        },
    ).tree
    assert tree["variables"]["b"]["value"] == {"x": 1}


@pytest.mark.parametrize("name", ["config.json", "databricks.yml", "extra.json", "variable-overrides.json"])
def test_utf8_bom_is_accepted(tmp_path, name):
    files = {
        "config.json": '{"bundle": {"name": "bom"}, "include": ["extra.json"], "variables": {"v": {}}}',
        "extra.json": '{"workspace": {"host": "https://h"}}',
        ".databricks/bundle/default/variable-overrides.json": '{"v": "from-file"}',
    }
    if name == "databricks.yml":
        files["databricks.yml"] = files.pop("config.json")  # JSON text is YAML too
    key = next(key for key in files if key.endswith(name))
    write(tmp_path, files)
    target = tmp_path / key
    target.write_bytes(b"\xef\xbb\xbf" + target.read_bytes())
    tree = config.load(tmp_path, environ={}, current_user=USER).tree
    assert tree["bundle"]["name"] == "bom" and tree["workspace"]["host"] == "https://h"
    assert tree["variables"]["v"]["value"] == "from-file"


def test_whole_value_references_pass_the_shape_checks(tmp_path):
    """`tasks: ${var.tasks}` (a complex variable) is checked after it is resolved, not refused as a string."""
    tree = load(
        tmp_path,
        {
            "config.json": {
                "variables": {
                    "tasks": {"type": "complex", "default": [{"task_key": "b"}, {"task_key": "a"}]},
                    "tags": {"type": "complex", "default": {"team": "x"}},
                },
                "presets": {"tags": "${var.tags}"},
                "resources": {"jobs": {"j": {"name": "j", "tasks": "${var.tasks}"}}},
            }
        },
    ).tree
    assert [task["task_key"] for task in tree["resources"]["jobs"]["j"]["tasks"]] == ["a", "b"]


def test_list_shaped_tags_of_models_and_experiments_are_not_refused(tmp_path):
    tags = [{"key": "team", "value": "data"}]
    tree = load(
        tmp_path,
        {
            "config.json": {
                "resources": {
                    "registered_models": {"m": {"name": "m", "catalog_name": "c", "schema_name": "s", "tags": tags}},
                    "experiments": {"e": {"name": "/Shared/e", "tags": tags}},
                }
            }
        },
    ).tree
    assert tree["resources"]["experiments"]["e"]["tags"] == tags
    assert "jobs.j.tags must be a map" in error(
        tmp_path / "j", {"config.json": {"resources": {"jobs": {"j": {"name": "j", "tags": ["x"]}}}}}
    )
