"""How long a CalDAV calendar takes to import and to receive formations, against Radicale.

Starts Radicale (a real CalDAV server, PyPI) in its own process, with htpasswd authentication
and one calendar of N events (5,000 by default: single events, and weekly series of 10 in one
event in ten), connects a learner through the product's service, and measures, `--repeat`
times each:

- the full import of the calendar: wall time, HTTP requests, events created; against the floor
  of that work, the same events read raw (one `calendar-query` answering every event's data,
  parsed by `icalendar`, series expanded by `recurring-ical-events`: what any client must do);
- an incremental import with nothing changed: requests (sync-collection) and time;
- the export of M formations (500 by default): requests (one PUT each: CalDAV has no batch) and
  time, against the floor of M bare PUTs of the same size on one keep-alive connection;
- a re-export with nothing changed: requests (target 0).

It prints median figures with their spread and exits 0 even when a target is missed: it is a
measurement, not a test. See benchmarks/README.md.

    python benchmarks/caldav_benchmark.py [--events 5000] [--formations 500] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import harness
import requests

from sandbox import caldav_demo

USERNAME = "bench@caldav.test"
PASSWORD = "bench-app-password"  # noqa: S105  (a scratch server's)
CALENDAR = "agenda"
SERIES_EVERY = 10  # one resource in ten is a weekly series of SERIES_LENGTH occurrences
SERIES_LENGTH = 10
SAMPLE_UID = "00000000-0000-0000-0000-000000000000"


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%SZ")


def write_storage(directory: Path, events: int, now: datetime) -> int:
    """Radicale's storage with the account's calendar holding `events` occurrences in the
    import window; returns how many resources it wrote."""
    resources: list[tuple[str, str]] = []
    occurrences = 0
    while occurrences < events:
        number = len(resources)
        start = now + timedelta(days=(number * 7) % 300, hours=8 + number % 9)
        series = number % SERIES_EVERY == 0 and events - occurrences >= SERIES_LENGTH
        rule = f"RRULE:FREQ=WEEKLY;COUNT={SERIES_LENGTH}\r\n" if series else ""
        resources.append((
            f"e{number}.ics",
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Bench//FR\r\nBEGIN:VEVENT\r\n"
            f"UID:e{number}@bench\r\nDTSTAMP:20260101T000000Z\r\n"
            f"DTSTART:{_stamp(start)}\r\nDTEND:{_stamp(start + timedelta(hours=1))}\r\n"
            f"{rule}SUMMARY:Événement {number}\r\nLOCATION:Salle {number % 12}\r\n"
            "END:VEVENT\r\nEND:VCALENDAR\r\n",
        ))  # fmt: skip
        occurrences += SERIES_LENGTH if series else 1
    caldav_demo.write_account(
        directory, username=USERNAME, password=PASSWORD, calendar=CALENDAR, title="Agenda",
        events=resources,
    )  # fmt: skip
    return len(resources)


def floor_import(url: str, window: tuple[datetime, datetime]) -> tuple[float, int]:
    """The same events read the plainest way: one calendar-query with their data, parsed and
    expanded. Returns seconds and occurrences."""
    import icalendar
    import recurring_ical_events
    from lxml import etree

    body = (
        '<?xml version="1.0" encoding="utf-8"?><C:calendar-query xmlns:D="DAV:" '
        'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:calendar-data/>'
        '</D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        f'<C:time-range start="{_stamp(window[0])}" end="{_stamp(window[1])}"/>'
        "</C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"
    )
    started = time.perf_counter()
    answer = requests.request(
        "REPORT", url, data=body.encode(), auth=(USERNAME, PASSWORD), timeout=300,
        headers={"Depth": "1", "Content-Type": "application/xml; charset=utf-8"},
    )  # fmt: skip
    answer.raise_for_status()
    tree = etree.fromstring(answer.content)
    count = 0
    for data in tree.iter("{urn:ietf:params:xml:ns:caldav}calendar-data"):
        parsed = icalendar.Calendar.from_ical(data.text)
        count += len(recurring_ical_events.of(parsed).between(*window))
    return time.perf_counter() - started, count


def floor_export(url: str, bodies: list[str]) -> float:
    """The same number of PUTs of the same size, one after the other on one connection."""
    session = requests.Session()
    session.auth = (USERNAME, PASSWORD)
    started = time.perf_counter()
    for number, body in enumerate(bodies):
        # A UID of its own each: a calendar holds one resource per UID (RFC 4791 5.3.2.1).
        unique = body.replace(SAMPLE_UID, f"{number:08d}" + SAMPLE_UID[8:])
        answer = session.put(
            f"{url}floor-{number}.ics", data=unique.encode(), timeout=60,
            headers={"Content-Type": "text/calendar; charset=utf-8"},
        )  # fmt: skip
        answer.raise_for_status()
    seconds = time.perf_counter() - started
    for number in range(len(bodies)):
        session.delete(f"{url}floor-{number}.ics", timeout=60)
    return seconds


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--formations", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    harness.exit_on_sigterm()

    checks: list[harness.Check] = []
    rows: list[list[str]] = []
    with harness.bench("caldav-bench-", extra_ports=1) as bench:
        from django.contrib.auth import get_user_model
        from django.utils import timezone

        from calendars.models import CalendarEvent, FormationExport
        from calendars.providers import get_provider
        from calendars.services.connection import integration_connect_password
        from calendars.sync.exporting import integration_export
        from calendars.sync.importing import calendar_import, import_window

        harness.print_heading("CalDAV benchmark (benchmarks/caldav_benchmark.py)")
        now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        storage = bench.scratch / "radicale"
        resources = write_storage(storage, args.events, now)
        (port,) = bench.ports
        root = f"http://127.0.0.1:{port}/"
        print(
            f"  database: {bench.database}; Radicale {root}; {args.events} events in "
            f"{resources} resources; {args.formations} formations; {args.repeat} repeats"
        )
        command = caldav_demo.radicale_command(storage, port)
        with harness.Server(command, name="Radicale", url=root, ready_path="/.web/",
                            log=bench.scratch / "radicale.log"):  # fmt: skip
            learner = get_user_model().objects.create_user("bench-learner")
            harness.progress("connecting")
            integration = integration_connect_password(
                user=learner, provider_name="caldav", url=root, username=USERNAME,
                password=PASSWORD,
            )  # fmt: skip
            calendar = integration.calendars.get(is_primary=True)
            window = import_window()

            full, full_requests, floors, created = [], [], [], 0
            again, again_requests = [], []
            for attempt in range(args.repeat):
                harness.progress(f"full import {attempt + 1}/{args.repeat}")
                CalendarEvent.objects.filter(calendar=calendar).delete()
                calendar.sync_token = calendar.resume_from = ""
                calendar.save()
                started = time.perf_counter()
                result = calendar_import(calendar=calendar)
                full.append(time.perf_counter() - started)
                full_requests.append(result.requests)
                created = result.created
                seconds, counted = floor_import(calendar.external_id, window)
                floors.append(seconds)
                calendar.refresh_from_db()
                started = time.perf_counter()
                unchanged = calendar_import(calendar=calendar)
                again.append(time.perf_counter() - started)
                again_requests.append(unchanged.requests)
            stored = CalendarEvent.objects.filter(calendar=calendar).count()
            ratios = [floor / ours for floor, ours in zip(floors, full, strict=True)]
            rows.append(["full import", str(created), str(statistics.median(full_requests)),
                         spread(full), spread(floors), spread(ratios)])  # fmt: skip
            rows.append(["incremental, no change", "0", str(statistics.median(again_requests)),
                         spread(again), "", ""])  # fmt: skip
            checks.append(("every event imported", f"{stored} == {counted}", stored == counted))
            checks.append(("incremental with no change: 1 request", str(max(again_requests)),
                           max(again_requests) <= 1))  # fmt: skip

            start = (timezone.now() + timedelta(days=1)).replace(minute=0, second=0,
                                                                 microsecond=0)  # fmt: skip
            harness.formations_create(
                (start + timedelta(hours=3 * n) for n in range(args.formations)),
                duration=timedelta(hours=2),
                learner=learner,
            )
            provider = get_provider("caldav").calendars
            exports, export_requests, export_floors, reexport_requests = [], [], [], []
            for attempt in range(args.repeat):
                harness.progress(f"export {attempt + 1}/{args.repeat}")
                if attempt:  # the formations taken out again, for the next measure
                    for row in FormationExport.objects.filter(integration=integration):
                        requests.delete(
                            calendar.external_id + row.external_id,
                            auth=(USERNAME, PASSWORD),
                            timeout=60,
                        ).raise_for_status()
                    FormationExport.objects.filter(integration=integration).delete()
                started = time.perf_counter()
                result = integration_export(integration=integration)
                exports.append(time.perf_counter() - started)
                export_requests.append(result.requests)
                created_exports = result.created
                again_result = integration_export(integration=integration)
                reexport_requests.append(again_result.requests)
                bodies = [_sample_body(provider)] * args.formations
                export_floors.append(floor_export(calendar.external_id, bodies))
            ratios = [f / o for f, o in zip(export_floors, exports, strict=True)]
            rows.append([f"export of {args.formations}", str(created_exports),
                         str(statistics.median(export_requests)), spread(exports),
                         spread(export_floors), spread(ratios)])  # fmt: skip
            rows.append(["re-export, no change", "0", str(max(reexport_requests)), "", "", ""])
            checks.append(("every formation exported",
                           f"{created_exports} == {args.formations}",
                           created_exports == args.formations))  # fmt: skip
            checks.append(("re-export with nothing changed: 0 requests",
                           str(max(reexport_requests)), max(reexport_requests) == 0))  # fmt: skip
    print()
    print(harness.table(["run", "created", "requests", "seconds", "floor seconds",
                         "floor ÷ ours"], rows))  # fmt: skip
    print()
    for name, figure, ok in checks:
        print(f"  {harness.verdict(ok)}  {name}: {figure}")
    harness.print_tally(checks)
    return 0


def _sample_body(provider) -> str:
    from calendars.providers.types import ExportedFormation

    start = datetime.now(UTC) + timedelta(days=2)
    return provider.event_body(
        ExportedFormation(
            uid=SAMPLE_UID,
            title="Formation de référence",
            description="Page de la formation : https://formations.example.com/f/1/",
            location="Lyon",
            url="https://formations.example.com/f/1/",
            start=start,
            end=start + timedelta(hours=2),
            time_zone="Europe/Paris",
        )
    )["ical"]


if __name__ == "__main__":
    raise SystemExit(main())
