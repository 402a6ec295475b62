from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta

import icalendar
from django.urls import reverse
from django.utils import timezone


def test_list_shows_only_the_learners_own_formations(learner_client, learner, make_formation,
                                                      make_user):  # fmt: skip
    mine = make_formation(title="Ma formation", learners=(learner,))
    make_formation(title="Celle d'un autre", learners=(make_user(),))

    response = learner_client.get(reverse("formations:list"))

    assert response.status_code == 200
    assert list(response.context["upcoming"]) == [mine]
    assert "Ma formation" in response.text
    assert "Celle d&#x27;un autre" not in response.text


def test_list_splits_upcoming_and_past_in_french(learner_client, learner, make_formation):
    make_formation(title="Passée", start=timezone.now() - timedelta(days=10), learners=(learner,))
    make_formation(title="À venir", learners=(learner,))

    response = learner_client.get(reverse("formations:list"))

    assert [f.title for f in response.context["upcoming"]] == ["À venir"]
    assert [f.title for f in response.context["past"]] == ["Passée"]
    assert '<html lang="fr">' in response.text
    assert "Mes formations" in response.text


def test_list_escapes_titles(learner_client, learner, make_formation):
    make_formation(title="<script>alert(1)</script>", learners=(learner,))
    response = learner_client.get(reverse("formations:list"))
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text


def test_detail_shows_dates_in_the_learners_time_zone(learner_client, learner, make_formation):
    start = datetime(2027, 6, 1, 9, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))
    formation = make_formation(start=start, learners=(learner,))

    response = learner_client.get(reverse("formations:detail", args=[formation.pk]))
    assert "09:00" in response.text
    assert "Heure locale de la formation" not in response.text

    learner_client.post(reverse("settings"), {"time_zone": "America/New_York", "language": "fr"})
    response = learner_client.get(reverse("formations:detail", args=[formation.pk]))
    assert "03:00" in response.text
    assert "Heure locale de la formation (Europe/Paris)" in response.text


def test_detail_of_another_learners_formation_is_404(learner_client, make_formation, make_user):
    other = make_formation(learners=(make_user(),))
    assert learner_client.get(reverse("formations:detail", args=[other.pk])).status_code == 404


def test_ics_of_another_learners_formation_is_404(learner_client, make_formation, make_user):
    other = make_formation(learners=(make_user(),))
    assert learner_client.get(reverse("formations:ics", args=[other.pk])).status_code == 404


def test_ics_of_a_missing_formation_is_404(learner_client):
    assert learner_client.get(reverse("formations:ics", args=[999999])).status_code == 404


def test_ics_download_parses_back_with_utc_times(learner_client, learner, make_formation):
    start = datetime(2027, 1, 15, 9, 30, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))
    formation = make_formation(start=start, hours=2, learners=(learner,))

    response = learner_client.get(reverse("formations:ics", args=[formation.pk]))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="formation-{formation.pk}.ics"'
    )
    event = icalendar.Calendar.from_ical(response.content).events[0]
    assert event.start.astimezone(UTC) == datetime(2027, 1, 15, 8, 30, tzinfo=UTC)
    assert event.end.astimezone(UTC) == datetime(2027, 1, 15, 10, 30, tzinfo=UTC)
    assert str(event["URL"]) == f"http://testserver/formations/{formation.pk}/"


def test_ics_rejects_post(learner_client, learner, make_formation):
    formation = make_formation(learners=(learner,))
    assert learner_client.post(reverse("formations:ics", args=[formation.pk])).status_code == 405


def test_list_says_so_when_there_is_nothing(learner_client):
    response = learner_client.get(reverse("formations:list"))
    assert "Aucune formation à venir." in response.text
    assert "Aucune formation passée." in response.text
