"""Shared test setup: hypothesis profiles and the three interpreters."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings

from host_sim import INTERPRETERS

# CI: bounded and derandomized, so the suite's time is predictable; dev: more examples.
settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=100, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
_DEFAULT_PROFILE = "ci" if os.environ.get("CI") else "dev"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", _DEFAULT_PROFILE))

SHARED_MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"


def pytest_generate_tests(metafunc):
    """Every device-code test with an `interpreter` argument runs on all three interpreters."""
    if "interpreter" in metafunc.fixturenames:
        metafunc.parametrize("interpreter", INTERPRETERS)
