from __future__ import annotations

import re

from playwright.sync_api import Page, expect


def test_skip_link_is_the_first_tab_stop_and_moves_focus_to_main(page: Page, sign_in, make_user):
    # A signed-in page: the login page rightly puts the focus in its username field instead.
    sign_in(make_user("lea"))
    page.reload()  # Focus starts at the top of the document, as for a keyboard user arriving.

    skip_link = page.get_by_role("link", name="Aller au contenu")
    expect(skip_link).not_to_be_in_viewport()

    page.keyboard.press("Tab")
    expect(skip_link).to_be_focused()
    expect(skip_link).to_be_in_viewport()

    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/formations/#main$"))
    expect(page.get_by_role("main")).to_be_focused()
