from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.forms import grouped_time_zones
from accounts.models import Profile, time_zone_choices


def test_default_language_is_french_even_for_english_browsers(client, db):
    response = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")
    assert '<html lang="fr">' in response.text
    assert response["Content-Language"] == "fr"


def test_language_switcher_for_a_visitor_sets_a_cookie(client, db):
    response = client.post(reverse("set_language"), {"language": "en", "next": "/accounts/login/"})
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    page = client.get(reverse("login"))
    assert '<html lang="en">' in page.text
    assert "Sign in" in page.text


def test_language_switcher_saves_the_learners_choice(learner_client, learner):
    learner_client.post(reverse("set_language"), {"language": "en", "next": "/formations/"})
    assert Profile.objects.get(user=learner).language == "en"
    learner_client.cookies.clear()
    learner_client.force_login(learner)
    page = learner_client.get(reverse("formations:list"))
    assert "My training sessions" in page.text


def test_language_switcher_ignores_foreign_redirects_and_unknown_languages(client, db):
    response = client.post(
        reverse("set_language"), {"language": "xx", "next": "https://evil.example.com/"}
    )
    assert response["Location"] == reverse("formations:list")
    assert "django_language" not in response.cookies


def test_settings_page_saves_time_zone_and_language(learner_client, learner):
    page = learner_client.get(reverse("settings"))
    assert page.status_code == 200
    assert 'value="Europe/Paris" selected' in page.text

    response = learner_client.post(
        reverse("settings"), {"time_zone": "Asia/Tokyo", "language": "en"}, follow=True
    )
    profile = Profile.objects.get(user=learner)
    assert (profile.time_zone, profile.language) == ("Asia/Tokyo", "en")
    assert "Your preferences have been saved." in response.text
    assert "Asia/Tokyo" in response.text


def test_settings_page_rejects_an_unknown_time_zone(learner_client, learner):
    response = learner_client.post(
        reverse("settings"), {"time_zone": "Mars/Olympus", "language": "fr"}
    )
    assert response.status_code == 200
    assert response.context["form"].errors["time_zone"]
    assert not Profile.objects.filter(user=learner).exists()


def test_navigation_marks_the_current_section(learner_client):
    page = learner_client.get(reverse("formations:list"))
    assert f'href="{reverse("formations:list")}" aria-current="page"' in page.text
    assert f'href="{reverse("calendars:calendar")}" aria-current' not in page.text


def test_footer_names_the_display_time_zone(learner_client):
    learner_client.post(reverse("settings"), {"time_zone": "America/Montreal", "language": "fr"})
    page = learner_client.get(reverse("formations:list"))
    assert "<strong>America/Montreal</strong>" in page.text


def test_opening_settings_stores_nothing(learner_client, learner):
    assert learner_client.get(reverse("settings")).status_code == 200
    assert not Profile.objects.filter(user=learner).exists()


def test_language_picked_before_signing_in_is_kept_after(client, make_user):
    make_user("lea", password="correct horse battery")
    client.post(reverse("set_language"), {"language": "en", "next": "/accounts/login/"})
    client.post(reverse("login"), {"username": "lea", "password": "correct horse battery"})
    client.get(reverse("settings"))
    page = client.get(reverse("formations:list"))
    assert '<html lang="en">' in page.text


def test_language_menu_names_each_language_in_itself(client, db):
    page = client.get(reverse("login"))
    assert '<option value="en" lang="en">English</option>' in page.text
    assert '<option value="fr" lang="fr" selected>Français</option>' in page.text


def test_time_zones_are_grouped_common_ones_first_each_once_with_its_offset():
    winter = grouped_time_zones(datetime(2027, 1, 15, tzinfo=UTC))
    summer = grouped_time_zones(datetime(2027, 7, 15, tzinfo=UTC))
    labels = [str(label) for label, _ in winter]
    assert labels[0] == "Fuseaux courants"
    assert labels[1:4] == ["Europe", "Afrique", "Amériques"]
    assert labels[-1] == "Autres fuseaux"
    common = dict(winter[0][1])
    assert list(common)[:2] == ["Europe/Paris", "Europe/Brussels"]
    assert common["Europe/Paris"] == "Paris (UTC+01:00)"
    assert dict(summer[0][1])["Europe/Paris"] == "Paris (UTC+02:00)"
    regions = dict(winter)
    americas = dict(next(zones for label, zones in winter if str(label) == "Amériques"))
    assert americas["America/Argentina/Buenos_Aires"] == "Argentina › Buenos Aires (UTC−03:00)"
    names = [name for _, zones in winter for name, _ in zones]
    assert len(names) == len(set(names))  # each zone once
    assert set(names) == {name for name, _ in time_zone_choices()}
    assert "Europe/Paris" not in dict(next(z for label, z in regions.items() if label == "Europe"))


def test_the_settings_page_offers_the_grouped_zones_and_a_search(learner_client):
    page = learner_client.get(reverse("settings")).text
    assert '<optgroup label="Fuseaux courants">' in page
    assert page.index('<optgroup label="Fuseaux courants">') < page.index(
        '<optgroup label="Europe">'
    )
    assert '<option value="Europe/Paris" selected>Paris (UTC+0' in page
    assert 'data-search-label="Rechercher un fuseau (ville ou région)"' in page
    assert "js/zone-search.js" in page


def test_a_learner_can_stop_sharing_their_busy_time_with_staff(learner_client, learner):
    page = learner_client.get(reverse("settings")).text
    assert 'name="share_busy"' in page and "checked" in page.split('name="share_busy"')[1][:80]
    assert "jamais le titre, le lieu ou le détail de vos événements" in page

    learner_client.post(reverse("settings"), {"time_zone": "Europe/Paris", "language": "fr"})

    assert Profile.objects.get(user=learner).share_busy is False
    learner_client.post(
        reverse("settings"), {"time_zone": "Europe/Paris", "language": "fr", "share_busy": "on"}
    )
    assert Profile.objects.get(user=learner).share_busy is True


SIGN_IN_BACKENDS = [
    "accounts.backends.GoogleSignIn",
    "accounts.backends.MicrosoftSignIn",
    "django.contrib.auth.backends.ModelBackend",
]


@pytest.mark.parametrize("backend", SIGN_IN_BACKENDS)
def test_pages_are_in_the_learners_language_and_zone_however_they_signed_in(
    client, learner, backend
):
    Profile.objects.create(user=learner, language="en", time_zone="Asia/Tokyo")
    client.force_login(learner, backend=backend)

    with CaptureQueriesContext(connection) as captured:
        page = client.get(reverse("formations:list"))

    assert '<html lang="en">' in page.text
    assert "<strong>Asia/Tokyo</strong>" in page.text
    profile_alone = [q for q in captured if q["sql"].startswith('SELECT "accounts_profile"')]
    # Google and Microsoft sign-ins read the profile with the user (accounts.backends).
    assert len(profile_alone) == (1 if backend.endswith("ModelBackend") else 0)


@pytest.mark.parametrize("backend", SIGN_IN_BACKENDS)
def test_a_deactivated_learner_is_signed_out_however_they_signed_in(client, learner, backend):
    client.force_login(learner, backend=backend)
    learner.is_active = False
    learner.save()

    response = client.get(reverse("formations:list"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
