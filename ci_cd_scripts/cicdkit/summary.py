"""What a CD step tells people at the end: a short text summary, and under Azure DevOps a markdown section.

`Summary` collects what changed, what was skipped, what failed and notes while a step runs; `Summary.finish`
prints the text summary (stdout) and, inside Azure Pipelines, writes the step's markdown section to its own file,
appends it to the job's cumulative ``summary.md`` and attaches the section to the run summary with
``task.uploadsummary`` (one attachment per step, so sections are not repeated). Both files are written with
`atomic` (never half-written). The folder is ``$CICD_SUMMARY_DIR``, else
``$AGENT_TEMPDIRECTORY/databricks-deployment``, else the system temp folder.

The text summary lists every change, failure and note, but only the first `UNCHANGED_SHOWN` unchanged items
and a count when there are more than `UNCHANGED_LIMIT` (a 400-notebook deploy is not 400 lines); ``--verbose``
(`verbose=True`) lists them all, and the markdown section always does.

`Progress` reports progress of long operations (``task.setprogress``) without flooding the log.

Relayed text (service messages) is neutralised: nothing here can start an agent command. Secrets never belong in
a summary; callers pass names and paths, not values.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
import time
from pathlib import Path

from . import ado, atomic


def summary_dir() -> Path:
    """Where the deployment summary files of this job live."""
    explicit = os.environ.get("CICD_SUMMARY_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("AGENT_TEMPDIRECTORY") or tempfile.gettempdir()
    return Path(base) / "databricks-deployment"


def _markdown_escape(text: str) -> str:
    text = ado.neutralise(" ".join(str(text).split()))
    return re.sub(r"([\\`*_|<>\[\]])", r"\\\1", text)


UNCHANGED_LIMIT = 10
UNCHANGED_SHOWN = 5
# A step's section file is readable by the agent's user only (as `tempfile.mkstemp` creates files).
_SECTION_MODE = 0o600


@dataclasses.dataclass
class Summary:
    """The facts of one step run. `step` names the file section (``install_libraries``), `title` the heading."""

    step: str
    title: str
    dry_run: bool = False
    verbose: bool = False
    changed: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
    failed: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    started: float = dataclasses.field(default_factory=time.monotonic)

    def change(self, text: str) -> None:
        self.changed.append(text)

    def skip(self, text: str) -> None:
        self.skipped.append(text)

    def fail(self, text: str) -> None:
        self.failed.append(text)

    def note(self, text: str) -> None:
        self.notes.append(text)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def headline(self) -> str:
        verb = "would change" if self.dry_run else "changed"
        parts = [f"{len(self.changed)} {verb}", f"{len(self.skipped)} unchanged"]
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        return f"{self.title}: {', '.join(parts)} in {self.elapsed:.1f}s" + (
            " (dry run, nothing written)" if self.dry_run else ""
        )

    def text(self) -> str:
        """The plain-text summary printed at the end of the step."""
        lines = [self.headline()]
        prefix = "would " if self.dry_run else ""
        lines += [f"  {prefix}change: {item}" for item in self.changed]
        shown = self.skipped if self.verbose or len(self.skipped) <= UNCHANGED_LIMIT else self.skipped[:UNCHANGED_SHOWN]
        lines += [f"  unchanged: {item}" for item in shown]
        if len(shown) < len(self.skipped):
            where = "--verbose, or the deployment summary" if ado.in_pipeline() else "--verbose"
            lines.append(f"  unchanged: ... and {len(self.skipped) - len(shown)} more (all listed with {where})")
        lines += [f"  FAILED: {item}" for item in self.failed]
        lines += [f"  note: {item}" for item in self.notes]
        return "\n".join(ado.neutralise(line) for line in lines)

    def markdown(self) -> str:
        """The step's section of the deployment summary."""
        status = "failed" if self.failed else ("dry run" if self.dry_run else "succeeded")
        lines = [f"### {_markdown_escape(self.title)} — {status}", "", _markdown_escape(self.headline()), ""]
        for heading, items in (
            ("Would change" if self.dry_run else "Changed", self.changed),
            ("Unchanged", self.skipped),
            ("Failed", self.failed),
            ("Notes", self.notes),
        ):
            if items:
                lines.append(f"**{heading}**")
                lines.append("")
                lines += [f"- {_markdown_escape(item)}" for item in items]
                lines.append("")
        return "\n".join(lines) + "\n"

    def finish(self) -> Path | None:
        """Print the text summary; in a pipeline also write, append and upload the markdown section.

        Returns the section file written (None outside Azure Pipelines)."""
        print(self.text(), flush=True)
        if not ado.in_pipeline():
            return None
        folder = summary_dir()
        folder.mkdir(parents=True, exist_ok=True)
        section = self.markdown()
        path = folder / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', self.step)}.md"
        atomic.write_text(path, section, mode=_SECTION_MODE)
        atomic.append_text(folder / "summary.md", section + "\n")
        ado.upload_summary(path)
        return path


class Progress:
    """``task.setprogress`` for a long operation, emitted only when the percentage moves or a while has passed."""

    def __init__(self, what: str, *, min_step: float = 5.0, min_seconds: float = 15.0) -> None:
        self.what = what
        self.min_step = min_step
        self.min_seconds = min_seconds
        self._last_value: float | None = None
        self._last_time = 0.0

    def update(self, percent: float, text: str = "") -> None:
        now = time.monotonic()
        moved = self._last_value is None or abs(percent - self._last_value) >= self.min_step
        if moved or now - self._last_time >= self.min_seconds or percent >= 100 > (self._last_value or 0):
            self._last_value = percent
            self._last_time = now
            ado.set_progress(percent, ado.neutralise(f"{self.what}: {text}" if text else self.what))
