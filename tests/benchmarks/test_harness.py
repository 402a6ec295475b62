"""The benchmarks' harness plays the sandbox's consent pages as a browser would: a change to a
page (Google's granular consent boxes) must not leave the benchmarks unable to connect."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from calendars.models import CalendarIntegration

LEARNERS = Path(__file__).resolve().parents[2] / "benchmarks" / "harness" / "learners.py"


def _learners():
    spec = importlib.util.spec_from_file_location("bench_harness_learners", LEARNERS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("provider", ["google", "outlook"])
def test_the_harness_connects_a_calendar_through_the_consent_page(
    sandbox_settings, learner, provider
):
    integration = _learners().connect(learner, provider)

    assert integration.status == CalendarIntegration.Status.CONNECTED
    assert integration.calendars.filter(is_export_target=True).exists()
