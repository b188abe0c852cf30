"""The declared schemas: they match the APIs' documented fields, and the README shows exactly them."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from airflow_provider_analytics_export.files.schemas import EXTRA_COLUMN, Column, Schema
from airflow_provider_analytics_export.hooks.braze import BRAZE_SESSIONS
from airflow_provider_analytics_export.hooks.browsee import BROWSEE_SESSIONS, ID_FIELD, SELECT_FIELDS
from airflow_provider_analytics_export.hooks.columns import SCHEMAS, readme_table
from airflow_provider_analytics_export.hooks.peer5 import FIELDS, METRICS, PEER5_EXPORT

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_table_is_the_one_the_code_declares():
    text = README.read_text()
    start, end = "<!-- schemas:start -->\n", "<!-- schemas:end -->"
    assert text[text.index(start) + len(start) : text.index(end)] == readme_table(), (
        "README is stale: paste `python -m airflow_provider_analytics_export.hooks.columns` output between"
        " the markers"
    )


def test_every_documented_field_is_declared_in_the_documented_order():
    assert BROWSEE_SESSIONS.names == [ID_FIELD, *SELECT_FIELDS]
    assert PEER5_EXPORT.names == ["timestamp", *FIELDS, *METRICS]
    assert BRAZE_SESSIONS.names == ["time", "bucket_start", "sessions", "app_id", "segment_id"]


def test_types_follow_the_documented_meaning():
    kinds = {(s.name, c.name): c.kind for s in SCHEMAS for c in s.columns}
    assert kinds["browsee_sessions", "timestamp"] == kinds["peer5_export", "timestamp"] == "timestamp_ms"
    assert kinds["braze_sessions", "bucket_start"] == "timestamp"
    assert kinds["peer5_export", "sessions"] == "float64"  # an average: fractions
    assert kinds["braze_sessions", "sessions"] == kinds["browsee_sessions", "pageCount"] == "int64"
    assert kinds["browsee_sessions", "isMobile"] == "bool"
    assert kinds["browsee_sessions", "urls"] == kinds["browsee_sessions", "tags"] == "json"


def test_arrow_schema_ends_with_extra_and_says_utc():
    arrow = PEER5_EXPORT.arrow()
    assert arrow.names[-1] == EXTRA_COLUMN
    assert arrow.field("timestamp").type == pa.timestamp("ms", tz="UTC")
    assert BRAZE_SESSIONS.arrow().field("bucket_start").type == pa.timestamp("us", tz="UTC")
    assert BRAZE_SESSIONS.describe()[1] == {"name": "bucket_start", "type": "timestamp[us, tz=UTC]"}


def test_a_subset_keeps_the_declared_order_and_the_kept_columns():
    subset = BROWSEE_SESSIONS.select(["email", "duration"], keep=[ID_FIELD])
    assert subset.names == ["sessionId", "duration", "email"]
    with pytest.raises(ValueError, match=r"has no columns \['nope'\]"):
        BROWSEE_SESSIONS.select(["nope"])


def test_bad_declarations_are_refused():
    with pytest.raises(ValueError, match=r"kind='integer'; use one of string, int64"):
        Column("a", "integer", "")
    with pytest.raises(ValueError, match=r"columns \['a'\] declared twice"):
        Schema("s", (Column("a", "string", ""), Column("a", "int64", "")))
    with pytest.raises(ValueError, match=r"\['_extra'\] declared twice"):
        Schema("s", (Column(EXTRA_COLUMN, "json", ""),))
