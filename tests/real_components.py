"""Skips of the real components (a Mosquitto broker, a headless Chromium, the data in ../shared) turn
into failures where they must not skip: with ``EMOEDGE_REQUIRE_REAL=1`` (set by ``.ci/run``) such a
skip fails the test, naming what is missing. Other skips (root, a Pi camera, an Edge TPU) stay skips.
``tests/conftest.py`` imports the hook; a pytest run elsewhere loads it with ``-p real_components``."""

from __future__ import annotations

import os

import pytest

REQUIRE_REAL = "EMOEDGE_REQUIRE_REAL"
# words of a skip reason that name a real component (every such skip in tests/ names one of them)
REAL_COMPONENTS = ("mosquitto", "chromium", "shared", "paho-mqtt", "postgresql", "psycopg", "xvfb")


def required() -> bool:
    return os.environ.get(REQUIRE_REAL, "") == "1"


def real_component_of(reason: str) -> str | None:
    """The real component a skip reason names, if any."""
    low = reason.lower()
    return next((c for c in REAL_COMPONENTS if c in low), None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not (report.skipped and required() and isinstance(report.longrepr, tuple)):
        return
    reason = str(report.longrepr[2])
    if real_component_of(reason) and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"{REQUIRE_REAL}=1: a real-component test must run here, but it skipped: {reason}"
