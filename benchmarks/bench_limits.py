"""What the limits cost per request, and how close to each API's rate bound exports run.

With a real redis-server on localhost and the sandbox, each in a process of its own:

- ``slot``: the limit alone, ``with limit.slot(): pass``, for Browsee's rule (one open request:
  a file lock machine-wide, a renewed lease on Redis) and OpenPanel's (its 100-per-10-s fixed
  window, sized so it never waits), on the default machine-wide backend and on Redis.
- ``request``: a whole Browsee ``check_connection`` against the sandbox, machine-wide and on
  Redis: what a task really pays per API call.
- ``rate_bound`` (issue 25): wall time of exports against the sandbox's own limit, over the
  bound the rule allows: OpenPanel pages at 300 ms in one process, and split over four
  processes on one client (machine-wide, then Redis), bound = requests / 10 per second; Browsee
  pages at 100 ms in one process, bound = pages x latency. 429s counted by the sandbox. Beside
  Browsee, two floors over the same pages: a bare ``requests`` loop (what any requests-based
  client pays), and raw HTTP/1.1 on a socket (no client library: what the sandbox and this
  machine, as loaded as they are during the run, add to pages x latency on their own).

The Redis on a deployment's network is farther than localhost: add its round trip (about one per
request for a window, three for a lease) to these numbers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.bench_baselines import configure_sandbox, sandbox_env, sandbox_process

#: The added latency per request a deployment can accept from the backend on a local network.
TARGET_ADDED_MS = 2.0
#: Issue 25: how far over the rate bound an export may run (one process; four processes).
WITHIN_ONE, WITHIN_FOUR = 0.02, 0.05
DAY = "2024-04-15"
#: The rate-bound rows that are no targets: what the machine allows, with and without requests.
FLOOR = "Floor:"
REQUESTS_FLOOR, SOCKET_FLOOR = f"{FLOOR} a bare requests loop,", f"{FLOOR} raw HTTP on a socket,"


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
    from airflow_provider_analytics_export.transport.limits import RequestRules
    from airflow_provider_analytics_export.transport.machine_limits import MachineLimit
    from airflow_provider_analytics_export.transport.redis_limits import RedisLimit

    def use(limit: Any) -> Callable[[], None]:
        def once() -> None:
            with limit.slot():
                pass

        return once

    rules = {
        "slot (Browsee)": RequestRules(max_in_flight=1),
        "window (OpenPanel)": RequestRules(max_calls=10**9, per_seconds=10.0),
    }
    out = {}
    with tempfile.TemporaryDirectory(prefix="bench-limits-") as folder:
        for name, rule in rules.items():
            machine = MachineLimit(f"bench|{name}", rule, Path(folder))
            out[f"{name}, machine-wide"] = _timed(use(machine), count)
            out[f"{name}, Redis"] = _timed(use(RedisLimit(redis_url, f"bench|{name}", rule)), count)
    return out


def bench_request(redis_url: str, count: int) -> dict[str, dict[str, float]]:
    from airflow_provider_analytics_export.hooks.browsee import BrowseeHook
    from analytics_export_sandbox import connection_env

    port = _free_port()
    sandbox = [sys.executable, "-m", "analytics_export_sandbox", "--port", str(port)]
    out = {}
    with _process(sandbox, port):
        base = json.loads(connection_env(f"http://127.0.0.1:{port}")["AIRFLOW_CONN_BROWSEE_DEFAULT"])
        for name, extra in (("machine-wide", {}), ("Redis", {"limit_backend": redis_url})):
            os.environ[f"AIRFLOW_CONN_BENCH_{len(out)}"] = json.dumps({**base, "extra": extra})
            hook = BrowseeHook(f"bench_{len(out)}")
            out[f"Browsee request, {name}"] = _timed(hook.check_connection, count)
    return out


# -- issue 25: at the rate bound ---------------------------------------------------------------------
def export_here(api: str, out: Path) -> dict[str, int]:
    """(Child process) one export of DAY, started when the parent says go."""
    import datetime as dt

    from airflow_provider_analytics_export.operators.browsee import BrowseeSessionsExportOperator
    from airflow_provider_analytics_export.operators.openpanel import OpenPanelEventsExportOperator

    start = dt.datetime.fromisoformat(DAY).replace(tzinfo=dt.timezone.utc)
    window = {"start": start, "end": start + dt.timedelta(days=1), "destination": out.as_uri()}
    operator: Any = (
        OpenPanelEventsExportOperator(task_id="bench", page_size=10, **window)
        if api == "openpanel"
        else BrowseeSessionsExportOperator(task_id="bench", page_size=100, **window)
    )
    # The task runner loads Airflow's plugins before execute() (for the template context); here
    # they would load at the first write (the lineage collector asks for them), mid-export.
    from airflow.sdk.plugins_manager import integrate_macros_plugins

    integrate_macros_plugins()
    print("ready", flush=True)
    sys.stdin.readline()
    return {"pages": operator.execute({})["pages"]}


def _exports(url: str, api: str, processes: int, backend: str | None, folder: Path) -> dict[str, Any]:
    """``processes`` exports of one account at once (each its own process); span and the sandbox's log."""
    env = {**os.environ, **sandbox_env(url), "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"}
    env["ANALYTICS_EXPORT_LIMITS_DIR"] = str(folder / "limits")  # no state left by an earlier case
    if backend:
        key = f"AIRFLOW_CONN_{api.upper()}_DEFAULT"
        conn = json.loads(env[key])
        env[key] = json.dumps({**conn, "extra": {**conn.get("extra", {}), "limit_backend": backend}})
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.bench_limits",
                "--child",
                api,
                "--out",
                str(folder / f"{i}.jsonl"),
            ],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        proc.communicate(timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"{api} export failed (exit {proc.returncode})")
    return _span(_sandbox_log(url, api), one_at_a_time=api == "browsee")


def _sandbox_log(url: str, api: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/_sandbox/requests", timeout=30) as response:
        return [e for e in json.loads(response.read())["requests"] if e["api"] == api]


def _span(log: list[dict[str, Any]], one_at_a_time: bool = False) -> dict[str, Any]:
    """By the sandbox's clock, first request in to last answer out: the span the rule governs.

    Each process's start-up, Airflow's connection lookup and the file's commit are not in it.
    ``server_s``: the server's own time; for one request at a time, the rest of the span is
    the client's, between an answer and the next request (parsing, writing, the limit):
    ``between_ms``, a page, with the wire both ways and the waits for a core.
    """
    span = max(e["ended"] for e in log) - min(e["started"] for e in log)
    server = sum(e["ended"] - e["started"] for e in log)
    out = {
        "seconds": round(span, 2),
        "requests": len(log),
        "429s": sum(1 for e in log if e["status"] == 429),
        "server_s": round(server, 2),
        "load 1m after": round(os.getloadavg()[0], 1),  # how busy the 2 cores were, case by case
    }
    if one_at_a_time and len(log) > 1:
        out["between_ms"] = round((span - server) / (len(log) - 1) * 1000, 2)
    return out


def _browsee_bodies(pages: int) -> Iterator[dict[str, Any]]:
    """The request bodies of the Browsee export of DAY, page by page (the floors send the same)."""
    from analytics_export_sandbox import CREDENTIALS

    keys = CREDENTIALS["browsee"]
    start = int(dt.datetime.fromisoformat(DAY).replace(tzinfo=dt.timezone.utc).timestamp())
    body = {"apiKey": keys["api_key"], "secretKey": keys["secret_key"], "start": start, "end": start + 86_400}
    for page in range(pages):
        yield {**body, "from": page * 100, "limit": 100}


def _plain_loop(url: str, pages: int) -> dict[str, Any]:
    """The Browsee pages through a bare ``requests`` loop (no limit, parsing or writing): the floor."""
    import requests

    with requests.Session() as session:
        for body in _browsee_bodies(pages):
            session.post(f"{url}/api/v1/export/sessions", json=body).raise_for_status()
    return _span(_sandbox_log(url, "browsee"), one_at_a_time=True)


def _socket_loop(url: str, pages: int) -> dict[str, Any]:
    """The same pages as raw HTTP/1.1 on one kept-alive socket: no client library, the server's floor.

    Each request goes in one write; each answer is read to its Content-Length and not decoded.
    """
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock, sock.makefile("rb") as answers:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for body in _browsee_bodies(pages):
            data = json.dumps(body).encode()
            head = (
                f"POST /api/v1/export/sessions HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
            )
            sock.sendall(head.encode() + data)
            status = answers.readline().split()
            if len(status) < 2 or status[1] != b"200":
                raise RuntimeError(f"the sandbox answered {status!r}")
            length = 0
            while (line := answers.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            answers.read(length)
    return _span(_sandbox_log(url, "browsee"), one_at_a_time=True)


def bench_rate_bound(
    redis_url: str | None, openpanel_pages: int, browsee_pages: int
) -> dict[str, dict[str, Any]]:
    """Exports against the sandbox's rules: seconds over the bound the rule allows, and 429s.

    ``openpanel_pages=0`` leaves the OpenPanel cases out (and with them the need for a Redis).
    """
    out: dict[str, dict[str, Any]] = {}
    cases = (
        ("one process", 1, None),
        ("four processes, machine-wide", 4, None),
        ("four processes, Redis", 4, redis_url),
    )
    with sandbox_process() as url, tempfile.TemporaryDirectory(prefix="bench-limits-") as folder:
        for name, processes, backend in cases if openpanel_pages else ():
            configure_sandbox(
                url,
                openpanel_events_per_day=openpanel_pages // processes * 10,
                openpanel_rate_limit=100,
                latency_ms={"openpanel": 300},
            )
            case = _exports(url, "openpanel", processes, backend, Path(folder) / name.replace(" ", "_"))
            case["bound_s"] = case["requests"] / 10  # 100 requests per 10 s
            out[f"OpenPanel {openpanel_pages} pages at 300 ms, {name}"] = case
        configure_sandbox(url, browsee_sessions_per_day=browsee_pages * 100, latency_ms={"browsee": 100})
        case = _exports(url, "browsee", 1, None, Path(folder) / "browsee")
        case["bound_s"] = case["requests"] * 0.1  # one open request at a time, 100 ms each
        out[f"Browsee {browsee_pages} pages at 100 ms, one process"] = case
        # Not targets: what this machine allows right now (the same pages, with requests, without).
        for floor, loop in ((REQUESTS_FLOOR, _plain_loop), (SOCKET_FLOOR, _socket_loop)):
            configure_sandbox(url, browsee_sessions_per_day=browsee_pages * 100, latency_ms={"browsee": 100})
            case = loop(url, browsee_pages)
            case["bound_s"] = case["requests"] * 0.1
            out[f"{floor} {browsee_pages} Browsee pages at 100 ms"] = case
    for case in out.values():
        case["ratio"] = f"{case['seconds'] / case['bound_s']:.3f}x"
    return out


def run(quick: bool = False, rate_bound: bool = True) -> dict[str, Any]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (make redis-server)")
    port = _free_port()
    redis_url = f"redis://127.0.0.1:{port}/0"
    server = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with _process(server, port):
        slot = bench_slot(redis_url, 500 if quick else 5000)
        request = bench_request(redis_url, 100 if quick else 1000)
        bound = (
            bench_rate_bound(redis_url, 200 if quick else 1000, 20 if quick else 100) if rate_bound else {}
        )
    targets = []
    for rule in ("slot (Browsee)", "window (OpenPanel)"):
        added = slot[f"{rule}, Redis"]["median_ms"] - slot[f"{rule}, machine-wide"]["median_ms"]
        targets.append(
            {
                "target": f"Redis {rule}: added latency per request <= {TARGET_ADDED_MS:.0f} ms (median)",
                "measured": f"{added:.2f} ms",
                "passed": added <= TARGET_ADDED_MS,
            }
        )
    with_redis, machine = request["Browsee request, Redis"], request["Browsee request, machine-wide"]
    added = with_redis["median_ms"] - machine["median_ms"]
    targets.append(
        {
            "target": f"Browsee request with Redis: added latency <= {TARGET_ADDED_MS:.0f} ms (median)",
            "measured": f"{added:.2f} ms",
            "passed": added <= TARGET_ADDED_MS,
        }
    )
    floors = {name: case for name, case in bound.items() if name.startswith(FLOOR)}
    for name, case in bound.items():
        if name.startswith(FLOOR):
            continue
        within = WITHIN_FOUR if "four" in name else WITHIN_ONE
        measured = (
            f"{case['seconds']:.2f} s ({case['ratio']}), {case['429s']} x 429, load {case['load 1m after']}"
        )
        if name.startswith("Browsee"):
            measured += f", {case['between_ms']:.1f} ms between answer and request"
            for floor_name, floor in floors.items():
                what = floor_name.removeprefix(f"{FLOOR} ").split(",")[0]
                measured += f"; {what}: {floor['ratio']}, {floor['between_ms']:.1f} ms"
        targets.append(
            {
                "target": f"{name}: within {within:.0%} of the bound ({case['bound_s']:.0f} s), no 429",
                "measured": measured,
                "passed": case["seconds"] <= (1 + within) * case["bound_s"] and case["429s"] == 0,
            }
        )
    return {"slot": slot, "request": request, "rate_bound": bound, "targets": targets}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=("openpanel", "browsee"), help="(internal) run one export here")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--quick", action="store_true", help="fewer requests and pages")
    parser.add_argument("--no-rate-bound", action="store_true", help="only the per-request costs")
    parser.add_argument(
        "--browsee-bound", action="store_true", help="only the Browsee export at its bound (no Redis)"
    )
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(export_here(args.child, args.out)))
        return 0
    if args.browsee_bound:
        print(json.dumps(bench_rate_bound(None, 0, 20 if args.quick else 100), indent=2))
        return 0
    print(json.dumps(run(quick=args.quick, rate_bound=not args.no_rate_bound), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
