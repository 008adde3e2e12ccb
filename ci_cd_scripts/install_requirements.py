"""Install the packages' requirement files into the current Python with ONE pip invocation.

Which files: the FILEs given (each may be a comma-separated list, e.g. the requirements_files variable that
find_files.py --format vso sets), or every requirements/<kind>.txt found under --root (default: the current
folder; same pruning as find_files.py). Only files named <kind>.txt are installed (dev.txt usually
includes common.txt with '-r common.txt'); others are listed as skipped.

All chosen files go to a single 'python -m pip install -r A -r B ...' run with this interpreter, so pip
resolves them together and a conflict between packages is reported instead of silently overwritten. pip's
output is streamed as it comes (any '##vso[' inside it is neutralised, credentials in URLs masked).
When pip fails, the error names the requirement file and line that caused it.

Extra pip options: --pip-arg=OPTION, repeatable, e.g. --pip-arg=--no-index --pip-arg=--find-links=wheels/
(write them with '=' so they are not read as options of this script).

pip gets --timeout SECONDS (default 1800) in all; past that, pip and everything it started (a source build)
are killed and the step fails with exit 1.

Exit codes: 0 installed (or nothing to install), 1 pip failed or ran out of time, 2 bad input (a file is missing).

Example:
  python ci_cd_scripts/install_requirements.py --kind dev "$(requirements_files)"
  python ci_cd_scripts/install_requirements.py --kind dev --root .
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from cicdkit import ado, cli, discovery
from cicdkit.errors import InputError, OperationFailed, UsageError

# The requirement-file grammar lives in requirements.py; redact masks user:password@ in URLs.
from cicdkit.requirements import logical_lines, redact

KINDS = ("dev", "common")
_TAIL_LINES = 200
_INCLUDE = re.compile(r"^\s*(?:-r|--requirement|-c|--constraint)(?:\s*=\s*|\s+)(\S.*?)\s*$")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
# Places where pip names the file and line itself.
_FROM_FILE = [
    re.compile(r"\(from -r (?P<file>.+?) \(line (?P<line>\d+)\)\)"),
    re.compile(r"from line (?P<line>\d+) of (?P<file>[^)]+)\)"),
    re.compile(r"-r (?P<file>\S.*?) \(line (?P<line>\d+)\)"),
]
# Places where pip names only the requirement.
_FOR_REQUIREMENT = [
    re.compile(r"No matching distribution found for (?P<req>\S+)"),
    re.compile(r"Could not find a version that satisfies the requirement (?P<req>\S+)"),
    re.compile(r"Failed to build (?P<req>\S+)"),
    re.compile(r"Failed building wheel for (?P<req>\S+)"),
]
_CANNOT_INSTALL = re.compile(r"Cannot install (?P<reqs>.+?) because")
# pip 24+ quotes a line it cannot parse without naming its file: found by its text.
_INVALID_LINE = re.compile(r"Invalid requirement: '(?P<text>[^']+)'")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class RequirementLine:
    """One requirement as written in a file: where it is and the text."""

    file: Path
    line: int
    text: str


def requirement_lines(files: list[Path]) -> list[RequirementLine]:
    """Every requirement line of the files and the files they include (-r/-c), each file read once."""
    found: list[RequirementLine] = []
    seen: set[Path] = set()
    pending = list(files)
    while pending:
        path = pending.pop(0).resolve()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        for number, text in logical_lines(path.read_text(encoding="utf-8", errors="replace")):
            include = _INCLUDE.match(text)
            if include:
                pending.append(path.parent / include.group(1))
            elif not text.startswith("-"):
                found.append(RequirementLine(path, number, text))
    return found


def _describe(file: str, line: int) -> str:
    """ "FILE line N: text" (the text when the file can be read)."""
    try:
        text = Path(file).read_text(encoding="utf-8", errors="replace").splitlines()[line - 1].strip()
    except (OSError, IndexError):
        return f"{file} line {line}"
    return f"{file} line {line}: {redact(text)}"


def locate_failure(pip_output: list[str], files: list[Path]) -> tuple[str, list[str]]:
    """From pip's output: its first ERROR line and the places ("file line N: text") it points at."""
    errors = [line.strip() for line in pip_output if line.lstrip().startswith("ERROR:")]
    headline = errors[0] if errors else (pip_output[-1].strip() if pip_output else "no output")
    places: list[str] = []
    for line in errors or pip_output[-5:]:
        for pattern in _FROM_FILE:
            for match in pattern.finditer(line):
                place = _describe(match.group("file"), int(match.group("line")))
                if place not in places:
                    places.append(place)
    unparsable = {match.group("text").strip() for line in errors for match in _INVALID_LINE.finditer(line)}
    if unparsable and not places:
        for requirement in requirement_lines(files):
            if requirement.text.strip() in unparsable:
                places.append(f"{requirement.file} line {requirement.line}: {redact(requirement.text)}")
    if not places:
        wanted = set()
        for line in errors:
            requested = [match.group("req") for pattern in _FOR_REQUIREMENT for match in pattern.finditer(line)]
            for match in _CANNOT_INSTALL.finditer(line):  # "Cannot install a==1, b and c==2 because ..."
                requested += re.split(r",\s*|\s+and\s+", match.group("reqs"))
            for requirement in requested:
                name = _NAME.match(requirement)
                if name:
                    wanted.add(canonical(name.group(1)))
        for requirement in requirement_lines(files):
            name = _NAME.match(requirement.text)
            if name and canonical(name.group(1)) in wanted:
                place = f"{requirement.file} line {requirement.line}: {redact(requirement.text)}"
                if place not in places:
                    places.append(place)
    return headline, places


def choose_files(kind: str, given: list[str], root: str | None) -> tuple[list[Path], list[Path]]:
    """The files to install and the ones skipped because they are not <kind>.txt."""
    if given:
        candidates = [Path(part.strip()) for item in given for part in item.split(",") if part.strip()]
        missing = [str(path) for path in candidates if not path.is_file()]
        if missing:
            raise InputError(
                f"requirement file not found: {', '.join(missing)}", hint="check the path or run find_files.py again"
            )
    else:
        folder = Path(root or ".")
        if not folder.is_dir():
            raise InputError(f"--root {folder} is not a folder")
        candidates = discovery.find_files(folder, ["**/requirements/*.txt"])
    chosen = [path for path in candidates if path.stem == kind]
    skipped = [path for path in candidates if path.stem != kind]
    return list(dict.fromkeys(chosen)), skipped


def pip_command(files: list[Path], pip_args: list[str]) -> list[str]:
    command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
    for path in files:
        command += ["-r", str(path)]
    return command + pip_args


def run_pip(command: list[str], timeout: float) -> tuple[int | None, list[str]]:
    """Run pip, relaying each output line as it arrives; return the exit code (None when it ran out of time
    and was killed) and the last lines."""
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    expired = threading.Event()
    # A session of its own, so the deadline also stops what pip started (a source build, a VCS checkout);
    # once the whole group is gone the output pipe closes and the read loop below ends.
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        encoding="utf-8",
        errors="replace",
        bufsize=1,
        start_new_session=True,
    ) as process:

        def stop() -> None:
            expired.set()
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        deadline = threading.Timer(timeout, stop)
        deadline.daemon = True
        deadline.start()
        try:
            for line in process.stdout:
                line = redact(line.rstrip("\r\n"))
                tail.append(line)
                ado.relay(line)
            code = process.wait()
        except BaseException:  # Ctrl-C or SIGTERM: pip (its own session) must not go on, nor be waited for
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            raise
        finally:
            deadline.cancel()
        return (None if expired.is_set() else code), list(tail)


@cli.entry
def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("install_requirements.py", __doc__)
    parser.add_argument(
        "--kind", required=True, choices=KINDS, help="install the <kind>.txt files (dev on build agents)"
    )
    parser.add_argument("files", metavar="FILE", nargs="*", help="requirement files (comma-separated lists allowed)")
    parser.add_argument(
        "--root", help="find requirements/<kind>.txt under this folder when no FILE is given (default: .)"
    )
    parser.add_argument(
        "--pip-arg", action="append", default=[], metavar="OPTION", help="extra pip install option; repeatable"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=1800,
        metavar="SECONDS",
        help="seconds pip may take in all before it is killed (default: 1800)",
    )
    cli.add_dry_run(parser)
    args = parser.parse_args(argv)
    if args.files and args.root:
        raise UsageError("give requirement FILEs or --root, not both")
    if not 0 < args.timeout < float("inf"):
        raise UsageError(f"--timeout must be a positive number of seconds, not {args.timeout:g}")

    files, skipped = choose_files(args.kind, args.files, args.root)
    for path in skipped:
        ado.relay(f"skipped {path} (not {args.kind}.txt)")
    if not files:
        ado.log_issue("warning", f"no {args.kind}.txt requirement file found; nothing to install")
        return 0
    command = pip_command(files, args.pip_arg)
    shown = " ".join(redact(part) for part in command)
    if args.dry_run:
        ado.relay(f"would run: {shown}")
        return 0

    started = time.perf_counter()
    with ado.group(f"pip install ({len(files)} {args.kind} requirement file(s))"):
        ado.relay(f"running: {shown}")
        code, tail = run_pip(command, args.timeout)
    elapsed = time.perf_counter() - started
    if code is None:
        last = next((line.strip() for line in reversed(tail) if line.strip()), "no output")
        raise OperationFailed(
            f"pip install did not finish within --timeout {args.timeout:g}s and was stopped (last output: {last})",
            hint="check the package index is reachable, or raise --timeout",
        )
    if code != 0:
        headline, places = locate_failure(tail, files)
        where = "; ".join(places) if places else "in " + ", ".join(str(path) for path in files)
        raise OperationFailed(f"pip install failed (exit {code}): {headline} — {where}")
    ado.relay(f"installed {len(files)} requirement file(s) in {elapsed:.1f}s: {', '.join(str(path) for path in files)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
