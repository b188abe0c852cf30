"""Airflow internals the tests use whose home moved between Airflow 3 releases (3.0 to the newest)."""

from __future__ import annotations

from typing import Any

try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # older Airflow 3
    from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
try:
    from airflow.sdk.types import TaskInstanceKey
except ImportError:  # older Airflow 3
    from airflow.models.taskinstancekey import TaskInstanceKey  # type: ignore[no-redef]
try:
    from airflow.serialization.serialized_objects import DagSerialization
except ImportError:  # older Airflow 3
    from airflow.serialization.serialized_objects import SerializedDAG as DagSerialization  # type: ignore[no-redef]


def dag_bag(folder: str) -> DagBag:
    """The DAGs of ``folder`` alone: older releases' DagBag also loads the example DAGs unless told not to."""
    try:
        return DagBag(folder, include_examples=False)
    except TypeError:  # newer releases: no include_examples, no examples
        return DagBag(folder)


def core_timetable(timetable: Any) -> Any:
    """The scheduler's timetable for a DAG's: newer releases convert an SDK one; older, they are the same."""
    try:
        from airflow.serialization.encoders import coerce_to_core_timetable
    except ImportError:
        return timetable
    return coerce_to_core_timetable(timetable)


def airflow_version() -> tuple[int, int]:
    """(major, minor) of the running Airflow."""
    from airflow import __version__

    major, minor = __version__.split(".")[:2]
    return int(major), int(minor)


__all__ = ["DagBag", "DagSerialization", "TaskInstanceKey", "airflow_version", "core_timetable", "dag_bag"]
