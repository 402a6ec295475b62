"""Staff move a formation in the admin to a time when a learner is busy: the form warns with
the count and the name, "Enregistrer quand même" saves; and the pages pass axe."""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime, timedelta
from pathlib import Path

import axe_playwright_python
import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from formations.models import Formation
from tests.calendars.availability_helpers import busy, connected

AXE = Path(axe_playwright_python.__file__).parent / "axe.min.js"
# Django's own inline of enrollments (its select2 and delete boxes) is left out: not ours.
AXE_RUN = """async () => {
  const context = { exclude: [["#enrollments-group"]] };
  const result = await axe.run(context, { resultTypes: ["violations"] });
  return result.violations.map((v) => ({
    id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")),
  }));
}"""
PARIS = zoneinfo.ZoneInfo("Europe/Paris")
TUESDAY = datetime(2030, 3, 5, 9, tzinfo=PARIS)
SECRET = "Rendez-vous ORL confidentiel"


@pytest.fixture
def formation(make_user, make_formation):
    """Tuesday 9:00 to 12:00: Ana and Bruno are free; Ana is busy from 14:00 to 16:00. The
    learners export nothing (no provider here)."""
    ana = make_user("ana", first_name="Ana", last_name="Alves")
    bruno = make_user("bruno", first_name="Bruno", last_name="Bellec")
    busy(connected(ana, export_enabled=False), TUESDAY + timedelta(hours=5), 2, title=SECRET)
    connected(bruno, export_enabled=False)
    return make_formation(start=TUESDAY, hours=3, learners=(ana, bruno), title="Atelier")


def _axe(page: Page) -> list[str]:
    # Evaluated as the developer tools would: a script tag added to the page is an inline
    # script, which the site's Content-Security-Policy refuses.
    page.evaluate(AXE.read_text() + "\n;undefined")
    return [f"{page.url}: {v['id']} ({v['impact']}) {v['nodes']}" for v in page.evaluate(AXE_RUN)]


@pytest.mark.parametrize(
    "context_options",
    [
        pytest.param({}, id="script"),
        pytest.param({"java_script_enabled": False}, id="no-script"),
    ],
    indirect=True,
)
def test_staff_move_a_formation_to_a_busy_time_after_a_warning(page, sign_in, make_user,
                                                               formation):  # fmt: skip
    staff = make_user("staff", is_staff=True, is_superuser=True)
    sign_in(staff)
    page.goto(reverse("admin:formations_formation_change", args=[formation.pk]))

    page.locator("#id_start_1").fill("14:00")
    page.locator("#id_end_1").fill("17:00")
    page.get_by_role("button", name="Enregistrer", exact=True).click()

    warning = page.locator("ul.errorlist.nonfield")
    expect(warning).to_contain_text(
        "À ce nouvel horaire, 1 apprenant sur 2 est occupé : Ana Alves."
    )
    expect(page.get_by_text(SECRET)).to_have_count(0)
    assert Formation.objects.get(pk=formation.pk).start == TUESDAY

    page.get_by_label("Enregistrer quand même").check()
    page.get_by_role("button", name="Enregistrer", exact=True).click()

    expect(page).to_have_url(re.compile(reverse("admin:formations_formation_changelist") + "$"))
    expect(page.locator(".messagelist")).to_contain_text("1 apprenant sur 2 est occupé")
    moved = Formation.objects.get(pk=formation.pk)
    assert moved.start == TUESDAY + timedelta(hours=5)
    assert moved.end == TUESDAY + timedelta(hours=8)


def test_availability_pages_pass_axe(page, sign_in, make_user, formation):
    staff = make_user("staff", is_staff=True, is_superuser=True)
    sign_in(staff)
    change = reverse("admin:formations_formation_change", args=[formation.pk])
    page.goto(change)
    problems = _axe(page)
    page.locator("#id_start_1").fill("14:00")
    page.locator("#id_end_1").fill("17:00")
    page.get_by_role("button", name="Enregistrer", exact=True).click()
    expect(page.get_by_label("Enregistrer quand même")).to_be_visible()
    problems += _axe(page)
    page.get_by_role("link", name="Trouver un créneau").first.click()
    page.get_by_label("Du").fill("2030-03-04")
    page.get_by_label("Au (inclus)").fill("2030-03-08")
    page.get_by_role("button", name="Chercher").click()
    expect(page.locator("#slots tbody tr")).not_to_have_count(0)
    problems += _axe(page)
    page.get_by_role("link", name="Choisir ce créneau").first.click()
    expect(page.locator("#proposed-slot")).to_be_visible()
    problems += _axe(page)
    assert problems == []
