"""The warning for an export that wrote no rows while a filter was set.

An empty file is a valid result (a quiet day), but it is also what a filter that matches nothing
writes: a profile id from another project, a misspelt event name, a segment that was deleted.
The API answers both with an empty 200, so only the task can say which filters were in play.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: Values that mean "no filter".
_UNSET: tuple[Any, ...] = (None, "", [], {}, ())


def given_filters(task: Any, filter_fields: Sequence[str]) -> dict[str, Any]:
    """The task's filter arguments that were set (after rendering), by name."""
    values = {name: getattr(task, name, None) for name in filter_fields}
    return {name: value for name, value in values.items() if not any(value == unset for unset in _UNSET)}


def nothing_matched_message(task: Any, filter_fields: Sequence[str], result: Mapping[str, Any]) -> str | None:
    """The warning for ``result`` when it holds 0 rows and filters were set, else None."""
    if result.get("rows") != 0:
        return None
    filters = given_filters(task, filter_fields)
    if not filters:
        return None
    named = ", ".join(f"{name}={value!r}" for name, value in filters.items())
    return (
        f"The export wrote 0 rows with filters {named}: nothing in the window matched them. "
        "An empty file was written; if data was expected, check these values (e.g. an id from "
        "another project or account, or a misspelt name)."
    )
