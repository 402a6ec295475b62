"""A real CalDAV server for the demo: Radicale (PyPI), with one account whose "Personnel"
calendar holds a few events around today, recurring and all-day ones among them.

Not an emulator like the rest of the sandbox: Radicale is a complete CalDAV server, written to
on disk here before it starts (its storage is one folder per calendar, one file per event).
`make run` starts it with `python manage.py caldav_demo` and offers it on the settings page.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

DEMO_PORT = 5232  # Radicale's usual port
DEMO_USERNAME = "demo@caldav.test"
DEMO_PASSWORD = "demo-app-password"  # noqa: S105  (the demo's, shown on its settings page)
ZONE = ZoneInfo("Europe/Paris")


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%S")


def _event(uid: str, lines: list[str]) -> str:
    body = "\r\n".join(lines)
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Formations//Demo CalDAV//FR\r\n"
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\n{body}\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def demo_events(today: date) -> dict[str, str]:
    """The demo calendar's resources, by file name, placed around `today`."""

    def at(days: int, hour: int, minute: int = 0) -> datetime:
        return datetime.combine(today + timedelta(days=days), datetime.min.time(), ZONE).replace(
            hour=hour, minute=minute
        )

    monday = today - timedelta(days=today.weekday())
    yoga = datetime.combine(monday + timedelta(days=1), datetime.min.time(), ZONE).replace(
        hour=18, minute=30
    )
    moved = yoga + timedelta(weeks=2)
    leave = today + timedelta(days=9)
    dentist = at(2, 10)
    return {
        "yoga.ics": (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Formations//Demo CalDAV//FR\r\n"
            "BEGIN:VEVENT\r\nUID:demo-yoga@caldav.test\r\nDTSTAMP:20260101T000000Z\r\n"
            f"DTSTART;TZID=Europe/Paris:{_stamp(yoga)}\r\n"
            f"DTEND;TZID=Europe/Paris:{_stamp(yoga + timedelta(hours=1))}\r\n"
            "RRULE:FREQ=WEEKLY;COUNT=12\r\n"
            f"EXDATE;TZID=Europe/Paris:{_stamp(yoga + timedelta(weeks=4))}\r\n"
            "SUMMARY:Cours de yoga\r\nLOCATION:Salle des Brotteaux\r\nEND:VEVENT\r\n"
            "BEGIN:VEVENT\r\nUID:demo-yoga@caldav.test\r\nDTSTAMP:20260101T000000Z\r\n"
            f"RECURRENCE-ID;TZID=Europe/Paris:{_stamp(moved)}\r\n"
            f"DTSTART;TZID=Europe/Paris:{_stamp(moved + timedelta(hours=1))}\r\n"
            f"DTEND;TZID=Europe/Paris:{_stamp(moved + timedelta(hours=2))}\r\n"
            "SUMMARY:Cours de yoga (décalé)\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        ),
        "conges.ics": _event(
            "demo-conges@caldav.test",
            [
                f"DTSTART;VALUE=DATE:{leave:%Y%m%d}",
                f"DTEND;VALUE=DATE:{leave + timedelta(days=3):%Y%m%d}",
                "SUMMARY:Congés",
                "TRANSP:OPAQUE",
            ],
        ),
        "dentiste.ics": _event(
            "demo-dentiste@caldav.test",
            [
                f"DTSTART;TZID=Europe/Paris:{_stamp(dentist)}",
                f"DTEND;TZID=Europe/Paris:{_stamp(dentist + timedelta(minutes=45))}",
                "SUMMARY:Rendez-vous chez le dentiste",
            ],
        ),
        "point.ics": _event(
            "demo-point@caldav.test",
            [
                # From this week's Monday: a start the rule itself gives (RFC 5545 leaves a
                # DTSTART out of step with its RRULE undefined, and clients differ on it).
                f"DTSTART;TZID=Europe/Paris:{_stamp(at(-today.weekday(), 9))}",
                f"DTEND;TZID=Europe/Paris:{_stamp(at(-today.weekday(), 9, 15))}",
                "RRULE:FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;COUNT=20",
                "SUMMARY:Point d'équipe",
            ],
        ),
    }


def prepare(directory: Path, today: date, port: int = DEMO_PORT) -> list[str]:
    """Writes Radicale's configuration files and the demo account's calendar under
    `directory` (anew each time: the demo starts from the same events); returns the
    command that serves them."""
    shutil.rmtree(directory, ignore_errors=True)
    write_account(
        directory,
        username=DEMO_USERNAME,
        password=DEMO_PASSWORD,
        calendar="personnel",
        title="Personnel",
        events=demo_events(today).items(),
        color="#2e7d32",
    )
    return radicale_command(directory, port)


def write_account(
    directory: Path,
    *,
    username: str,
    password: str,
    calendar: str,
    title: str,
    events: Iterable[tuple[str, str]],
    color: str = "",
) -> None:
    """Writes, in Radicale's storage under `directory`, an account with one calendar of
    `events` (file name, iCalendar text), and its password beside it."""
    folder = directory / "collections" / "collection-root" / username / calendar
    folder.mkdir(parents=True)
    props = {
        "tag": "VCALENDAR",
        "D:displayname": title,
        "C:supported-calendar-component-set": "VEVENT",
    }
    if color:
        props["ICAL:calendar-color"] = color
    (folder / ".Radicale.props").write_text(json.dumps(props))
    for name, text in events:
        (folder / name).write_text(text, newline="")
    with (directory / "htpasswd").open("a") as passwords:
        passwords.write(f"{username}:{password}\n")


def radicale_command(directory: Path, port: int) -> list[str]:
    """Radicale serving the storage under `directory` on loopback `port`, each account's own
    calendars only, the passwords of `directory / "htpasswd"` (plain: demo accounts)."""
    return [
        sys.executable, "-m", "radicale", "--config", "",
        "--server-hosts", f"127.0.0.1:{port}",
        "--auth-type", "htpasswd",
        "--auth-htpasswd-filename", str(directory / "htpasswd"),
        "--auth-htpasswd-encryption", "plain",
        "--rights-type", "owner_only",
        "--storage-filesystem-folder", str(directory / "collections"),
        "--logging-level", "warning",
    ]  # fmt: skip
