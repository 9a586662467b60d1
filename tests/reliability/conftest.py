"""Options and shared fixtures of the reliability suite.

``--long`` (or ``CHILD_PROCESS_LONG_TESTS=1`` in the environment) runs the release-sized stress
tests (10 000 spawns, 1 000 000 messages, ...); without it they are skipped and the normal-sized
versions run.  ``--long`` is registered here, so it is accepted when ``tests/reliability`` (or a
file in it) is named on the command line; for a run of all of ``tests/``, use the environment
variable.

Every test measures what it did (processes started, messages, bytes, RSS, descriptors) through
the ``figures`` fixture; the figures are printed at the end of the run and, when
``CHILD_PROCESS_RELIABILITY_FIGURES=<path>`` is set, written there as JSON (docs/reliability.md
is built from them).

The autouse leak check of ``tests/conftest.py`` applies to every test here too.
"""

from __future__ import annotations

import json
import os

import pytest

_FIGURES: dict = {}


def pytest_addoption(parser):
    parser.addoption("--long", action="store_true", default=False,
                     help="run the release-sized reliability stress tests (tests/reliability); "
                          "same as CHILD_PROCESS_LONG_TESTS=1")


def long_enabled(config) -> bool:
    try:
        if config.getoption("--long"):
            return True
    except ValueError:
        pass
    return os.environ.get("CHILD_PROCESS_LONG_TESTS", "") not in ("", "0")


#: set at configure time, for modules that size themselves at import (hypothesis settings)
LONG = {"enabled": False}


def pytest_configure(config):
    LONG["enabled"] = long_enabled(config)
    config.addinivalue_line("markers", "long: release-sized stress test (needs --long or "
                                       "CHILD_PROCESS_LONG_TESTS=1)")


def pytest_collection_modifyitems(config, items):
    if long_enabled(config):
        return
    skip = pytest.mark.skip(reason="release-sized stress test: run with --long or "
                                   "CHILD_PROCESS_LONG_TESTS=1")
    for item in items:
        if item.get_closest_marker("long"):
            item.add_marker(skip)


@pytest.fixture
def long_run(request) -> bool:
    return long_enabled(request.config)


@pytest.fixture
def figures(request):
    """``figures(**values)`` records what this test measured, under the test's id."""
    def record(**values):
        _FIGURES.setdefault(request.node.nodeid.split("::", 1)[-1], {}).update(values)
    return record


def pytest_terminal_summary(terminalreporter):
    if not _FIGURES:
        return
    terminalreporter.section("reliability figures")
    for name, values in sorted(_FIGURES.items()):
        terminalreporter.write_line(f"{name}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    path = os.environ.get("CHILD_PROCESS_RELIABILITY_FIGURES")
    if path:
        with open(path, "w") as f:
            json.dump(_FIGURES, f, indent=1, sort_keys=True)
