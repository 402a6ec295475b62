"""Outlook calendars through msal (Microsoft identity platform) and Microsoft Graph.

References: https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow and
https://learn.microsoft.com/graph/api/resources/event
"""

from __future__ import annotations

import html
import json
import logging
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import msal
import msal.exceptions
import requests
from django.conf import settings
from django.utils.html import strip_tags

from calendars.providers.base import (
    Authorization,
    AuthorizationDenied,
    CalendarInfo,
    EventPage,
    ExportedFormation,
    Grant,
    Outcome,
    Provider,
    ProviderError,
    PushChannelInfo,
    ReconnectRequired,
    RemoteEvent,
    Removed,
    SyncTokenExpired,
    Unauthorized,
    Write,
    WriteKind,
    WriteOutcome,
    retry_after_seconds,
)
from core.timezones import iana_zone, windows_zone
from core.tls import outlook_verify

logger = logging.getLogger(__name__)

SCOPES = ["Calendars.ReadWrite", "User.Read"]  # msal adds offline_access, openid, profile
# Errors of the token endpoint after which only a new consent helps.
RECONNECT_ERRORS = {"invalid_grant", "interaction_required", "consent_required"}


class _Session(requests.Session):
    """requests lets REQUESTS_CA_BUNDLE override a session's `verify`; here OUTLOOK_CA_BUNDLE
    (added to the usual authorities) always wins, while proxy variables still apply. msal
    ignores its own `timeout` when given a session, so the session sets it on every call."""

    def merge_environment_settings(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        merged = super().merge_environment_settings(*args, **kwargs)
        merged["verify"] = self.verify
        return merged

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", settings.CALENDAR_HTTP_TIMEOUT)
        return super().request(*args, **kwargs)


_local = threading.local()
# msal keeps the authority's OpenID configuration (and its throttling state) here; per app
# instance by default, which is per call here, so every token lookup would fetch it again.
_MSAL_HTTP_CACHE: dict[str, Any] = {}


def _http_client() -> requests.Session:
    """One session per thread, kept: its connections (and their TLS handshakes, and the
    loading of the certificate authorities each new one costs) serve every later call."""
    verify = outlook_verify()
    session = getattr(_local, "session", None)
    if session is None or session.verify != verify:
        session = _Session()
        session.verify = verify
        _local.session = session
    return session


class OutlookProvider(Provider):
    name = "outlook"
    title = "Outlook"

    def is_configured(self) -> bool:
        return bool(settings.OUTLOOK_CLIENT_ID and settings.OUTLOOK_CLIENT_SECRET)

    def _app(self, cache: msal.SerializableTokenCache | None = None) -> Any:
        try:
            return msal.ConfidentialClientApplication(
                settings.OUTLOOK_CLIENT_ID,
                client_credential=settings.OUTLOOK_CLIENT_SECRET,
                authority=settings.OUTLOOK_AUTHORITY,
                # Our authority may be a tenant, a national cloud or the sandbox: read its own
                # OpenID configuration instead of asking login.microsoftonline.com about it.
                instance_discovery=False,
                http_client=_http_client(),
                http_cache=_MSAL_HTTP_CACHE,
                token_cache=cache,
            )
        except (ValueError, requests.RequestException, msal.exceptions.MsalError) as error:
            # msal reads the authority's OpenID configuration here.
            raise ProviderError(
                f"Microsoft's sign-in service could not be reached ({type(error).__name__})."
            ) from None

    def start(self, *, redirect_uri: str, state: str, login_hint: str = "") -> Authorization:
        extra = {"login_hint": login_hint} if login_hint else {}
        with warnings.catch_warnings():
            # msal recommends response_mode=form_post; that is a cross-site POST, which the
            # SameSite=Lax session cookie does not accompany, so the learner would arrive
            # signed out. The code is single-use and PKCE-bound, which is what protects it.
            warnings.filterwarnings("ignore", message="response_mode='form_post'")
            flow = self._app().initiate_auth_code_flow(
                SCOPES, redirect_uri=redirect_uri, state=state, prompt="select_account", **extra
            )
        url = flow.pop("auth_uri")
        return Authorization(url=url, flow=flow)

    def finish(self, *, flow: dict[str, Any], redirect_uri: str, params: dict[str, str]) -> Grant:
        if params.get("error"):
            raise AuthorizationDenied(f"Microsoft: {params['error']}")
        cache = msal.SerializableTokenCache()
        try:
            result = self._app(cache).acquire_token_by_auth_code_flow(flow, params, scopes=SCOPES)
        except json.JSONDecodeError:  # before ValueError, which it is
            raise ProviderError("Microsoft sent an answer that could not be read.") from None
        except ValueError:  # msal: state or nonce mismatch
            raise ProviderError(
                "Microsoft's answer did not match the request.", permanent=True
            ) from None
        except (requests.RequestException, msal.exceptions.MsalError) as error:
            raise ProviderError(
                f"Microsoft could not be reached ({type(error).__name__})."
            ) from None
        if "error" in result:
            raise ProviderError(
                f"Microsoft refused the code ({result['error']}).", permanent=True
            ) from None
        claims = result.get("id_token_claims") or {}
        return Grant(
            credentials={"cache": cache.serialize()},
            access_token=result["access_token"],
            expires_at=_expiry(result),
            scopes=sorted(str(result.get("scope", "")).split()),
            account_email=claims.get("preferred_username", ""),
            account_name=claims.get("name", ""),
        )

    def access_token(self, credentials: dict[str, Any], *, force: bool = False) -> Grant:
        cache = msal.SerializableTokenCache()
        if credentials.get("cache"):
            cache.deserialize(credentials["cache"])
        app = self._app(cache)
        accounts = app.get_accounts()
        if not accounts:
            raise ReconnectRequired("Microsoft: no account in the stored credentials.")
        try:
            result = app.acquire_token_silent_with_error(
                SCOPES, account=accounts[0], force_refresh=force
            )
        except json.JSONDecodeError:
            raise ProviderError("Microsoft sent an answer that could not be read.") from None
        except (requests.RequestException, msal.exceptions.MsalError) as error:
            raise ProviderError(
                f"Microsoft could not be reached ({type(error).__name__})."
            ) from None
        if not result:
            raise ReconnectRequired("Microsoft: the stored refresh token is missing.")
        if "error" in result:
            if result["error"] in RECONNECT_ERRORS:
                raise ReconnectRequired("Microsoft: the authorization was revoked or expired.")
            raise ProviderError(f"Microsoft refused to refresh the token ({result['error']}).")
        # Refresh tokens rotate: the cache now holds the new one, and only it works.
        stored = {"cache": cache.serialize()} if cache.has_state_changed else dict(credentials)
        return Grant(stored, result["access_token"], _expiry(result))

    def list_calendars(self, access_token: str) -> list[CalendarInfo]:
        """https://learn.microsoft.com/graph/api/user-list-calendars"""
        calendars = []
        url: str | None = f"{settings.OUTLOOK_GRAPH_URL}/me/calendars?$top=100"
        while url:
            page = graph_get(access_token, url)
            calendars += [
                CalendarInfo(
                    external_id=item["id"],
                    name=item.get("name", ""),
                    primary=bool(item.get("isDefaultCalendar")),
                    can_edit=bool(item.get("canEdit")),
                    color=item.get("hexColor") or "",
                )
                for item in page.get("value", [])
            ]
            url = page.get("@odata.nextLink")
        return calendars

    def list_events(
        self,
        access_token: str,
        calendar_id: str,
        *,
        window: tuple[datetime, datetime],
        sync_token: str = "",
        page: str = "",
    ) -> EventPage:
        """https://learn.microsoft.com/graph/delta-query-events: the first request carries the
        window, then nextLink pages, and the last page's deltaLink starts the next round."""
        url = page or sync_token
        if not url:
            start, end = (
                moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for moment in window
            )
            url = (
                f"{settings.OUTLOOK_GRAPH_URL}/me/calendars/{quote(calendar_id, safe='')}"
                f"/calendarView/delta?startDateTime={start}&endDateTime={end}"
            )
        # Text bodies: Graph converts them itself, far cheaper than stripping HTML here.
        prefer = f'odata.maxpagesize={EVENTS_PAGE_SIZE}, outlook.body-content-type="text"'
        data = graph_get(access_token, url, headers={"Prefer": prefer})
        return EventPage.of(
            data.get("value") or [],
            _remote_event,
            next_page=data.get("@odata.nextLink"),
            sync_token=data.get("@odata.deltaLink"),
        )

    def export_event_id(self, *, owner: str, calendar_id: str, uid: str, copy: int) -> str:
        return ""  # Graph chooses; a retried create is recognised by its transactionId

    def event_body(self, formation: ExportedFormation) -> dict[str, Any]:
        """https://learn.microsoft.com/graph/api/resources/event: local times with Outlook's
        (Windows) name of the formation's zone, and our single-value extended property."""
        zone = ZoneInfo(formation.time_zone)
        local = "%Y-%m-%dT%H:%M:%S"
        return {
            "subject": formation.title,
            "body": {"contentType": "text", "content": formation.description},
            "start": {
                "dateTime": formation.start.astimezone(zone).strftime(local),
                "timeZone": windows_zone(formation.time_zone),
            },
            "end": {
                "dateTime": formation.end.astimezone(zone).strftime(local),
                "timeZone": windows_zone(formation.time_zone),
            },
            "location": {"displayName": formation.location},
            "singleValueExtendedProperties": [
                {"id": FORMATION_PROPERTY_ID, "value": formation.uid}
            ],
        }

    def write_events(
        self, access_token: str, writes: list[Write]
    ) -> tuple[list[WriteOutcome], int]:
        """JSON batches of at most 20 requests, at most 4 sent at once: Outlook runs no more
        than 4 requests per mailbox at a time. https://learn.microsoft.com/graph/json-batching"""
        chunks = [writes[i : i + BATCH_SIZE] for i in range(0, len(writes), BATCH_SIZE)]
        if len(chunks) == 1:
            answers = [_send_batch(access_token, chunks[0])]
        else:
            with ThreadPoolExecutor(max_workers=MAILBOX_CONCURRENCY) as pool:
                answers = list(pool.map(lambda chunk: _send_batch(access_token, chunk), chunks))
        if any(unauthorized for _outcomes, unauthorized in answers):
            raise Unauthorized("Microsoft Graph refused the access token.")
        outcomes = [outcome for chunk_outcomes, _ in answers for outcome in chunk_outcomes]
        return outcomes, len(chunks)

    push_per_calendar = False

    def watch(
        self,
        access_token: str,
        *,
        calendar_id: str,
        address: str,
        secret: str,
        expires_at: datetime,
    ) -> PushChannelInfo:
        """One subscription to every event of the mailbox; lifecycle notifications
        (reauthorization required, removed, missed) come to the same address.
        https://learn.microsoft.com/graph/api/subscription-post-subscriptions"""
        body = {
            "changeType": "created,updated,deleted",
            "notificationUrl": address,
            "lifecycleNotificationUrl": address,
            "resource": SUBSCRIPTION_RESOURCE,
            "expirationDateTime": _graph_stamp(expires_at),
            "clientState": secret,
        }
        data = graph_request(
            access_token, "POST", f"{settings.OUTLOOK_GRAPH_URL}/subscriptions", json=body
        )
        try:
            return PushChannelInfo(
                data["id"], data.get("resource") or "", _graph_instant(data["expirationDateTime"])
            )
        except (KeyError, TypeError, ValueError):
            raise ProviderError("Microsoft Graph sent an answer that could not be read.") from None

    def renew_watch(
        self, access_token: str, *, channel_id: str, expires_at: datetime
    ) -> datetime | None:
        """https://learn.microsoft.com/graph/api/subscription-update"""
        data = graph_request(
            access_token,
            "PATCH",
            f"{settings.OUTLOOK_GRAPH_URL}/subscriptions/{quote(channel_id, safe='')}",
            json={"expirationDateTime": _graph_stamp(expires_at)},
        )
        try:
            return _graph_instant(data["expirationDateTime"])
        except (KeyError, TypeError, ValueError):
            raise ProviderError("Microsoft Graph sent an answer that could not be read.") from None

    def stop_watch(self, access_token: str, *, channel_id: str, resource_id: str) -> None:
        """https://learn.microsoft.com/graph/api/subscription-delete"""
        graph_request(
            access_token,
            "DELETE",
            f"{settings.OUTLOOK_GRAPH_URL}/subscriptions/{quote(channel_id, safe='')}",
            absent_ok=True,
        )

    def revoke(self, credentials: dict[str, Any]) -> None:
        """Microsoft has no per-application revocation endpoint: erasing the cache is all."""


# Every event of the mailbox, whatever its calendar.
# https://learn.microsoft.com/graph/outlook-change-notifications-overview
SUBSCRIPTION_RESOURCE = "me/events"


def graph_get(access_token: str, url: str, headers: dict[str, str] | None = None) -> Any:
    """One Graph GET, with Graph's answers turned into our two kinds of error."""
    return graph_request(access_token, "GET", url, headers=headers)


def graph_request(
    access_token: str,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    json: dict[str, Any] | None = None,
    absent_ok: bool = False,
) -> Any:
    """One Graph request, with Graph's answers turned into our two kinds of error; with
    `absent_ok`, a 404 (nothing there to act on) is no error. Gives the JSON answer, or None
    when there is no body (204).

    https://learn.microsoft.com/graph/errors and https://learn.microsoft.com/graph/throttling
    """
    try:
        response = _http_client().request(
            method,
            url,
            headers={"Authorization": f"Bearer {access_token}", **(headers or {})},
            json=json,
            timeout=settings.CALENDAR_HTTP_TIMEOUT,
        )
    except requests.RequestException as error:
        raise ProviderError(
            f"Microsoft Graph could not be reached ({type(error).__name__})."
        ) from None
    if absent_ok and response.status_code == 404:
        return None
    if response.status_code == 204:
        return None
    if response.status_code == 401:
        raise Unauthorized("Microsoft Graph refused the access token.")
    if response.status_code == 410:
        raise SyncTokenExpired("Microsoft Graph wants a full listing again (delta link expired).")
    if response.status_code >= 400:
        raise _graph_error(response)
    try:
        return response.json()
    except ValueError:
        raise ProviderError("Microsoft Graph sent an answer that could not be read.") from None


def _graph_error(response: requests.Response) -> ProviderError:
    status = response.status_code
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = "unknown"
    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    if status == 429 or status >= 500:
        return ProviderError(
            f"Microsoft Graph answered {status} ({code}).", retry_after=retry_after
        )
    return ProviderError(f"Microsoft Graph answered {status} ({code}).", permanent=True)


BATCH_SIZE = 20  # Graph's limit per JSON batch
MAILBOX_CONCURRENCY = 4  # Outlook's limit of requests running at once per mailbox


def _send_batch(access_token: str, writes: list[Write]) -> tuple[list[WriteOutcome], bool]:
    """One $batch; returns the outcomes, and whether the token was refused."""
    requests_ = [_batch_request(write) for write in writes]
    try:
        response = _http_client().post(
            f"{settings.OUTLOOK_GRAPH_URL}/$batch",
            json={"requests": requests_},
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=settings.CALENDAR_HTTP_TIMEOUT,
        )
    except requests.RequestException as error:
        failure = ProviderError(f"Microsoft Graph could not be reached ({type(error).__name__}).")
        return [WriteOutcome(w.key, Outcome.FAILED, error=failure) for w in writes], False
    if response.status_code == 401:
        return [], True
    answers: dict[str, Any] = {}
    if response.status_code < 400:
        try:
            answers = {str(a.get("id")): a for a in response.json()["responses"]}
        except (ValueError, KeyError, TypeError, AttributeError):
            answers = {}
        failure = ProviderError("Microsoft Graph's batch answer left out a request.")
    else:
        failure = _graph_error(response)
    outcomes, unauthorized = [], False
    for write in writes:
        answer = answers.get(str(write.key))
        if answer is None:
            outcomes.append(WriteOutcome(write.key, Outcome.FAILED, error=failure))
            continue
        unauthorized = unauthorized or answer.get("status") == 401
        outcomes.append(_batch_outcome(write, answer))
    return outcomes, unauthorized


def _batch_request(write: Write) -> dict[str, Any]:
    calendar = f"/me/calendars/{quote(write.calendar_id, safe='')}"
    event = f"/me/events/{quote(write.event_id, safe='')}"
    json_headers = {"Content-Type": "application/json"}
    request: dict[str, Any] = {"id": str(write.key)}
    if write.kind == WriteKind.CREATE:
        transaction = f"{EXPORT_TRANSACTION_PREFIX}{write.uid}-{write.copy}"
        body = {**(write.body or {}), "transactionId": transaction}
        request.update(method="POST", url=f"{calendar}/events", headers=json_headers, body=body)
    elif write.kind == WriteKind.UPDATE:
        request.update(method="PATCH", url=event, headers=json_headers, body=write.body)
    elif write.kind == WriteKind.DELETE:
        request.update(method="DELETE", url=event)
    else:  # find the formation's events by our extended property
        condition = (
            f"singleValueExtendedProperties/Any(ep: ep/id eq '{FORMATION_PROPERTY_ID}' "
            f"and ep/value eq '{write.uid}')"
        )
        query = f"$filter={quote(condition, safe='')}&$select=id,changeKey&$top=10"
        request.update(method="GET", url=f"{calendar}/events?{query}")
    return request


def _batch_outcome(write: Write, answer: dict[str, Any]) -> WriteOutcome:
    status = answer.get("status")
    body = answer.get("body") if isinstance(answer.get("body"), dict) else {}
    if not isinstance(status, int):
        error = ProviderError("Microsoft Graph sent an answer that could not be read.")
        return WriteOutcome(write.key, Outcome.FAILED, error=error)
    if status == 404 and write.kind in (WriteKind.UPDATE, WriteKind.DELETE):
        return WriteOutcome(write.key, Outcome.GONE, event_id=write.event_id)
    if status >= 400:
        headers = answer.get("headers") if isinstance(answer.get("headers"), dict) else {}
        retry = next((v for k, v in headers.items() if str(k).lower() == "retry-after"), None)
        code = (body.get("error") or {}).get("code", "unknown") if body else "unknown"
        error = ProviderError(
            f"Microsoft Graph answered {status} ({code}).",
            permanent=status != 429 and status < 500,
            retry_after=retry_after_seconds(str(retry) if retry is not None else None),
        )
        return WriteOutcome(write.key, Outcome.FAILED, error=error)
    if write.kind == WriteKind.DELETE:
        return WriteOutcome(write.key, Outcome.OK, event_id=write.event_id)
    if write.kind == WriteKind.FIND:
        found = [
            item for item in body.get("value") or [] if isinstance(item, dict) and item.get("id")
        ]
        if not found:
            return WriteOutcome(write.key, Outcome.MISSING)
        return WriteOutcome(
            write.key,
            Outcome.OK,
            event_id=found[0]["id"],
            version=found[0].get("changeKey") or "",
            duplicates=[item["id"] for item in found[1:]],
        )
    if not body.get("id"):
        error = ProviderError("Microsoft Graph sent an answer that could not be read.")
        return WriteOutcome(write.key, Outcome.FAILED, error=error)
    return WriteOutcome(
        write.key, Outcome.OK, event_id=body["id"], version=body.get("changeKey") or ""
    )


EVENTS_PAGE_SIZE = 1000
FORMATION_PROPERTY_NAME = "Name formationId"  # of the single-value extended property we set
# Our own GUID for the property set: https://learn.microsoft.com/graph/api/resources/extended-properties-overview
FORMATION_PROPERTY_ID = "String {66f5a359-4659-4638-81e0-9b8e2e3a2b5a} " + FORMATION_PROPERTY_NAME
# Exports create events with a transactionId of this prefix (Graph de-duplicates creates on
# it). Delta listings carry no extended property, but they do carry transactionId: that is how
# an import recognises an exported formation there.
EXPORT_TRANSACTION_PREFIX = "formation-"


def _remote_event(item: Any) -> RemoteEvent | Removed | None:
    """A Graph event in our shape; None when it cannot be understood."""
    if not isinstance(item, dict) or not item.get("id"):
        return None
    if "@removed" in item or item.get("isCancelled"):
        return Removed(item["id"])
    if item.get("type") == "seriesMaster":  # calendarView gives the occurrences themselves
        return None
    try:
        zone_name = item["start"].get("timeZone") or "UTC"
        zone = ZoneInfo(iana_zone(zone_name) or "UTC")
        begins = _graph_datetime(item["start"]["dateTime"])
        ends = _graph_datetime(item["end"]["dateTime"])
        if ends < begins:
            return None
        if item.get("isAllDay"):
            # Midnight to midnight in the zone asked for: the dates are what count.
            times: dict[str, Any] = {
                "all_day": True,
                "start_date": begins.date(),
                "end_date": ends.date(),
                "start": datetime.combine(begins.date(), datetime.min.time(), UTC),
                "end": datetime.combine(ends.date(), datetime.min.time(), UTC),
            }
            if times["end_date"] <= times["start_date"]:
                return None
        else:
            times = {
                "start": begins.replace(tzinfo=zone).astimezone(UTC),
                "end": ends.replace(tzinfo=zone).astimezone(UTC),
            }
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    body = item.get("body") or {}
    description = body.get("content") or ""
    if body.get("contentType") == "html":
        description = html.unescape(strip_tags(description)).strip()
    transaction = str(item.get("transactionId") or "")
    marker = next(
        (
            p.get("value", "")
            for p in item.get("singleValueExtendedProperties") or []
            if str(p.get("id", "")).endswith(FORMATION_PROPERTY_NAME)
        ),
        _uid_of_transaction(transaction),
    )
    return RemoteEvent(
        external_id=item["id"],
        title=item.get("subject") or "",
        description=description,
        location=(item.get("location") or {}).get("displayName") or "",
        online_url=(item.get("onlineMeeting") or {}).get("joinUrl")
        or item.get("onlineMeetingUrl")
        or "",
        time_zone=iana_zone(item.get("originalStartTimeZone") or "") or "",
        ical_uid=item.get("iCalUId") or "",
        series_id=item.get("seriesMasterId") or "",
        change_marker=item.get("changeKey") or "",
        html_link=item.get("webLink") or "",
        formation_marker=marker,
        **times,
    )


def _uid_of_transaction(transaction: str) -> str:
    """`formation-<uid>-<copy>` gives the formation's uid; other transactionIds give ""."""
    if not transaction.startswith(EXPORT_TRANSACTION_PREFIX):
        return ""
    return transaction[len(EXPORT_TRANSACTION_PREFIX) :].rpartition("-")[0] or transaction


def _graph_stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def _graph_instant(value: str) -> datetime:
    """An instant Graph gives in UTC ("...Z", seven fractional digits)."""
    return _graph_datetime(value.rstrip("Zz")).replace(tzinfo=UTC)


def _graph_datetime(value: str) -> datetime:
    """Graph writes seven fractional digits; Python reads six."""
    main, _, fraction = value.partition(".")
    return datetime.fromisoformat(f"{main}.{(fraction + '000000')[:6]}" if fraction else main)


def _expiry(result: dict[str, Any]) -> datetime | None:
    seconds = result.get("expires_in")
    return datetime.now(UTC) + timedelta(seconds=int(seconds)) if seconds else None
