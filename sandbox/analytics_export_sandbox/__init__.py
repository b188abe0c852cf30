"""Local fake of the five analytics export APIs (stdlib only) for tests, the demo and users' CI."""

from .config import FaultConfig, SandboxConfig
from .credentials import CREDENTIALS, connection_env
from .server import SandboxServer

__all__ = ["CREDENTIALS", "FaultConfig", "SandboxConfig", "SandboxServer", "connection_env"]
