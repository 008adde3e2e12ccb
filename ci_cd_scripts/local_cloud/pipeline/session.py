"""One local pipeline run from the command line's choices: the checkout, the work directory, the build number,
the workspace the CD stages talk to, then compile → plan → run → summary (README "Running the pipeline locally").

Work directory layout: ``run/`` (this run's job folders and artifacts, emptied at the start of each run),
``cache/`` (Cache@2), ``workspace/`` (the local workspace's state; reuse it with
``local_workspace.py --state-dir DIR/workspace``), ``build-id`` (the last Build.BuildId, one more per run, so every
run's wheels get a new version suffix).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from cicdkit import atomic
from cicdkit.errors import InputError, OperationFailed, UsageError

from . import plan as plans
from . import report
from .engine import Engine, Options, pipeline_predefined
from .templates import compile_pipeline

LOCAL_CLUSTER = {"spark_version": "15.4.x-scala2.12", "state": "RUNNING", "data_security_mode": "SINGLE_USER"}


@dataclass
class Request:
    pipeline: Path
    stages: list[str] = field(default_factory=list)
    workspace: str = "local"
    params: dict[str, str] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    secrets_file: Path | None = None
    branch: str | None = None
    workdir: Path | None = None
    keep_going: bool = False
    list_only: bool = False
    time_scale: float = 0.05
    faults: str | None = None  # local workspace fault spec (local_workspace.py --faults)
    seed: int | None = None
    log: Callable[[str], None] = print


def _git(root: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def repo_root(pipeline: Path) -> Path:
    top = _git(pipeline.parent, "rev-parse", "--show-toplevel")
    return Path(top) if top else pipeline.parent


def default_branch(root: Path) -> str:
    return _git(root, "symbolic-ref", "-q", "HEAD") or "refs/heads/main"


def next_build_id(workdir: Path) -> int:
    counter = workdir / "build-id"
    try:
        last = int(counter.read_text(encoding="utf-8").strip()) if counter.is_file() else 0
    except ValueError:
        last = 0
    atomic.write_text(counter, f"{last + 1}\n")
    return last + 1


def read_secrets(path: Path | None) -> dict[str, str]:
    """``--secrets-file``: a JSON object of secret name → value (the Key Vault secret names, e.g. databricks-token)."""
    if path is None:
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InputError(f"cannot read --secrets-file {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise InputError(f"--secrets-file {path} is not JSON: {error}", hint='write {"name": "value", ...}') from None
    if not isinstance(document, dict) or not all(isinstance(v, str) for v in document.values()):
        raise InputError(f"--secrets-file {path} must be a JSON object of names to text values")
    return document


def target_clusters(config_file: Path) -> list[dict]:
    """A cluster for every ``deploy.clusters`` id any target of the config names, so every CD stage finds its own."""
    from cicdkit import config as configs
    from cicdkit.errors import ConfigError

    try:
        targets = list((json.loads(config_file.read_text(encoding="utf-8")).get("targets") or {}).keys())
    except (OSError, ValueError, AttributeError):
        return []
    clusters: dict[str, dict] = {}
    for target in targets:
        try:
            resolved = configs.load(config_file, target, environ={})
        except ConfigError:
            continue
        for cluster_id in resolved.deploy.get("clusters") or []:
            clusters.setdefault(str(cluster_id), {"cluster_id": str(cluster_id), "cluster_name": f"ci-cd-{target}"})
    return [{**LOCAL_CLUSTER, **cluster} for cluster in clusters.values()]


def _start_workspace(
    stack: ExitStack, request: Request, options: Options, workdir: Path, config_file: Path
) -> tuple[dict, dict]:
    """(plain variables, secret variables) that point every CD step at the workspace of this run."""
    if request.workspace != "local":
        if not request.workspace.startswith(("https://", "http://")):
            raise UsageError(f"--workspace {request.workspace!r}: use local or the workspace URL")
        # The CD steps map $(databricks-token) into DATABRICKS_TOKEN: from the environment, as a secret variable.
        token = os.environ.get("DATABRICKS_TOKEN")
        if request.faults:
            raise UsageError("--faults needs --workspace local")
        return {"DATABRICKS_HOST": request.workspace}, ({"databricks-token": token} if token else {})
    from local_cloud.workspace.server import LocalWorkspace
    from local_cloud.workspace.state import SEED_CLUSTERS

    given = read_secrets(request.secrets_file)
    token = given.get("databricks-token") or os.environ.get("LOCAL_WORKSPACE_TOKEN") or f"dapi-local-{_hex()}"
    clusters = [dict(c) for c in SEED_CLUSTERS]
    known = {c["cluster_id"] for c in clusters}
    clusters += [c for c in target_clusters(config_file) if c["cluster_id"] not in known]
    if request.faults:
        from local_cloud.workspace.faults import parse_faults

        try:
            parse_faults(request.faults)
        except ValueError as error:
            raise UsageError(f"--faults: {error}", hint="e.g. --faults 'path=*,fault=429,rate=0.1'") from None
    workspace = LocalWorkspace(
        token=token,
        state_dir=workdir / "workspace",
        time_scale=request.time_scale,
        clusters=clusters,
        faults=request.faults,
        seed=request.seed,
    )
    try:
        workspace.start()
    except OSError as error:
        raise OperationFailed(f"cannot start the local workspace: {error.strerror or error}") from None
    stack.callback(workspace.stop)
    request.log(f"local workspace: {workspace.url} (state in {workdir / 'workspace'}, {len(clusters)} clusters)")
    options.azure_cli_env.update(_start_key_vault(stack, request, workdir, {**given, "databricks-token": token}))
    options.masked.append(options.azure_cli_env["LOCAL_CLOUD_AZ_TOKEN"])
    return {"DATABRICKS_HOST": workspace.url}, {"databricks-token": token}


def _hex() -> str:
    return secrets.token_hex(16)


def _start_key_vault(stack: ExitStack, request: Request, workdir: Path, values: dict[str, str]) -> dict[str, str]:
    """The local Key Vault holding `values` (every vault name leads there) and what an AzureCLI@2 step needs to
    reach it: the proxy, the CA, the stand-in az and its throwaway token."""
    from local_cloud.keyvault import azure_cli
    from local_cloud.keyvault.emulator import KeyVaultEmulator
    from local_cloud.keyvault.proxy import VaultProxy

    vault_token = f"kv-local-{_hex()}"
    vault = KeyVaultEmulator(vault_token)
    for name, value in values.items():
        vault.add_secret(name, value)
    vault.start()
    stack.callback(vault.stop)
    proxy = VaultProxy(vault.port).start()
    stack.callback(proxy.stop)
    shim = azure_cli.write_shim(workdir / "run-tools" / "az")
    names = ", ".join(sorted(values))
    request.log(f"local Key Vault: every https://<name>.vault.azure.net serves {names} (AzureCLI@2 steps only)")
    return {
        "HTTPS_PROXY": proxy.url,
        "https_proxy": proxy.url,
        "NO_PROXY": "",
        "no_proxy": "",
        "REQUESTS_CA_BUNDLE": str(vault.ca_pem),
        "LOCAL_CLOUD_AZ_TOKEN": vault_token,
        "LOCAL_CLOUD_AZ_DIR": str(shim),
    }


def run(request: Request) -> int:
    """Compile, plan and (unless --list) run the pipeline; the exit code (0 green, 1 failed, 2 bad input)."""
    pipeline = request.pipeline.resolve()
    if not pipeline.is_file():
        raise InputError(f"pipeline file {request.pipeline} not found")
    root = repo_root(pipeline)
    workdir = (request.workdir or root / "out" / "local-run").resolve()
    branch = request.branch or default_branch(root)
    if not branch.startswith("refs/"):
        branch = f"refs/heads/{branch}"
    options = Options(
        repo_root=root,
        workdir=workdir,
        branch=branch,
        build_id=0,
        commit=_git(root, "rev-parse", "HEAD") or "",
        variables=dict(request.variables),
        secrets=read_secrets(request.secrets_file),
        stages=list(request.stages),
        keep_going=request.keep_going,
        log=request.log,
    )
    predefined = pipeline_predefined(options)
    predefined.update(
        {k: v for k, v in request.variables.items() if k.casefold() in {p.casefold() for p in predefined}}
    )
    options.reason = predefined.get("Build.Reason", options.reason)
    tree, parameters = compile_pipeline(pipeline, root, dict(request.params), predefined)
    the_plan = plans.build(tree)
    known = {stage.id.casefold() for stage in the_plan.stages}
    for name in request.stages:
        if name.casefold() not in known:
            shown = ", ".join(stage.id for stage in the_plan.stages)
            raise UsageError(f"--stage {name}: the pipeline has no such stage (stages: {shown})")
    engine = Engine(the_plan, options)  # refuses unknown tasks before anything runs
    if request.list_only:
        for line in report.plan_lines(the_plan, engine.pipeline_variables()):
            request.log(line)
        return 0
    workdir.mkdir(parents=True, exist_ok=True)
    options.build_id = next_build_id(workdir)
    config_file = root / str(parameters.get("configFile") or "config.json")
    started = time.monotonic()
    with ExitStack() as stack:
        plain, secret = _start_workspace(stack, request, options, workdir, config_file)
        options.extra.update(plain)
        options.extra_secrets.update(secret)
        engine = Engine(the_plan, options)
        request.log(f"run {options.build_id} of {pipeline.name} on {branch} in {workdir}")
        outcomes = engine.run()
    for line in report.summary_lines(outcomes, engine.masker.mask):
        engine.say(line)
    engine.say(f"Total time: {time.monotonic() - started:.1f} s")
    return 0 if report.pipeline_result(outcomes) != "Failed" else 1
