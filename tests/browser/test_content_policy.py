"""The Content-Security-Policy as Chromium applies it: an inline script never runs, and the
browser tests see any violation (every other test of this folder fails on one)."""

from __future__ import annotations

from playwright.sync_api import expect

INJECT_INLINE_SCRIPT = """() => {
  const script = document.createElement("script");
  script.textContent = "window.injected = true";
  document.body.append(script);
}"""


def test_an_injected_inline_script_is_refused_and_reported(page, db, csp_violations):
    page.goto("/accounts/login/")
    page.evaluate(INJECT_INLINE_SCRIPT)

    expect(page.locator("body")).to_be_visible()
    page.wait_for_timeout(200)  # the violation event is dispatched after the refusal
    assert page.evaluate("() => window.injected") is None
    assert any("script-src" in text for text in csp_violations), csp_violations
    csp_violations.clear()  # seen on purpose


def test_the_pages_carry_the_policy_and_the_permissions_policy(page, db):
    response = page.goto("/accounts/login/")
    headers = response.headers
    assert "script-src 'self'" in headers["content-security-policy"]
    script_src = headers["content-security-policy"].split("script-src")[1].split(";")[0]
    assert "'unsafe-inline'" not in script_src
    assert "camera=()" in headers["permissions-policy"]
