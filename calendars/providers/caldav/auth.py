"""Connecting a CalDAV account: no OAuth, a form's server address, username and app-specific
password, checked at once by discovering the account's principal and calendar home.

https://www.rfc-editor.org/rfc/rfc4791#section-6.2.1 and
https://www.rfc-editor.org/rfc/rfc5397 (current-user-principal)
"""

from __future__ import annotations

from typing import Any

from calendars.errors import AuthorizationDenied, ProviderError, ReconnectRequired, Unauthorized
from calendars.providers.base import OAuthClient
from calendars.providers.caldav.connection import (
    CALDAV,
    DAV,
    Account,
    Session,
    multistatus,
    prop_href,
)
from calendars.providers.types import Authorization, Grant

NOT_OAUTH = "CalDAV accounts are connected with a form (address, username, app password)."


def check(url: str, username: str, password: str) -> Grant:
    """The account's Grant once the server took the password and showed its calendar home;
    AuthorizationDenied when it refused them (the message names no secret), a permanent
    ProviderError when the address is no CalDAV server, a temporary one when it is down."""
    account = Account(url.strip(), username.strip(), password)
    session = Session(account)
    try:
        home = discover(session)
    except Unauthorized:
        raise AuthorizationDenied(
            "The CalDAV server refused the username or password (an app-specific password "
            "is needed at iCloud, Fastmail and for accounts with two-factor authentication)."
        ) from None
    found = Account(account.url, account.username, account.password, home, session.auth_type)
    return _grant(found)


def discover(session: Session) -> str:
    """The calendar-home-set's URL, through the current-user-principal of the address given,
    else of /.well-known/caldav (RFC 6764 section 5), which servers redirect to their root."""
    start = session.account.url
    principal = _current_user_principal(session, start)
    if not principal:
        principal = _current_user_principal(session, session.absolute("/.well-known/caldav"))
    if not principal:
        raise ProviderError(
            "This address does not answer as a CalDAV server (no current-user-principal).",
            permanent=True,
        )
    home = _property_href(session, principal, CALDAV, "calendar-home-set")
    if not home:
        raise ProviderError(
            "The CalDAV server gave no calendar-home-set for this account.", permanent=True
        )
    return home


def _current_user_principal(session: Session, url: str) -> str:
    try:
        return _property_href(session, url, DAV, "current-user-principal")
    except ProviderError as error:
        if error.permanent and not isinstance(error, Unauthorized) and error.status != 401:
            return ""  # 404, 405...: not here
        raise


def _property_href(session: Session, url: str, namespace: str, name: str) -> str:
    entries, _token = multistatus(session.propfind(url, (namespace, name)))
    for entry in entries:
        href = prop_href(entry.props, namespace, name)
        if href:
            return session.absolute(href, url)
    return ""


def _grant(account: Account) -> Grant:
    credentials = {
        "url": account.url,
        "username": account.username,
        "password": account.password,
        "home": account.home,
        "auth_type": account.auth_type,
    }
    return Grant(
        credentials=credentials,
        access_token=account.token(),
        expires_at=None,
        account_email=account.username,
        account_name=account.username,
    )


def _account(credentials: dict[str, Any]) -> Account:
    try:
        return Account(
            str(credentials["url"]),
            str(credentials["username"]),
            str(credentials["password"]),
            str(credentials.get("home") or ""),
            str(credentials.get("auth_type") or ""),
        )
    except KeyError:
        raise ReconnectRequired("The stored CalDAV credentials are incomplete.") from None


class CalDAVAuth(OAuthClient):
    """The OAuth role, for an account that has none: the "access token" is the credentials
    themselves, and never expires."""

    def start(
        self, *, redirect_uri: str, state: str, login_hint: str = "", missing_only: bool = False
    ) -> Authorization:
        raise ProviderError(NOT_OAUTH, permanent=True)

    def finish(self, *, flow: dict[str, Any], redirect_uri: str, params: dict[str, str]) -> Grant:
        raise ProviderError(NOT_OAUTH, permanent=True)

    def access_token(self, credentials: dict[str, Any], *, force: bool = False) -> Grant:
        """The token, without asking the server; with `force` (a request was refused with a
        401), the password is tried again: refused, the learner must give a new one (iCloud
        revokes every app-specific password when the Apple Account's password changes)."""
        account = _account(credentials)
        if not force:
            return _grant(account)
        session = Session(account)
        try:
            home = discover(session)
        except Unauthorized:
            raise ReconnectRequired("The CalDAV server refuses the stored password.") from None
        return _grant(
            Account(account.url, account.username, account.password, home, session.auth_type)
        )

    def sign_in(self, *, url: str, username: str, password: str) -> Grant:
        return check(url, username, password)

    def stored_access_token(self, credentials: dict[str, Any]) -> str | None:
        return _account(credentials).token()

    def revoke(self, credentials: dict[str, Any]) -> bool:
        """An app-specific password is revoked by the learner at their provider only."""
        return False
