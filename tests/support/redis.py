"""Real Redis for tests: the server at 127.0.0.1:6379, or one a test starts on a free port of its own."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator

import redis

DEFAULT_URL = "redis://127.0.0.1:6379"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    for _ in range(200):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def reachable(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


class RedisServer:
    """A redis-server process this test owns: start, stop and restart it on its own port."""

    def __init__(self, port: int | None = None) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed")
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self._dir = tempfile.mkdtemp(prefix="claude-rbac-redis-")
        self._process: subprocess.Popen[bytes] | None = None
        self.extra: list[str] = []

    def start(self) -> RedisServer:
        self._process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._dir,
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not reachable(self.url):
            if time.monotonic() > deadline or self._process.poll() is not None:
                self.stop()
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections hang instead of failing."""
        assert self._process is not None
        self._process.send_signal(19)

    def resume(self) -> None:
        assert self._process is not None
        self._process.send_signal(18)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


@contextlib.contextmanager
def shared_redis() -> Iterator[str]:
    """The URL of a Redis for this test session: 127.0.0.1:6379 when it answers, else one we start.

    With CI=true a Redis that cannot be had is a failure, not a skip.
    """
    if reachable(DEFAULT_URL):
        yield DEFAULT_URL
        return
    try:
        server = RedisServer().start()
    except RuntimeError:
        if os.environ.get("CI", "").lower() == "true":
            raise
        yield ""
        return
    try:
        yield server.url
    finally:
        server.stop()


def unique_prefix() -> str:
    return f"claude_rbac_test_{uuid.uuid4().hex[:12]}"


def delete_prefix(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"*{prefix}*", count=1000))
    if keys:
        client.delete(*keys)


class RedisCluster:
    """Three cluster-enabled redis-servers joined into one cluster, on free ports."""

    def __init__(self) -> None:
        self.nodes = [RedisServer(free_cluster_port()) for _ in range(3)]
        self.url = "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def __enter__(self) -> RedisCluster:
        try:
            self._form()
        except BaseException:
            self.__exit__()  # a cluster that fails to form must not leave its nodes running
            raise
        return self

    def _form(self) -> None:
        for node in self.nodes:
            node.extra = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            node.start()
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{n.port}" for n in self.nodes),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        first = redis.Redis(port=self.nodes[0].port)
        deadline = time.monotonic() + 15
        while first.cluster("info").get("cluster_state") != "ok":
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not come up")
            time.sleep(0.1)
        first.close()

    def __exit__(self, *exc: object) -> None:
        for node in self.nodes:
            node.__exit__()


class RedisSentinel:
    """A master redis-server watched by one sentinel: ``redis+sentinel://host:port/mymaster``."""

    def __init__(self) -> None:
        self.master = RedisServer()
        self.port = free_port()
        self.url = f"redis+sentinel://127.0.0.1:{self.port}/mymaster"
        self._dir = tempfile.mkdtemp(prefix="claude-rbac-sentinel-")
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> RedisSentinel:
        try:
            self._start()
        except BaseException:
            self.__exit__()  # nothing of a sentinel that failed to start is left running
            raise
        return self

    def _start(self) -> None:
        self.master.start()
        config = os.path.join(self._dir, "sentinel.conf")
        with open(config, "w") as fh:
            fh.write(
                f"port {self.port}\nbind 127.0.0.1\ndir {self._dir}\n"
                f"sentinel monitor mymaster 127.0.0.1 {self.master.port} 1\n"
            )
        self._process = subprocess.Popen(
            ["redis-server", config, "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        sentinel = redis.Redis(port=self.port, socket_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                if sentinel.execute_command("SENTINEL", "get-master-addr-by-name", "mymaster"):
                    break
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the sentinel did not come up")
            time.sleep(0.05)
        sentinel.close()

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
        self.master.__exit__()
        shutil.rmtree(self._dir, ignore_errors=True)
