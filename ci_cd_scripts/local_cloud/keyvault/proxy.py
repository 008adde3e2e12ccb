"""An HTTP ``CONNECT`` proxy on loopback that sends ``https://<name>.vault.azure.net`` to the local Key Vault.

A step that sets ``HTTPS_PROXY`` to it reaches the vault named in the config without any change to the step or the
config: the client opens a tunnel to ``kv-x.vault.azure.net:443``, the proxy connects it to the local vault, and TLS
runs end to end with the local CA's certificate for ``*.vault.azure.net`` (trusted through ``REQUESTS_CA_BUNDLE``).
Tunnels to anything else are refused with 403, so nothing in such a step reaches the internet with a throwaway
credential. Every tunnel has an idle deadline.
"""

from __future__ import annotations

import socket
import socketserver
import threading

IDLE_SECONDS = 120
_MAX_HEADER = 16384


class VaultProxy:
    def __init__(self, vault_port: int, suffix: str = ".vault.azure.net") -> None:
        self.vault_port = vault_port
        self.suffix = suffix
        self.tunnels: list[str] = []  # the hosts tunnelled, for inspection
        self._server: socketserver.ThreadingTCPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "proxy not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def allowed(self, host: str, port: int) -> bool:
        host = host.lower().strip("[]")
        if host in ("127.0.0.1", "localhost") and port == self.vault_port:
            return True
        return host.endswith(self.suffix) and port == 443

    def start(self) -> VaultProxy:
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._handle(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request, client_address):  # clients hanging up are not errors here
                pass

        self._server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="vault-proxy", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _handle(self, client: socket.socket) -> None:
        client.settimeout(IDLE_SECONDS)
        head = b""
        while b"\r\n\r\n" not in head and len(head) < _MAX_HEADER:
            chunk = client.recv(4096)
            if not chunk:
                return
            head += chunk
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split()
        host, _, port_text = (parts[1] if len(parts) == 3 else "").rpartition(":")
        if len(parts) != 3 or parts[0].upper() != "CONNECT" or not port_text.isdigit():
            client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        if not self.allowed(host, int(port_text)):
            client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.vault_port), timeout=IDLE_SECONDS)
        except OSError:
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        self.tunnels.append(host)
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        rest = head.split(b"\r\n\r\n", 1)[1]
        if rest:
            upstream.sendall(rest)
        back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
        back.start()
        _pipe(client, upstream)
        back.join(IDLE_SECONDS)
        upstream.close()


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (target, source):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
