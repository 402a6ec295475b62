"""Takes the README's screenshots from a running demo (`make run`), in Chromium.

    python docs/screenshots/take.py [--base http://127.0.0.1:8000] [--chromium /usr/bin/chromium]

Signs in as the demo learner, connects Google and Outlook through the sandbox's consent pages
if they are not connected yet, waits for the first sync, then shoots the week view, the day
view, an event's details and the calendars' settings, at desktop and phone widths.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

HERE = Path(__file__).parent
SIZES = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
ACCOUNTS = {
    "Google Agenda": ("camille.durand@gmail.test", "Allow"),
    "Outlook": ("camille.durand@contoso.test", "Accept"),
}


def _connect(page: Page) -> None:
    page.goto("/settings/calendars/")
    for title, (account, approve) in ACCOUNTS.items():
        button = page.get_by_role("button", name=f"Connecter {title}")
        if button.count():
            button.click()
            page.get_by_label(account).check()
            page.get_by_role("button", name=approve).click()
            expect(page.locator(".messages")).to_contain_text("est connecté", timeout=60_000)


def _busiest_day(page: Page) -> str:
    """The day of this week or the next with the most items, as YYYY-MM-DD."""
    page.goto("/calendar/?view=agenda")
    days = page.locator("section.agenda-day").evaluate_all(
        "els => els.map(e => [e.getAttribute('aria-labelledby').slice(4),"
        " e.querySelectorAll('.entry').length])"
    )
    return max(days, key=lambda d: d[1])[0] if days else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="http://127.0.0.1:8000")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        for size, viewport in SIZES.items():
            context = browser.new_context(
                base_url=args.base, viewport=viewport, locale="fr-FR", is_mobile=size == "phone"
            )
            page = context.new_page()
            page.goto("/accounts/login/")
            page.get_by_label("Nom d’utilisateur").fill("demo")
            page.get_by_label("Mot de passe").fill("demo")
            page.get_by_role("button", name="Se connecter", exact=True).click()
            _connect(page)
            day = _busiest_day(page)
            date = f"&date={day}" if day else ""
            page.goto(f"/calendar/?view=week{date}")
            page.screenshot(path=HERE / f"week-{size}.png")
            page.goto(f"/calendar/?view=day{date}")
            page.screenshot(path=HERE / f"day-{size}.png")
            page.locator("a[data-details]").first.click()
            expect(page.get_by_role("dialog")).to_be_visible()
            page.screenshot(path=HERE / f"details-{size}.png")
            page.keyboard.press("Escape")
            page.goto("/settings/calendars/")
            card = page.locator("#integration-google")
            card.scroll_into_view_if_needed()
            card.screenshot(path=HERE / f"settings-card-{size}.png")
            context.close()
        browser.close()
    print("\n".join(sorted(str(p.relative_to(HERE.parent.parent)) for p in HERE.glob("*.png"))))


if __name__ == "__main__":
    main()
