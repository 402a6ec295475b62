"""Staff's admin of formations with their learners' availability: counts and names on the
formation's page and in the list, the warning before a move, free slots; never anything of
the learners' events (calendars/admin/formations.py)."""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from calendars.admin.formations import FormationAvailabilityAdmin
from formations.models import Enrollment, Formation
from tests.calendars.availability_helpers import busy, connected, stop_sharing
from tests.calendars.client_helpers import messages_of, text_of, words_of

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
MONTREAL = zoneinfo.ZoneInfo("America/Montreal")
NINE = datetime(2030, 3, 4, 9, tzinfo=PARIS)  # a Monday
CHANGELIST = reverse("admin:formations_formation_changelist")
# What the learners' events say: none of it may reach an admin page.
SECRETS = ("Rendez-vous ORL confidentiel", "Clinique des Lilas", "Dossier 4711-XK")


def _change(formation: Formation) -> str:
    return reverse("admin:formations_formation_change", args=[formation.pk])


def _slots(formation: Formation) -> str:
    return reverse("admin:formations_formation_slots", args=[formation.pk])


def _secret_event(calendar, start, hours=1):
    title, location, description = SECRETS
    return busy(calendar, start, hours, title=title, location=location, description=description,
                html_link="https://calendar.example.com/secret-event")  # fmt: skip


@pytest.fixture
def people(make_user):
    """Ana is busy on Monday morning, Bruno is free, Chloé has no calendar, Dan is busy but
    does not share."""
    ana = make_user("ana", first_name="Ana", last_name="Alves")
    bruno = make_user("bruno", first_name="Bruno", last_name="Bellec")
    chloe = make_user("chloe", first_name="Chloé", last_name="Caron")
    dan = make_user("dan", first_name="Dan", last_name="Durieux")
    _secret_event(connected(ana), NINE + timedelta(days=1), hours=4)  # Tuesday morning
    connected(bruno)
    _secret_event(connected(dan), NINE + timedelta(days=1))
    stop_sharing(dan)
    return ana, bruno, chloe, dan


@pytest.fixture
def formation(make_formation, people):
    """Monday 9:00 to 12:00 in Paris, when everyone is free."""
    return make_formation(start=NINE, hours=3, learners=people, title="Atelier")


def _form_data(formation: Formation, **changes) -> dict:
    """The change form as the page sends it back, with `changes` (start and end as local
    datetimes of the formation's zone; other fields as they are posted)."""
    zone = formation.tz
    start = changes.pop("start", formation.start.astimezone(zone))
    end = changes.pop("end", formation.end.astimezone(zone))
    enrollments = list(formation.enrollments.order_by("pk"))
    data = {
        "title": formation.title, "description": formation.description,
        "trainer": formation.trainer, "status": formation.status,
        "time_zone": formation.time_zone,
        "start_0": start.strftime("%Y-%m-%d"), "start_1": start.strftime("%H:%M"),
        "end_0": end.strftime("%Y-%m-%d"), "end_1": end.strftime("%H:%M"),
        "location": formation.location, "online_url": formation.online_url,
        "enrollments-TOTAL_FORMS": str(len(enrollments)),
        "enrollments-INITIAL_FORMS": str(len(enrollments)),
    }  # fmt: skip
    for i, enrollment in enumerate(enrollments):
        data[f"enrollments-{i}-id"] = enrollment.pk
        data[f"enrollments-{i}-formation"] = formation.pk
        data[f"enrollments-{i}-learner"] = enrollment.learner_id
    data.update(changes)
    return data


def _tuesday(formation: Formation) -> dict:
    """The formation moved to Tuesday, same hours: Ana (and Dan, unshared) are busy."""
    local = formation.start.astimezone(formation.tz) + timedelta(days=1)
    return {"start": local, "end": local + (formation.end - formation.start)}


def _assert_private(*responses) -> None:
    for response in responses:
        page = text_of(response)
        for secret in (*SECRETS, "secret-event"):
            assert secret not in page, f"{secret!r} on {response.request['PATH_INFO']}"


def test_the_formations_admin_is_the_calendars_one():
    assert isinstance(admin.site._registry[Formation], FormationAvailabilityAdmin)


# --- the formation's page and the list ---------------------------------------------------------


def test_change_page_counts_and_names_the_busy_learners(staff_client, formation):
    Formation.objects.filter(pk=formation.pk).update(
        start=NINE + timedelta(days=1), end=NINE + timedelta(days=1, hours=3)
    )

    page = staff_client.get(_change(formation))

    text = words_of(text_of(page))
    assert (
        "1 apprenant occupé sur 4 ; 1 libre ; "
        "2 inconnus (agenda non connecté ou partage désactivé)" in text
    )
    assert "Occupés : Ana Alves" in text
    assert "Durieux" not in text  # Dan does not share: never named
    assert f'href="{_slots(formation)}"' in page.text
    _assert_private(page)


def test_change_page_when_everyone_is_free(staff_client, formation):
    text = words_of(text_of(staff_client.get(_change(formation))))
    assert re.search(r"\b0 apprenants? occupés? sur 4 ; 2 libres ; 2 inconnus", text)
    assert "Occupés :" not in text


def test_a_learner_not_sharing_is_never_named(staff_client, make_formation, make_user):
    dan = make_user("dan", first_name="Dan", last_name="Durieux")
    _secret_event(connected(dan), NINE)
    stop_sharing(dan)
    formation = make_formation(start=NINE, learners=(dan,))

    text = words_of(text_of(staff_client.get(_change(formation))))

    assert re.search(r"\b0 apprenants? occupés? sur 1 ; 0 libres? ; 1 inconnu\b", text)
    assert "Occupés" not in text


def test_list_shows_how_many_learners_are_busy(staff_client, make_formation, people):
    monday = make_formation(start=NINE, learners=people, title="Lundi")
    tuesday = make_formation(start=NINE + timedelta(days=1), learners=people, title="Mardi")
    cancelled = make_formation(start=NINE + timedelta(days=1), learners=people, title="Annulée",
                               status=Formation.Status.CANCELLED)  # fmt: skip

    page = staff_client.get(CHANGELIST)

    assert '<div class="text"><span>Occupés</span></div>' in page.text
    shown = {f.pk: f._busy_learners for f in page.context["cl"].result_list}
    assert shown == {monday.pk: 0, tuesday.pk: 1, cancelled.pk: None}
    row = next(r for r in page.text.split("<tr") if "Mardi" in r)
    assert '<td class="field-busy_learners">1</td>' in row
    _assert_private(page)


def _changelist_queries(client) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(CHANGELIST).status_code == 200
    return len(captured)


def test_list_queries_do_not_grow_with_formations_learners_or_events(
    staff_client, make_formation, make_user
):
    def add(formations: int, learners: int) -> None:
        people = [make_user() for _ in range(learners)]
        for n in range(formations):
            start = NINE + timedelta(days=n)
            make_formation(start=start, learners=people)
        for person in people:
            calendar = connected(person)
            for n in range(formations):
                busy(calendar, NINE + timedelta(days=n))

    add(1, 1)
    few = _changelist_queries(staff_client)
    add(8, 6)
    assert _changelist_queries(staff_client) == few


def test_change_page_queries_do_not_grow_with_learners_or_events(
    staff_client, make_formation, make_user
):
    def queries(formation: Formation) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert staff_client.get(_change(formation)).status_code == 200
        return len(captured)

    def learners(count: int) -> tuple:
        people = tuple(make_user() for _ in range(count))
        for person in people:
            calendar = connected(person)
            busy(calendar, NINE)
            busy(calendar, NINE + timedelta(days=1))
        return people

    few = make_formation(start=NINE, learners=learners(1))
    many = make_formation(start=NINE, learners=learners(12))
    queries(few)  # the session's first request reads the staff member's preferences
    assert queries(many) == queries(few)


# --- moving a formation -------------------------------------------------------------------------


def test_moving_to_a_busy_time_warns_before_saving(staff_client, formation):
    response = staff_client.post(_change(formation), _form_data(formation, **_tuesday(formation)))

    assert response.status_code == 200
    text = words_of(text_of(response))
    assert (
        "À ce nouvel horaire, 1 apprenant sur 4 est occupé : Ana Alves. "
        "2 n'ont pas d'agenda connecté ou ne partagent pas leurs disponibilités." in text
    )
    assert "Durieux" not in text
    assert 'name="confirm_clash"' in response.text
    assert "Enregistrer quand même" in text
    stored = Formation.objects.get(pk=formation.pk)
    assert (stored.start, stored.end) == (formation.start, formation.end)
    _assert_private(response)


def test_saving_anyway_moves_the_formation(staff_client, formation):
    moved = _tuesday(formation)
    warned = staff_client.post(_change(formation), _form_data(formation, **moved))
    token = warned.context["adminform"].form.clash.token

    response = staff_client.post(
        _change(formation), _form_data(formation, **moved, confirm_clash=token), follow=True
    )

    assert response.redirect_chain[-1][0] == CHANGELIST
    stored = Formation.objects.get(pk=formation.pk)
    assert stored.start == moved["start"]
    assert stored.end == moved["end"]
    assert any("1 apprenant sur 4 est occupé : Ana Alves" in m for m in messages_of(response))
    _assert_private(response)


def test_saving_anyway_holds_only_for_the_times_warned_about(staff_client, formation):
    moved = _tuesday(formation)
    warned = staff_client.post(_change(formation), _form_data(formation, **moved))
    token = warned.context["adminform"].form.clash.token
    later = {k: v + timedelta(hours=1) for k, v in moved.items()}

    response = staff_client.post(
        _change(formation), _form_data(formation, **later, confirm_clash=token)
    )

    assert response.status_code == 200
    assert "À ce nouvel horaire, 1 apprenant sur 4 est occupé" in words_of(text_of(response))
    assert Formation.objects.get(pk=formation.pk).start == formation.start


def test_moving_to_a_free_time_saves_at_once(staff_client, formation):
    wednesday = formation.start.astimezone(PARIS) + timedelta(days=2)
    response = staff_client.post(
        _change(formation),
        _form_data(formation, start=wednesday, end=wednesday + timedelta(hours=3)),
    )
    assert response.status_code == 302
    assert Formation.objects.get(pk=formation.pk).start == wednesday


def test_other_changes_do_not_ask_while_learners_are_busy(staff_client, formation):
    """Only a move asks: a formation where a learner is busy already can be renamed."""
    Formation.objects.filter(pk=formation.pk).update(
        start=NINE + timedelta(days=1), end=NINE + timedelta(days=1, hours=3)
    )
    formation.refresh_from_db()
    response = staff_client.post(_change(formation), _form_data(formation, title="Renommé"))
    assert response.status_code == 302
    assert Formation.objects.get(pk=formation.pk).title == "Renommé"


def test_cancelling_does_not_ask(staff_client, formation):
    response = staff_client.post(
        _change(formation), _form_data(formation, status="cancelled", **_tuesday(formation))
    )
    assert response.status_code == 302


def test_moved_times_are_those_of_the_formations_zone(staff_client, make_formation, make_user):
    """9:00 typed for a formation in Montréal is 14:00 UTC: a learner busy then is warned
    about, one busy at 9:00 in Paris is not."""
    ana = make_user("ana", first_name="Ana", last_name="Alves")
    bruno = make_user("bruno", first_name="Bruno", last_name="Bellec")
    busy(connected(ana), datetime(2030, 3, 5, 14, tzinfo=UTC))
    busy(connected(bruno), datetime(2030, 3, 5, 9, tzinfo=PARIS))
    formation = make_formation(start=datetime(2030, 3, 4, 9, tzinfo=MONTREAL), hours=2,
                               time_zone="America/Montreal", learners=(ana, bruno))  # fmt: skip
    tuesday = datetime(2030, 3, 5, 9)  # as typed

    response = staff_client.post(
        _change(formation),
        _form_data(formation, start=tuesday, end=tuesday + timedelta(hours=2)),
    )

    assert "1 apprenant sur 2 est occupé : Ana Alves." in words_of(text_of(response))


# --- free slots -----------------------------------------------------------------------------------


def test_slots_are_ranked_with_their_counts(staff_client, formation, people):
    """Over Monday and Tuesday: Tuesday morning Ana is busy, so it comes last."""
    page = staff_client.get(_slots(formation), {"since": "2030-03-04", "until": "2030-03-05"})

    assert page.status_code == 200
    rows = page.context["rows"]
    assert [(r.slot.start.astimezone(PARIS).day, r.slot.start.hour, r.slot.free, r.slot.busy)
            for r in rows] == [
        (4, 9, 2, 0), (4, 12, 2, 0), (4, 15, 2, 0), (5, 13, 2, 0), (5, 9, 1, 1),
    ]  # fmt: skip
    text = words_of(text_of(page))
    assert "4 apprenants inscrits : 2 dont les disponibilités sont connues," in text
    assert "2 inconnus (agenda non connecté ou partage désactivé)." in text
    assert "lundi 4 mars 2030, 09:00 – 12:00" in text
    assert rows[0].current and "Horaire actuel" in text
    assert "Choisir ce créneau" in text
    _assert_private(page)


def test_slots_look_four_weeks_ahead_from_today_by_default(staff_client, formation):
    page = staff_client.get(_slots(formation))

    today = timezone.localdate(timezone.now(), PARIS)
    assert page.context["chosen"] == {"since": today, "until": today + timedelta(days=27)}
    for row in page.context["rows"]:
        assert today <= row.slot.start.date() < today + timedelta(days=28)
        assert row.slot.start >= timezone.now()
    assert page.context["form"]["since"].value() == today


def test_slots_in_the_formations_zone(staff_client, make_formation, people):
    formation = make_formation(start=datetime(2030, 3, 4, 9, tzinfo=MONTREAL), hours=8,
                               time_zone="America/Montreal", learners=people)  # fmt: skip

    page = staff_client.get(_slots(formation), {"since": "2030-03-08", "until": "2030-03-11"})

    assert [r.slot.start.astimezone(UTC) for r in page.context["rows"]] == [
        datetime(2030, 3, 8, 14, tzinfo=UTC),  # Friday 9:00 in Montréal
        datetime(2030, 3, 11, 13, tzinfo=UTC),  # Monday, after the clocks changed
    ]
    assert "vendredi 8 mars 2030, 09:00 – 17:00" in words_of(text_of(page))
    assert "(heure de America/Montreal)" in words_of(text_of(page))


def test_choosing_a_slot_fills_the_form_without_moving(staff_client, formation):
    page = staff_client.get(_slots(formation), {"since": "2030-03-05", "until": "2030-03-05"})
    choice = page.context["rows"][0]
    url = urlsplit(choice.url)
    assert url.path == _change(formation)

    form = staff_client.get(choice.url)

    assert 'value="05/03/2030"' in form.text and 'value="13:00:00"' in form.text
    assert "Nouvel horaire proposé" in form.text
    assert Formation.objects.get(pk=formation.pk).start == formation.start
    sent = parse_qs(url.query)
    assert datetime.fromisoformat(sent["start"][0]) == datetime(2030, 3, 5, 13, tzinfo=PARIS)


def test_a_formation_longer_than_a_working_day_gets_no_slot(staff_client, make_formation):
    formation = make_formation(start=NINE, hours=30)
    page = staff_client.get(_slots(formation), {"since": "2030-03-04", "until": "2030-03-08"})
    assert page.context["rows"] == []
    assert "plus longtemps qu'une journée de travail" in text_of(page)


@pytest.mark.parametrize(
    ("since", "until", "error"),
    [
        ("2030-03-08", "2030-03-04", "La date de fin précède la date de début."),
        ("2030-03-04", "2031-03-04", "Choisissez une période de 92 jours au plus."),
        ("demain", "2030-03-04", "Saisissez une date valide."),
    ],
)
def test_slots_refuse_a_bad_range(staff_client, formation, since, until, error):
    page = staff_client.get(_slots(formation), {"since": since, "until": until})
    assert page.status_code == 200
    assert error in text_of(page)
    assert page.context["rows"] == []


def test_slots_page_is_for_staff_only(client, learner_client, formation, make_user):
    assert learner_client.get(_slots(formation)).status_code == 302
    assert client.get(_slots(formation)).status_code == 302
    viewer = make_user(is_staff=True)
    client.force_login(viewer)
    assert client.get(_slots(formation)).status_code == 403
    viewer.user_permissions.add(Permission.objects.get(codename="view_formation"))
    page = client.get(_slots(formation))
    assert page.status_code == 200
    assert all(row.url == "" for row in page.context["rows"])  # may look, not move


def test_slots_of_a_formation_that_does_not_exist(staff_client):
    response = staff_client.get(reverse("admin:formations_formation_slots", args=[999999]))
    assert response.status_code == 302


def test_add_page_still_works(staff_client, make_user):
    learner = make_user()
    response = staff_client.get(reverse("admin:formations_formation_add"))
    assert response.status_code == 200
    assert "Trouver un créneau" not in response.text
    data = {
        "title": "Nouvelle", "status": "scheduled", "time_zone": "Europe/Paris",
        "start_0": "2030-03-04", "start_1": "09:00", "end_0": "2030-03-04", "end_1": "12:00",
        "enrollments-TOTAL_FORMS": "1", "enrollments-INITIAL_FORMS": "0",
        "enrollments-0-learner": learner.pk,
    }  # fmt: skip
    assert staff_client.post(reverse("admin:formations_formation_add"), data).status_code == 302
    assert Enrollment.objects.filter(formation__title="Nouvelle", learner=learner).exists()


def test_nothing_of_the_events_on_any_page(staff_client, formation, people):
    """Every page touched here, with learners busy at the formation's time."""
    moved = _tuesday(formation)
    pages = [
        staff_client.get(CHANGELIST),
        staff_client.get(_change(formation)),
        staff_client.post(_change(formation), _form_data(formation, **moved)),
        staff_client.get(_slots(formation)),
        staff_client.get(_slots(formation), {"since": "2030-03-04", "until": "2030-03-08"}),
    ]
    assert all(page.status_code == 200 for page in pages)
    _assert_private(*pages)
