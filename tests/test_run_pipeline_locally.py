"""run_pipeline_locally.py as a user runs it: small pipelines of our own under tmp_path, run as a subprocess, and the
agent semantics each one proves (variables between steps, jobs and stages, conditions, secrets masked, timeouts,
tasks, the summary and the exit code)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import ROOT, assert_one_line_error, run_script, script_env
from pipeline_agent import agent_venv

SECRET = "s3cr3t-KNOWN-4f1d9a"


def run(tmp_path: Path, text: str, *args: str, timeout: float = 120):
    pipeline = tmp_path / "pipeline.yml"
    pipeline.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return run_script(
        "run_pipeline_locally.py", pipeline, "--workdir", tmp_path / "work", *args, env=script_env(), timeout=timeout
    )


def lines_of(result) -> list[str]:
    return [line.strip() for line in result.stdout.splitlines()]


def test_a_variable_set_by_a_step_is_seen_from_the_next_step_not_in_its_own(tmp_path) -> None:
    result = run(
        tmp_path,
        """
        steps:
        - checkout: none
        - bash: |
            echo "##vso[task.setvariable variable=colour]blue"
            echo "same step: [${COLOUR:-}]" '[$(colour)]'
        - script: |
            echo "next step: [$COLOUR]" '[$(colour)]'
        """,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "same step: [] [$(colour)]" in lines_of(result)
    assert "next step: [blue] [blue]" in lines_of(result)
    assert lines_of(result)[-2] == "Pipeline: Succeeded"


def test_conditions_after_a_failed_step_and_continue_on_error(tmp_path) -> None:
    result = run(
        tmp_path,
        """
        steps:
        - checkout: none
        - bash: exit 4
          displayName: tolerated
          continueOnError: true
        - bash: echo "ran after tolerated"
        - bash: exit 1
          displayName: breaks
        - bash: echo "must not run"
          displayName: skipped by default
        - bash: echo "on failure"
          condition: failed()
        - bash: echo "always ran"
          condition: always()
        - bash: echo "only on success"
          condition: succeeded()
        """,
    )
    assert result.returncode == 1
    out = lines_of(result)
    assert "ran after tolerated" in out and "on failure" in out and "always ran" in out
    assert "must not run" not in out and "only on success" not in out
    summary = result.stdout.split("\nSummary\n", 1)[1]
    assert "tolerated — exit code 4 (continueOnError)" in summary and "SucceededWithIssues" in summary
    assert "skipped by default — condition is false" in summary
    assert "skipped by default — skipped: condition succeeded() is false" in result.stdout
    assert summary.rstrip().splitlines()[-2] == "Pipeline: Failed"


def test_secrets_are_masked_from_when_they_are_set_also_split_over_two_writes(tmp_path) -> None:
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"from-file": "file-secret-KNOWN-77aa"}), encoding="utf-8")
    result = run(
        tmp_path,
        f"""
        steps:
        - checkout: none
        - bash: |
            echo "before: {SECRET}"
            echo "##vso[task.setvariable variable=token;issecret=true]{SECRET}"
            echo "after in the same step: {SECRET}"
        - bash: |
            printf 'split: {SECRET[:6]}'
            sleep 0.2
            printf -- '{SECRET[6:]} end\\n'
            echo "env: [${{TOKEN:-not exported}}] mapped: [$MAPPED] file: [$FROM_FILE]"
            echo "macro: $(token)"
          env:
            MAPPED: $(token)
            FROM_FILE: $(from-file)
        """,
        "--secrets-file",
        secrets,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = lines_of(result)
    assert f"before: {SECRET}" in out  # the agent masks only what comes after the command
    assert "after in the same step: ***" in out
    assert "split: *** end" in out
    assert "env: [not exported] mapped: [***] file: [***]" in out
    assert "macro: ***" in out
    tail = result.stdout.split("after in the same step", 1)[1]
    assert SECRET not in tail and "file-secret-KNOWN-77aa" not in result.stdout


def test_output_variables_between_jobs_and_between_stages(tmp_path) -> None:
    result = run(
        tmp_path,
        """
        stages:
        - stage: build
          jobs:
          - job: produce
            steps:
            - checkout: none
            - bash: echo "##vso[task.setvariable variable=version;isoutput=true]1.2.3"
              name: setver
            - bash: |
                echo "same job: $(setver.version) $SETVER_VERSION" '[$(version)]'
          - job: consume
            dependsOn: produce
            condition: eq(dependencies.produce.outputs['setver.version'], '1.2.3')
            variables:
              got: $[ dependencies.produce.outputs['setver.version'] ]
            steps:
            - checkout: none
            - bash: |
                echo "other job: $(got)"
          - deployment: ship
            environment: local-env
            strategy:
              runOnce:
                deploy:
                  steps:
                  - download: none
                  - bash: echo "##vso[task.setvariable variable=where;isoutput=true]shelf"
                    name: put
        - stage: release
          condition: eq(dependencies.build.outputs['produce.setver.version'], '1.2.3')
          variables:
            fromStage: $[ stageDependencies.build.produce.outputs['setver.version'] ]
            fromDeploy: $[ stageDependencies.build.ship.outputs['ship.put.where'] ]
          jobs:
          - job: use
            steps:
            - checkout: none
            - bash: |
                echo "other stage: $(fromStage) $(fromDeploy) env=$ENVIRONMENT_NAME"
        """,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = lines_of(result)
    assert "same job: 1.2.3 1.2.3 [$(version)]" in out
    assert "other job: 1.2.3" in out
    assert "environment local-env (approvals and checks live in Azure DevOps, not here)" in out
    assert "other stage: 1.2.3 shelf env=" in out


def test_timeout_in_minutes_ends_a_hanging_step_and_its_children(tmp_path) -> None:
    result = run(
        tmp_path,
        """
        steps:
        - checkout: none
        - bash: |
            sleep 300 &
            echo "child $!"
            sleep 300
          displayName: hangs
          timeoutInMinutes: 0.02
        - bash: echo "cleanup ran"
          condition: always()
        """,
    )
    assert result.returncode == 1
    assert "hangs — timed out after 0.02 minute(s)" in result.stdout
    assert "cleanup ran" in lines_of(result)


def test_a_job_timeout_cancels_the_job_and_still_runs_its_always_and_canceled_steps(tmp_path) -> None:
    """As Azure DevOps does: past timeoutInMinutes the job is canceled, default steps are skipped, and always() /
    canceled() steps run, bounded by cancelTimeoutInMinutes."""
    result = run(
        tmp_path,
        """
        jobs:
        - job: slow
          timeoutInMinutes: 0.02
          cancelTimeoutInMinutes: 0.02
          steps:
          - checkout: none
          - bash: sleep 300
            displayName: hangs
          - bash: echo "must not run"
            displayName: next
          - bash: echo "cleanup ran with status $AGENT_JOBSTATUS"
            condition: always()
          - bash: echo "canceled step ran"
            condition: canceled()
          - bash: echo "not when canceled"
            condition: succeededOrFailed()
          - bash: sleep 300
            displayName: cleanup that hangs
            condition: always()
          - bash: echo "after the cancel timeout"
            condition: always()
        """,
    )
    assert result.returncode == 1
    out = lines_of(result)
    assert "cleanup ran with status Canceled" in out and "canceled step ran" in out
    assert "must not run" not in out and "not when canceled" not in out
    assert "after the cancel timeout" not in out
    assert "next — skipped: the job timed out" in result.stdout
    assert "stopped by the job's cancel timeout (0.02 minute(s))" in result.stdout
    assert "job slow: Canceled" in result.stdout


def test_an_unsupported_construct_stops_before_the_first_step(tmp_path) -> None:
    result = run(
        tmp_path,
        """
        jobs:
        - job: a
          steps:
          - script: echo "must not run"
        - job: b
          strategy:
            matrix:
              one: {x: 1}
          steps:
          - script: echo b
        """,
    )
    assert_one_line_error(result, 2, "pipeline.yml:6: strategy: matrix/parallel is not supported by the local runner")
    assert "must not run" not in result.stdout


def test_an_unknown_task_stops_the_run_and_lists_the_supported_ones(tmp_path) -> None:
    result = run(
        tmp_path,
        """
        steps:
        - script: echo "must not run"
        - task: NuGetCommand@2
          inputs: {command: restore}
        """,
    )
    line = assert_one_line_error(
        result, 2, "pipeline.yml:3: task NuGetCommand@2 is not supported by the local runner (supported tasks: Bash@3"
    )
    assert "PublishTestResults@2" in line and "UsePythonVersion@0" in line
    assert "must not run" not in result.stdout


def test_a_missing_required_parameter_is_bad_input(tmp_path) -> None:
    result = run(tmp_path, "parameters:\n- name: env\n  type: string\nsteps:\n- script: echo\n")
    assert_one_line_error(result, 2, "pipeline.yml:1: parameter env is required (it has no default) and was not given")


def test_artifacts_tests_and_summaries_flow_through_the_tasks(tmp_path) -> None:
    junit = (
        '<testsuite name="s"><testcase classname="pkg.test_a" name="test_ok"/>'
        '<testcase classname="pkg.test_a" name="test_bad"><failure message="assert 1 == 2">trace</failure></testcase>'
        "</testsuite>"
    )
    result = run(
        tmp_path,
        f"""
        stages:
        - stage: ci
          jobs:
          - job: build
            steps:
            - checkout: none
            - task: UsePythonVersion@0
              inputs: {{versionSpec: 3.x}}
            - bash: |
                mkdir -p "$(Build.ArtifactStagingDirectory)/drop" results
                echo payload > "$(Build.ArtifactStagingDirectory)/drop/file.txt"
                echo '{junit}' > results/TEST-a.xml
                echo "# Report" > "$(Agent.TempDirectory)/report.md"
                echo "##vso[task.uploadsummary]$(Agent.TempDirectory)/report.md"
            - task: PublishTestResults@2
              condition: succeededOrFailed()
              inputs:
                testResultsFiles: '**/TEST-*.xml'
                searchFolder: $(System.DefaultWorkingDirectory)
                failTaskOnFailedTests: true
              continueOnError: true
            - task: PublishPipelineArtifact@1
              inputs:
                targetPath: $(Build.ArtifactStagingDirectory)/drop
                artifact: drop
        - stage: cd
          jobs:
          - deployment: deploy
            environment: dev
            strategy:
              runOnce:
                deploy:
                  steps:
                  - bash: cat "$(Pipeline.Workspace)/drop/file.txt"
        """,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = lines_of(result)
    assert "FAILED pkg.test_a.test_bad: assert 1 == 2" in out
    assert "tests: 1 passed, 1 failed, 0 skipped in 1 file(s)" in out
    assert "payload" in out
    assert "Tests: 1 passed, 1 failed, 0 skipped" in out
    assert any(line.startswith("Summary: ") and line.endswith("report.md") for line in out)


def test_without_keep_going_nothing_new_starts_after_a_failed_job_and_with_it_independent_stages_run(tmp_path) -> None:
    pipeline = """
    stages:
    - stage: first
      jobs:
      - job: breaks
        steps:
        - checkout: none
        - bash: exit 1
    - stage: independent
      dependsOn: []
      jobs:
      - job: runs
        steps:
        - checkout: none
        - bash: |
            echo "independent ran"
    - stage: after
      dependsOn: first
      jobs:
      - job: needs_first
        steps:
        - checkout: none
        - bash: |
            echo "must not run"
    """
    stopped = run(tmp_path, pipeline)
    assert stopped.returncode == 1
    assert "independent ran" not in lines_of(stopped)
    assert "independent — not run: an earlier job failed (--keep-going runs the rest)" in stopped.stdout
    going = run(tmp_path, pipeline, "--keep-going")
    assert going.returncode == 1
    assert "independent ran" in lines_of(going) and "must not run" not in lines_of(going)
    assert "after — condition succeeded() is false" in going.stdout


def test_list_prints_the_plan_and_runs_nothing(tmp_path) -> None:
    result = run(
        tmp_path,
        """
        stages:
        - stage: one
          jobs:
          - job: a
            steps:
            - script: echo "must not run"
              displayName: Say $(who)
              condition: always()
        """,
        "--list",
        "--var",
        "who=hello",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "stage one: one  [if succeeded()]",
        "  job a: a  [if succeeded()]",
        "     1. Checkout self (implicit) <checkout>",
        "     2. Say hello <script>  [if always()]",
    ]
    assert not (tmp_path / "work" / "run").exists()


# ---- the repository's own pipeline -------------------------------------------------------------------------------


def _copy_of_the_checkout(tmp_path: Path) -> Path:
    """The files of this checkout as git shows them, in a git repository of its own (so edits stay there)."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    repo = tmp_path / "repo"
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    return repo


@pytest.mark.slow
def test_the_repository_ci_stage_runs_green_and_a_broken_unit_test_stops_it_red_naming_the_test(tmp_path) -> None:
    """With the default --workdir, as README's main command runs it: out/local-run inside the repository, a folder
    its .gitignore ignores (the checkout there must not look ignored to the steps that run in it)."""
    repo = _copy_of_the_checkout(tmp_path)
    assert "/out/" in (repo / ".gitignore").read_text().splitlines()
    venv = agent_venv(tmp_path)  # the pipeline's pip installs land here, not in the test interpreter
    env = script_env(PIP_NO_INDEX="1", PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}")
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"

    def ci() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(venv / "bin" / "python"), str(repo / "ci_cd_scripts" / "run_pipeline_locally.py")]
            + [str(repo / "pipelines" / "azure-pipelines.yml"), "--stage", "ci"]
            + ["--param", f"pythonVersion={version}", "--branch", "main"],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )

    green = ci()
    assert green.returncode == 0, green.stdout[-6000:] + green.stderr
    summary = green.stdout.split("\nSummary\n", 1)[1]
    assert "Pipeline: Succeeded" in summary and "Unit tests (pytest per package, installed wheels)" in summary
    assert re.search(r"Tests: [1-9]\d* passed, 0 failed", summary)
    assert (
        "Validate config (every target, strict)" in summary
        and "Validate config (every target, strict) —" not in summary
    )
    drop = repo / "out" / "local-run" / "run" / "artifacts" / "drop" / "artifact.zip"
    with zipfile.ZipFile(drop) as bundle:
        wheels = [name for name in bundle.namelist() if name.startswith("wheels/")]
    assert len(wheels) == 2 and all(".dev1-" in name for name in wheels), wheels  # Build.BuildId 1

    rules = repo / "package1" / "package1" / "rules.py"
    rules.write_text(rules.read_text().replace('return "is missing"', 'return "is absent"', 1))
    red = ci()
    assert red.returncode == 1, red.stdout[-6000:]
    out = lines_of(red)
    assert any(line.startswith("FAILED ") and "test_not_null_flags_none_nan_and_blank" in line for line in out), out
    summary = red.stdout.split("\nSummary\n", 1)[1]
    assert re.search(r"Unit tests \(pytest per package, installed wheels\) — exit code 1 +Failed", summary)
    assert "Publish artifact drop — condition is false" in summary
    assert summary.rstrip().splitlines()[-2] == "Pipeline: Failed"


def _run_the_repository_pipeline(repo: Path, venv: Path, work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """All stages of the copy's pipelines/azure-pipelines.yml on main, with the agent virtualenv's Python."""
    env = script_env(PIP_NO_INDEX="1", PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(
        [str(venv / "bin" / "python"), str(repo / "ci_cd_scripts" / "run_pipeline_locally.py")]
        + [str(repo / "pipelines" / "azure-pipelines.yml"), "--workdir", str(work), "--branch", "refs/heads/main"]
        + ["--param", f"pythonVersion={sys.version_info[0]}.{sys.version_info[1]}", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )


def _deployed(work: Path) -> dict[str, str]:
    """What the run left in the local workspace: every file's tree, path and SHA-256."""
    state = json.loads((work / "workspace" / "state.json").read_text())
    return {
        f"{tree}:{node['path']}": node["sha256"]
        for tree, nodes in state["trees"].items()
        for node in nodes
        if node["type"] != "DIRECTORY"
    }


@dataclass
class RepositoryRun:
    """One run of the whole repository pipeline (CI and the three CD stages), shared by the tests that read it."""

    repo: Path
    venv: Path
    work: Path
    token: str
    secrets_file: Path
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def repository_run(tmp_path_factory: pytest.TempPathFactory) -> RepositoryRun:
    """The repository pipeline run once for the module (it takes about a minute and a half)."""
    tmp_path = tmp_path_factory.mktemp("repository-run")
    repo = _copy_of_the_checkout(tmp_path)
    venv = agent_venv(tmp_path)
    token = f"dapi-local-e2e-{uuid.uuid4().hex}"  # made here: the checkout copy holds this file's text
    secrets_file = tmp_path / "secrets.json"
    secrets_file.write_text(json.dumps({"databricks-token": token}))
    work = tmp_path / "work"
    result = _run_the_repository_pipeline(repo, venv, work, "--secrets-file", str(secrets_file))
    return RepositoryRun(repo, venv, work, token, secrets_file, result)


@pytest.mark.slow
def test_the_repository_pipeline_deploys_to_dev_test_and_prod_on_the_local_workspace_without_leaking_secrets(
    repository_run: RepositoryRun,
) -> None:
    """CI and all three CD stages of pipelines/azure-pipelines.yml, unchanged, against one local workspace and the
    local Key Vault (each stage's fetch_secrets.py reads databricks-token from "its" vault through the proxy)."""
    result, work, token = repository_run.result, repository_run.work, repository_run.token
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr
    summary = result.stdout.split("\nSummary\n", 1)[1]
    for stage in ("ci", "deploy_dev", "deploy_test", "deploy_prod"):
        assert re.search(rf"^{stage} +Succeeded", summary, re.MULTILINE), summary
    assert len(re.findall(r"^    Fetch Key Vault secrets +Succeeded", summary, re.MULTILINE)) == 3, summary
    assert len(re.findall(r"^    Run the test notebooks +Succeeded", summary, re.MULTILINE)) == 3, summary
    assert re.search(r"Tests: \d+ passed, 0 failed", summary)
    for vault in ("kv-dbx-cicd-dev", "kv-dbx-cicd-test", "kv-dbx-cicd-prod"):
        assert f"Key Vault https://{vault}.vault.azure.net: 1 secrets set as secret variables" in result.stdout
    state = (work / "workspace" / "state.json").read_text()
    for target in ("dev", "test", "prod"):  # each stage kept its own target's paths
        assert f"/Workspace/Shared/ci-cd/{target}/notebooks/package1" in state
    leaks = [str(path) for path in work.rglob("*") if path.is_file() and token.encode() in path.read_bytes()]
    assert token not in result.stdout + result.stderr, "the workspace token was printed"
    assert not leaks, leaks


def test_universal_packages_publish_the_next_patch_version_per_run_and_download_a_given_one(tmp_path) -> None:
    pipeline = """
    steps:
    - checkout: none
    - bash: |
        mkdir -p "$(Build.ArtifactStagingDirectory)/pkg" && echo "build $(Build.BuildId)" > "$(Build.ArtifactStagingDirectory)/pkg/a.txt"
    - task: UniversalPackages@0
      inputs:
        command: publish
        publishDirectory: $(Build.ArtifactStagingDirectory)/pkg
        vstsFeedPublish: project/feed
        vstsFeedPackagePublish: databricks-ci-cd
        versionOption: patch
        publishedPackageVar: published
    - bash: |
        echo "published: $(published)"
    - task: UniversalPackages@0
      inputs:
        command: download
        vstsFeed: project/feed
        vstsFeedPackage: databricks-ci-cd
        vstsPackageVersion: 0.0.1
        downloadDirectory: $(Agent.TempDirectory)/first
    - bash: |
        cat "$(Agent.TempDirectory)/first/a.txt"
    """
    first = run(tmp_path, pipeline)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "published: 0.0.1" in lines_of(first) and "build 1" in lines_of(first)
    second = run(tmp_path, pipeline)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "published: 0.0.2" in lines_of(second) and "build 1" in lines_of(second)  # 0.0.1 is still build 1


@pytest.mark.slow
def test_with_faults_injected_into_the_workspace_the_pipeline_still_ends_green_with_the_same_content(
    repository_run: RepositoryRun, tmp_path: Path
) -> None:
    """10% 429, 5% 503, 2% connection resets on every API path: the steps' retries carry the run, and what lands in
    dev, test and prod is byte for byte what the run without faults (the module's) deploys."""
    clean = repository_run.result
    assert clean.returncode == 0, clean.stdout[-6000:] + clean.stderr
    faults = "path=*,fault=429,rate=0.1; path=*,fault=503,rate=0.05; path=*,fault=reset,rate=0.02"
    secrets = ["--secrets-file", str(repository_run.secrets_file)]
    faulted = _run_the_repository_pipeline(
        repository_run.repo, repository_run.venv, tmp_path / "faulted", *secrets, "--faults", faults, "--seed", "7"
    )
    assert faulted.returncode == 0, faulted.stdout[-8000:] + faulted.stderr
    deployed, again = _deployed(repository_run.work), _deployed(tmp_path / "faulted")
    assert any("/Shared/ci-cd/prod/notebooks/" in path for path in deployed), sorted(deployed)
    # Each run builds its own wheels: reproducible builds make them byte-identical too, and a first deploy's
    # manifest records no time of its own (every object is "unlisted"), so everything is compared byte for byte.
    assert sorted(deployed) == sorted(again)
    assert again == deployed


@pytest.mark.slow
def test_ci_publishes_the_artifact_to_a_feed_and_a_cd_stage_deploys_a_given_version_from_it(tmp_path) -> None:
    """The versioned artifact feed: with artifactFeed, CI also publishes the artifact as the next patch version;
    a CD stage run on its own (no CI in that run) deploys the version artifactVersion names, and a version the feed
    does not hold fails the download step naming the versions it has."""
    repo = _copy_of_the_checkout(tmp_path)
    venv = agent_venv(tmp_path)
    work = tmp_path / "work"
    feed = ["--param", "artifactFeed=analytics/ci-cd"]

    built = _run_the_repository_pipeline(repo, venv, work, "--stage", "ci", *feed)
    assert built.returncode == 0, built.stdout[-6000:] + built.stderr
    published = work / "feeds" / "analytics_ci-cd" / "databricks-ci-cd" / "0.0.1"
    assert [path.name for path in published.glob("*.zip")] == ["artifact.zip"], list(published.glob("*"))
    assert "Check the package name against the bundle name" in built.stdout

    deployed = _run_the_repository_pipeline(
        repo, venv, work, "--stage", "deploy_dev", *feed, "--param", "artifactVersion=0.0.1"
    )
    assert deployed.returncode == 0, deployed.stdout[-6000:] + deployed.stderr
    summary = deployed.stdout.split("\nSummary\n", 1)[1]
    assert re.search(r"Download databricks-ci-cd 0\.0\.1 from feed analytics/ci-cd +Succeeded", summary), summary
    assert re.search(r"^deploy_dev +Succeeded", summary, re.MULTILINE), summary
    assert "/Workspace/Shared/ci-cd/dev/notebooks/package1" in (work / "workspace" / "state.json").read_text()

    missing = _run_the_repository_pipeline(
        repo, venv, work, "--stage", "deploy_dev", *feed, "--param", "artifactVersion=0.0.9"
    )
    assert missing.returncode == 1
    assert "has no databricks-ci-cd 0.0.9 (has: 0.0.1)" in missing.stdout
