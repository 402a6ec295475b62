"""What every page carries: the site's icon, and the admin under the site's own name."""

from __future__ import annotations

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse


def test_pages_and_the_admin_name_the_sites_icon(learner_client, staff_client):
    for client, url in ((learner_client, reverse("formations:list")),
                        (staff_client, reverse("admin:index"))):  # fmt: skip
        text = client.get(url).content.decode()
        assert 'rel="icon"' in text and "favicon.svg" in text
    assert finders.find("favicon.svg")
    assert learner_client.get("/favicon.ico")["Location"].endswith("favicon.svg")


def test_the_admin_carries_the_sites_title(staff_client):
    text = staff_client.get(reverse("admin:index")).content.decode()

    assert "Formations — administration" in text
    assert "Django" not in text.split("<body", 1)[1].split("</header>", 1)[0]


@pytest.mark.parametrize(
    "path", ["/accounts/login/", "/healthz", "/api/calendar-integration/integrations"]
)
def test_every_answer_carries_the_content_and_permissions_policies(client, db, path):
    response = client.get(path)

    policy = dict(
        part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";")
    )
    assert policy["script-src"] == "'self'"  # no inline script, no eval
    assert policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["object-src"] == "'none'"
    assert "form-action" not in policy  # sign-in and connecting redirect a POST to providers
    assert "camera=()" in response["Permissions-Policy"]
    assert "geolocation=()" in response["Permissions-Policy"]
