"""What every script shares on the command line: the entry wrapper and the argument groups.

A script looks like this::

    @cli.entry
    def main(argv: list[str] | None = None) -> int:
        parser = cli.parser("deploy_notebooks.py", __doc__)
        cli.add_config_args(parser)
        args = parser.parse_args(argv)
        ...
        return 0

    if __name__ == "__main__":
        sys.exit(main())

`entry` turns the `errors.CICDError` family into one line ``error: <message>`` on stderr and the class's
exit code (2 bad input, 1 operation failed); argparse errors become `errors.UsageError` the same way. SIGTERM (what
a runner sends a step it stops) takes the path of Ctrl-C, so a step cancels what it started remotely either way.
Secrets never come from argv: options that need one read it from the environment.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import NoReturn, TextIO

from . import ado
from .errors import CICDError, UsageError
from .settings import DEFAULT_CONCURRENCY, DEFAULT_STEP_SECONDS, Settings

Main = Callable[[Sequence[str] | None], int]


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error raises `UsageError` (one line, exit 2) instead of printing usage."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}", hint=f"see {self.prog} --help")

    # --help inside a pipeline prints docstrings that quote logging commands ("##vso[task.setvariable ...");
    # printed as is, the agent would run them. Everything argparse shows goes through ado.neutralise.
    def format_help(self) -> str:
        return ado.neutralise(super().format_help())

    def format_usage(self) -> str:
        return ado.neutralise(super().format_usage())


def parser(prog: str, doc: str | None) -> ArgumentParser:
    """A parser whose --help shows the script's docstring: first line as description, rest as epilog."""
    lines = (doc or "").strip().splitlines()
    description = lines[0] if lines else None
    epilog = "\n".join(lines[1:]).strip() or None
    return ArgumentParser(
        prog=prog, description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def report(error: CICDError) -> int:
    """Print the one-line message for an expected error and return its exit code."""
    print(f"error: {ado.neutralise(error.one_line())}", file=sys.stderr, flush=True)
    return error.exit_code


def entry(main: Main) -> Main:
    """Wrap a script's main so expected errors become ``error: ...`` + exit code, never a traceback.

    The script runs inside `ado.inert_output`: whatever it prints (config values, workspace names, paths) cannot
    start an Azure DevOps logging command; only `ado`'s own commands are live."""

    @functools.wraps(main)
    def wrapper(argv: Sequence[str] | None = None) -> int:
        with ado.inert_output(), _sigterm_interrupts():
            try:
                return main(argv)
            except CICDError as error:
                return report(error)
            except Terminated:
                print("error: stopped (SIGTERM)", file=sys.stderr, flush=True)
                return 128 + signal.SIGTERM
            except KeyboardInterrupt:
                print("error: interrupted", file=sys.stderr, flush=True)
                return 130

    return wrapper


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread as Ctrl-C is: whatever handles an interrupt (the worker pool's stop, the
    cancelling of remote runs) handles it too."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """While a script runs in the main thread, SIGTERM raises `Terminated` instead of ending the process at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


MAX_CONCURRENCY = 64


def _concurrency(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if not 1 <= value <= MAX_CONCURRENCY:
        raise argparse.ArgumentTypeError(f"expected 1..{MAX_CONCURRENCY}, got {value}")
    return value


def add_concurrency_arg(parser: argparse.ArgumentParser, *, what: str = "parallel calls") -> None:
    """--concurrency N (1..`MAX_CONCURRENCY`; default deploy.concurrency, else `DEFAULT_CONCURRENCY`, decided by
    `step_settings`)."""
    parser.add_argument(
        "--concurrency",
        type=_concurrency,
        default=None,
        help=f"{what} (default: deploy.concurrency, else {DEFAULT_CONCURRENCY})",
    )


def parse_assignment(text: str, option: str) -> tuple[str, str]:
    """Split ``NAME=VALUE`` (a repeatable option such as run_notebooks.py --param) at the first ``=``; `UsageError`
    without one or without a name."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise UsageError(f"{option} expects NAME=VALUE, got {text!r}")
    return name.strip(), value


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """--config, -t/--target and --var: which configuration and target a step resolves."""
    group = parser.add_argument_group("configuration")
    group.add_argument(
        "--config",
        default="config.json",
        help="config file, or a folder holding config.json/databricks.yml (default: config.json)",
    )
    group.add_argument(
        "-t",
        "--target",
        default=None,
        help="target to resolve (default: $DATABRICKS_BUNDLE_TARGET, else the target marked default)",
    )
    group.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a variable; repeatable; beats BUNDLE_VAR_<name> and the config",
    )


def add_workspace_args(parser: argparse.ArgumentParser) -> None:
    """--host and --auth: where and how to reach the Databricks workspace (tokens come from the environment).

    --auth takes `azure_auth.DATABRICKS_CHOICES` or an alias (the vocabulary fetch_secrets.py shares) and yields
    the canonical name."""
    from . import azure_auth  # here: scripts without a workspace do not load it

    group = parser.add_argument_group("workspace")
    group.add_argument(
        "--host", default=None, help="workspace URL (default: $DATABRICKS_HOST, else config workspace.host)"
    )
    group.add_argument(
        "--auth",
        default=None,
        type=azure_auth.argument_type(azure_auth.DATABRICKS_CHOICES),
        metavar="MODE",
        help=f"authentication, {azure_auth.help_text(azure_auth.DATABRICKS_CHOICES)}; default: $DATABRICKS_AUTH_TYPE, "
        "else auto-detected; a PAT is read from $DATABRICKS_TOKEN",
    )


def add_dry_run(parser: argparse.ArgumentParser) -> None:
    """--dry-run: print the plan, make no writes."""
    parser.add_argument("--dry-run", action="store_true", help="print what would change and change nothing")


def add_step_args(parser: argparse.ArgumentParser) -> None:
    """What every CD step that talks to a workspace takes: `add_config_args`, `add_workspace_args`, `add_dry_run`,
    --timeout (the step's deadline, see `step_settings`) and -v/--verbose (list every unchanged item in the text
    summary, see `summary.Summary`)."""
    add_config_args(parser)
    add_workspace_args(parser)
    add_dry_run(parser)
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="deadline of the whole step: every call, retry and wait ends by it "
        f"(default: deploy.timeout_seconds, else {DEFAULT_STEP_SECONDS})",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="list every unchanged item in the summary (default: a count and the first few)",
    )


def step_settings(args: argparse.Namespace, *, require: Iterable[str] = ()) -> Settings:
    """For a CD step (`add_step_args`): its `settings.Settings`, with the config of `load_config_if_present` (None
    without one; its resolved ``deploy`` section supplies the defaults of the step's flags). ``require`` names
    values the step cannot do without (e.g. ``cluster_ids``); `UsageError` for those and for unusable flags, see
    `settings.Settings.from_args`."""
    return Settings.from_args(args, config=load_config_if_present(args), require=require)


def load_config(args: argparse.Namespace, current_user: str | Mapping | None = None, *, lookups: bool = True):
    """The resolved `config.Config` for ``--config``/``-t``/``--var`` (see `add_config_args`); ``lookup`` variables
    are resolved through the workspace when credentials are set (`lookup_resolver`)."""
    from . import config  # imported here: scripts that never read a config do not pay for YAML/pathspec

    return config.load(
        getattr(args, "config", None) or "config.json",
        target=getattr(args, "target", None),
        variables=getattr(args, "var", None) or (),
        current_user=current_user,
        lookups=lookup_resolver(args) if lookups else None,
    )


def lookup_resolver(args: argparse.Namespace, environ: Mapping[str, str] | None = None):
    """For `config.load`: resolve ``lookup`` variables with a read-only client, when a credential
    (DATABRICKS_TOKEN or DATABRICKS_AUTH_TYPE) is set; the host is --host, DATABRICKS_HOST, else the config's
    ``workspace.host``. None without a credential (the lookups then stay unresolved, with a warning each)."""
    environ = os.environ if environ is None else environ
    if not (environ.get("DATABRICKS_TOKEN") or environ.get("DATABRICKS_AUTH_TYPE")):
        return None

    def resolve(config_host: str | None, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        from types import SimpleNamespace

        from . import config_lookups, dbclient

        known = SimpleNamespace(host=config_host if config_host and "${" not in config_host else None, deploy={})
        client = dbclient.connect(
            host=getattr(args, "host", None),
            auth=getattr(args, "auth", None),
            config=known,
            environ=environ,
            read_only=True,
        )
        return config_lookups.resolve(client, pairs, workers=DEFAULT_CONCURRENCY)

    return resolve


def log_warning(warning: str, *, stream: TextIO | None = None) -> None:
    """One config warning as ``task.logissue``: a diagnostic with a place (`config_located.Diagnostic`) names its
    file, line and column (``sourcepath``/``linenumber``/``columnnumber``); other warnings are the text alone."""
    location = getattr(warning, "location", None)
    if location is None:
        ado.log_issue("warning", warning, stream=stream)
        return
    message = f"{warning.summary} (at {warning.path})" if warning.path else warning.summary
    ado.log_issue("warning", message, location.file, location.line, column=location.column, stream=stream)


def add_current_user_arg(parser: argparse.ArgumentParser) -> None:
    """--current-user: the userName behind ~/ paths and ${workspace.current_user.*} (see `current_user`)."""
    parser.add_argument(
        "--current-user",
        metavar="USERNAME",
        default=None,
        help="userName for ~/ paths and ${workspace.current_user.*} (default: SCIM Me when a credential and a "
        "host (DATABRICKS_HOST or workspace.host) are set, else left unresolved)",
    )


def current_user(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> str | dict | None:
    """``--current-user`` if given; else the SCIM ``Me`` document when a credential (DATABRICKS_TOKEN or
    DATABRICKS_AUTH_TYPE) and a host (--host, DATABRICKS_HOST, else the config's workspace.host) are set; else None (the config then warns and leaves
    ``${workspace.current_user.*}`` unresolved)."""
    environ = os.environ if environ is None else environ
    if getattr(args, "current_user", None):
        return args.current_user
    if not (environ.get("DATABRICKS_TOKEN") or environ.get("DATABRICKS_AUTH_TYPE")):
        return None
    preloaded = None
    if not (getattr(args, "host", None) or environ.get("DATABRICKS_HOST")):
        # The host may be only in the config's workspace.host: a first pass without the user finds it.
        preloaded = load_config(args, lookups=False)
        if not preloaded.host:
            return None
    from . import dbclient  # imported here: steps without a workspace do not load requests

    return dbclient.connect(
        host=getattr(args, "host", None), auth=getattr(args, "auth", None), config=preloaded, environ=environ
    ).me()


def load_config_if_present(args: argparse.Namespace):
    """`load_config` when a config is asked for (--config other than the default, -t, --var) or ./config.json
    exists; else None, for steps whose config only supplies defaults."""
    explicit = getattr(args, "config", None) not in (None, "config.json")
    if explicit or getattr(args, "target", None) or getattr(args, "var", None) or os.path.isfile("config.json"):
        return load_config(args)
    return None


def add_cluster_args(parser: argparse.ArgumentParser, *, purpose: str) -> None:
    """--cluster-id (repeatable; default deploy.clusters) and --poll-interval, for cluster steps (their waits end
    by the step's --timeout of `add_step_args`); `step_settings` checks them (``require=("cluster_ids",)``)."""
    group = parser.add_argument_group("clusters")
    group.add_argument(
        "--cluster-id",
        action="append",
        default=[],
        metavar="ID",
        help=f"cluster to {purpose}; repeatable (default: deploy.clusters)",
    )
    group.add_argument(
        "--poll-interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="longest wait between status polls (default 10)",
    )
