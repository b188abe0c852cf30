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

from airflow_provider_analytics_export.files.schemas import Column, Schema
from airflow_provider_analytics_export.files.writer import ExportWriter, resolve_format

ID_N = Schema("id_n", (Column("id", "string", "id"), Column("n", "int64", "n")))
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


def test_copy_outside_the_context_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match=r"copy\(\) needs an open writer"):
        ExportWriter((tmp_path / "f.csv").as_uri()).copy([b"x"], "csv")


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
    with ExportWriter(url, schema=ID_N) as writer:
        pass
    # Declared columns, then _extra (see test_declared_columns_...): the schema is known without rows.
    assert pq.read_table(tmp_path / "rows.parquet").schema == ID_N.arrow()
    assert writer.summary()["rows"] == 0


def test_copied_bytes_pass_through(tmp_path):
    url = (tmp_path / "report.csv").as_uri()
    with ExportWriter(url) as writer:
        writer.copy([b"a,b\n", b"1,2\n"], "csv")
    assert (tmp_path / "report.csv").read_bytes() == b"a,b\n1,2\n"
    assert writer.summary()["bytes"] == 8


@pytest.mark.parametrize(
    ("record_format", "chunks", "rows"),
    [
        # A quoted field holding newlines (and a doubled quote) is one record, split across chunks.
        ("csv", [b'id,note\n1,"two\nli', b'nes ""q""\n"\n2,x'], 2),
        ("csv", [b"id,note\n"], 0),
        ("json", [b'[{"id": 1}, {"id"', b": 2}]"], 2),
        ("ndjson", [b'{"id": 1}\n{"id', b'": 2}\n'], 2),
    ],
)
def test_copy_counts_the_records_it_writes(tmp_path, record_format, chunks, rows):
    url = (tmp_path / f"copy.{record_format}").as_uri()
    with ExportWriter(url, "csv" if record_format == "csv" else "json") as writer:
        assert writer.copy(iter(chunks), record_format) == rows
    assert (tmp_path / f"copy.{record_format}").read_bytes() == b"".join(chunks)
    summary = writer.summary()
    assert (summary["rows"], summary["format"]) == (rows, record_format)


def test_a_malformed_copy_fails_and_leaves_the_previous_file(tmp_path):
    url = (tmp_path / "copy.json").as_uri()
    (tmp_path / "copy.json").write_bytes(b"[]")
    with pytest.raises(ValueError, match="JSON array is incomplete"), ExportWriter(url) as writer:
        writer.copy([b'[{"id": 1}, {"id"'], "json")
    assert (tmp_path / "copy.json").read_bytes() == b"[]"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.json"]


def test_a_writer_holds_rows_or_one_copy_never_both(tmp_path):
    def rows(writer):
        writer.write_rows([{"a": 1}])

    def copy(writer):
        writer.copy([b"a\n1\n"], "csv")

    for name, (first, then), message in (
        ("a.csv", (rows, copy), r"copy\(\) after write_rows\(\)"),
        ("b.csv", (copy, rows), r"write_rows\(\) after copy\(\)"),
        ("c.csv", (copy, copy), r"copy\(\) after copy\(\)"),
    ):
        with pytest.raises(RuntimeError, match=message), ExportWriter((tmp_path / name).as_uri()) as writer:
            first(writer)
            then(writer)
    assert list(tmp_path.iterdir()) == []


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


def test_csv_with_a_schema_has_one_header_even_when_empty(tmp_path):
    schema = Schema("ab", (Column("a", "int64", "a"), Column("b", "int64", "b")))
    for rows in ([], [{"b": 1, "a": 2}]):
        url = (tmp_path / f"rows{len(rows)}.csv").as_uri()
        with ExportWriter(url, schema=schema) as writer:
            writer.write_rows(rows)
            writer.write_rows(rows)
    assert (tmp_path / "rows0.csv").read_text() == "a,b,_extra\n"
    assert (tmp_path / "rows1.csv").read_text() == "a,b,_extra\n2,1,\n2,1,\n"


def test_summary_uri_has_no_connection_id(s3_destination):
    writer = ExportWriter("s3://exports/uri/rows.jsonl", conn_id=s3_destination)
    assert writer.uri == "s3://exports/uri/rows.jsonl"


SPARSE_PAGES = [
    [{"id": "a", "n": 1}, {"id": "b"}],  # n absent (not null) in the second row
    [{"n": 3, "id": "c", "new": {"k": 1}}, {"id": "d", "n": None}],  # a field nobody declared
]
SPARSE = Schema("sparse", (*ID_N.columns, Column("absent", "string", "never sent")))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_declared_columns_take_sparse_rows_and_keep_unknown_fields_in_extra(tmp_path, fmt, caplog):
    url = (tmp_path / f"rows.{fmt}").as_uri()
    with ExportWriter(url, schema=SPARSE) as writer:
        for page in SPARSE_PAGES:
            writer.write_rows(page)
        writer.write_rows([{"id": "e", "new": 2}])
    rows = read_rows(ObjectStoragePath(url), fmt)
    expected = [
        {"id": "a", "n": 1, "absent": None, "_extra": None},
        {"id": "b", "n": None, "absent": None, "_extra": None},
        {"id": "c", "n": 3, "absent": None, "_extra": '{"new":{"k":1}}'},
        {"id": "d", "n": None, "absent": None, "_extra": None},
        {"id": "e", "n": None, "absent": None, "_extra": '{"new":2}'},
    ]
    if fmt == "csv":
        expected = [{k: "" if v is None else str(v) for k, v in row.items()} for row in expected]
    assert rows == expected
    assert [list(row) for row in rows] == [["id", "n", "absent", "_extra"]] * 5
    warnings = [r.getMessage() for r in caplog.records if "not among the declared columns" in r.getMessage()]
    assert len(warnings) == 1 and "['new']" in warnings[0]
    assert writer.summary()["schema"] == [
        {"name": "id", "type": "string"},
        {"name": "n", "type": "int64"},
        {"name": "absent", "type": "string"},
        {"name": "_extra", "type": "string (JSON)"},
    ]


def test_jsonl_keeps_rows_as_the_api_sent_them_even_with_a_schema(tmp_path, caplog):
    """No added nulls, no _extra, key order and non-ASCII text kept; big ints exact."""
    url = (tmp_path / "rows.jsonl").as_uri()
    pages = [*SPARSE_PAGES, [{"n": 2**70, "id": "é", "x": 0.1}]]
    with ExportWriter(url, schema=SPARSE) as writer:
        for page in pages:
            writer.write_rows(page)
    text = (tmp_path / "rows.jsonl").read_text(encoding="utf-8")
    assert [json.loads(line) for line in text.splitlines()] == [row for page in pages for row in page]
    assert text.splitlines()[-1] == '{"n":1180591620717411303424,"id":"é","x":0.1}'
    assert writer.summary()["schema"] is None
    assert not [r for r in caplog.records if "not among the declared columns" in r.getMessage()]


TYPED = Schema(
    "typed",
    (
        Column("id", "string", "id"),
        Column("count", "int64", "a count"),
        Column("avg", "float64", "a measure"),
        Column("ok", "bool", "a flag"),
        Column("at", "timestamp_ms", "epoch ms"),
        Column("iso", "timestamp", "ISO-8601"),
        Column("email", "string", "optional, often absent"),
        Column("meta", "json", "nested"),
    ),
)


def write_pages(url: str, pages: list[list[dict]], schema: Schema = TYPED) -> dict:
    with ExportWriter(url, schema=schema) as writer:
        for page in pages:
            writer.write_rows(page)
    return writer.summary()


def test_a_field_that_first_appears_on_a_later_page_is_a_column_from_the_start(tmp_path):
    """Real services omit absent optional fields: a late ``email`` is neither an error nor lost."""
    url = (tmp_path / "rows.parquet").as_uri()
    write_pages(url, [[{"id": "a"}] * 3, [{"id": "b", "email": "b@example.com", "meta": {"z": 1, "a": [2]}}]])
    table = pq.read_table(tmp_path / "rows.parquet")
    assert table.schema == TYPED.arrow()
    assert table.column("email").to_pylist() == [None, None, None, "b@example.com"]
    assert table.column("meta").to_pylist() == [None, None, None, '{"a":[2],"z":1}']


def test_a_column_null_in_the_first_row_group_keeps_its_declared_type(tmp_path, monkeypatch):
    """All null in row group 1, ints in row group 2: int64 throughout, values kept."""
    monkeypatch.setattr("airflow_provider_analytics_export.files.encoders.PARQUET_ROW_GROUP_ROWS", 2)
    url = (tmp_path / "rows.parquet").as_uri()
    write_pages(url, [[{"id": "a"}, {"id": "b", "count": None}], [{"id": "c", "count": 7, "ok": False}]])
    file = pq.ParquetFile(tmp_path / "rows.parquet")
    assert file.metadata.num_row_groups == 2
    table = file.read()
    assert table.schema.field("count").type == "int64" and table.schema.field("ok").type == "bool"
    assert table.column("count").to_pylist() == [None, None, 7]


def test_an_int_then_a_float_in_a_float64_column_keeps_the_value_exactly(tmp_path, monkeypatch):
    """Peer5's averaged sessions: 3, 4 in one row group and 4.5 in the next are 3.0, 4.0, 4.5."""
    monkeypatch.setattr("airflow_provider_analytics_export.files.encoders.PARQUET_ROW_GROUP_ROWS", 2)
    url = (tmp_path / "rows.parquet").as_uri()
    write_pages(url, [[{"avg": 3}, {"avg": 4}], [{"avg": 4.5}]])
    assert pq.read_table(tmp_path / "rows.parquet").column("avg").to_pylist() == [3.0, 4.0, 4.5]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"count": 4.5}, r"Column 'count' of schema 'typed' is declared int64: got 4\.5: a fraction"),
        ({"count": "5"}, r"Column 'count' .* declared int64: got str '5'"),
        ({"count": True}, r"Column 'count' .* declared int64: got bool True"),
        ({"count": 2**64}, r"Column 'count' .* declared int64: got int 18446744073709551616"),
        ({"ok": 1}, r"Column 'ok' .* declared bool: got int 1"),
        ({"at": "2024-04-15"}, r"Column 'at' .* declared timestamp\[ms, tz=UTC\]: got str"),
        ({"iso": "2024-04-15T10:00:00"}, r"Column 'iso' .* expects ISO-8601 text with Z or an offset"),
        ({"id": {"k": 1}}, r"Column 'id' .* declared string: got dict"),
    ],
)
def test_a_value_that_does_not_fit_its_declared_type_fails_loudly(tmp_path, fmt, row, message):
    """Never truncated, never coerced to text: the export fails naming the column and nothing lands."""
    url = (tmp_path / f"rows.{fmt}").as_uri()
    with pytest.raises(ValueError, match=message):
        write_pages(url, [[{"count": 3, "id": "a"}], [{"count": 4}, row]])
    assert list(tmp_path.iterdir()) == []


def test_an_integral_float_and_a_huge_int_in_an_int64_column_are_kept_exactly(tmp_path):
    url = (tmp_path / "rows.parquet").as_uri()
    write_pages(url, [[{"count": 3.0}, {"count": 2**62 + 1}]])
    assert pq.read_table(tmp_path / "rows.parquet").column("count").to_pylist() == [3, 2**62 + 1]


def test_timestamps_are_utc_timestamp_columns_in_parquet_and_csv(tmp_path):
    rows = [{"at": 1713139200123, "iso": "2024-04-15T02:00:00.5+02:00"}, {"iso": "2024-04-15T00:00:00Z"}]
    write_pages((tmp_path / "rows.parquet").as_uri(), [rows])
    table = pq.read_table(tmp_path / "rows.parquet")
    assert str(table.schema.field("at").type) == "timestamp[ms, tz=UTC]"
    assert str(table.schema.field("iso").type) == "timestamp[us, tz=UTC]"
    utc = dt.timezone.utc
    assert table.column("at").to_pylist() == [dt.datetime(2024, 4, 15, 0, 0, 0, 123000, tzinfo=utc), None]
    assert table.column("iso").to_pylist() == [
        dt.datetime(2024, 4, 15, 0, 0, 0, 500000, tzinfo=utc),
        dt.datetime(2024, 4, 15, tzinfo=utc),
    ]
    write_pages((tmp_path / "rows.csv").as_uri(), [rows])
    cells = list(csv.DictReader((tmp_path / "rows.csv").open()))
    assert [row["at"] for row in cells] == ["2024-04-15 00:00:00.123Z", ""]
    assert [row["iso"] for row in cells] == ["2024-04-15 00:00:00.500000Z", "2024-04-15 00:00:00.000000Z"]


def test_two_daily_partitions_with_different_data_read_as_one_table_with_one_schema(tmp_path):
    """Day 1 has no email, no flag and int counts; day 2 has them and an unknown field."""
    import pyarrow.dataset as ds

    day1 = [{"id": "a", "count": 1, "at": 1713139200000}, {"id": "b", "avg": 2}]
    day2 = [{"id": "c", "count": None, "avg": 2.5, "ok": True, "email": "c@x", "meta": [1], "new": "n"}]
    for day, rows in (("2024-04-15", day1), ("2024-04-16", day2)):
        write_pages(f"file://{tmp_path}/day={day}/rows.parquet", [rows])
    dataset = ds.dataset(tmp_path, format="parquet", partitioning="hive")
    table = dataset.to_table()
    files = sorted(tmp_path.glob("day=*/rows.parquet"))
    assert [pq.read_schema(file) for file in files] == [TYPED.arrow()] * 2
    assert table.num_rows == 3 and table.schema.remove(table.schema.get_field_index("day")) == TYPED.arrow()
    by_id = {row["id"]: row for row in table.to_pylist()}
    assert by_id["a"]["count"] == 1 and by_id["b"]["avg"] == 2.0 and by_id["c"]["avg"] == 2.5
    assert by_id["c"]["email"] == "c@x" and by_id["c"]["_extra"] == '{"new":"n"}' and by_id["a"]["ok"] is None


def test_parquet_row_groups_are_bounded_by_bytes_as_well_as_rows(tmp_path, monkeypatch):
    """Wide rows end a row group before the row bound: the buffered Arrow data stays small."""
    monkeypatch.setattr("airflow_provider_analytics_export.files.encoders.PARQUET_ROW_GROUP_BYTES", 100_000)
    url = (tmp_path / "rows.parquet").as_uri()
    write_pages(url, [[{"id": "x" * 1000, "count": i} for i in range(50)] for _ in range(10)])
    file = pq.ParquetFile(tmp_path / "rows.parquet")
    assert file.metadata.num_rows == 500
    assert 4 <= file.metadata.num_row_groups <= 10


def test_rows_into_a_copy_only_format_fail_and_write_nothing(tmp_path):
    message = r"output_format='json' is only for a copied file; rows are written as jsonl, csv, parquet"
    with pytest.raises(ValueError, match=message), ExportWriter((tmp_path / "rows.json").as_uri()) as writer:
        writer.write_rows([{"id": 1}])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_an_identical_export_leaves_the_destination_alone_and_a_changed_one_counts_what_it_replaced(
    destination_dir, fmt
):
    base, conn_id = destination_dir
    url = f"{base}/late/rows.{fmt}"

    def export(rows: list[dict]) -> ExportWriter:
        with ExportWriter(url, conn_id=conn_id, schema=ID_N) as writer:
            writer.write_rows(rows)
        return writer

    first = export(ROWS[:1])
    assert (first.replaced, first.rows_before) == (True, None)  # nothing there before
    path = ObjectStoragePath(first.summary()["uri"], conn_id=conn_id)
    before = path.read_bytes()
    path.fs.rm_file(path.path)
    path.write_bytes(before)  # a fresh object: anything rewriting it would show in its identity below
    marker = path.fs.info(path.path)

    same = export(ROWS[:1])
    assert (same.replaced, same.rows_before) == (False, 1)
    assert same.summary()["replaced"] is False
    assert path.fs.info(path.path) == marker and siblings(path) == [f"rows.{fmt}"]

    grown = export(ROWS)
    assert (grown.replaced, grown.rows_before, grown.rows) == (True, 1, 2)
    assert [row["id"] for row in read_rows(path, fmt)] == ["a", "b"]
    assert siblings(path) == [f"rows.{fmt}"]


def test_a_leftover_whose_age_the_store_cannot_tell_is_kept(memory_fs, monkeypatch):
    """A store without modification times (``modified`` raises): the temp may be a live run's, so keep it.

    With an age limit of zero every temp whose age is known counts as stale, so only the
    unknown age keeps this one.
    """
    leftover = "memory://ageless/.day.jsonl.0123456789ab.partial"
    ObjectStoragePath(leftover).write_bytes(b'{"id": "half"')

    def no_age(path: str) -> dt.datetime:
        raise NotImplementedError("this store keeps no modification times")

    monkeypatch.setattr(memory_fs, "modified", no_age)
    with ExportWriter("memory://ageless/day.jsonl", stale_temp_age=dt.timedelta(0)) as writer:
        writer.write_rows(ROWS)
    assert siblings(ObjectStoragePath("memory://ageless/day.jsonl")) == [
        ".day.jsonl.0123456789ab.partial",
        "day.jsonl",
    ]
