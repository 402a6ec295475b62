from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from formations.models import Formation


def test_admin_is_closed_to_learners(learner_client):
    response = learner_client.get(reverse("admin:formations_formation_changelist"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_admin_is_closed_to_anonymous_visitors(client):
    response = client.get(reverse("admin:formations_formation_changelist"))
    assert response.status_code == 302
    assert "login" in response["Location"]


def test_staff_can_search_and_filter_formations(staff_client, make_formation):
    make_formation(title="Excel avancé")
    make_formation(title="Anglais", status=Formation.Status.CANCELLED)
    url = reverse("admin:formations_formation_changelist")

    found = staff_client.get(url, {"q": "excel"})
    assert [f.title for f in found.context["cl"].result_list] == ["Excel avancé"]

    cancelled = staff_client.get(url, {"status__exact": "cancelled"})
    assert [f.title for f in cancelled.context["cl"].result_list] == ["Anglais"]


def test_staff_cancel_action_cancels_the_selected_formations(staff_client, make_formation):
    chosen, other = make_formation(), make_formation()
    response = staff_client.post(
        reverse("admin:formations_formation_changelist"),
        {"action": "cancel_formations", "_selected_action": [chosen.pk]},
        follow=True,
    )
    assert response.status_code == 200
    chosen.refresh_from_db()
    other.refresh_from_db()
    assert chosen.status == Formation.Status.CANCELLED
    assert other.status == Formation.Status.SCHEDULED
    assert "1 formation annulée." in response.text


def test_staff_enters_times_in_the_formations_own_zone(staff_client, make_user):
    learner = make_user()
    response = staff_client.post(
        reverse("admin:formations_formation_add"),
        {
            "title": "Atelier Montréal",
            "description": "",
            "trainer": "",
            "status": "scheduled",
            "time_zone": "America/Montreal",
            "start_0": "2027-03-02",
            "start_1": "09:00",
            "end_0": "2027-03-02",
            "end_1": "12:00",
            "location": "",
            "online_url": "",
            "enrollments-TOTAL_FORMS": "1",
            "enrollments-INITIAL_FORMS": "0",
            "enrollments-0-learner": learner.pk,
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    formation = Formation.objects.get(title="Atelier Montréal")
    assert formation.start == datetime(2027, 3, 2, 14, tzinfo=UTC)
    assert formation.end == datetime(2027, 3, 2, 17, tzinfo=UTC)
    assert list(formation.enrollments.values_list("learner", flat=True)) == [learner.pk]

    change = staff_client.get(reverse("admin:formations_formation_change", args=[formation.pk]))
    assert 'value="09:00:00"' in change.text


def test_staff_sees_a_clear_error_when_end_is_before_start(staff_client):
    response = staff_client.post(
        reverse("admin:formations_formation_add"),
        {
            "title": "Inversée",
            "status": "scheduled",
            "time_zone": "Europe/Paris",
            "start_0": "2027-03-02",
            "start_1": "12:00",
            "end_0": "2027-03-02",
            "end_1": "09:00",
            "enrollments-TOTAL_FORMS": "0",
            "enrollments-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["end"] == [
        "La fin doit être postérieure au début."
    ]
    assert not Formation.objects.filter(title="Inversée").exists()


def test_admin_change_form_shows_stored_time_in_formation_zone(staff_client, make_formation):
    formation = make_formation(
        start=datetime(2027, 7, 1, 10, tzinfo=zoneinfo.ZoneInfo("Asia/Tokyo")),
        time_zone="Asia/Tokyo",
    )
    change = staff_client.get(reverse("admin:formations_formation_change", args=[formation.pk]))
    assert 'value="10:00:00"' in change.text


def test_time_zone_filter_lists_only_zones_in_use(staff_client, make_formation):
    make_formation(time_zone="Europe/Paris")
    make_formation(time_zone="America/Montreal")
    response = staff_client.get(reverse("admin:formations_formation_changelist"))
    zone_filter = next(
        f for f in response.context["cl"].filter_specs if f.title == "fuseau horaire"
    )
    assert sorted(zone_filter.lookup_choices) == ["America/Montreal", "Europe/Paris"]


def test_change_page_queries_do_not_grow_with_the_learners(staff_client, make_formation, make_user):
    def queries(formation: Formation) -> int:
        url = reverse("admin:formations_formation_change", args=[formation.pk])
        with CaptureQueriesContext(connection) as captured:
            page = staff_client.get(url)
        assert page.status_code == 200
        return len(captured)

    alice = make_user(username="alice")
    few = make_formation(learners=(alice, make_user()))
    many = make_formation(learners=tuple(make_user() for _ in range(12)))
    queries(few)  # the session's first request reads the staff member's preferences
    assert queries(many) == queries(few)
    page = staff_client.get(reverse("admin:formations_formation_change", args=[few.pk]))
    assert f'<option value="{alice.pk}" selected>alice</option>' in page.text
