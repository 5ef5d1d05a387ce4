"""A real three-node Redis Cluster on loopback ports, created for a test module and torn down after."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from redis.cluster import RedisCluster

from tests.helpers import missing_tool


def _free_port() -> int:
    """A free loopback port whose cluster-bus port (port + 10000) is free too."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


@contextmanager
def redis_cluster(folder: Path, nodes: int = 3) -> Iterator[list[int]]:
    """Start ``nodes`` cluster-enabled redis-servers, join them into one cluster, yield their ports."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        missing_tool("needs redis-server and redis-cli (Debian package redis-server)")
    ports: list[int] = []
    try:
        for index in range(nodes):
            port = _free_port()
            node_dir = folder / f"node{index}"
            node_dir.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [
                    "redis-server",
                    "--port", str(port),
                    "--bind", "127.0.0.1",
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", str(node_dir / "nodes.conf"),
                    "--dir", str(node_dir),
                    "--save", "",
                    "--appendonly", "no",
                    "--daemonize", "yes",
                    "--logfile", str(node_dir / "redis.log"),
                ],
                check=True,
            )  # fmt: skip
            ports.append(port)
            _wait_ping(port)
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        _wait_cluster_ok(ports)
        yield ports
    finally:
        for port in ports:
            with contextlib.suppress(redis.RedisError):
                redis.Redis(host="127.0.0.1", port=port).shutdown(nosave=True)


def _wait_ping(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5).ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _wait_cluster_ok(ports: list[int], timeout: float = 30.0) -> None:
    """Until every node reports ``cluster_state:ok`` and knows all the others."""
    deadline = time.monotonic() + timeout
    while True:
        infos = [redis.Redis(host="127.0.0.1", port=p).cluster("INFO") for p in ports]
        if all(
            i.get("cluster_state") == "ok" and int(i.get("cluster_known_nodes", 0)) == len(ports)
            for i in infos
        ):
            client = RedisCluster(host="127.0.0.1", port=ports[0])
            try:
                client.ping()
                return
            finally:
                client.close()
        if time.monotonic() > deadline:
            raise RuntimeError(f"cluster did not become ok: {infos}")
        time.sleep(0.1)
