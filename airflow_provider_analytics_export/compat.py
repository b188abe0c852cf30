"""Names that moved between Airflow 3 releases, imported from wherever the running Airflow has them.

The provider supports Airflow 3.0 to the newest. The Task SDK (``airflow.sdk``) gained ``BaseHook``,
``conf``, the interval timetables and its own exception classes after 3.0, and
``ResumableJobMixin`` (with the task state store it needs) in 3.3. Older releases keep them under
``airflow.hooks``, ``airflow.configuration``, ``airflow.timetables`` and ``airflow.exceptions``,
and have no resumable jobs. Every module imports them from here, so a version difference lives
in one place; the newest location is tried first, so current Airflow imports nothing deprecated.
(``apache-airflow-providers-common-compat`` has such shims too, but its release with
``ResumableJobMixin`` needs Python 3.11, and we support 3.10.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

#: Whether retries can reconnect to a job kept in the task state store (Airflow 3.3+).
RESUMABLE_JOBS: bool

if TYPE_CHECKING:
    from airflow.sdk import (
        BaseHook,
        CronDataIntervalTimetable,
        DeltaDataIntervalTimetable,
        ResumableJobMixin,
        conf,
    )
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        TaskDeferred,
    )
    from airflow.sdk.timezone import coerce_datetime
else:
    try:
        from airflow.sdk import BaseHook, conf
    except ImportError:  # Airflow 3.0
        from airflow.configuration import conf
        from airflow.hooks.base import BaseHook
    try:
        from airflow.sdk.timezone import coerce_datetime
    except ImportError:  # Airflow 3.0
        from airflow.utils.timezone import coerce_datetime
    try:
        from airflow.sdk import CronDataIntervalTimetable, DeltaDataIntervalTimetable
    except ImportError:  # Airflow 3.0: the core timetables, which DAGs take as they are
        from airflow.timetables.interval import CronDataIntervalTimetable, DeltaDataIntervalTimetable
    try:
        from airflow.sdk.exceptions import (
            AirflowException,
            AirflowFailException,
            AirflowNotFoundException,
            TaskDeferred,
        )
    except ImportError:  # older Airflow 3: the core exceptions
        from airflow.exceptions import (
            AirflowException,
            AirflowFailException,
            AirflowNotFoundException,
            TaskDeferred,
        )
    try:
        from airflow.sdk import ResumableJobMixin

        RESUMABLE_JOBS = True
    except ImportError:  # Airflow < 3.3
        RESUMABLE_JOBS = False

        class ResumableJobMixin:
            """Stand-in below Airflow 3.3: no task state store to resume from, so every try submits a job.

            The same contract as ``airflow.sdk.ResumableJobMixin`` with ``durable=False``, which is
            what an operator did before it became resumable; ``durable`` is accepted and ignored.
            """

            external_id_key: str = "remote_job_id"

            def __init__(self, *, durable: bool = False, **kwargs: Any) -> None:
                super().__init__(**kwargs)
                self.durable = False

            def execute_resumable(self, context: Any) -> Any:
                external_id = self.submit_job(context)
                self.poll_until_complete(external_id, context)
                return self.get_job_result(external_id, context)


def timetable_attribute(timetable: Any, name: str) -> Any:
    """A timetable's ``expression``, ``timezone`` or ``delta``, or None when it has none.

    The SDK's interval timetables (3.1+) name them publicly; Airflow 3.0's core ones, which its
    DAGs carry, keep them private (``_expression``, ``_timezone``, ``_delta``).
    """
    return getattr(timetable, name, getattr(timetable, f"_{name}", None))


__all__ = [
    "RESUMABLE_JOBS",
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "BaseHook",
    "CronDataIntervalTimetable",
    "DeltaDataIntervalTimetable",
    "ResumableJobMixin",
    "TaskDeferred",
    "coerce_datetime",
    "conf",
]
