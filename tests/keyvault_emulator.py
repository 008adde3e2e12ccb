"""The local Key Vault for the tests: the product's (ci_cd_scripts/local_cloud/keyvault/emulator.py, which the local
pipeline runner serves), plus a command line to run it by hand:

    python tests/keyvault_emulator.py --secret databricks-token=dapi123 [--disabled NAME=VALUE] [--expired NAME=VALUE]

prints the URL and the CA file, and removes its temporary folder on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

from helpers import SCRIPTS

if str(SCRIPTS) not in sys.path:
    sys.path.append(str(SCRIPTS))

from local_cloud.keyvault.emulator import DEFAULT_PAGE_SIZE, TENANT, KeyVaultEmulator

__all__ = ["DEFAULT_PAGE_SIZE", "TENANT", "KeyVaultEmulator", "main"]


def _assignment(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run a local HTTPS Key Vault emulator until Ctrl-C or SIGTERM.")
    parser.add_argument(
        "--token", default="kv-test-token", help="bearer token to accept (give it as AZURE_ACCESS_TOKEN)"
    )
    parser.add_argument("--secret", action="append", default=[], type=_assignment, metavar="NAME=VALUE")
    parser.add_argument(
        "--disabled",
        action="append",
        default=[],
        type=_assignment,
        metavar="NAME=VALUE",
        help="a disabled secret (403 SecretDisabled when read)",
    )
    parser.add_argument(
        "--expired",
        action="append",
        default=[],
        type=_assignment,
        metavar="NAME=VALUE",
        help="a secret that expired an hour ago",
    )
    parser.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE)
    args = parser.parse_args(argv)
    stop = threading.Event()
    # SIGTERM and SIGINT end the wait, so the `with` block removes the temporary folder holding the CA.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with KeyVaultEmulator(args.token, page_size=args.page_size) as vault:
        for name, value in args.secret:
            vault.add_secret(name, value)
        for name, value in args.disabled:
            vault.add_secret(name, value, enabled=False)
        for name, value in args.expired:
            vault.add_secret(name, value, expires=int(time.time()) - 3600)
        print(vault.url, flush=True)
        print(f"CA bundle: {vault.ca_pem} (export REQUESTS_CA_BUNDLE={vault.ca_pem})", flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
