"""Local fake of the five analytics export APIs (stdlib only) for tests, the demo and users' CI.

One module per API (``browsee``, ``braze``, ``openpanel``, ``peer5``, ``sealmetrics``) holds its
data generator (the truth tests compare exports with) and its routes; ``synthetic`` the seeded
pieces they share; ``server`` the HTTP plumbing, faults and request log; ``config`` every knob,
including one switch per open question of a service (each API module lists its own);
``late`` when late data arrives (the past keeps changing); ``truth`` the truth over HTTP;
``credentials`` the fixed keys and Airflow connections; ``airflow_runner`` and ``demo`` run DAGs
against it.
"""

from .config import FaultConfig, SandboxConfig
from .credentials import CREDENTIALS, connection_env
from .server import SandboxServer

__all__ = ["CREDENTIALS", "FaultConfig", "SandboxConfig", "SandboxServer", "connection_env"]
