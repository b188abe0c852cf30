"""Argument checks that produce the same kind of message for every API.

Each error names the parameter, the bad value and what is allowed, so a DAG author can
fix it from the import error alone. Hooks call these before any request; operators call
them in ``__init__`` (DAG parse time) for values that are not templated.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any


def is_templated(value: Any) -> bool:
    """True when ``value`` still holds Jinja and can only be checked after rendering.

    Dict keys and values and list items count too: Airflow renders inside containers, so a
    templated dimension or filter key must not be rejected at DAG parse as an unknown name.
    """
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(is_templated(key) or is_templated(item) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return any(is_templated(item) for item in value)
    return False


def check_int_range(name: str, value: Any, low: int, high: int) -> int:
    """``value`` as an int within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name}={value!r} is out of range: use an integer from {low} to {high}.")
    return value


def check_choice(name: str, value: Any, allowed: Collection[str]) -> str:
    """``value`` if it is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported; use one of: {', '.join(allowed)}.")
    return str(value)


def check_choices(name: str, values: Any, allowed: Collection[str]) -> list[str] | None:
    """A list of names (or one name, or None) whose members are all among ``allowed``."""
    names = as_name_list(name, values)
    if names is None:
        return None
    unknown = [value for value in names if value not in allowed]
    if unknown:
        raise ValueError(
            f"{name}={values!r} has unknown value(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(allowed)}."
        )
    return names


def as_name_list(name: str, values: str | Iterable[str] | None) -> list[str] | None:
    """Normalise "a" / ["a", "b"] / None to a list of non-empty strings (or None)."""
    if values is None:
        return None
    items: Sequence[Any] = [values] if isinstance(values, str) else list(values)
    if not items or not all(isinstance(item, str) and item for item in items):
        raise ValueError(f"{name}={values!r} must be a non-empty string or a non-empty list of strings.")
    return list(items)
