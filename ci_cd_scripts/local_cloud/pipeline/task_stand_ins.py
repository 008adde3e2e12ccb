"""Local stand-ins of the built-in tasks the templates use (inputs and defaults per each task's task.json in
microsoft/azure-pipelines-tasks; README "Running the pipeline locally" → Tasks). Each returns (exit code, result).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

from cicdkit import atomic

from .plan import Step
from .task_support import TaskFailure, copy_tree, flag, git_files, pick, task_inputs

Outcome = tuple[int | None, str]
_OK: Outcome = (0, "Succeeded")


# ---- UsePythonVersion@0 --------------------------------------------------------------------------------------


def _matches(spec: str, version: tuple[int, ...]) -> bool:
    parts = [part for part in spec.strip().split(".") if part]
    for index, part in enumerate(parts):
        if part.lower() == "x":
            return True
        if index >= len(version) or not part.isdigit() or int(part) != version[index]:
            return False
    return True


def use_python_version(step: Step, run: Any, limit: float) -> Outcome:
    inputs = task_inputs(step, run)
    spec = pick(inputs, "versionSpec", default="3.x")
    if any(char in spec for char in "<>=~^ "):
        raise TaskFailure(f"UsePythonVersion@0 versionSpec {spec!r}: only forms like 3.11, 3.x or 3.11.7 run locally")
    running = tuple(sys.version_info[:3])
    if _matches(spec, running):
        folder = Path(sys.executable).parent
        found = f"this machine's Python {platform.python_version()} ({sys.executable})"
    else:
        wanted = ".".join(spec.split(".")[:2])
        other = shutil.which(f"python{wanted}")
        if not other:
            raise TaskFailure(
                f"Python {spec} is requested but this machine runs {platform.python_version()} and has no "
                f"python{wanted} on PATH (install it, or pass --param pythonVersion={sys.version_info[0]}."
                f"{sys.version_info[1]} if the pipeline has that parameter)"
            )
        folder = run.dirs["tools"] / f"python{wanted}" / "bin"
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("python", "python3"):
            wrapper = folder / name
            atomic.write_text(wrapper, f'#!/bin/sh\nexec "{other}" "$@"\n', mode=0o755)
            wrapper.chmod(0o755)
        found = f"{other}"
    if flag(inputs, "addToPath", True):
        run.path_prefix.append(str(folder))
    run.variables.set("pythonLocation", str(folder.parent), force=True)
    run.say(f"  using {found}")
    return _OK


# ---- Cache@2 -------------------------------------------------------------------------------------------------


def _segments(key: str, run: Any) -> list[str]:
    """A cache key's segments: quoted text stays text, a file pattern becomes the hash of the files it matches."""
    root = run.dirs["sources"]
    resolved = []
    for segment in (part.strip() for part in key.split("|")):
        if not segment:
            continue
        if segment.startswith('"') and segment.endswith('"'):
            resolved.append(segment[1:-1])
            continue
        matches = sorted(path for path in root.glob(segment) if path.is_file()) if "*" in segment else []
        if not matches and (root / segment).is_file():
            matches = [root / segment]
        if matches:
            digest = hashlib.sha256()
            for path in matches:
                digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
            resolved.append(digest.hexdigest())
        else:
            resolved.append(segment)
    return resolved


def cache(step: Step, run: Any, limit: float) -> Outcome:
    inputs = task_inputs(step, run)
    key, path = pick(inputs, "key"), pick(inputs, "path")
    if not key or not path:
        raise TaskFailure("Cache@2 needs key and path")
    segments = _segments(key, run)
    digest = hashlib.sha256(json.dumps(segments).encode()).hexdigest()[:32]
    store, index_file = run.cache / digest, run.cache / "index.json"
    index = json.loads(index_file.read_text(encoding="utf-8")) if index_file.is_file() else {}
    target = Path(path)
    hit_var = pick(inputs, "cacheHitVar")
    hit = "false"
    source = store if store.is_dir() else None
    if source is None:
        for prefix in (line for line in pick(inputs, "restoreKeys").splitlines() if line.strip()):
            wanted = _segments(prefix, run)
            candidates = [name for name, segs in index.items() if segs[: len(wanted)] == wanted]
            if candidates:
                source, hit = run.cache / sorted(candidates)[-1], "inexact"
                break
    else:
        hit = "true"
    if source is not None and source.is_dir():
        copy_tree(source, target)
        run.say(f"  cache restored from {source.name} ({hit} match) into {target}")
    else:
        run.say(f"  no cache for this key yet; {target} is saved after the job if it succeeds")
    if hit_var:
        run.variables.set(hit_var, hit, force=True)

    def save() -> None:
        if hit == "true" or run.result == "Failed" or not target.is_dir():
            return
        shutil.rmtree(store, ignore_errors=True)
        shutil.copytree(target, store, symlinks=True)
        index[digest] = segments
        atomic.write_text(index_file, json.dumps(index, indent=1))
        run.say(f"  post-job: cache saved as {digest}")

    run.post_job.append(save)
    return _OK


# ---- PublishTestResults@2 ------------------------------------------------------------------------------------


def _junit_totals(path: Path) -> tuple[int, int, int, list[str]]:
    try:
        root = ElementTree.parse(path).getroot()
    except (ElementTree.ParseError, OSError) as error:
        raise TaskFailure(f"cannot read the JUnit file {path}: {error}") from None
    passed = failed = skipped = 0
    failures = []
    for case in root.iter("testcase"):
        name = ".".join(part for part in (case.get("classname"), case.get("name")) if part)
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            failed += 1
            message = (problem.get("message") or (problem.text or "").strip()).splitlines()
            failures.append(f"{name}: {message[0] if message else 'failed'}")
        elif case.find("skipped") is not None:
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped, failures


def publish_test_results(step: Step, run: Any, limit: float) -> Outcome:
    inputs = task_inputs(step, run)
    fmt = pick(inputs, "testResultsFormat", "testRunner", default="JUnit")
    if fmt.lower() != "junit":
        raise TaskFailure(f"PublishTestResults@2 testResultsFormat {fmt}: only JUnit is read locally")
    folder = Path(pick(inputs, "searchFolder", default=run.variables.value("System.DefaultWorkingDirectory") or "."))
    patterns = [line.strip() for line in pick(inputs, "testResultsFiles", default="**/TEST-*.xml").splitlines()]
    files: list[Path] = []
    for pattern in (p for p in patterns if p and not p.startswith("!")):
        if Path(pattern).is_absolute():
            files += [Path(pattern)] if Path(pattern).is_file() else []
        else:
            files += sorted(path for path in folder.glob(pattern) if path.is_file()) if folder.is_dir() else []
    excluded = (
        {path for p in patterns if p.startswith("!") for path in folder.glob(p[1:])} if folder.is_dir() else set()
    )
    files = [path for path in dict.fromkeys(files) if path not in excluded]
    title = pick(inputs, "testRunTitle", default="tests")
    if not files:
        message = f"no test result files match {', '.join(patterns)} in {folder}"
        if flag(inputs, "failTaskOnMissingResultsFile", False):
            run.say(f"error: {message}")
            return 1, "Failed"
        run.say(f"warning: {message}")
        return 0, "SucceededWithIssues"
    totals = [0, 0, 0]
    for path in files:
        passed, failed, skipped, failures = _junit_totals(path)
        totals = [totals[0] + passed, totals[1] + failed, totals[2] + skipped]
        for failure in failures:
            run.say(f"  FAILED {failure}")
        run.tests["files"].append(str(path))
    for key, value in zip(("passed", "failed", "skipped"), totals):
        run.tests[key] += value
    run.say(f"  {title}: {totals[0]} passed, {totals[1]} failed, {totals[2]} skipped in {len(files)} file(s)")
    if totals[1] and flag(inputs, "failTaskOnFailedTests", False):
        run.say(f"error: {totals[1]} test(s) failed (failTaskOnFailedTests)")
        return 1, "Failed"
    return _OK


# ---- artifacts -----------------------------------------------------------------------------------------------


def _publish(run: Any, source: Path, name: str) -> Outcome:
    if not name:
        raise TaskFailure("publishing needs an artifact name")
    if not source.exists():
        raise TaskFailure(f"nothing to publish: {source} does not exist")
    target = run.artifacts / name
    if target.exists():
        raise TaskFailure(f"artifact {name} was already published in this run (names are unique per run)")
    staging = run.artifacts / f".{name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    copy_tree(source, staging)
    os.replace(staging, target)
    run.say(f"  published {source} as artifact {name} ({target})")
    return _OK


def publish_artifact(step: Step, run: Any, limit: float) -> Outcome:
    inputs = task_inputs(step, run)
    location = pick(inputs, "publishLocation", "artifactType", default="pipeline").lower()
    if location != "pipeline":
        raise TaskFailure(f"PublishPipelineArtifact@1 publishLocation {location}: only pipeline runs locally")
    source = Path(pick(inputs, "targetPath", "path", default=run.variables.value("Pipeline.Workspace") or "."))
    return _publish(run, source, pick(inputs, "artifact", "artifactName"))


def publish_shortcut(step: Step, run: Any) -> Outcome:
    source = Path(run.variables.expand(step.body["publish"]))
    if not source.is_absolute():
        source = run.dirs["sources"] / source
    return _publish(run, source, run.variables.expand(step.body.get("artifact", "")))


def _download(run: Any, name: str, target: Path) -> Outcome:
    names = [name] if name else sorted(p.name for p in run.artifacts.iterdir() if not p.name.startswith("."))
    for one in names:
        source = run.artifacts / one
        if not source.is_dir():
            known = ", ".join(sorted(p.name for p in run.artifacts.iterdir() if not p.name.startswith("."))) or "none"
            raise TaskFailure(f"artifact {one} was not published in this run (published: {known})")
        destination = target if name else target / one
        copy_tree(source, destination)
        run.say(f"  downloaded artifact {one} to {destination}")
    return _OK


def download_artifact(step: Step, run: Any, limit: float) -> Outcome:
    inputs = task_inputs(step, run)
    source = pick(inputs, "buildType", "source", default="current").lower()
    if source != "current":
        raise TaskFailure(f"DownloadPipelineArtifact@2 buildType {source}: only current runs locally")
    if pick(inputs, "itemPattern", "patterns", default="**") != "**":
        raise TaskFailure("DownloadPipelineArtifact@2 itemPattern: only ** runs locally")
    name = pick(inputs, "artifactName", "artifact")
    target = Path(pick(inputs, "targetPath", "path", "downloadPath", default=str(run.dirs["workspace"])))
    return _download(run, name, target)


def download_shortcut(step: Step, run: Any) -> Outcome:
    if str(step.body["download"]).strip().lower() == "none":
        run.say("  download: none")
        return _OK
    name = run.variables.expand(step.body.get("artifact", ""))
    path = step.body.get("path")
    base = Path(run.variables.expand(path)) if path else run.dirs["workspace"]
    return _download(run, name, base / name if name and not path else base)


# ---- checkout: self ------------------------------------------------------------------------------------------


def checkout(step: Step, run: Any) -> Outcome:
    if str(step.body["checkout"]).strip().lower() == "none":
        run.say("  checkout: none")
        return _OK
    source, target = run.dirs["repo"], run.dirs["sources"]
    files = git_files(source)
    exclude = run.dirs["root"].resolve()
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    copied = 0
    if files is None:
        run.say("  (not a git checkout: copying the whole folder except .git)")
        files = [str(p.relative_to(source)) for p in source.rglob("*") if p.is_file() and ".git" not in p.parts]
    for name in files:
        path = source / name
        if not path.is_file() or path.resolve().is_relative_to(exclude):
            continue
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination, follow_symlinks=False)
        copied += 1
    _make_repository(target)
    run.say(f"  checked out {copied} files of {source} (as git sees them, .gitignore honoured) into {target}")
    return _OK


def _make_repository(folder: Path) -> None:
    """Make the checkout a git repository of its own, as an agent's checkout (a clone) is. Without it, a tool that
    looks for the enclosing repository (the bundle sync selection, `git log`) finds the user's, in which the default
    work folder out/ is ignored: the checkout would look ignored to itself. Without git, an empty ``.git`` folder
    still marks the boundary."""
    try:
        done = subprocess.run(["git", "init", "-q", str(folder)], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        done = False  # no git here: mark the boundary by hand
    if not done:
        (folder / ".git").mkdir(exist_ok=True)


# ---- UniversalPackages@0 -------------------------------------------------------------------------------------

_PACKAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_BUMPS = {"major": 0, "minor": 1, "patch": 2}


def _versions(folder: Path) -> list[tuple[int, int, int]]:
    found = []
    for child in folder.iterdir() if folder.is_dir() else []:
        parts = child.name.split(".")
        if child.is_dir() and len(parts) == 3 and all(part.isdigit() for part in parts):
            found.append((int(parts[0]), int(parts[1]), int(parts[2])))
    return sorted(found)


def universal_packages(step: Step, run: Any, limit: float) -> Outcome:
    """A local feed under ``WORKDIR/feeds/<feed>/<package>/<version>/``, kept between runs: ``publish`` adds the
    next version per ``versionOption`` (or ``versionPublish`` with ``custom``), ``download`` copies one (``*`` =
    the newest) into ``downloadDirectory``."""
    inputs = task_inputs(step, run)
    command = pick(inputs, "command", default="download").lower()
    if command == "publish":
        feed = pick(inputs, "vstsFeedPublish", "feedPublish")
        name = pick(inputs, "vstsFeedPackagePublish", "packageListPublish")
    elif command == "download":
        feed, name = (
            pick(inputs, "vstsFeed", "feedListDownload"),
            pick(inputs, "vstsFeedPackage", "packageListDownload"),
        )
    else:
        raise TaskFailure(f"UniversalPackages@0 command {command!r}: only publish and download run locally")
    if not feed or not _PACKAGE_NAME.match(name or ""):
        raise TaskFailure("UniversalPackages@0 needs a feed and a package name (lower case, digits, '-', '.', '_')")
    folder = run.feeds / feed.replace("/", "_") / name
    known = _versions(folder)
    if command == "download":
        wanted = pick(inputs, "vstsPackageVersion", "versionListDownload", default="*")
        if wanted == "*":
            if not known:
                raise TaskFailure(f"feed {feed} has no version of {name} yet")
            wanted = ".".join(map(str, known[-1]))
        if not (folder / wanted).is_dir():
            raise TaskFailure(
                f"feed {feed} has no {name} {wanted} (has: {', '.join('.'.join(map(str, v)) for v in known) or 'none'})"
            )
        target = Path(
            pick(inputs, "downloadDirectory", default=run.variables.value("System.DefaultWorkingDirectory") or ".")
        )
        copy_tree(folder / wanted, target)
        run.say(f"  downloaded {name} {wanted} from the local feed {feed} into {target}")
        return _OK
    option = pick(inputs, "versionOption", "versionPublishSelector", default="patch").lower()
    if option == "custom":
        version = pick(inputs, "versionPublish")
        if not re.fullmatch(r"\d+\.\d+\.\d+", version) or (folder / version).exists():
            raise TaskFailure(f"UniversalPackages@0 versionPublish {version!r}: a new MAJOR.MINOR.PATCH is needed")
    elif option in _BUMPS:
        current = list(known[-1]) if known else [0, 0, 0]
        index = _BUMPS[option]
        current = current[:index] + [current[index] + 1] + [0] * (2 - index)
        version = ".".join(map(str, current))
    else:
        raise TaskFailure(f"UniversalPackages@0 versionOption {option!r}: major, minor, patch or custom")
    source = Path(
        pick(inputs, "publishDirectory", default=run.variables.value("Build.ArtifactStagingDirectory") or ".")
    )
    if not source.is_dir():
        raise TaskFailure(f"nothing to publish: {source} is not a folder")
    staging = folder / f".{version}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    copy_tree(source, staging)
    os.replace(staging, folder / version)
    variable = pick(inputs, "publishedPackageVar")
    if variable:
        run.variables.set(variable, version, force=True)
    run.say(f"  published {source} as {name} {version} to the local feed {feed} ({folder / version})")
    return _OK
