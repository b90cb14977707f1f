"""A closed-loop HTTP load generator: N clients, each a thread with its own keep-alive
connection, POSTing the same request back to back for a fixed time.

Each client is a bare ``http.client.HTTPConnection``: measured against gunicorn serving a
fixed body on these 2 cores, ``requests.Session`` clients topped out near 1,000 requests/s
(the server then used a fraction of a core) where ``http.client`` reached about 3,300, so
with ``requests`` the baseline would measure the client. The clients run in spawned
processes (``spawn``, not ``fork``: the parent may hold a gRPC client), one by default:
with ``http.client``, two client processes gave no more throughput at 16 and 64 clients
and took CPU from the server. Every process waits at a barrier until all clients are
connected, then runs a warm-up that is not counted, then the measured window. A
request counts when it both starts and ends inside the window; its latency is measured
with ``perf_counter``. This module imports nothing of the project, so clients start fast.
"""

from __future__ import annotations

import http.client
import multiprocessing
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class LoadResult:
    clients: int
    seconds: float
    latencies: list[float]  # seconds, sorted, of the requests counted
    errors: int
    first_error: str | None

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.seconds


def _post(connection: http.client.HTTPConnection, target: Target) -> tuple[int, bytes]:
    connection.request("POST", target.path, body=target.body, headers=target.headers)
    response = connection.getresponse()
    return response.status, response.read()


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    path: str
    body: bytes
    headers: dict[str, str]

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=30)


def _client_process(
    target: Target,
    threads: int,
    warmup: float,
    duration: float,
    barrier: Any,
    results: Any,
) -> None:
    connections = [target.connect() for _ in range(threads)]
    recorded: list[list[float]] = [[] for _ in range(threads)]
    errors = [0] * threads
    first_error: list[str] = []
    ready = threading.Barrier(threads + 1)
    window: list[float] = []

    def client(index: int) -> None:
        mine = recorded[index]
        # Connect before the clock starts, so the first measured request is keep-alive.
        try:
            _post(connections[index], target)
        except (OSError, http.client.HTTPException):
            connections[index].close()
        ready.wait()
        measure_from, end = window
        while True:
            started_wall = time.time()
            if started_wall >= end:
                break
            started = time.perf_counter()
            try:
                status, text = _post(connections[index], target)
                ok, problem = status == 200, f"HTTP {status}: {text[:300]!r}"
            except (OSError, http.client.HTTPException) as exc:
                connections[index].close()  # the next request reconnects
                ok, problem = False, f"{type(exc).__name__}: {exc}"
            elapsed = time.perf_counter() - started
            if started_wall < measure_from or time.time() > end:
                continue
            if ok:
                mine.append(elapsed)
            else:
                errors[index] += 1
                if not first_error:
                    first_error.append(problem)

    workers = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()  # every process connected: start together
    start = time.time()
    window.extend((start + warmup, start + warmup + duration))
    ready.wait()
    for worker in workers:
        worker.join()
    for connection in connections:
        connection.close()
    latencies = [x for mine in recorded for x in mine]
    results.put((latencies, sum(errors), first_error[0] if first_error else None))


def run_load(
    url: str,
    clients: int,
    duration: float,
    warmup: float = 1.0,
    processes: int = 1,
    headers: dict[str, str] | None = None,
    body: bytes = b"{}",
) -> LoadResult:
    """``clients`` concurrent clients POSTing ``body`` to ``url`` (http) for ``warmup`` +
    ``duration`` seconds."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None or parts.port is None:
        raise ValueError("url must be http://host:port/path")
    target = Target(
        host=parts.hostname,
        port=parts.port,
        path=parts.path + (f"?{parts.query}" if parts.query else ""),
        body=body,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    processes = max(1, min(processes, clients))
    each, extra = divmod(clients, processes)
    shares = [each + (1 if i < extra else 0) for i in range(processes)]
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results = context.Queue()
    children = [
        context.Process(
            target=_client_process,
            args=(target, share, warmup, duration, barrier, results),
            daemon=True,
        )
        for share in shares
    ]
    for child in children:
        child.start()
    latencies: list[float] = []
    errors, first_error = 0, None
    deadline = time.monotonic() + warmup + duration + 120
    try:
        # Read before joining: a child cannot exit while its result is still queued.
        received = 0
        while received < len(children):
            try:
                mine, failed, problem = results.get(timeout=1.0)
            except queue.Empty:
                crashed = [c.exitcode for c in children if c.exitcode not in (None, 0)]
                if crashed or time.monotonic() > deadline:
                    raise RuntimeError(f"load clients failed (exit codes {crashed})") from None
                continue
            received += 1
            latencies.extend(mine)
            errors += failed
            first_error = first_error or problem
    finally:
        for child in children:
            child.join(timeout=10)
            if child.is_alive():
                child.kill()
    latencies.sort()
    return LoadResult(clients, duration, latencies, errors, first_error)
