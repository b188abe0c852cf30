"""README "Operator arguments" names every argument a DAG author can pass to our operators and sensor."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from airflow_provider_analytics_export.operators.braze import BrazeSessionsExportOperator
from airflow_provider_analytics_export.operators.browsee import BrowseeSessionsExportOperator
from airflow_provider_analytics_export.operators.openpanel import (
    OpenPanelChartsExportOperator,
    OpenPanelEventsExportOperator,
)
from airflow_provider_analytics_export.operators.peer5 import Peer5ExportOperator
from airflow_provider_analytics_export.operators.sealmetrics import (
    SealmetricsCreateExportOperator,
    SealmetricsDownloadExportOperator,
    SealmetricsExportOperator,
)
from airflow_provider_analytics_export.sensors.sealmetrics import SealmetricsExportSensor

README = Path(__file__).resolve().parents[1] / "README.md"
OPERATORS = (
    BrowseeSessionsExportOperator,
    BrazeSessionsExportOperator,
    OpenPanelEventsExportOperator,
    OpenPanelChartsExportOperator,
    Peer5ExportOperator,
    SealmetricsExportOperator,
    SealmetricsCreateExportOperator,
    SealmetricsDownloadExportOperator,
    SealmetricsExportSensor,
)
#: Airflow's own arguments (BaseOperator, BaseSensorOperator), documented by Airflow.
AIRFLOW_OWN = {"kwargs", "task_id", "poke_interval", "timeout", "mode", "soft_fail", "exponential_backoff"}


def own_arguments(operator: type) -> set[str]:
    """The keyword arguments of ``operator``'s ``__init__`` and of our bases' (not Airflow's)."""
    names: set[str] = set()
    for cls in operator.__mro__:
        if cls.__module__.startswith("airflow_provider_analytics_export") and "__init__" in vars(cls):
            names |= set(inspect.signature(cls.__init__).parameters) - {"self"}
    return names - AIRFLOW_OWN


@pytest.mark.parametrize("operator", OPERATORS, ids=lambda cls: cls.__name__)
def test_every_argument_is_in_the_readme(operator: type) -> None:
    section = README.read_text().split("## Operator arguments", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([a-z_0-9]+)`", section))
    assert own_arguments(operator) - documented == set()
