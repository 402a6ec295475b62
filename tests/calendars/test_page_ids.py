"""Ids are unique on every page a learner with two connected calendars sees: assistive
technologies follow aria-labelledby to the first element with an id, so a repeated one
labels every row with the first row's text."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from django.urls import reverse

from tests.calendars.connect_helpers import connect


@pytest.mark.parametrize(
    "name", ["settings_calendars", "calendars:calendar", "settings", "settings_api"]
)
def test_no_id_is_used_twice(sandbox_settings, learner, learner_client, name):
    connect(sandbox_settings, learner, "google")
    connect(sandbox_settings, learner, "outlook")

    text = learner_client.get(reverse(name)).content.decode()

    repeated = {k: n for k, n in Counter(re.findall(r'\sid="([^"]+)"', text)).items() if n > 1}
    assert repeated == {}
