"""Compile time of the local pipeline runner (local_cloud/pipeline): expressions, templates, typed parameters,
``${{ if/elseif/else }}``, ``${{ each }}``, insertion, the plan's shapes and order, and the errors naming FILE:LINE.
Each case is a small pipeline of its own under tmp_path; the runs themselves: tests/test_run_pipeline_locally.py."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from helpers import ROOT

from local_cloud.pipeline import plan as plans
from local_cloud.pipeline.expressions import Context, ExpressionError
from local_cloud.pipeline.source import PipelineError
from local_cloud.pipeline.templates import compile_pipeline

PREDEFINED = {"Build.SourceBranch": "refs/heads/main", "Build.Reason": "Manual"}


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def compiled(tmp_path: Path, text: str, params: dict | None = None, **files: str):
    for name, body in files.items():
        write(tmp_path, name.replace("__", "/") + ".yml", body)
    pipeline = write(tmp_path, "pipeline.yml", text)
    tree, _ = compile_pipeline(pipeline, tmp_path, params or {}, PREDEFINED)
    return tree


def step_scripts(tree) -> list[str]:
    return [
        step.body.get("script", step.body.get("bash", "")).strip()
        for step in plans.build(tree).stages[0].jobs[0].steps[1:]
    ]


# ---- expressions -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("eq('Main', 'main')", True),
        ("ne(variables['Build.Reason'], 'PullRequest')", True),
        ("and(eq(1, '1'), or(false, true), not(''))", True),
        ("in('b', 'a', 'B')", True),
        ("startsWith('refs/heads/main', 'refs/HEADS')", True),
        ("endsWith('release/1.2', '.2')", True),
        ("contains('abcdef', 'CD')", True),
        ("coalesce(variables['missing'], '', 'x')", "x"),
        ("eq(variables['missing'], '')", True),
        ("format('{0}-{1}', 'a', 2)", "a-2"),
        ("replace('a-b-c', '-', '_')", "a_b_c"),
        ("join(',', parameters.list)", "x,y"),
        ("length(parameters.list)", 2),
        ("eq(parameters.flag, true)", True),
        ("iif(parameters.flag, 'yes', 'no')", "yes"),
        ("parameters.map.key", "value"),
        ("'it''s'", "it's"),
    ],
)
def test_expressions_follow_the_documented_functions_and_casting(expression, expected) -> None:
    ctx = Context(
        {
            "variables": {"Build.Reason": "Manual"},
            "parameters": {"list": ["x", "y"], "flag": True, "map": {"Key": "value"}},
        }
    )
    assert ctx.evaluate(expression) == expected


@pytest.mark.parametrize("expression", ["eq('a'", "nosuch(1)", "counter('x', 0)", "succeeded()", "unknown.name"])
def test_bad_or_unavailable_expressions_are_refused(expression) -> None:
    with pytest.raises(ExpressionError):
        Context({"variables": {}}).evaluate(expression)


# ---- templates and parameters ----------------------------------------------------------------------------------


def test_step_template_parameters_are_typed_and_defaulted(tmp_path) -> None:
    tree = compiled(
        tmp_path,
        """
        steps:
        - template: templates/steps.yml
          parameters:
            count: '3'
            enabled: 'yes'
        """,
        templates__steps="""
        parameters:
        - name: who
          type: string
          default: world
        - name: count
          type: number
        - name: enabled
          type: boolean
          default: false
        steps:
        - script: echo ${{ parameters.who }} ${{ parameters.count }} ${{ parameters.enabled }}
        - ${{ if eq(parameters.count, 3) }}:
          - script: echo three
        """,
    )
    assert step_scripts(tree) == ["echo world 3 True", "echo three"]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({}, "pipeline.yml:2: parameter count is required (it has no default) and was not given"),
        ({"count": "many"}, "parameter count is of type number: 'many' is not a number"),
        ({"count": "1", "colour": "red"}, "unexpected parameter 'colour' (declared: count, mode)"),
        ({"count": "1", "mode": "slow"}, "parameter mode: 'slow' is not one of fast, safe"),
    ],
)
def test_template_parameter_errors_name_the_reference(tmp_path, given, message) -> None:
    lines = "\n".join(f"    {key}: '{value}'" for key, value in given.items())
    with pytest.raises(PipelineError) as raised:
        compiled(
            tmp_path,
            "steps:\n- template: t.yml\n" + (f"  parameters:\n{lines}\n" if given else ""),
            t="""
            parameters:
            - name: count
              type: number
            - name: mode
              default: fast
              values: [fast, safe]
            steps:
            - script: echo ${{ parameters.count }}
            """,
        )
    assert message in raised.value.message


def test_pipeline_parameters_from_the_command_line_are_converted(tmp_path) -> None:
    text = """
    parameters:
    - name: flag
      type: boolean
      default: true
    - name: names
      type: object
      default: []
    steps:
    - ${{ each name in parameters.names }}:
      - script: echo ${{ name }} ${{ parameters.flag }}
    """
    tree = compiled(tmp_path, text, {"flag": "false", "names": "[a, b]"})
    assert step_scripts(tree) == ["echo a False", "echo b False"]
    with pytest.raises(PipelineError, match="parameter flag is of type boolean: 'maybe' is not true or false"):
        compiled(tmp_path, text, {"flag": "maybe"})


def test_each_over_a_list_and_a_map_and_insertion_into_a_mapping(tmp_path) -> None:
    tree = compiled(
        tmp_path,
        """
        parameters:
        - name: envs
          type: object
          default: {dev: one, prod: two}
        - name: extra
          type: object
          default: {EXTRA: yes}
        steps:
        - ${{ each pair in parameters.envs }}:
          - script: echo ${{ pair.key }}=${{ pair.value }}
            env:
              ${{ insert }}: ${{ parameters.extra }}
              ${{ each pair2 in parameters.envs }}:
                ${{ upper(pair2.key) }}: ${{ pair2.value }}
        """,
    )
    steps = plans.build(tree).stages[0].jobs[0].steps[1:]
    assert [step.body["script"] for step in steps] == ["echo dev=one", "echo prod=two"]
    assert steps[0].env == {"EXTRA": "yes", "DEV": "one", "PROD": "two"}


@pytest.mark.parametrize(("value", "expected"), [("a", "first"), ("b", "second"), ("c", "other")])
def test_if_elseif_else_in_lists_and_mappings(tmp_path, value, expected) -> None:
    tree = compiled(
        tmp_path,
        f"""
        variables:
          choice: {value}
        steps:
        - ${{{{ if eq(variables.choice, 'a') }}}}:
          - script: first
        - ${{{{ elseif eq(variables['choice'], 'b') }}}}:
          - script: second
        - ${{{{ else }}}}:
          - script: other
        - script: always
          ${{{{ if eq(variables.choice, 'a') }}}}:
            displayName: chosen a
          ${{{{ else }}}}:
            displayName: not a
        """,
    )
    steps = plans.build(tree).stages[0].jobs[0].steps[1:]
    assert [step.body["script"] for step in steps] == [expected, "always"]
    assert steps[1].display_name == ("chosen a" if value == "a" else "not a")


def test_job_stage_and_variable_templates_and_extends(tmp_path) -> None:
    tree = compiled(
        tmp_path,
        """
        variables:
        - template: vars.yml
        extends:
          template: base.yml
          parameters:
            target: prod
        """,
        vars="""
        variables:
        - name: fromTemplate
          value: v1
        """,
        base="""
        parameters:
        - name: target
          type: string
        stages:
        - stage: deploy_${{ replace(parameters.target, '-', '_') }}
          jobs:
          - template: jobs/job.yml
            parameters:
              name: run_${{ parameters.target }}
        """,
        jobs__job="""
        parameters:
        - name: name
          type: string
        jobs:
        - job: ${{ parameters.name }}
          steps:
          - script: echo $(fromTemplate)
        """,
    )
    plan = plans.build(tree)
    assert [stage.id for stage in plan.stages] == ["deploy_prod"]
    assert [job.id for job in plan.stages[0].jobs] == ["run_prod"]
    assert tree["variables"] == [{"name": "fromTemplate", "value": "v1"}]


def test_stages_run_in_depends_on_order_and_cycles_are_refused(tmp_path) -> None:
    tree = compiled(
        tmp_path,
        """
        stages:
        - stage: c
          dependsOn: [b]
          jobs: [{job: j, steps: [{script: c}]}]
        - stage: a
          dependsOn: []
          jobs: [{job: j, steps: [{script: a}]}]
        - stage: b
          jobs: [{job: j, steps: [{script: b}]}]
        """,
    )
    plan = plans.build(tree)
    assert [stage.id for stage in plan.stages] == ["a", "b", "c"]
    assert plan.stages[1].depends_on == ["a"]  # the previous stage, by default
    looped = compiled(
        tmp_path,
        """
        jobs:
        - job: x
          dependsOn: y
          steps: [{script: x}]
        - job: y
          dependsOn: x
          steps: [{script: y}]
        """,
    )
    with pytest.raises(PipelineError, match="depend on each other in a cycle"):
        plans.build(looped)


@pytest.mark.parametrize(
    ("snippet", "line", "construct"),
    [
        ("  strategy:\n    matrix: {a: {x: 1}}\n", 3, "strategy: matrix/parallel"),
        ("  container: ubuntu:22.04\n", 3, "container:"),
        ("  steps:\n  - powershell: Write-Host hi\n", 4, "powershell: (Windows PowerShell)"),
        ("  steps:\n  - script: echo\n    target: host\n", 5, "script step key 'target'"),
        ("  steps:\n  - checkout: other\n", 4, "checkout: other (only self and none)"),
    ],
)
def test_an_unsupported_construct_names_file_and_line(tmp_path, snippet, line, construct) -> None:
    tree = compiled(
        tmp_path, "jobs:\n- job: a\n" + snippet + ("  steps: [{script: x}]\n" if "steps" not in snippet else "")
    )
    with pytest.raises(PipelineError) as raised:
        plans.build(tree, pwsh_available=False)
    assert raised.value.message == f"pipeline.yml:{line}: {construct} is not supported by the local runner"


def test_a_template_from_another_repository_is_refused_with_its_line(tmp_path) -> None:
    with pytest.raises(PipelineError) as raised:
        compiled(tmp_path, "steps:\n- script: echo\n- template: steps.yml@templates\n")
    assert raised.value.message == (
        "pipeline.yml:3: template steps.yml@templates from another repository (@alias) is not supported by the local runner"
    )


def test_the_repository_pipeline_compiles_with_three_cd_stages_on_main_and_two_elsewhere() -> None:
    path = ROOT / "pipelines" / "azure-pipelines.yml"
    tree, values = compile_pipeline(path, ROOT, {}, PREDEFINED)
    plan = plans.build(tree)
    assert [stage.id for stage in plan.stages] == ["ci", "deploy_dev", "deploy_test", "deploy_prod"]
    deploy = plan.stages[1].jobs[0]
    assert deploy.kind == "deployment" and deploy.environment == "databricks-dev"
    assert any(step.name == "config" for step in deploy.steps)
    tree, _ = compile_pipeline(path, ROOT, {}, {**PREDEFINED, "Build.SourceBranch": "refs/heads/feature/x"})
    assert [stage.id for stage in plans.build(tree).stages] == ["ci", "deploy_dev", "deploy_test"]
