"""What the shared limit backend (Redis) adds per request, next to the in-process limit.

Two measurements, both with a real redis-server on localhost started here:

- ``slot``: the limit alone, ``with limit.slot(): pass``, for Browsee's rule (one open request:
  a renewed lease) and OpenPanel's (a 100-per-10-s moving window, sized so it never waits).
- ``request``: a whole Browsee ``check_connection`` against the sandbox (its own process), with
  and without ``limit_backend``: what a task really pays per API call.

The Redis on a deployment's network is farther than localhost: add its round trip (about two per
request for a window, three for a lease) to these numbers.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: The added latency per request a deployment can accept from the backend on a local network.
TARGET_ADDED_MS = 2.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


@contextmanager
def _process(args: list[str], port: int) -> Iterator[None]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(port)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _timed(action: Callable[[], Any], count: int) -> dict[str, float]:
    """Median and 95th percentile in ms of ``count`` calls, after a few warm-up calls."""
    for _ in range(min(20, count)):
        action()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {"median_ms": statistics.median(samples), "p95_ms": samples[int(0.95 * (len(samples) - 1))]}


def bench_slot(redis_url: str, count: int) -> dict[str, dict[str, float]]:
    from airflow_provider_analytics_export.transport.limits import RequestLimit
    from airflow_provider_analytics_export.transport.redis_limits import RedisLimit

    def use(limit: Any) -> Callable[[], None]:
        def once() -> None:
            with limit.slot():
                pass

        return once

    rules: dict[str, dict[str, Any]] = {
        "lease (Browsee)": {"max_in_flight": 1},
        "window (OpenPanel)": {"max_calls": 10**9, "period": 10.0},
    }
    out = {}
    for name, rule in rules.items():
        out[f"{name}, in-process"] = _timed(use(RequestLimit(**rule)), count)
        out[f"{name}, Redis"] = _timed(use(RedisLimit(redis_url, f"bench|{name}", **rule)), count)
    return out


def bench_request(redis_url: str, count: int) -> dict[str, dict[str, float]]:
    from airflow_provider_analytics_export.hooks.browsee import BrowseeHook
    from analytics_export_sandbox import connection_env

    port = _free_port()
    sandbox = [sys.executable, "-m", "analytics_export_sandbox", "--port", str(port)]
    out = {}
    with _process(sandbox, port):
        base = json.loads(connection_env(f"http://127.0.0.1:{port}")["AIRFLOW_CONN_BROWSEE_DEFAULT"])
        for name, extra in (("in-process", {}), ("Redis", {"limit_backend": redis_url})):
            os.environ[f"AIRFLOW_CONN_BENCH_{len(out)}"] = json.dumps({**base, "extra": extra})
            hook = BrowseeHook(f"bench_{len(out)}")
            out[f"Browsee request, {name}"] = _timed(hook.check_connection, count)
    return out


def run(quick: bool = False) -> dict[str, Any]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (make redis-server)")
    port = _free_port()
    redis_url = f"redis://127.0.0.1:{port}/0"
    server = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with _process(server, port):
        slot = bench_slot(redis_url, 500 if quick else 5000)
        request = bench_request(redis_url, 100 if quick else 1000)
    targets = []
    for rule in ("lease (Browsee)", "window (OpenPanel)"):
        added = slot[f"{rule}, Redis"]["median_ms"] - slot[f"{rule}, in-process"]["median_ms"]
        targets.append(
            {
                "target": f"Redis {rule}: added latency per request <= {TARGET_ADDED_MS:.0f} ms (median)",
                "measured": f"{added:.2f} ms",
                "passed": added <= TARGET_ADDED_MS,
            }
        )
    with_redis, in_process = request["Browsee request, Redis"], request["Browsee request, in-process"]
    added = with_redis["median_ms"] - in_process["median_ms"]
    targets.append(
        {
            "target": f"Browsee request with Redis: added latency <= {TARGET_ADDED_MS:.0f} ms (median)",
            "measured": f"{added:.2f} ms",
            "passed": added <= TARGET_ADDED_MS,
        }
    )
    return {"slot": slot, "request": request, "targets": targets}


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
