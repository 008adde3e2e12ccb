"""A stand-in ``az`` for steps run against the local cloud: ``az account get-access-token`` answers with the local
Key Vault's throwaway token (from ``LOCAL_CLOUD_AZ_TOKEN`` in the step's environment, never written to disk), in the
JSON shape azure-identity's ``AzureCliCredential`` reads; ``az account show`` names a local subscription. Anything
else says it is not served locally and exits 2. The real ``az`` is never called."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from cicdkit import atomic

TENANT = "72f988bf-0000-4000-8000-000000000001"
SUBSCRIPTION = "00000000-0000-4000-8000-0000000010ca"

_SHIM = """
import json, os, sys, time
args = [a for a in sys.argv[1:] if a not in ("--output", "json", "-o")]
if args[:2] == ["account", "get-access-token"]:
    expires = int(time.time()) + 3600
    print(json.dumps({{
        "accessToken": os.environ.get("LOCAL_CLOUD_AZ_TOKEN", ""),
        "expiresOn": time.strftime("%Y-%m-%d %H:%M:%S.000000", time.localtime(expires)),
        "expires_on": expires,
        "subscription": "{subscription}",
        "tenant": "{tenant}",
        "tokenType": "Bearer",
    }}))
    sys.exit(0)
if args[:2] == ["account", "show"]:
    print(json.dumps({{"id": "{subscription}", "tenantId": "{tenant}", "name": "local", "user": {{"name": "local"}}}}))
    sys.exit(0)
print("az (local_cloud stand-in): only 'az account get-access-token' and 'az account show' are served locally",
      file=sys.stderr)
sys.exit(2)
"""


def write_shim(folder: Path) -> Path:
    """Write the ``az`` stand-in into `folder` (put it first on PATH); returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic.write_text(folder / "az_stand_in.py", _SHIM.format(subscription=SUBSCRIPTION, tenant=TENANT))
    # A shell wrapper, not a #! line naming Python: the interpreter's path may hold spaces.
    launcher = f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$(dirname "$0")/az_stand_in.py" "$@"\n'
    atomic.write_text(folder / "az", launcher, mode=0o755)
    return folder
