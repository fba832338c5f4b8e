"""A TCP proxy on 127.0.0.1 that counts round trips and can hang: for Redis round-trip and outage tests.

A round trip is one turn of the conversation: the client sends, then waits for the server's answer.
The proxy counts, per connection, each time the client speaks after the server has (or first).
``hang()`` keeps connections open but forwards nothing, as a network partition or a frozen server does.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from typing import Any


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = int(self._listener.getsockname()[1])
        self.round_trips = 0
        self.connections = 0
        self.hanging = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> TcpProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def reset(self) -> None:
        with self._lock:
            self.round_trips = 0

    def hang(self, value: bool = True) -> None:
        self.hanging = value

    def _serve(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._listener, selectors.EVENT_READ, None)
        peers: dict[socket.socket, tuple[socket.socket, str, dict[str, Any]]] = {}
        while not self._stop.is_set():
            for key, _ in selector.select(timeout=0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._listener:
                    client, _ = self._listener.accept()
                    try:
                        upstream = socket.create_connection(self.target, timeout=2)
                    except OSError:
                        client.close()
                        continue
                    state: dict[str, Any] = {"last": "server"}
                    self.connections += 1
                    peers[client] = (upstream, "client", state)
                    peers[upstream] = (client, "server", state)
                    selector.register(client, selectors.EVENT_READ, None)
                    selector.register(upstream, selectors.EVENT_READ, None)
                    continue
                if self.hanging:
                    time.sleep(0.005)
                    continue
                if sock not in peers:
                    continue  # closed with its peer earlier in this batch
                other, side, state = peers[sock]
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    for end in (sock, other):
                        selector.unregister(end)
                        peers.pop(end, None)
                        end.close()
                    continue
                if side == "client" and state["last"] == "server":
                    with self._lock:
                        self.round_trips += 1
                state["last"] = side
                other.sendall(data)
        for sock in list(peers):
            sock.close()
        selector.close()
