from __future__ import annotations

from datetime import date, datetime

from sandbox.store import GOOGLE, MICROSOFT, Store, generate

TODAY = date(2027, 1, 11)


def _store(seed=3, events=120):
    store = Store()
    generate(store, seed=seed, events=events, today=TODAY)
    return store


def _snapshot(store):
    return [
        (a.email, c.id, e.id, e.title, e.start, e.end, e.status)
        for a in store.accounts.values()
        for c in a.calendars.values()
        for e in c.events.values()
    ]


def test_same_seed_and_day_give_the_same_data():
    assert _snapshot(_store()) == _snapshot(_store())


def test_another_seed_gives_other_data():
    assert _snapshot(_store(seed=3)) != _snapshot(_store(seed=4))


def test_primary_calendars_hold_the_requested_number_of_live_entries():
    store = _store(events=120)
    for account in store.accounts.values():
        live = [
            e for e in account.primary.events.values()
            if not e.is_master and e.status != "cancelled"
        ]  # fmt: skip
        assert 120 <= len(live) < 135, account.email


def test_accounts_of_both_providers_with_three_calendars():
    store = _store()
    assert len(store.accounts_of(GOOGLE)) == 3
    assert len(store.accounts_of(MICROSOFT)) == 3
    for account in store.accounts.values():
        kinds = [(c.primary, c.can_edit) for c in account.calendars.values()]
        assert kinds == [(True, True), (False, True), (False, False)]
    google = store.accounts_of(GOOGLE)[0]
    assert google.primary.id == google.email


def test_generated_data_has_the_variety_the_product_must_handle():
    store = _store(events=400)
    google = store.accounts_of(GOOGLE)[0].primary.events.values()
    every = [e for a in store.accounts.values() for e in a.primary.events.values()]

    masters = [e for e in google if e.is_master]
    assert masters
    master = masters[0]
    occurrences = [e for e in google if e.series_id == master.id]
    assert all(o.id.startswith(master.id + "_") for o in occurrences)
    assert any(o.is_exception and o.status == "cancelled" for o in occurrences)
    moved = [o for o in occurrences if o.is_exception and o.status != "cancelled"]
    assert moved and moved[0].start != moved[0].original_start

    all_day = [e for e in every if e.all_day]
    assert any((e.end - e.start).days > 1 for e in all_day)
    assert any(e.time_zone != "Europe/Paris" for e in every)
    assert any(e.status == "cancelled" and not e.series_id for e in every)
    assert any(e.event_type not in ("default",) for e in google)
    assert any("<" in e.title for e in every)
    assert any(not e.title.isascii() for e in every)
    assert any(isinstance(e.start, datetime) and e.online_url for e in every)


def test_deleting_a_series_master_leaves_tombstones_for_its_occurrences():
    store = _store()
    account = store.accounts_of(GOOGLE)[0]
    calendar = account.primary
    master = next(e for e in calendar.events.values() if e.is_master)
    before = store.seq
    store.delete(account, calendar, master)
    doomed = [e for e in calendar.events.values() if e.id == master.id or e.series_id == master.id]
    assert all(e.deleted and e.status == "cancelled" and e.seq > before for e in doomed)


def test_listeners_hear_of_every_saved_change():
    store = _store()
    heard = []
    store.on_change(lambda account, calendar, event: heard.append(event.id))
    account = store.accounts_of(MICROSOFT)[0]
    event = next(iter(account.primary.events.values()))
    event.title = "Changé"
    store.save(account, account.primary, event)
    assert heard == [event.id]
