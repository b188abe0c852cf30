"""The wheel tells the truth: it ships no sandbox, and it declares exactly the packages it imports.

The wheel is built the way a release is (``uv build``: an sdist, then the wheel from it, so a stale
``build/`` folder cannot leak files into it) and read as shipped, not from the source tree.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import airflow_provider_analytics_export

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "airflow_provider_analytics_export"
DISTRIBUTION = "airflow-provider-analytics-export"
SANDBOX = "analytics_export_sandbox"
#: .ci/python-matrix sets it for the floor venv, which must run the suite against the built wheel.
EXPECT_WHEEL = "ANALYTICS_EXPORT_EXPECT_WHEEL"


def uv() -> str:
    """The uv that made this venv (.ci/python-matrix passes its own as ``UV``), else one on PATH."""
    for candidate in (os.environ.get("UV"), str(Path(sys.executable).with_name("uv")), shutil.which("uv")):
        if candidate and Path(candidate).is_file():
            return candidate
    raise AssertionError("no uv to build the wheel with: set UV or install uv (make install does)")


def canonical(name: str) -> str:
    """A distribution name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("dist")
    build = subprocess.run(
        [uv(), "build", "--quiet", "--out-dir", str(out), str(ROOT)], capture_output=True, text=True
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (path,) = out.glob("*.whl")
    with zipfile.ZipFile(path) as archive:
        yield archive


def import_owners() -> dict[str, set[str]]:
    """Top-level import name -> installing distributions (what ``packages_distributions()`` does on 3.11+;
    3.10's reads only ``top_level.txt``, which flit/hatch-built wheels such as jinja2 and redis lack)."""
    owners: dict[str, set[str]] = {}
    for dist in importlib.metadata.distributions():
        tops = set((dist.read_text("top_level.txt") or "").split())
        for file in dist.files or [] if not tops else []:
            if file.suffix == ".py" and not file.parts[0].endswith((".dist-info", ".egg-info", ".data")):
                tops.add(file.parts[0] if len(file.parts) > 1 else file.stem)
        name = canonical(dist.metadata["Name"])
        if name.startswith("apache-airflow-providers-"):  # see top_level()
            tops = {"airflow.providers." + name.removeprefix("apache-airflow-providers-").replace("-", ".")}
        for top in tops:
            owners.setdefault(top, set()).add(name)
    return owners


def requires_dist(wheel: zipfile.ZipFile) -> tuple[set[str], dict[str, set[str]]]:
    """Distribution names the wheel requires: unconditionally, and per extra."""
    (name,) = (n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    metadata = Parser().parsestr(wheel.read(name).decode())
    required: set[str] = set()
    extras: dict[str, set[str]] = {}
    for line in metadata.get_all("Requires-Dist") or []:
        requirement, _, marker = line.partition(";")
        dist = canonical(re.match(r"\s*([A-Za-z0-9._-]+)", requirement).group(1))  # type: ignore[union-attr]
        extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
        if extra:
            extras.setdefault(extra.group(1), set()).add(dist)
        else:
            required.add(dist)
    return required, extras


#: Providers imported only where installed (guarded imports), so not required.
OPTIONAL_PROVIDERS = {
    "apache-airflow-providers-openlineage": "lineage.py reports lineage only where OpenLineage runs",
    "apache-airflow-providers-common-compat": "hooks/base.py: its async connection fetch, else BaseHook's",
}


def top_level(module: str) -> str:
    """The import's top-level name; an Airflow provider (``airflow.providers.standard...``) is its own."""
    parts = module.split(".")
    if parts[:2] != ["airflow", "providers"] or len(parts) < 3:
        return parts[0]
    return ".".join(parts[:4] if parts[2] == "common" else parts[:3])  # common.compat, common.io, ...


def imported_top_levels(wheel: zipfile.ZipFile) -> dict[str, set[str]]:
    """Absolute top-level imports of every shipped module, lazy and TYPE_CHECKING ones included."""
    found: dict[str, set[str]] = {}
    for name in wheel.namelist():
        if not name.endswith(".py"):
            continue
        for node in ast.walk(ast.parse(wheel.read(name), name)):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for top in map(top_level, modules):
                found.setdefault(top, set()).add(name)
    return found


def test_the_wheel_ships_the_provider_and_no_sandbox(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    modules = [n for n in names if n.endswith(".py")]
    assert f"{PACKAGE}/hooks/browsee.py" in modules
    assert f"{PACKAGE}/py.typed" in names
    assert all(n.startswith(f"{PACKAGE}/") for n in modules), sorted(set(modules))
    assert [n for n in names if "sandbox" in n] == []
    # No shipped module may import the sandbox: it is a separate distribution the wheel does not require.
    assert SANDBOX not in imported_top_levels(wheel)


def test_the_wheel_declares_exactly_the_third_party_packages_it_imports(wheel: zipfile.ZipFile) -> None:
    """Requires-Dist (plus the ``redis`` extra, for the opt-in shared limits) == what the code imports."""
    ours_or_stdlib = {PACKAGE, "airflow", "__future__", *sys.stdlib_module_names}
    imports = {top: files for top, files in imported_top_levels(wheel).items() if top not in ours_or_stdlib}
    owners = import_owners()
    unowned = {top: sorted(files) for top, files in imports.items() if top not in owners}
    assert unowned == {}, "imported, yet installed by no distribution in this venv"
    imported = {dist for top in imports for dist in owners[top]}
    required, extras = requires_dist(wheel)
    # Airflow's own namespace is left out on both sides (``airflow.*`` comes with apache-airflow),
    # except its providers, each a distribution of its own: apache-airflow-providers-<name>.
    assert required - {"apache-airflow"} | extras["redis"] == imported - set(OPTIONAL_PROVIDERS)
    # The extra's packages are imported by the shared-limit backend alone (lazily, when a connection asks).
    assert {top for top in imports if owners[top] & extras["redis"]} == {"redis"}
    assert imports["redis"] == {f"{PACKAGE}/transport/redis_limits.py"}


def test_each_storage_extra_installs_its_scheme_and_the_destination_check_names_only_those(
    wheel: zipfile.ZipFile,
) -> None:
    """``pip install 'airflow-provider-analytics-export[gcs]'``, as the pre-flight error says, must work."""
    from airflow_provider_analytics_export.files.destination import SCHEME_EXTRAS

    _, extras = requires_dist(wheel)
    assert extras["s3"] == {"apache-airflow-providers-amazon"}
    assert extras["gcs"] == {"apache-airflow-providers-google", "gcsfs"}
    assert extras["azure"] == {"apache-airflow-providers-microsoft-azure", "adlfs"}
    (metadata,) = (n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    assert re.search(
        r"Requires-Dist: apache-airflow-providers-amazon\[s3fs\].*extra == .s3.",
        wheel.read(metadata).decode(),
    )
    assert {extra for extra, _ in SCHEME_EXTRAS.values()} == {"s3", "gcs", "azure"}


def test_the_provider_is_imported_from_where_its_distribution_is_installed() -> None:
    """The suite tests the installed provider: editable -> this checkout, a wheel -> site-packages.

    A source tree on ``sys.path`` ahead of a wheel would let the floor venv pass without the wheel.
    """
    # Installed ones only: a build leaves an ``*.egg-info`` in the checkout, which ``sys.path`` may also see.
    (dist,) = (
        d for d in importlib.metadata.distributions(name=DISTRIBUTION) if d.read_text("INSTALLER") is not None
    )
    direct_url = json.loads(dist.read_text("direct_url.json") or "{}")
    editable = direct_url.get("dir_info", {}).get("editable", False)
    imported_from = Path(airflow_provider_analytics_export.__file__).resolve().parent
    if os.environ.get(EXPECT_WHEEL):
        assert not editable, direct_url
    if editable:
        assert imported_from == ROOT / PACKAGE
    else:
        assert imported_from == Path(str(dist.locate_file(PACKAGE))).resolve()
        assert imported_from != ROOT / PACKAGE
