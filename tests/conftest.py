from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from formations.models import Enrollment, Formation

User = get_user_model()
_counter = itertools.count(1)


@pytest.fixture
def make_user(db: None) -> Callable[..., Any]:
    def make(username: str | None = None, password: str = "pw-for-tests-1", **extra: Any) -> Any:
        username = username or f"user{next(_counter)}"
        extra.setdefault("email", f"{username}@example.com")
        return User.objects.create_user(username=username, password=password, **extra)

    return make


@pytest.fixture
def make_formation(db: None) -> Callable[..., Formation]:
    def make(
        *,
        start: datetime | None = None,
        hours: float = 3,
        learners: tuple[Any, ...] = (),
        **fields: Any,
    ) -> Formation:
        start = start or timezone.now() + timedelta(days=3)
        fields.setdefault("title", f"Formation {next(_counter)}")
        formation = Formation.objects.create(
            start=start, end=start + timedelta(hours=hours), **fields
        )
        for learner in learners:
            Enrollment.objects.create(learner=learner, formation=formation)
        return formation

    return make


@pytest.fixture
def learner(make_user: Callable[..., Any]) -> Any:
    return make_user("learner", first_name="Léa", last_name="Martin")


@pytest.fixture
def learner_client(learner: Any) -> Client:
    client = Client()
    client.force_login(learner)
    return client


@pytest.fixture
def staff(make_user: Callable[..., Any]) -> Any:
    return make_user("staff", is_staff=True, is_superuser=True)


@pytest.fixture
def staff_client(staff: Any) -> Client:
    client = Client()
    client.force_login(staff)
    return client
