from __future__ import annotations

import re

from playwright.sync_api import Page, expect


def test_learner_signs_in_and_sees_only_their_formations(page: Page, make_user, make_formation):
    lea = make_user("lea", first_name="Léa", last_name="Martin")
    other = make_user("sam")
    mine = make_formation(title="Gestion de projet agile", learners=(lea,))
    theirs = make_formation(title="Comptabilité avancée", learners=(other,))

    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    page.get_by_label("Nom d’utilisateur").fill("lea")
    page.get_by_label("Mot de passe").fill("pw-for-tests-1")
    page.get_by_role("button", name="Se connecter", exact=True).click()

    expect(page).to_have_url(re.compile(r"/formations/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Mes formations")
    expect(page.get_by_role("banner").get_by_text("Léa Martin")).to_be_visible()
    upcoming = page.get_by_role("region", name="À venir")
    expect(upcoming.get_by_role("link", name=mine.title)).to_be_visible()
    expect(page.get_by_text(theirs.title)).to_have_count(0)


def test_wrong_password_keeps_the_learner_on_the_login_form(page: Page, make_user):
    make_user("lea")

    page.goto("/accounts/login/")
    page.get_by_label("Nom d’utilisateur").fill("lea")
    page.get_by_label("Mot de passe").fill("not the password")
    page.get_by_role("button", name="Se connecter", exact=True).click()

    expect(page.get_by_role("alert")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    expect(page.get_by_label("Nom d’utilisateur")).to_have_value("lea")
