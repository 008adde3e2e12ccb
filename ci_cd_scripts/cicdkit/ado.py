"""Azure DevOps logging commands: the only place that prints ``##vso[...]`` and ``##[...]`` lines.

Inside Azure Pipelines (``TF_BUILD`` is set) the functions print logging commands that the agent parses;
outside it they print plain, readable lines (secrets as ``***``) so the scripts are pleasant to run by hand.

Escaping follows the agent's decoder (``CommandStringConvertor``): ``%`` becomes ``%AZP25`` first, then CR,
LF, ``;`` and ``]`` become ``%0D``, ``%0A``, ``%3B`` and ``%5D``. The full set is applied to property values
and to data alike, so any value round-trips and none can end a command early or start a new one.

Secrets: ``set_variable(..., secret=True)`` registers the value with ``issecret=true``. The agent refuses a
multi-line value there ("Secrets cannot contain multiple lines") and masks output line by line, so a
multi-line secret is first registered line by line with ``task.setsecret`` and then exported on one line:
JSON is compacted (still the same JSON), anything else is base64-encoded (standard alphabet, UTF-8), and the
encoded form is registered too. A consumer decodes it with ``base64 -d``. See README "Secrets".

Text relayed from elsewhere (pip output, notebook output, API error messages, config values, paths) must go
through `neutralise`, and a step prints it with `relay` (a JSON document that must decode to exactly what it
holds: `neutralise_json`), so that it cannot inject commands: the agent finds ``##vso[`` anywhere in a line,
on stdout and stderr. These are the one choke point: steps do not neutralise text their own way. Every script
also runs inside `inert_output` (`cli.entry` sets it up): stdout and stderr become `InertStream`s that neutralise
whatever is printed, so a config value, a cluster name or a path in a summary line is inert even where nobody
thought of it. Only this module's own commands bypass that.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import sys
import threading
from collections.abc import Iterator
from typing import TextIO

from .errors import UsageError

ISSUE_TYPES = ("error", "warning")
_RESERVED_PREFIXES = ("endpoint", "input", "secret", "path", "securefile")
_VARIABLE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
# '##vso[' and '##[' start agent commands wherever they appear in a line (any case).
_COMMAND_START = re.compile(r"##(?=(?:vso)?\[)", re.IGNORECASE)
_ZERO_WIDTH_SPACE = "\u200b"


def in_pipeline() -> bool:
    """True when running as an Azure Pipelines step (the agent sets ``TF_BUILD=True`` for every step)."""
    return os.environ.get("TF_BUILD", "").strip().lower() == "true"


def escape(value: str) -> str:
    """Escape a property value or data for a logging command, the way the agent decodes it."""
    return (
        str(value)
        .replace("%", "%AZP25")
        .replace("\r", "%0D")
        .replace("\n", "%0A")
        .replace(";", "%3B")
        .replace("]", "%5D")
    )


def neutralise(text: str) -> str:
    """Make relayed text inert: ``##vso[`` and ``##[`` gain a zero-width space between the two ``#``."""
    return _COMMAND_START.sub("#" + _ZERO_WIDTH_SPACE + "#", str(text))


def neutralise_json(document: str) -> str:
    """Make a JSON document inert without changing what it decodes to: ``##`` becomes ``#\\u0023``.

    ``#`` is no JSON syntax, so it only occurs inside strings, where ``\\u0023`` is an escape for ``#``: a reader
    gets every string back exactly (`neutralise` would add a zero-width space to it), the agent sees no ``##``."""
    return str(document).replace("##", "#\\u0023")


# What a write may end with that the next write could complete into a command: held back until then.
_COMMAND_PREFIXES = ("##vso", "##vs", "##v", "##", "#")


def _held_back(text: str) -> int:
    """Where the trailing part of `text` that could still become ``##vso[`` or ``##[`` begins (len if none)."""
    lowered = text[-5:].lower()
    for prefix in _COMMAND_PREFIXES:
        if lowered.endswith(prefix):
            return len(text) - len(prefix)
    return len(text)


class InertStream:
    """A text stream (stdout, stderr) whose every write is neutralised; `command` writes one of ours as it is.

    The agent reads commands per line, and a line may be printed in pieces (``print(a, b)`` writes four times),
    so a trailing ``#``, ``##``, ``##v``... is held back until the next write shows what follows it; `release`
    writes what is still held. Everything else (fileno, encoding, isatty...) is the wrapped stream's.
    """

    def __init__(self, stream: TextIO) -> None:
        self.wrapped = stream
        self._held = ""
        self._lock = threading.RLock()  # steps print from worker threads

    def write(self, text: str) -> int:
        with self._lock:
            pending = self._held + str(text)
            cut = _held_back(pending)
            self._held = pending[cut:]
            if cut:
                self.wrapped.write(neutralise(pending[:cut]))
        return len(text)

    def command(self, line: str) -> None:
        """Write one logging command line of this module, not neutralised, after anything held back."""
        with self._lock:
            self.release()
            self.wrapped.write(line + "\n")
            self.wrapped.flush()

    def release(self) -> None:
        with self._lock:
            held, self._held = self._held, ""
            if held:
                self.wrapped.write(held)  # a lone prefix: nothing follows it to make a command
            self.wrapped.flush()

    def flush(self) -> None:
        self.wrapped.flush()

    def __getattr__(self, name: str):
        return getattr(self.wrapped, name)


@contextlib.contextmanager
def inert_output() -> Iterator[None]:
    """Within the block, sys.stdout and sys.stderr are `InertStream`s: nothing printed there starts a command."""
    saved = sys.stdout, sys.stderr
    wrapped = [stream if stream is None or isinstance(stream, InertStream) else InertStream(stream) for stream in saved]
    sys.stdout, sys.stderr = wrapped
    try:
        yield
    finally:
        for stream, original in zip(wrapped, saved):
            if stream is not original:
                stream.release()
        sys.stdout, sys.stderr = saved


def relay(text: str, stream: TextIO | None = None) -> None:
    """Print text that came from elsewhere (tool output, notebook output), neutralised."""
    stream = stream or sys.stdout
    stream.write(neutralise(text))
    if text and not text.endswith("\n"):
        stream.write("\n")
    stream.flush()


def _emit(line: str, stream: TextIO | None = None) -> None:
    """Print a readable line (outside a pipeline): neutralised like everything else."""
    stream = stream or sys.stdout
    print(neutralise(line), file=stream, flush=True)


def _emit_command(line: str, stream: TextIO | None = None) -> None:
    """Print one of our logging commands (stdout unless told): the only output that is not neutralised."""
    stream = stream or sys.stdout
    if isinstance(stream, InertStream):
        stream.command(line)
    else:
        print(line, file=stream, flush=True)


def _command(name: str, properties: dict[str, str] | None, data: str = "") -> str:
    props = ";".join(f"{key}={escape(value)}" for key, value in (properties or {}).items())
    return f"##vso[{name}{' ' + props if props else ''}]{escape(data)}"


def check_variable_name(name: str) -> str:
    """Return the name if Azure Pipelines can use it as a variable, else raise `UsageError`."""
    if not _VARIABLE_NAME.match(name or ""):
        raise UsageError(
            f"invalid pipeline variable name {name!r}",
            hint="use letters, digits, '_', '.' and '-', starting with a letter, digit or '_'",
        )
    if name.lower().startswith(_RESERVED_PREFIXES):
        raise UsageError(
            f"pipeline variable name {name!r} starts with a reserved prefix",
            hint="names starting with endpoint, input, secret, path or securefile are hidden from steps; rename it",
        )
    return name


def single_line_secret(value: str) -> tuple[str, str | None]:
    """The one-line form a multi-line secret is exported in, and the encoding used (None if unchanged)."""
    if "\n" not in value and "\r" not in value:
        return value, None
    try:
        return json.dumps(json.loads(value), separators=(",", ":"), ensure_ascii=False), "json"
    except ValueError:
        return base64.b64encode(value.encode("utf-8")).decode("ascii"), "base64"


# Lines shorter than this, or without a letter or digit (a lone "{" of a JSON document), would mask that
# text everywhere in the job's log while protecting nothing.
_MIN_MASKED_LINE = 4


def _worth_masking(line: str) -> bool:
    return len(line.strip()) >= _MIN_MASKED_LINE and any(char.isalnum() for char in line)


def set_secret(value: str) -> None:
    """Register a value with the agent's masker, line by line; prints nothing outside a pipeline.

    The agent masks output one line at a time, so each line of a multi-line value is registered on its own.
    Trivial lines (shorter than 4 characters, or no letter or digit) are not registered: masking a lone
    brace would hide that character in every later line of the log.
    """
    if not in_pipeline():
        return
    lines = re.split(r"\r\n|\r|\n", str(value))
    for line in lines:
        if _worth_masking(line) or (len(lines) == 1 and line):
            _emit_command(_command("task.setsecret", None, line))


def set_variable(name: str, value: str, *, secret: bool = False, output: bool = False, readonly: bool = False) -> None:
    """Set a pipeline variable for the following steps (``task.setvariable``)."""
    check_variable_name(name)
    value = "" if value is None else str(value)
    encoding = None
    if secret:
        single_line, encoding = single_line_secret(value)
        if encoding == "base64":
            # Register every line and the encoded form before anything could print them.
            set_secret(value)
            set_secret(single_line)
        elif encoding == "json":
            # Like AzureKeyVault@2: only the compacted document is registered (its lines are mostly
            # punctuation such as "{" that would be masked everywhere).
            set_secret(single_line)
        value = single_line
    if not in_pipeline():
        shown = "***" if secret else value.replace("\r", "\\r").replace("\n", "\\n")
        flags = [flag for flag, on in (("secret", secret), ("output", output), ("readonly", readonly)) if on]
        if encoding:
            flags.append(f"{encoding}-encoded")
        suffix = f" ({', '.join(flags)})" if flags else ""
        _emit(f"[set variable] {name}={shown}{suffix}")
        return
    properties = {"variable": name}
    if secret:
        properties["issecret"] = "true"
    if output:
        properties["isoutput"] = "true"
    if readonly:
        properties["isreadonly"] = "true"
    _emit_command(_command("task.setvariable", properties, value))
    if encoding:
        log_issue("warning", f"secret variable {name} had several lines; it is exported {encoding}-encoded on one line")


def log_issue(
    type: str,
    message: str,
    source_path: str | None = None,
    line: int | None = None,
    *,
    column: int | None = None,
    stream: TextIO | None = None,
) -> None:
    """Report an error or warning (``task.logissue``, with ``sourcepath``, ``linenumber`` and ``columnnumber`` when
    given). It does not change the step result by itself.

    Outside a pipeline the line goes to stderr (``warning: FILE:LINE:COLUMN: message``); inside, the command goes
    to `stream` (default stdout; a step whose stdout is a document, such as ``validate_config.py --output json``,
    passes sys.stderr). The message is neutralised: it is for people, and often quotes config values."""
    kind = type.lower()
    if kind not in ISSUE_TYPES:
        raise ValueError(f"issue type must be one of {ISSUE_TYPES}, not {type!r}")
    if not in_pipeline():
        position = f"{f':{line}' if line else ''}{f':{column}' if line and column else ''}"
        where = f"{source_path}{position}: " if source_path else ""
        _emit(f"{kind}: {where}{message}", sys.stderr)
        return
    properties = {"type": kind}
    if source_path:
        properties["sourcepath"] = str(source_path)
    if line:
        properties["linenumber"] = str(int(line))
    if line and column:
        properties["columnnumber"] = str(int(column))
    _emit_command(_command("task.logissue", properties, neutralise(message)), stream)


@contextlib.contextmanager
def group(title: str) -> Iterator[None]:
    """A collapsible section of the log. Azure Pipelines does not nest groups, so do not nest them."""
    if in_pipeline():
        _emit_command(f"##[group]{neutralise(title)}")
    else:
        _emit(f"== {title} ==")
    try:
        yield
    finally:
        if in_pipeline():
            _emit_command("##[endgroup]")


def set_progress(percent: float, text: str = "") -> None:
    """Report progress of a long operation (``task.setprogress``), clamped to 0..100."""
    value = max(0, min(100, int(percent)))
    if not in_pipeline():
        _emit(f"[progress] {value}%{f' {text}' if text else ''}")
        return
    _emit_command(_command("task.setprogress", {"value": str(value)}, neutralise(text)))


def upload_summary(markdown_path: str | os.PathLike[str]) -> None:
    """Attach a markdown file to the run summary (``task.uploadsummary``); the path is made absolute."""
    path = os.path.abspath(os.fspath(markdown_path))
    if not in_pipeline():
        _emit(f"[summary] {path}")
        return
    _emit_command(_command("task.uploadsummary", None, path))
