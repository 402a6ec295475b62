"""Exporting formations to the learner's calendar, through the sandbox and the real client
libraries: content, no duplicates whatever fails, few requests, the learner's own edits."""

from __future__ import annotations

from datetime import timedelta

import pytest

from calendars.models import FormationExport
from calendars.sync import exporting
from calendars.sync.exporting import integration_export
from calendars.sync.runs import formation_export, integration_sync
from core.timezones import windows_zone
from formations.models import Enrollment, Formation
from tests.calendars.calendar_helpers import events_of, one_event
from tests.calendars.connect_helpers import connect

pytestmark = pytest.mark.usefixtures("forget_exported_events", "wide_window", "no_waiting")
PROVIDERS = ["google", "outlook"]
WRITE_ENDPOINTS = {
    "google": ("google.batch",),
    "outlook": ("graph.batch",),
}
CREATE = {"google": "google.events.insert", "outlook": "graph.events.create"}
UPDATE = {"google": "google.events.patch", "outlook": "graph.events.update"}


@pytest.fixture(autouse=True)
def site_url(settings):
    """The links back to the formations in the exported events."""
    settings.SITE_URL = "https://formations.example.com"


def _start(days=3, hour=9):
    """Formations begin on the minute."""
    from django.utils import timezone

    return (timezone.now() + timedelta(days=days)).replace(
        hour=hour, minute=30, second=0, microsecond=0
    )


def _setup(sandbox, user, provider):
    integration = connect(sandbox, user, provider)
    account = sandbox.store.account(integration.account_email)
    target = integration.calendars.get(is_export_target=True)
    return integration, account, account.calendars[target.external_id]


def _requests(sandbox, provider):
    return sum(sandbox.count(name) for name in WRITE_ENDPOINTS[provider])


@pytest.mark.parametrize("provider", PROVIDERS)
def test_export_writes_each_enrolled_formation_once_with_its_details_and_marker(
    sandbox_settings, learner, make_formation, provider
):
    integration, _account, remote = _setup(sandbox_settings, learner, provider)
    paris = make_formation(
        start=_start(),
        title="Gestion de projet <agile>",
        learners=(learner,),
        time_zone="Europe/Paris",
        location="Paris, salle 3",
        description="Apporter un ordinateur.",
    )
    online = make_formation(
        start=_start(4),
        learners=(learner,),
        time_zone="America/Montreal",
        online_url="https://visio.example.com/abc",
    )
    make_formation(title="Pas inscrit")

    result = integration_export(integration=integration)

    assert (result.created, result.failed) == (2, 0)
    event = one_event(remote, paris, provider)
    assert event.title == "Gestion de projet <agile>"
    assert event.start_utc() == paris.start and event.end_utc() == paris.end
    assert event.time_zone == "Europe/Paris"
    assert event.location == "Paris, salle 3"
    assert "Apporter un ordinateur." in event.description
    assert f"https://formations.example.com/formations/{paris.pk}/" in event.description
    other = one_event(remote, online, provider)
    # Outlook keeps Windows zone names: Montréal is "Eastern Standard Time" there.
    assert windows_zone(other.time_zone) == windows_zone("America/Montreal")
    assert other.location == "https://visio.example.com/abc"
    assert "https://visio.example.com/abc" in other.description
    assert not [e for e in remote.events.values() if e.title == "Pas inscrit"]
    rows = FormationExport.objects.filter(integration=integration)
    assert {str(r.formation_uid) for r in rows} == {str(paris.uid), str(online.uid)}
    assert all(r.remote_version and r.fingerprint for r in rows)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_second_export_with_nothing_changed_sends_no_request(
    sandbox_settings, learner, make_formation, provider
):
    integration, _account, _remote = _setup(sandbox_settings, learner, provider)
    for _ in range(3):
        make_formation(learners=(learner,))
    integration_export(integration=integration)
    sandbox_settings.reset_counters()

    again = integration_export(integration=integration)

    assert (again.unchanged, again.requests) == (3, 0)
    assert _requests(sandbox_settings, provider) == 0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_export_button_twice_leaves_one_event(
    sandbox_settings, learner, make_formation, provider
):
    integration, _account, remote = _setup(sandbox_settings, learner, provider)
    formation = make_formation(learners=(learner,))
    first = formation_export(integration=integration, formation=formation)
    second = formation_export(integration=integration, formation=formation)
    event = one_event(remote, formation, provider)
    assert first.event_ids[str(formation.uid)] == event.id
    assert second.event_ids[str(formation.uid)] == event.id
    assert (second.created, second.unchanged, second.requests) == (0, 1, 0)


# --- formations change ------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_moved_or_renamed_formation_moves_its_event(
    sandbox_settings, learner, make_formation, provider, django_capture_on_commit_callbacks
):
    integration, _account, remote = _setup(sandbox_settings, learner, provider)
    formation = make_formation(start=_start(), learners=(learner,))
    integration_export(integration=integration)
    event_id = one_event(remote, formation, provider).id

    with django_capture_on_commit_callbacks(execute=True):
        formation.start += timedelta(days=1, hours=2)
        formation.end += timedelta(days=1, hours=2)
        formation.title = "Nouveau titre"
        formation.location = "Lyon"
        formation.save()

    event = one_event(remote, formation, provider)
    assert event.id == event_id
    assert (event.title, event.location) == ("Nouveau titre", "Lyon")
    assert event.start_utc() == formation.start and event.end_utc() == formation.end


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_cancelled_formation_leaves_the_calendar(
    sandbox_settings, learner, make_formation, provider, django_capture_on_commit_callbacks
):
    from formations.services import formation_cancel

    integration, _account, remote = _setup(sandbox_settings, learner, provider)
    formation = make_formation(learners=(learner,))
    integration_export(integration=integration)

    with django_capture_on_commit_callbacks(execute=True):
        formation_cancel(formation=formation)

    assert events_of(remote, formation, provider) == []
    assert not FormationExport.objects.filter(formation_uid=formation.uid).exists()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_unenrollment_or_a_deleted_formation_leaves_the_calendar(
    sandbox_settings, learner, make_formation, provider, django_capture_on_commit_callbacks
):
    integration, _account, remote = _setup(sandbox_settings, learner, provider)
    left = make_formation(learners=(learner,))
    deleted = make_formation(learners=(learner,))
    kept = make_formation(learners=(learner,))
    integration_export(integration=integration)

    with django_capture_on_commit_callbacks(execute=True):
        Enrollment.objects.get(learner=learner, formation=left).delete()
    with django_capture_on_commit_callbacks(execute=True):
        Formation.objects.get(pk=deleted.pk).delete()

    assert events_of(remote, left, provider) == []
    assert events_of(remote, deleted, provider) == []
    one_event(remote, kept, provider)
    assert set(FormationExport.objects.values_list("formation_uid", flat=True)) == {kept.uid}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_later_enrollment_is_exported(
    sandbox_settings, learner, make_formation, provider, django_capture_on_commit_callbacks
):
    _integration, _account, remote = _setup(sandbox_settings, learner, provider)
    formation = make_formation()
    with django_capture_on_commit_callbacks(execute=True):
        Enrollment.objects.create(learner=learner, formation=formation)
    one_event(remote, formation, provider)


def test_with_export_off_only_formations_added_by_hand_are_kept_up_to_date(
    sandbox_settings, learner, make_formation
):
    integration, _account, remote = _setup(sandbox_settings, learner, "google")
    integration.export_enabled = False
    integration.save()
    chosen = make_formation(learners=(learner,))
    other = make_formation(learners=(learner,))
    formation_export(integration=integration, formation=chosen)
    chosen.title = "Renommée"
    chosen.save()
    integration_export(integration=integration)
    assert one_event(remote, chosen, "google").title == "Renommée"
    assert events_of(remote, other, "google") == []


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_receiving_calendar_changed_moves_the_events_there(
    sandbox_settings, learner, make_formation, provider
):
    from calendars.services.connection import integration_choose_calendars

    integration, account, old = _setup(sandbox_settings, learner, provider)
    formation = make_formation(learners=(learner,))
    integration_export(integration=integration)
    first = one_event(old, formation, provider)
    other = integration.calendars.filter(can_edit=True, is_primary=False).first()
    integration_choose_calendars(integration=integration, imported=set(), export_target=other.pk)

    result = integration_export(integration=integration)

    assert (result.deleted, result.created) == (1, 1)
    assert events_of(old, formation, provider) == []
    moved = one_event(account.calendars[other.external_id], formation, provider)
    assert moved.id != first.id
    if provider == "outlook":  # a new event: a transactionId of its own
        assert moved.transaction_id and moved.transaction_id != first.transaction_id


# --- never a duplicate --------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_crash_between_the_providers_write_and_ours_leaves_one_event(
    sandbox_settings, learner, make_formation, provider, monkeypatch
):
    integration, _account, remote = _setup(sandbox_settings, learner, provider)
    formations = [make_formation(learners=(learner,)) for _ in range(3)]

    def crash(*args, **kwargs):
        raise SystemExit("worker killed")

    with monkeypatch.context() as patch:
        patch.setattr(exporting, "_apply_outcome", crash)
        with pytest.raises(SystemExit):
            integration_export(integration=integration)
    for formation in formations:  # written at the provider, unknown to us
        one_event(remote, formation, provider)
    assert all(r.create_sent and not r.remote_version for r in FormationExport.objects.all())

    result = integration_export(integration=integration)

    assert result.failed == 0
    for formation in formations:
        event = one_event(remote, formation, provider)
        row = FormationExport.objects.get(formation_uid=formation.uid)
        assert row.external_id == event.id and row.remote_version
    assert integration_export(integration=integration).requests == 0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_lost_answer_to_a_batch_leaves_one_event(
    sandbox_settings, learner, make_formation, provider
):
    integration, _account, remote = _setup(sandbox_settings, learner, provider)
    formations = [make_formation(learners=(learner,)) for _ in range(3)]
    sandbox_settings.add_fault("lost_response", endpoint=WRITE_ENDPOINTS[provider][0])

    result = integration_export(integration=integration)

    assert result.failed == 0
    for formation in formations:
        one_event(remote, formation, provider)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("kind", ["truncated", "malformed"])
def test_a_cut_or_garbled_batch_answer_is_a_temporary_failure_then_one_event(
    sandbox_settings, learner, make_formation, provider, kind
):
    """The client library cannot take the answer apart: nothing crashes, the writes are
    tried again like after a 5xx (the creates were carried out: no duplicate)."""
    integration, _account, remote = _setup(sandbox_settings, learner, provider)
    formations = [make_formation(learners=(learner,)) for _ in range(3)]
    sandbox_settings.add_fault(kind, endpoint=WRITE_ENDPOINTS[provider][0])

    result = integration_export(integration=integration)

    # Written the first time, unknown to us: sent again, found there (Google: 409, Outlook:
    # the same transactionId), and brought up to date.
    assert (result.created + result.updated, result.failed) == (3, 0)
    assert result.requests >= 2
    for formation in formations:
        one_event(remote, formation, provider)
    assert integration_export(integration=integration).requests == 0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_rate_limited_call_inside_a_batch_waits_its_retry_after_and_only_it_is_sent_again(
    sandbox_settings, learner, make_formation, provider, no_waiting
):
    integration, _account, remote = _setup(sandbox_settings, learner, provider)
    formations = [make_formation(learners=(learner,)) for _ in range(5)]
    sandbox_settings.add_fault("rate_limit", endpoint=CREATE[provider], times=2, retry_after=7)

    result = integration_export(integration=integration)

    assert (result.created, result.failed) == (5, 0)
    assert no_waiting == [7]
    assert sandbox_settings.count(CREATE[provider]) == 5 + 2
    assert _requests(sandbox_settings, provider) == 2
    for formation in formations:
        one_event(remote, formation, provider)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_call_failing_for_good_is_counted_and_left_for_the_next_export(
    sandbox_settings, learner, make_formation, provider, no_waiting
):
    integration, _account, remote = _setup(sandbox_settings, learner, provider)
    formation = make_formation(learners=(learner,))
    sandbox_settings.add_fault("server_error", endpoint=CREATE[provider], times=0)

    result = integration_export(integration=integration)

    assert (result.created, result.failed) == (0, 1)
    assert len(no_waiting) == 4  # five attempts, backing off in between
    assert FormationExport.objects.get(formation_uid=formation.uid).last_error
    sandbox_settings.clear_faults()
    assert integration_export(integration=integration).created == 1
    one_event(remote, formation, provider)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_many_formations_go_in_full_batches_and_a_new_sync_sends_nothing(
    sandbox_settings, learner, make_formation, provider
):
    integration, _account, remote = _setup(sandbox_settings, learner, provider)
    formations = [make_formation(learners=(learner,)) for _ in range(120)]

    result = integration_export(integration=integration)

    assert result.created == 120
    # Google: 50 calls per batch; Graph: 20 requests per batch, 4 batches at once at most.
    assert (
        result.requests
        == _requests(sandbox_settings, provider)
        == (3 if provider == "google" else 6)
    )
    assert sandbox_settings.count(CREATE[provider]) == 120
    assert len({one_event(remote, f, provider).id for f in formations}) == 120
    sandbox_settings.reset_counters()
    assert integration_export(integration=integration).requests == 0


# --- the learner's own edits --------------------------------------------------------------


def _edit_remote(sandbox, account, remote_calendar, event, **changes):
    import dataclasses

    changed = dataclasses.replace(event, **changes)
    sandbox.store.save(account, remote_calendar, changed)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_exported_event_edited_by_the_learner_is_set_back_on_the_next_sync(
    sandbox_settings, learner, make_formation, provider
):
    integration, account, remote = _setup(sandbox_settings, learner, provider)
    formation = make_formation(start=_start(), learners=(learner,))
    integration_sync(integration=integration)
    event = one_event(remote, formation, provider)
    later = {"start": event.start + timedelta(hours=1), "end": event.end + timedelta(hours=1)}
    _edit_remote(sandbox_settings, account, remote, event, title="Mon titre à moi", **later)

    _imported, exported = integration_sync(integration=integration)

    assert exported.updated == 1
    event = one_event(remote, formation, provider)
    assert event.title == formation.title
    assert event.start_utc() == formation.start
    assert integration_sync(integration=integration)[1].requests == 0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_exported_event_deleted_by_the_learner_is_not_created_again(
    sandbox_settings, learner, make_formation, provider
):
    integration, account, remote = _setup(sandbox_settings, learner, provider)
    formation = make_formation(learners=(learner,))
    integration_sync(integration=integration)
    first_transaction = one_event(remote, formation, provider).transaction_id
    sandbox_settings.store.delete(account, remote, one_event(remote, formation, provider))

    _imported, exported = integration_sync(integration=integration)

    assert (exported.created, exported.removed) == (0, 1)
    assert events_of(remote, formation, provider) == []
    assert FormationExport.objects.get(formation_uid=formation.uid).removed_by_learner
    formation.title = "Changée"
    formation.save()
    assert integration_sync(integration=integration)[1].requests == 0
    assert events_of(remote, formation, provider) == []

    again = formation_export(integration=integration, formation=formation)  # "add it again"

    assert again.created == 1
    assert one_event(remote, formation, provider).title == "Changée"
    if provider == "outlook":  # a new event: a transactionId of its own
        assert one_event(remote, formation, provider).transaction_id != first_transaction
    assert not FormationExport.objects.get(formation_uid=formation.uid).removed_by_learner


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_deletion_seen_only_when_writing_is_recognised(
    sandbox_settings, learner, make_formation, provider
):
    """The listing did not run in between (a formation moved right after the learner deleted
    its event): the update itself finds the event gone and does not bring it back."""
    integration, account, remote = _setup(sandbox_settings, learner, provider)
    formation = make_formation(learners=(learner,))
    integration_export(integration=integration)
    sandbox_settings.store.delete(account, remote, one_event(remote, formation, provider))
    formation.title = "Déplacée"
    formation.save()

    result = integration_export(integration=integration)

    assert (result.updated, result.removed) == (0, 1)
    assert events_of(remote, formation, provider) == []


@pytest.mark.parametrize("provider", PROVIDERS)
def test_after_reconnecting_the_events_already_there_are_adopted_not_duplicated(
    sandbox_settings, learner, make_formation, provider
):
    from calendars.services.lifecycle import integration_disconnect

    integration, _account, remote = _setup(sandbox_settings, learner, provider)
    formations = [make_formation(learners=(learner,)) for _ in range(2)]
    integration_export(integration=integration)
    integration_disconnect(integration=integration)  # events left in the calendar

    integration = connect(sandbox_settings, learner, provider)
    integration_sync(integration=integration)

    for formation in formations:
        one_event(remote, formation, provider)
    assert FormationExport.objects.filter(integration=integration).count() == 2


@pytest.mark.parametrize("provider", PROVIDERS)
def test_disconnecting_can_take_every_exported_formation_back(
    sandbox_settings, learner, make_formation, provider
):
    from calendars.services.lifecycle import integration_disconnect

    integration, _account, remote = _setup(sandbox_settings, learner, provider)
    formations = [make_formation(learners=(learner,)) for _ in range(3)]
    integration_export(integration=integration)

    integration_disconnect(integration=integration, remove_exported=True)

    for formation in formations:
        assert events_of(remote, formation, provider) == []
    assert not FormationExport.objects.exists()


def test_a_receiving_calendar_listed_only_for_exports_is_imported_whole_once_chosen(
    sandbox_settings, learner, make_formation
):
    from calendars.models import CalendarEvent
    from calendars.services.connection import integration_choose_calendars

    integration, _account, _remote = _setup(sandbox_settings, learner, "google")
    target = integration.calendars.get(is_export_target=True)
    integration_choose_calendars(integration=integration, imported=set(), export_target=target.pk)
    make_formation(learners=(learner,))
    integration_sync(integration=integration)  # exports
    integration_sync(integration=integration)  # lists the target, for the exports' sake only
    target.refresh_from_db()
    assert target.sync_token and not CalendarEvent.objects.exists()

    integration_choose_calendars(
        integration=integration, imported={target.pk}, export_target=target.pk
    )
    imported, _exported = integration_sync(integration=integration)

    assert imported.full and imported.created > 0
    assert CalendarEvent.objects.filter(calendar=target).count() == imported.created
