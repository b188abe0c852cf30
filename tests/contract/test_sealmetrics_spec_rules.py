"""The request rules the package carries (hooks/sealmetrics_spec.py) are the vendor spec's, exactly.

The package cannot read the spec at run time, so it holds a copy of the lists and limits;
these tests fail the moment the copy and the vendored spec (refreshed from the vendor) differ,
and check each limit at its edge with the spec's own JSON Schema validator.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openapi_schema_validator import OAS31Validator

from airflow_provider_analytics_export.hooks.sealmetrics_spec import (
    EXPORT_FORMATS,
    EXPORT_TYPES,
    FILTER_LENGTHS,
    validate_export_request,
)

SPEC: dict[str, Any] = json.loads(Path(__file__).with_name("sealmetrics-openapi-exports.json").read_text())
SCHEMAS = SPEC["components"]["schemas"]


def spec_filter_lengths() -> dict[str, tuple[int, int]]:
    """(minLength, maxLength) of each ``ExportFilters`` property's string, asserting null is allowed."""
    lengths = {}
    for key, prop in SCHEMAS["ExportFilters"]["properties"].items():
        options = prop["anyOf"]
        assert {"type": "null"} in options, f"{key}: the spec no longer allows null"
        (text,) = [option for option in options if option.get("type") == "string"]
        lengths[key] = (text.get("minLength", 0), text["maxLength"])
    return lengths


def test_export_types_and_formats_are_the_specs():
    assert tuple(SCHEMAS["ExportType"]["enum"]) == EXPORT_TYPES
    assert tuple(SCHEMAS["ExportFormat"]["enum"]) == EXPORT_FORMATS


def test_filter_keys_and_lengths_are_the_specs():
    assert spec_filter_lengths() == FILTER_LENGTHS


@pytest.mark.parametrize("key", list(FILTER_LENGTHS))
def test_each_filter_limit_agrees_with_the_spec_at_its_edges(key: str):
    """Values the spec accepts pass our check; the first length it refuses fails it, naming the key."""
    schema = OAS31Validator({"$ref": "#/components/schemas/ExportFilters", **SPEC})
    shortest, longest = FILTER_LENGTHS[key]
    for value in (None, "x" * max(shortest, 1), "x" * longest):
        assert schema.is_valid({key: value})
        validate_export_request("pages", "csv", {key: value})
    for value in ["x" * (longest + 1)] + (["x" * (shortest - 1)] if shortest > 1 else []):
        assert not schema.is_valid({key: value})
        with pytest.raises(ValueError, match=rf"filters\['{key}'\] is {len(value)} characters long"):
            validate_export_request("pages", "csv", {key: value})
