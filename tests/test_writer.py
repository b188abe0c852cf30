"""ExportWriter: formats, atomic replace, and failure leaving nothing behind, on file/memory/s3."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import time

import pyarrow.parquet as pq
import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_analytics_export.writer import ExportWriter, resolve_format

ROWS = [
    {"id": "a", "n": 1, "props": {"path": "/x", "tags": ["b", "a"]}, "missing": None},
    {"id": "b", "n": 2, "props": {"tags": [], "path": "/y"}, "missing": "present"},
]


def read_rows(path: ObjectStoragePath, fmt: str) -> list[dict]:
    data = path.read_bytes()
    if fmt == "jsonl":
        return [json.loads(line) for line in data.decode().splitlines()]
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(data.decode())))
    return pq.read_table(io.BytesIO(data)).to_pylist()


def siblings(path: ObjectStoragePath) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


@pytest.fixture(params=["file", "memory", "s3"])
def destination_dir(request, tmp_path):
    """(base URL, conn id) for each storage kind the writer must support."""
    if request.param == "file":
        return tmp_path.as_uri(), None
    if request.param == "memory":
        request.getfixturevalue("memory_fs")
        return "memory://bucket/exports", None
    conn_id = request.getfixturevalue("s3_destination")
    return f"s3://exports/{request.node.name}", conn_id


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_pages_stream_into_the_destination_in_every_format(destination_dir, fmt):
    base, conn_id = destination_dir
    with ExportWriter(f"{base}/2024-04-15/rows.{fmt}", conn_id=conn_id) as writer:
        writer.write_rows(ROWS[:1])
        writer.write_rows(ROWS[1:])
        writer.write_rows([])
    summary = writer.summary()
    path = ObjectStoragePath(summary["uri"], conn_id=conn_id)
    assert summary["rows"] == 2 and summary["format"] == fmt
    assert summary["bytes"] == path.stat().st_size if hasattr(path.stat(), "st_size") else path.stat()["size"]
    rows = read_rows(path, fmt)
    if fmt == "jsonl":  # nested values kept as they are
        assert rows == ROWS
    else:  # nested values JSON-encoded, key-sorted, the same way every time
        assert rows[0]["props"] == '{"path":"/x","tags":["b","a"]}'
        assert rows[1]["props"] == '{"path":"/y","tags":[]}'
        assert [str(r["n"]) for r in rows] == ["1", "2"]
    assert siblings(path) == [f"rows.{fmt}"]  # no temporary object left behind


def test_failure_keeps_the_previous_file_and_leaves_no_partial(destination_dir):
    base, conn_id = destination_dir
    url = f"{base}/rows.jsonl"
    with ExportWriter(url, conn_id=conn_id) as writer:
        writer.write_rows(ROWS)
    path = ObjectStoragePath(url, conn_id=conn_id)
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="API died"), ExportWriter(url, conn_id=conn_id) as writer:
        writer.write_rows([{"id": "c", "n": 3}])
        raise RuntimeError("API died midway")
    assert path.read_bytes() == before
    assert siblings(path) == ["rows.jsonl"]


def test_commit_removes_temps_a_killed_run_left_and_nothing_else(destination_dir):
    """A SIGKILLed run leaves ``.<name>.<hex>.partial``; the next commit of that name removes it.

    The name holds glob characters, and the temps of other destinations (including
    ``<name>.x``, whose temps also start with ``.<name>.``) are left alone.
    """
    base, conn_id = destination_dir
    name = "day[1]*.jsonl"
    killed = [f".{name}.0123456789ab.partial", f".{name}.fedcba987654.partial"]
    others = [
        f".{name}.x.0123456789ab.partial",  # temp of destination "<name>.x"
        ".other.jsonl.0123456789ab.partial",
        f".{name}.not-a-temp-id.partial",
        f"{name}.partial",
    ]
    for leftover in killed + others:
        ObjectStoragePath(f"{base}/{leftover}", conn_id=conn_id).write_bytes(b'{"id": "half"')
    # Age 0: every matching temp counts as stale (the leftovers were just created here).
    with ExportWriter(f"{base}/{name}", "jsonl", conn_id, stale_temp_age=dt.timedelta(0)) as writer:
        writer.write_rows(ROWS)
    path = ObjectStoragePath(f"{base}/{name}", conn_id=conn_id)
    assert read_rows(path, "jsonl") == ROWS
    assert siblings(path) == sorted([name, *others])


def test_a_concurrent_run_of_the_same_destination_keeps_its_temp_and_commits(destination_dir):
    """Two runs of one destination at once (a zombie and its retry): neither breaks the other."""
    base, conn_id = destination_dir
    url = f"{base}/day.jsonl"
    with ExportWriter(url, conn_id=conn_id) as slow:
        slow.write_rows(ROWS[:1])
        with ExportWriter(url, conn_id=conn_id) as fast:
            fast.write_rows(ROWS)
        assert read_rows(ObjectStoragePath(url, conn_id=conn_id), "jsonl") == ROWS
        slow.write_rows(ROWS[1:])
    assert read_rows(ObjectStoragePath(url, conn_id=conn_id), "jsonl") == ROWS
    assert siblings(ObjectStoragePath(url, conn_id=conn_id)) == ["day.jsonl"]


def test_an_old_leftover_is_removed_with_the_default_age(tmp_path):
    leftover = tmp_path / ".day.jsonl.0123456789ab.partial"
    leftover.write_bytes(b'{"id": "half"')
    two_days_ago = time.time() - 2 * 86400
    os.utime(leftover, (two_days_ago, two_days_ago))
    fresh = tmp_path / ".day.jsonl.fedcba987654.partial"
    fresh.write_bytes(b'{"id": "writing"')
    with ExportWriter((tmp_path / "day.jsonl").as_uri()) as writer:
        writer.write_rows(ROWS)
    assert sorted(p.name for p in tmp_path.iterdir()) == [fresh.name, "day.jsonl"]


def test_write_bytes_outside_the_context_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match=r"write_bytes\(\) needs an open writer"):
        ExportWriter((tmp_path / "f.csv").as_uri(), "raw").write_bytes(b"x")


def test_failure_on_a_first_export_leaves_no_file(tmp_path):
    url = (tmp_path / "new" / "rows.parquet").as_uri()
    with pytest.raises(RuntimeError), ExportWriter(url) as writer:
        writer.write_rows(ROWS)
        raise RuntimeError("boom")
    assert list((tmp_path / "new").iterdir()) == []


def test_rerun_replaces_the_file(tmp_path):
    url = (tmp_path / "rows.csv").as_uri()
    for rows in (ROWS, ROWS[:1]):
        with ExportWriter(url) as writer:
            writer.write_rows(rows)
    assert len(read_rows(ObjectStoragePath(url), "csv")) == 1


def test_unknown_field_after_the_first_page_is_an_error_not_a_silent_drop(tmp_path):
    message = r"fields \['extra'\] that are not among the output columns"
    with pytest.raises(ValueError, match=message), ExportWriter((tmp_path / "rows.csv").as_uri()) as writer:
        writer.write_rows([{"id": 1}])
        writer.write_rows([{"id": 2, "extra": True}])
    assert not (tmp_path / "rows.csv").exists()


def test_empty_export_still_writes_a_readable_file(tmp_path):
    url = (tmp_path / "rows.parquet").as_uri()
    with ExportWriter(url, columns=["id", "n"]) as writer:
        pass
    assert pq.read_table(tmp_path / "rows.parquet").column_names == ["id", "n"]
    assert writer.summary()["rows"] == 0


def test_raw_bytes_pass_through(tmp_path):
    url = (tmp_path / "report.csv").as_uri()
    with ExportWriter(url, output_format="raw") as writer:
        writer.write_bytes(b"a,b\n")
        writer.write_bytes(b"1,2\n")
    assert (tmp_path / "report.csv").read_bytes() == b"a,b\n1,2\n"
    assert writer.summary()["bytes"] == 8


@pytest.mark.parametrize(
    ("destination", "fmt", "message"),
    [
        (
            "s3://b/x.xlsx",
            None,
            r"Cannot tell the output format of destination='s3://b/x.xlsx'.*\.jsonl, \.csv",
        ),
        ("s3://b/x.jsonl", "xml", r"output_format='xml' is not supported; use one of jsonl, csv, parquet"),
    ],
)
def test_bad_format_names_the_parameter_and_the_allowed_values(destination, fmt, message):
    with pytest.raises(ValueError, match=message):
        resolve_format(destination, fmt)


def test_csv_with_explicit_columns_has_one_header_even_when_empty(tmp_path):
    for rows in ([], [{"b": 1, "a": 2}]):
        url = (tmp_path / f"rows{len(rows)}.csv").as_uri()
        with ExportWriter(url, columns=["a", "b"]) as writer:
            writer.write_rows(rows)
            writer.write_rows(rows)
    assert (tmp_path / "rows0.csv").read_text() == "a,b\n"
    assert (tmp_path / "rows1.csv").read_text() == "a,b\n2,1\n2,1\n"


def test_summary_uri_has_no_connection_id(s3_destination):
    writer = ExportWriter("s3://exports/uri/rows.jsonl", conn_id=s3_destination)
    assert writer.uri == "s3://exports/uri/rows.jsonl"
