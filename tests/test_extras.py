"""Connection extras as Airflow really stores them: null from the UI form, strings from the CLI."""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

import pytest

from airflow_provider_analytics_export import get_provider_info
from airflow_provider_analytics_export.extras import CONNECTION_EXTRAS, ExtraField, extra_fields
from airflow_provider_analytics_export.hooks.browsee import BrowseeHook
from airflow_provider_analytics_export.hooks.openpanel import OpenPanelHook

ATTEMPTS = ExtraField("max_attempts", "Max attempts", "", "integer", default=6, minimum=1, maximum=20)
TIMEOUT = ExtraField("timeout", "Read timeout", "", "number", default=60.0, minimum=1)
ZONE = ExtraField("timezone", "Time zone", "", "timezone", default="UTC")


@pytest.mark.parametrize("stored", [None, "", "   "])
def test_null_and_blank_mean_the_default(stored):
    assert ATTEMPTS.read(stored, "here") == 6
    assert TIMEOUT.read(stored, "here") == 60.0
    assert ZONE.read(stored, "here") == ZoneInfo("UTC")


@pytest.mark.parametrize(("stored", "value"), [("3", 3), (3, 3), (" 7 ", 7), (3.0, 3), ("20", 20)])
def test_integers_from_strings_and_numbers(stored, value):
    assert ATTEMPTS.read(stored, "here") == value
    assert type(ATTEMPTS.read(stored, "here")) is int


@pytest.mark.parametrize("stored", ["abc", "2.5", 2.5, True, "0", 21, "nan", [], {}])
def test_bad_integers_name_connection_field_and_what_is_allowed(stored):
    with pytest.raises(
        ValueError, match=r"^Connection 'c' \(X\): extra 'max_attempts'=.* is invalid; use a whole number"
    ):
        ATTEMPTS.read(stored, "Connection 'c' (X)")


def test_range_is_in_the_message():
    with pytest.raises(ValueError, match="use a whole number from 1 to 20 or leave it empty"):
        ATTEMPTS.read("99", "c")
    with pytest.raises(ValueError, match="use a number >= 1 or leave it empty"):
        TIMEOUT.read("0.5", "c")
    assert TIMEOUT.read("2.5", "c") == 2.5


def test_time_zones():
    assert ZONE.read("Europe/Madrid", "c") == ZoneInfo("Europe/Madrid")
    with pytest.raises(ValueError, match="extra 'timezone'='Mars/Olympus' is invalid; use an IANA time zone"):
        ZONE.read("Mars/Olympus", "c")


def test_the_form_is_generated_from_the_declarations():
    forms = {item["connection-type"]: item["conn-fields"] for item in get_provider_info()["connection-types"]}
    assert set(forms) == set(CONNECTION_EXTRAS)
    for conn_type, fields in forms.items():
        assert list(fields) == list(extra_fields(conn_type))
    assert forms["browsee"]["max_attempts"] == {
        "label": "Max attempts",
        "description": "Attempts per request on 429/5xx/network errors before failing (default 6).",
        "schema": {"type": ["integer", "null"], "minimum": 1, "maximum": 20},
    }


def _hook(monkeypatch, hook_class, conn_type, extra):
    conn = {
        "conn_type": conn_type,
        "host": "http://127.0.0.1:9",
        "login": "k",
        "password": "s",
        "extra": extra,
    }
    monkeypatch.setenv("AIRFLOW_CONN_EXTRAS_TEST", json.dumps(conn))
    return hook_class("extras_test")


def test_a_connection_saved_by_the_ui_form_uses_the_defaults(monkeypatch):
    """The 3.3 form stores every untouched field as null: that must mean "default", not a crash."""
    form_payload = dict.fromkeys(extra_fields("openpanel"))
    hook = _hook(monkeypatch, OpenPanelHook, "openpanel", form_payload)
    assert hook.timeout == (10.0, 60.0)
    assert hook.max_attempts == 6
    assert hook.api_account().max_server_wait == 900.0
    with pytest.raises(ValueError, match="No OpenPanel project_id: pass project_id= or set 'project_id'"):
        hook.project_id()
    assert hook.project_id("given") == "given"


def test_cli_strings_are_numbers(monkeypatch):
    hook = _hook(
        monkeypatch, BrowseeHook, "browsee", {"timeout": "5", "connect_timeout": "2.5", "max_attempts": "2"}
    )
    assert hook.timeout == (2.5, 5.0)
    assert hook.max_attempts == 2
    hook = _hook(monkeypatch, BrowseeHook, "browsee", {"max_server_wait": "30"})
    assert hook.api_account().max_server_wait == 30.0


def test_a_server_wait_ceiling_below_one_second_is_refused_before_any_request(monkeypatch):
    hook = _hook(monkeypatch, BrowseeHook, "browsee", {"max_server_wait": 0})
    with pytest.raises(ValueError, match=r"extra 'max_server_wait'=0 is invalid; use a number >= 1"):
        hook.request("POST", "/sessions")


def test_a_bad_extra_fails_naming_the_connection(monkeypatch):
    hook = _hook(monkeypatch, BrowseeHook, "browsee", {"timeout": "soon"})
    with pytest.raises(
        ValueError, match=r"Connection 'extras_test' \(Browsee\): extra 'timeout'='soon' is invalid"
    ):
        _ = hook.timeout


def test_extra_that_is_not_an_object(monkeypatch):
    hook = _hook(monkeypatch, BrowseeHook, "browsee", [1, 2])
    with pytest.raises(
        ValueError, match=r"Connection 'extras_test' \(Browsee\): extra must be a JSON object"
    ):
        _ = hook.timeout
