from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from formations.models import Enrollment, Formation
from formations.services import formation_cancel


def test_full_clean_rejects_end_before_start(db):
    start = timezone.now()
    formation = Formation(title="Inversée", start=start, end=start - timedelta(hours=1))
    with pytest.raises(ValidationError) as excinfo:
        formation.full_clean()
    assert excinfo.value.message_dict["end"] == ["La fin doit être postérieure au début."]


def test_full_clean_rejects_end_equal_to_start(db):
    start = timezone.now()
    with pytest.raises(ValidationError):
        Formation(title="Vide", start=start, end=start).full_clean()


def test_database_rejects_end_before_start(db):
    start = timezone.now()
    with pytest.raises(IntegrityError), transaction.atomic():
        Formation.objects.create(title="Inversée", start=start, end=start - timedelta(minutes=1))


def test_full_clean_rejects_unknown_time_zone(db):
    start = timezone.now()
    formation = Formation(
        title="Ailleurs", start=start, end=start + timedelta(hours=1), time_zone="Mars/Olympus"
    )
    with pytest.raises(ValidationError) as excinfo:
        formation.full_clean()
    assert "time_zone" in excinfo.value.message_dict


def test_enrollment_is_unique_per_learner_and_formation(make_formation, learner):
    formation = make_formation(learners=(learner,))
    with pytest.raises(IntegrityError), transaction.atomic():
        Enrollment.objects.create(learner=learner, formation=formation)


def test_sequence_increases_only_when_the_schedule_changes(make_formation):
    formation = make_formation()
    assert formation.sequence == 0

    formation = Formation.objects.get(pk=formation.pk)
    formation.trainer = "Nouveau formateur"
    formation.save()
    assert formation.sequence == 0

    formation.start += timedelta(hours=1)
    formation.end += timedelta(hours=1)
    formation.save()
    formation.refresh_from_db()
    assert formation.sequence == 1


def test_cancel_marks_cancelled_once_and_bumps_sequence(make_formation):
    formation = Formation.objects.get(pk=make_formation().pk)
    assert formation_cancel(formation=formation) is True
    assert formation_cancel(formation=formation) is False
    formation.refresh_from_db()
    assert formation.status == Formation.Status.CANCELLED
    assert formation.sequence == 1


def test_upcoming_and_past_split_on_the_end(make_formation, learner, make_user):
    now = timezone.now()
    ongoing = make_formation(start=now - timedelta(hours=1), learners=(learner,))
    past = make_formation(start=now - timedelta(days=2), learners=(learner,))
    make_formation(start=now + timedelta(days=1), learners=(make_user(),))

    mine = Formation.objects.for_learner(learner)
    assert list(mine.upcoming(now)) == [ongoing]
    assert list(mine.past(now)) == [past]
