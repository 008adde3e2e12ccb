"""Fetch Azure Key Vault secrets into secret pipeline variables, never printing a value.

Examples:
  fetch_secrets.py --vault-name kv-dev --secret databricks-token --name-style upper
  fetch_secrets.py -t dev --all                      # vault and secrets from config deploy.keyvault
  fetch_secrets.py --vault-url https://127.0.0.1:8443 --all --auth token \\
      --ca-bundle ca.pem --no-verify-challenge-resource   # a local emulator

Each secret becomes ##vso[task.setvariable variable=NAME;issecret=true] (masked, not exported to env: map it
in later steps with env: NAME: $(NAME)). Multi-line values are registered line by line with task.setsecret,
then exported on one line (JSON compacted, anything else base64). Name styles: keep (databricks-token),
underscore (databricks_token), upper (DATABRICKS_TOKEN); --prefix is put in front. Two secrets mapping to the
same (case-insensitive) name are an error. --all skips disabled, expired and not-yet-valid secrets and lists
them by name; a secret named with --secret that is missing, disabled, expired or forbidden fails the step.
Nothing is emitted unless every secret was read. Exit codes: 0 ok, 1 the vault refused or failed, 2 bad input.

Auth (--auth, default auto): pipelines | azure-cli | environment | managed-identity | token (aliases
azure-pipelines, azure-client-secret, azure-msi, as for the Databricks steps); see azure_auth.py
for the environment variables each mode reads and the auto order.
--output env-file FILE (only outside Azure Pipelines) writes NAME='value' lines to a new 0600 file for local
debugging and prints only the names."""

from __future__ import annotations

import re
import shlex
import sys
import time
from pathlib import Path

from cicdkit import ado, atomic, azure_auth, cli, keyvault, settings
from cicdkit.errors import InputError, OperationFailed, UsageError

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _note(text: str) -> None:
    print(ado.neutralise(text), file=sys.stderr, flush=True)


def _unique(refs: list[keyvault.SecretRef]) -> list[keyvault.SecretRef]:
    """The same secret named twice (`--secret a --secret a`; Key Vault names ignore case) is read once."""
    first: dict[tuple[str, str | None], keyvault.SecretRef] = {}
    for ref in refs:
        first.setdefault((ref.name.lower(), ref.version), ref)
    return list(first.values())


def _vault_and_refs(args) -> tuple[str, list[keyvault.SecretRef]]:
    """The vault URL and the named secrets, from the flags, else from config deploy.keyvault."""
    named = _unique([keyvault.parse_ref(text) for text in args.secret])
    url = keyvault.vault_url(args.vault_url, args.vault_name) if (args.vault_url or args.vault_name) else None
    if url and (named or args.all):
        return url, named
    loaded = cli.load_config_if_present(args)
    if loaded is None:
        if url is None:
            raise UsageError(
                "no Key Vault given", hint=f"pass --vault-url or --vault-name, or set deploy.keyvault in {args.config}"
            )
        raise UsageError(
            "no secrets to fetch",
            hint="name them with --secret (or deploy.keyvault.secrets in the config) or use --all",
        )
    section = loaded.deploy.get("keyvault") or {}  # its shape is checked by config (deploy.keyvault)
    if url is None:
        url = keyvault.vault_url(section.get("url"), section.get("name"))
    if not named and not args.all:
        named = _unique([keyvault.parse_ref(name) for name in section.get("secrets") or []])
    if not named and not args.all:
        raise UsageError(
            "no secrets to fetch", hint="name them with --secret (or deploy.keyvault.secrets) or use --all"
        )
    return url, named


def _write_env_file(path: Path, secrets: list[keyvault.Fetched]) -> None:
    """NAME='value' lines (shell-quoted, so ``set -a; . FILE`` works) in a file that is 0600 from creation
    (mkstemp) and replaces `path` only once complete."""
    atomic.write_text(path, "".join(f"{s.variable}={shlex.quote(s.value)}\n" for s in secrets), mode=0o600)


@cli.entry
def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("fetch_secrets.py", __doc__)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--vault-url", help="vault URL, e.g. https://kv-dev.vault.azure.net")
    where.add_argument("--vault-name", help="vault name (https://<name>.vault.azure.net)")
    cli.add_config_args(parser)
    parser.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="NAME[/VERSION]",
        help="a secret to fetch (repeatable); it must exist, be enabled and not expired",
    )
    parser.add_argument("--all", action="store_true", help="fetch every enabled, unexpired secret of the vault")
    parser.add_argument(
        "--name-style",
        choices=keyvault.NAME_STYLES,
        default="keep",
        help="pipeline variable names: keep (db-token), underscore (db_token), upper (DB_TOKEN)",
    )
    parser.add_argument("--prefix", default="", help="put in front of every variable name")
    parser.add_argument(
        "--auth",
        type=azure_auth.argument_type(azure_auth.CHOICES),
        default="auto",
        metavar="MODE",
        help=f"Azure credential, {azure_auth.help_text(azure_auth.CHOICES)}; default auto (see azure_auth.py for the order)",
    )
    parser.add_argument(
        "--output",
        nargs="+",
        default=["vso"],
        metavar=("vso|env-file", "FILE"),
        help="vso (default): secret pipeline variables; env-file FILE: a 0600 file, outside Azure Pipelines only",
    )
    parser.add_argument(
        "--ca-bundle", help="PEM file of CAs to trust (also REQUESTS_CA_BUNDLE); for private endpoints and emulators"
    )
    parser.add_argument(
        "--no-verify-challenge-resource",
        action="store_true",
        help="accept a challenge whose resource does not match the vault host (private endpoints, emulators only)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help=f"secrets read in parallel (default {settings.DEFAULT_CONCURRENCY})",
    )
    args = parser.parse_args(argv)

    env_file = _output_target(args.output)
    if args.ca_bundle and not Path(args.ca_bundle).is_file():
        raise InputError(f"CA bundle {args.ca_bundle} does not exist", hint="give the PEM file of the vault's CA")
    # No config here: it is read (in _vault_and_refs) only when the flags leave the vault or the secrets open.
    step = settings.Settings.from_args(args)
    url, named = _vault_and_refs(args)
    if named:  # named secrets fail fast on a name clash, before any call
        keyvault.map_names(named, args.name_style, args.prefix)

    started = time.monotonic()
    credential, description = azure_auth.credential(args.auth)
    _note(f"Key Vault {url}: signing in with {description}")
    client = keyvault.open_client(
        url, credential, ca_bundle=args.ca_bundle, verify_challenge_resource=not args.no_verify_challenge_resource
    )
    refs, skipped = list(named), []
    if args.all:
        try:
            listed, skipped = keyvault.list_enabled(client)
        except Exception as error:
            raise keyvault.remote_failure("listing secrets of", url, error) from None
        wanted = {ref.name.lower() for ref in named}
        refs += [ref for ref in listed if ref.name.lower() not in wanted]
        skipped = [item for item in skipped if item.name.lower() not in wanted]
    variables = keyvault.map_names(refs, args.name_style, args.prefix)
    if env_file is not None:
        bad = [name for name in variables.values() if not _ENV_NAME.match(name)]
        if bad:
            raise UsageError(
                f"{', '.join(bad)} cannot be environment variable names", hint="use --name-style underscore or upper"
            )

    fetched, failures = keyvault.fetch(client, variables, concurrency=step.concurrency)
    if failures:
        by_reason: dict[str, list[str]] = {}
        for failure in failures:
            by_reason.setdefault(failure.reason, []).append(failure.name)
        reasons = "; ".join(f"{', '.join(names)}: {reason}" for reason, names in by_reason.items())
        raise OperationFailed(
            f"{len(failures)} of {len(refs)} secrets could not be read from {url}: {reasons}", hint="nothing was set"
        )

    if env_file is not None:
        _write_env_file(env_file, fetched)
        ado.relay(f"wrote {len(fetched)} secrets to {env_file} (mode 0600): {', '.join(s.variable for s in fetched)}")
    else:
        for secret in fetched:
            ado.set_variable(secret.variable, secret.value, secret=True)
    _summary(url, fetched, skipped, time.monotonic() - started, env_file is not None)
    return 0


def _output_target(output: list[str]) -> Path | None:
    """None for vso, else the env-file path; env-file is refused inside Azure Pipelines."""
    kind = output[0]
    if kind == "vso" and len(output) == 1:
        return None
    if kind == "env-file" and len(output) == 2:
        if ado.in_pipeline():
            raise UsageError(
                "--output env-file writes secrets to disk and is for local debugging only",
                hint="in Azure Pipelines use --output vso and map the variables with env:",
            )
        return Path(output[1])
    raise UsageError(f"--output {' '.join(output)} is not valid", hint="use --output vso or --output env-file FILE")


def _summary(
    url: str, fetched: list[keyvault.Fetched], skipped: list[keyvault.Skipped], seconds: float, to_file: bool
) -> None:
    names = ", ".join(f"{s.variable} <- {s.ref}" if s.variable != s.ref.name else s.variable for s in fetched) or "none"
    _note(
        f"Key Vault {url}: {len(fetched)} secrets {'written' if to_file else 'set as secret variables'} in {seconds:.1f}s: {names}"
    )
    if skipped:
        _note(f"skipped {len(skipped)}: " + ", ".join(f"{item.name} ({item.reason})" for item in skipped))
    if not to_file and not ado.in_pipeline():
        _note(
            "not running in Azure Pipelines (TF_BUILD unset): nothing was exported; use --output env-file FILE to debug locally"
        )


if __name__ == "__main__":
    sys.exit(main())
