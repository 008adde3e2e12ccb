"""The local Key Vault's way in (local_cloud/keyvault): the CONNECT proxy tunnels only vault names to it, TLS holds
for the vault's own name with the throwaway CA, and the stand-in az answers what AzureCliCredential asks."""

from __future__ import annotations

import json
import socket
import subprocess
from urllib.parse import urlsplit

import requests
from keyvault_emulator import KeyVaultEmulator

from local_cloud.keyvault import azure_cli
from local_cloud.keyvault.proxy import VaultProxy


def _connect(proxy: VaultProxy, target: str) -> bytes:
    address = urlsplit(proxy.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        return sock.recv(200)


def test_the_proxy_tunnels_vault_names_to_the_local_vault_and_refuses_the_rest() -> None:
    with KeyVaultEmulator("kv-token-for-proxy-test") as vault:
        vault.add_secret("databricks-token", "value-1")
        proxy = VaultProxy(vault.port).start()
        try:
            assert _connect(proxy, "pypi.org:443").startswith(b"HTTP/1.1 403")
            assert _connect(proxy, "kv-x.vault.azure.net:80").startswith(b"HTTP/1.1 403")
            url = "https://kv-dbx-cicd-dev.vault.azure.net/secrets/databricks-token?api-version=7.4"
            session = requests.Session()
            session.trust_env = False
            kwargs = {"proxies": {"https": proxy.url}, "verify": str(vault.ca_pem), "timeout": 10}
            challenge = session.get(url, **kwargs)
            assert challenge.status_code == 401 and "vault.azure.net" in challenge.headers["WWW-Authenticate"]
            answer = session.get(url, headers={"Authorization": "Bearer kv-token-for-proxy-test"}, **kwargs)
            assert answer.status_code == 200 and answer.json()["value"] == "value-1"
            assert set(proxy.tunnels) == {"kv-dbx-cicd-dev.vault.azure.net"}  # one kept-alive tunnel, or two
        finally:
            proxy.stop()


def test_the_stand_in_az_gives_the_token_from_its_environment_only(tmp_path) -> None:
    folder = azure_cli.write_shim(tmp_path / "bin")
    assert "kv-local-" not in (folder / "az").read_text()
    env = {"PATH": "/usr/bin:/bin", "LOCAL_CLOUD_AZ_TOKEN": "kv-local-abc"}
    args = ["account", "get-access-token", "--output", "json", "--resource", "https://vault.azure.net"]
    answer = subprocess.run([str(folder / "az"), *args], env=env, capture_output=True, text=True, timeout=30)
    token = json.loads(answer.stdout)
    assert token["accessToken"] == "kv-local-abc" and token["tokenType"] == "Bearer" and token["expires_on"] > 0
    other = subprocess.run([str(folder / "az"), "login"], env=env, capture_output=True, text=True, timeout=30)
    assert other.returncode == 2 and "are served locally" in other.stderr
