"""Every page a learner meets, at desktop and phone widths: axe-core finds no violation, the
page does not scroll sideways, the header holds on one row on a phone, and no button has a
list bullet in front of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import axe_playwright_python
import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page

from calendars import tasks
from calendars.availability import busy_events
from calendars.models import CalendarIntegration, SyncRun
from calendars.services.conflicts import conflict_dismiss
from calendars.sync.exporting import integration_export
from tests.calendars.connect_helpers import connect

AXE = Path(axe_playwright_python.__file__).parent / "axe.min.js"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

# What the page checks in the browser, besides axe: sideways scrolling, the header's height,
# and the buttons (or links drawn as buttons) that sit in a list item showing a bullet.
LAYOUT = """() => {
  const bulleted = [...document.querySelectorAll("button, a.button, input[type=submit]")]
    .filter((el) => el.offsetParent !== null)
    .filter((el) => {
      const li = el.closest("li");
      return li && getComputedStyle(li).display === "list-item"
        && getComputedStyle(li).listStyleType !== "none";
    })
    .map((el) => el.textContent.trim());
  return {
    sideways: document.documentElement.scrollWidth > window.innerWidth,
    header: document.querySelector(".site-header").getBoundingClientRect().height,
    bulleted,
  };
}"""

AXE_RUN = """async () => {
  const result = await axe.run(document, { resultTypes: ["violations"] });
  return result.violations.map((v) => ({
    id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")),
  }));
}"""


def _check(page: Page, path: str, *, phone: bool) -> list[str]:
    page.goto(path)
    page.wait_for_load_state("load")
    problems = []
    # Evaluated as the developer tools would: a script tag added to the page is an inline
    # script, which the site's Content-Security-Policy refuses.
    page.evaluate(AXE.read_text() + "\n;undefined")
    for violation in page.evaluate(AXE_RUN):
        problems.append(
            f"{path}: axe {violation['id']} ({violation['impact']}) {violation['nodes']}"
        )
    layout: dict[str, Any] = page.evaluate(LAYOUT)
    if layout["sideways"]:
        problems.append(f"{path}: the page scrolls sideways")
    if phone and layout["header"] > 64:
        problems.append(f"{path}: the header takes {layout['header']:.0f} px, not one row")
    if layout["bulleted"]:
        problems.append(f"{path}: a bullet in front of {layout['bulleted']}")
    return problems


@pytest.fixture
def learner_pages(make_user, make_formation, sandbox_settings) -> tuple[Any, list[str]]:
    """A learner with Google connected and synced, Outlook connected, one formation added to
    both and one not (their "Ajouter mes formations" is off): the withdraw page has something
    to say, and the second formation's page offers its buttons. Both formations are over a
    busy event to come: conflicts on every page, the second one's dismissed."""
    demo = make_user("demo", password="demo", first_name="Camille", last_name="Durand")
    google = connect(sandbox_settings, demo, "google")
    tasks.sync_integration(google.pk, SyncRun.Trigger.CONNECT)
    event = (
        busy_events([demo.pk])
        .filter(calendar__integration=google, all_day=False, start__gt=timezone.now())
        .order_by("start")
        .first()
    )
    outlook = connect(sandbox_settings, demo, "outlook")
    added = make_formation(start=event.start, learners=(demo,), title="Atelier <b>1</b>")
    integration_export(integration=outlook)
    # "Ajouter mes formations" off: the next formation's page offers its buttons.
    CalendarIntegration.objects.filter(user=demo).update(export_enabled=False)
    offered = make_formation(start=event.start, learners=(demo,), title="Atelier 2")
    assert conflict_dismiss(user=demo, formation_id=offered.pk, event_id=event.pk)
    day = f"{event.start:%Y-%m-%d}"
    paths = [
        reverse("formations:list"),
        added.get_absolute_url(),
        offered.get_absolute_url(),
        *(
            f"{reverse('calendars:calendar')}?view={view}&date={day}"
            for view in ("month", "week", "day", "agenda")
        ),
        reverse("calendars:event", args=[f"event-{event.pk}"]),
        reverse("calendars:event", args=[f"formation-{added.pk}"]),
        reverse("settings"),
        reverse("settings_calendars"),
        reverse("settings_api"),
        reverse("settings_security"),
        reverse("settings_calendar_disconnect", args=["google"]),
        reverse("settings_calendar_withdraw", args=["outlook"]),
    ]
    return demo, paths


@pytest.mark.parametrize(
    "context_options",
    [
        pytest.param({"locale": "fr-FR", "timezone_id": "Europe/Paris", "viewport": DESKTOP},
                     id="desktop"),
        pytest.param({"locale": "fr-FR", "timezone_id": "Europe/Paris", "viewport": PHONE,
                      "is_mobile": True, "has_touch": True}, id="phone"),
    ],
)  # fmt: skip
def test_every_page_passes_axe_fits_the_screen_and_has_no_bullet_before_a_button(
    page, sign_in, learner_pages, context_options
):
    phone = context_options["viewport"] == PHONE
    problems = _check(page, reverse("login"), phone=phone)
    demo, paths = learner_pages
    sign_in(demo, "demo")
    for path in paths:
        problems += _check(page, path, phone=phone)
    assert problems == []
