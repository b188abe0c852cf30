"""``python -m analytics_export_sandbox``: run the sandbox until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading

from .config import APIS, FaultConfig, SandboxConfig
from .credentials import connection_env
from .server import SandboxServer

#: Not 8080: that is the default port of Airflow's own api-server, often running next to the sandbox.
DEFAULT_PORT = 8765


def build_parser() -> argparse.ArgumentParser:
    """The command line (also read by tests: its default port must not clash with Airflow's)."""
    parser = argparse.ArgumentParser(
        prog="python -m analytics_export_sandbox",
        description="Local fake of the Browsee/Braze/OpenPanel/Peer5/Sealmetrics APIs",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--latency-ms", type=int, default=0, help="added latency for every API")
    parser.add_argument(
        "--job-delay", type=float, default=3.0, help="Sealmetrics background job duration (s)"
    )
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--fault-seed", type=int, default=1)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    config = SandboxConfig(
        seed=args.seed,
        latency_ms=dict.fromkeys(APIS, args.latency_ms),
        sealmetrics_job_delay=args.job_delay,
        faults=FaultConfig(rate=args.fault_rate, seed=args.fault_seed),
    )
    config.faults.validate()
    server = SandboxServer(config, host=args.host, port=args.port)
    for key, value in connection_env(server.url).items():
        print(f"export {key}={shlex.quote(value)}")
    print(f"Sandbox listening on {server.url}", flush=True)

    stop = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    server.start()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
