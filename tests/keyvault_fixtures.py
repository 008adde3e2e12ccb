"""Key Vault fixtures: a fresh HTTPS emulator per test and the environment a script needs to reach it.

Registered in conftest.py. Each test gets its own emulator (and port): azure-keyvault-secrets caches the
parsed challenge per process and host:port, and the scripts run as subprocesses anyway.
"""

from __future__ import annotations

import pytest
from helpers import script_env
from keyvault_emulator import KeyVaultEmulator

KEYVAULT_TOKEN = "kv-emulator-token-7Q2x9"


@pytest.fixture
def keyvault():
    """A started `KeyVaultEmulator` accepting ``Bearer KEYVAULT_TOKEN``; small pages so paging is exercised."""
    with KeyVaultEmulator(KEYVAULT_TOKEN, page_size=3) as vault:
        yield vault


@pytest.fixture
def keyvault_env(keyvault):
    """Environment for ``fetch_secrets.py --auth token``: the token and the emulator's CA bundle."""
    return script_env(AZURE_ACCESS_TOKEN=KEYVAULT_TOKEN, REQUESTS_CA_BUNDLE=str(keyvault.ca_pem))
