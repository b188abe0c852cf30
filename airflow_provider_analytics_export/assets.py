"""Asset events for exports: downstream DAGs schedule on an export and read what landed.

Destinations are templated (one file per day or hour), so the asset an export task
declares at parse time cannot be the file itself. Each export task therefore updates one
static asset per task, :func:`export_asset` (or the ``outlets`` it is given), and each
event's extra says what landed in this run::

    {"uri": "s3://bucket/browsee/2024-04-14/sessions.jsonl", "rows": 1234, "bytes": 56789,
     "format": "jsonl", "window_start": "2024-04-14T00:00:00+00:00", "window_end": "..."}

An :class:`~airflow.sdk.AssetAlias` in ``outlets`` instead receives the rendered file as
an asset of its own (``Asset(uri=<rendered destination>)``), for consumers that want one
asset per file.

Revisits (README "Late data") that replaced an earlier partition are corrections: an alias
receives one more event per replaced file (its extra has ``correction: true``, ``rows_before``
and ``rows_after``), and the task's asset event lists them under ``corrections``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, AssetAlias

from airflow_provider_analytics_export.lineage import ExportLineageMixin

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.definitions.mappedoperator import OperatorPartial

#: Scheme of the default export assets (``x-`` schemes are left alone by Airflow's URI normalizers).
EXPORT_ASSET_SCHEME = "x-analytics-export"
#: Asset group of the default export assets (groups them in the Assets view).
EXPORT_ASSET_GROUP = "analytics-export"
#: Keys of the task's return value copied into the asset event's extra, when present.
EVENT_EXTRA_KEYS = ("uri", "rows", "bytes", "format", "window_start", "window_end", "date_from", "date_to")

PostExecuteHook = Callable[["Context", Any], None]


def export_asset(dag_id: str, task_id: str) -> Asset:
    """The asset an export task updates unless it is given ``outlets``; schedule consumers on it.

    :param dag_id: the producer DAG's id.
    :param task_id: the export task's id (with its task group prefix, if any).
    """
    return Asset(
        name=f"{dag_id}.{task_id}",
        uri=f"{EXPORT_ASSET_SCHEME}://{dag_id}/{task_id}",
        group=EXPORT_ASSET_GROUP,
    )


def event_extra(result: Mapping[str, Any]) -> dict[str, Any]:
    """What landed, from an export's return value: destination URI, counts, format and window."""
    return {key: result[key] for key in EVENT_EXTRA_KEYS if result.get(key) is not None}


def record_export_event(context: Context, result: Any) -> None:
    """Attach the export's summary to the event of every outlet of the running task.

    Assets get the summary as their event's extra; aliases get the rendered destination
    as an asset event. A task that returned no summary (nothing exported) adds nothing.
    """
    if not isinstance(result, Mapping) or not result.get("uri"):
        return
    task = context["task"]
    if isinstance(task, ExportLineageMixin):  # OpenLineage's outputStatistics are computed after this hook
        task.export_summary = dict(result)
    extra = event_extra(result)
    corrections = [
        {**revisit, "correction": True} for revisit in result.get("revisits") or () if revisit.get("replaced")
    ]
    if corrections:
        extra["corrections"] = corrections
    outlet_events = context["outlet_events"]
    for outlet in task.outlets:
        if isinstance(outlet, AssetAlias):
            outlet_events[outlet].add(Asset(uri=str(result["uri"])), extra=event_extra(result))
            for correction in corrections:
                outlet_events[outlet].add(Asset(uri=str(correction["uri"])), extra=correction)
        elif isinstance(outlet, Asset):
            outlet_events[outlet].extra.update(extra)


def with_export_event(post_execute: PostExecuteHook | None) -> PostExecuteHook:
    """A ``post_execute`` hook recording the asset event, then running the user's own hook."""

    def hook(context: Context, result: Any) -> None:
        record_export_event(context, result)
        if post_execute is not None:
            post_execute(context, result)

    return hook


def wire_export_outlets(kwargs: dict[str, Any]) -> bool:
    """Prepare BaseOperator kwargs so the task posts its export event; True if outlets are defaulted.

    Called before ``BaseOperator.__init__``: chains the ``post_execute`` hook (the only hook
    Airflow hands the task's return value to) and tells whether the caller gave ``outlets``
    (an explicit empty list opts out of the default asset).
    """
    kwargs["post_execute"] = with_export_event(kwargs.get("post_execute"))
    return "outlets" not in kwargs


def default_partial_outlets(partial: OperatorPartial) -> None:
    """Declare ``export_asset`` on ``Operator.partial(...)``: a mapped task's asset must exist at parse time.

    ``partial`` has already resolved the DAG and the task id (with its task group prefix),
    so nothing is looked up from Airflow's parse-time context here.
    """
    dag = partial.kwargs.get("dag")
    if dag is not None:
        partial.kwargs["outlets"] = [export_asset(dag.dag_id, partial.kwargs["task_id"])]


def default_outlets(operator: BaseOperator) -> list[Asset]:
    """``[export_asset(dag_id, task_id)]`` for an operator created inside a DAG, else nothing."""
    if operator.has_dag():
        return [export_asset(operator.dag_id, operator.task_id)]
    return []
