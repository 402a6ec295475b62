from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from formations.models import Enrollment, Formation


@pytest.fixture
def debug_on(settings):
    settings.DEBUG = True


def _state():
    users = sorted(get_user_model().objects.values_list("username", "password"))
    formations = sorted(Formation.objects.values_list("uid", "title", "start", "status"))
    enrollments = sorted(Enrollment.objects.values_list("learner__username", "formation__title"))
    return users, formations, enrollments


def test_seed_demo_is_idempotent(db, debug_on):
    call_command("seed_demo")
    first = _state()
    call_command("seed_demo")
    assert _state() == first


def test_seed_demo_creates_learner_staff_and_formations(db, debug_on, client):
    call_command("seed_demo")
    User = get_user_model()
    assert User.objects.get(username="demo").check_password("demo")
    admin = User.objects.get(username="admin")
    assert admin.is_staff and admin.check_password("admin")
    assert 10 <= Formation.objects.count() <= 14
    assert Formation.objects.filter(status=Formation.Status.CANCELLED).count() == 1
    assert Formation.objects.exclude(online_url="").exists()
    assert Formation.objects.exclude(location="").exists()
    assert Enrollment.objects.filter(learner__username="demo").count() >= 5

    # Through the sign-in form: the lock on guessing needs the request.
    signed_in = client.post(reverse("login"), {"username": "demo", "password": "demo"})
    assert signed_in.status_code == 302
    assert "_auth_user_id" in client.session


def test_seed_demo_keeps_changed_passwords(db, debug_on):
    call_command("seed_demo")
    demo = get_user_model().objects.get(username="demo")
    demo.set_password("a-new-password")
    demo.save()
    call_command("seed_demo")
    demo.refresh_from_db()
    assert demo.check_password("a-new-password")


def test_seed_demo_refuses_with_debug_off(db, settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG off"):
        call_command("seed_demo")
    assert not get_user_model().objects.exists()


def test_seed_demo_runs_with_debug_off_when_forced(db, settings):
    settings.DEBUG = False
    call_command("seed_demo", force=True)
    assert get_user_model().objects.filter(username="demo").exists()


def test_seed_demo_schedules_on_weekdays_with_one_past_formation(db, debug_on):
    call_command("seed_demo")
    starts = [f.start.astimezone(f.tz) for f in Formation.objects.all()]
    assert all(start.isoweekday() <= 5 for start in starts)
    assert sum(start < timezone.now() for start in starts) == 1
