"""Google Calendar through google-auth-oauthlib, google-auth and google-api-python-client.

References: https://developers.google.com/identity/protocols/oauth2/web-server and
https://developers.google.com/calendar/api/v3/reference
"""

from __future__ import annotations

import base64
import hashlib
import logging
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import google.auth.exceptions
import google.auth.transport.requests
import google_auth_httplib2
import httplib2
import requests
from django.conf import settings
from google.oauth2.credentials import Credentials
from google_auth_oauthlib.flow import Flow
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest
from oauthlib.oauth2.rfc6749.errors import OAuth2Error

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

logger = logging.getLogger(__name__)

EXPIRY_MARGIN = timedelta(seconds=60)  # refresh a little before Google would refuse
CALENDAR_EVENTS = "https://www.googleapis.com/auth/calendar.events"
# The private extended property that names the formation an exported event stands for.
FORMATION_PROPERTY = "formationId"
# The narrowest scopes that allow reading calendars and writing events, plus the identity.
SCOPES = [
    "openid",
    "https://www.googleapis.com/auth/userinfo.email",
    CALENDAR_EVENTS,
    "https://www.googleapis.com/auth/calendar.calendarlist.readonly",
]


class _Request(google.auth.transport.requests.Request):
    """google-auth's transport, with our timeout on every call (its default is 120 s)."""

    def __call__(self, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        return super().__call__(*args, timeout=timeout or settings.CALENDAR_HTTP_TIMEOUT, **kwargs)


class GoogleProvider(Provider):
    name = "google"
    title = "Google Agenda"

    def is_configured(self) -> bool:
        return bool(settings.GOOGLE_CLIENT_ID and settings.GOOGLE_CLIENT_SECRET)

    def _flow(self, redirect_uri: str) -> Flow:
        config = {
            "web": {
                "client_id": settings.GOOGLE_CLIENT_ID,
                "client_secret": settings.GOOGLE_CLIENT_SECRET,
                "auth_uri": settings.GOOGLE_AUTH_URI,
                "token_uri": settings.GOOGLE_TOKEN_URI,
                "redirect_uris": [redirect_uri],
            }
        }
        return Flow.from_client_config(config, scopes=SCOPES, redirect_uri=redirect_uri)

    def start(self, *, redirect_uri: str, state: str, login_hint: str = "") -> Authorization:
        flow = self._flow(redirect_uri)
        extra = {"login_hint": login_hint} if login_hint else {}
        url, _state = flow.authorization_url(
            state=state, access_type="offline", prompt="consent", **extra
        )
        return Authorization(url=url, flow={"code_verifier": flow.code_verifier})

    def finish(self, *, flow: dict[str, Any], redirect_uri: str, params: dict[str, str]) -> Grant:
        if params.get("error"):
            raise AuthorizationDenied(f"Google: {params['error']}")
        if not params.get("code"):
            raise ProviderError("Google did not return an authorization code.", permanent=True)
        oauth = self._flow(redirect_uri)
        oauth.code_verifier = flow["code_verifier"]
        try:
            oauth.fetch_token(code=params["code"], timeout=settings.CALENDAR_HTTP_TIMEOUT)
        except Warning as changed:
            # Google granted other scopes than asked (the learner unticked some, or earlier
            # grants were added): oauthlib raises, with the token attached. The one scope
            # that matters is checked below.
            oauth.oauth2session.token = changed.token  # type: ignore[attr-defined]
        except OAuth2Error as error:
            raise ProviderError(
                f"Google refused the code ({error.error}).", permanent=True
            ) from None
        except requests.RequestException as error:
            raise ProviderError(f"Google could not be reached ({type(error).__name__}).") from None
        credentials = oauth.credentials
        granted = sorted(credentials.granted_scopes or oauth.oauth2session.token.get("scope", []))
        if CALENDAR_EVENTS not in granted:
            self.revoke({"refresh_token": credentials.refresh_token, "token": credentials.token})
            raise AuthorizationDenied("Google: calendar access was not granted.")
        profile = self._userinfo(credentials.token)
        expires_at = _aware(credentials.expiry)
        return Grant(
            credentials={
                "token": credentials.token,
                "refresh_token": credentials.refresh_token,
                "expiry": expires_at.isoformat() if expires_at else None,
            },
            access_token=credentials.token,
            expires_at=expires_at,
            scopes=granted,
            account_email=profile.get("email", ""),
            account_name=profile.get("name", ""),
        )

    def _userinfo(self, token: str) -> dict[str, Any]:
        try:
            response = requests.get(
                f"{settings.GOOGLE_API_URL}oauth2/v3/userinfo",
                headers={"Authorization": f"Bearer {token}"},
                timeout=settings.CALENDAR_HTTP_TIMEOUT,
            )
            response.raise_for_status()
            return response.json()
        except (requests.RequestException, ValueError) as error:
            raise ProviderError(
                f"Google's account details could not be read ({type(error).__name__})."
            ) from None

    def access_token(self, credentials: dict[str, Any], *, force: bool = False) -> Grant:
        expiry = credentials.get("expiry")
        expires_at = datetime.fromisoformat(expiry) if expiry else None
        fresh = expires_at is not None and expires_at - EXPIRY_MARGIN > datetime.now(UTC)
        if not force and credentials.get("token") and fresh:
            return Grant(dict(credentials), credentials["token"], expires_at)
        if not credentials.get("refresh_token"):
            raise ReconnectRequired("Google gave no refresh token: the grant must be renewed.")
        google_credentials = Credentials(
            token=None,
            refresh_token=credentials["refresh_token"],
            token_uri=settings.GOOGLE_TOKEN_URI,
            client_id=settings.GOOGLE_CLIENT_ID,
            client_secret=settings.GOOGLE_CLIENT_SECRET,
        )
        try:
            google_credentials.refresh(_Request())
        except google.auth.exceptions.RefreshError as error:
            if _is_invalid_grant(error):
                raise ReconnectRequired(
                    "Google: the authorization was revoked or expired."
                ) from None
            raise ProviderError("Google refused to refresh the access token.") from None
        except google.auth.exceptions.TransportError:
            raise ProviderError("Google could not be reached to refresh the token.") from None
        except (ValueError, TypeError, KeyError):  # a 200 whose body is cut or not JSON
            raise ProviderError("Google sent an answer that could not be read.") from None
        expires_at = _aware(google_credentials.expiry)
        stored = {
            "token": google_credentials.token,
            "refresh_token": google_credentials.refresh_token or credentials["refresh_token"],
            "expiry": expires_at.isoformat() if expires_at else None,
        }
        return Grant(stored, google_credentials.token, expires_at)

    def list_calendars(self, access_token: str) -> list[CalendarInfo]:
        """https://developers.google.com/calendar/api/v3/reference/calendarList/list"""
        service = calendar_service(access_token)
        calendars, page_token = [], None
        while True:
            page = _execute(service.calendarList().list(pageToken=page_token, maxResults=250))
            calendars += [
                CalendarInfo(
                    external_id=item["id"],
                    name=item.get("summaryOverride") or item.get("summary", ""),
                    primary=bool(item.get("primary")),
                    can_edit=item.get("accessRole") in ("owner", "writer"),
                    color=item.get("backgroundColor", ""),
                    time_zone=item.get("timeZone", ""),
                )
                for item in page.get("items", [])
            ]
            page_token = page.get("nextPageToken")
            if not page_token:
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
        """https://developers.google.com/calendar/api/v3/reference/events/list and
        https://developers.google.com/calendar/api/guides/sync"""
        params: dict[str, Any] = {
            "calendarId": calendar_id,
            "singleEvents": True,
            "maxResults": EVENTS_PAGE_SIZE,
        }
        if sync_token:  # the other parameters must be those of the full listing
            params["syncToken"] = sync_token
        else:
            params["timeMin"] = window[0].isoformat()
            params["timeMax"] = window[1].isoformat()
        if page:
            params["pageToken"] = page
        data = _execute(calendar_service(access_token).events().list(**params))
        return EventPage.of(
            data.get("items") or [],
            _remote_event,
            next_page=data.get("nextPageToken"),
            sync_token=data.get("nextSyncToken"),
        )

    def export_event_id(self, *, owner: str, calendar_id: str, uid: str, copy: int) -> str:
        """Google lets the client choose the id (base32hex, 5 to 1024 characters): the same
        formation in the same calendar always gets the same one, so a create sent twice is
        refused (409) instead of duplicated.
        https://developers.google.com/calendar/api/v3/reference/events/insert"""
        digest = hashlib.sha256(f"{owner}|{calendar_id}|{uid}|{copy}".encode()).digest()
        return "fm" + base64.b32hexencode(digest).decode().rstrip("=").lower()

    def event_body(self, formation: ExportedFormation) -> dict[str, Any]:
        """https://developers.google.com/calendar/api/v3/reference/events#resource"""
        zone = ZoneInfo(formation.time_zone)
        return {
            "summary": formation.title,
            "description": formation.description,
            "location": formation.location,
            "start": {
                "dateTime": formation.start.astimezone(zone).isoformat(),
                "timeZone": formation.time_zone,
            },
            "end": {
                "dateTime": formation.end.astimezone(zone).isoformat(),
                "timeZone": formation.time_zone,
            },
            "source": {"title": formation.title[:200], "url": formation.url},
            "extendedProperties": {"private": {FORMATION_PROPERTY: formation.uid}},
        }

    def write_events(
        self, access_token: str, writes: list[Write]
    ) -> tuple[list[WriteOutcome], int]:
        """Batches of at most 50 calls, one after the other.
        https://developers.google.com/calendar/api/guides/batch"""
        service = calendar_service(access_token)
        outcomes: dict[int, WriteOutcome] = {}
        by_key = {write.key: write for write in writes}
        sent = 0

        def answered(request_id: str, response: Any, exception: Exception | None) -> None:
            write = by_key[int(request_id)]
            outcomes[write.key] = _write_outcome(write, response, exception)

        for start in range(0, len(writes), BATCH_SIZE):
            chunk = writes[start : start + BATCH_SIZE]
            batch = BatchHttpRequest(
                callback=answered, batch_uri=f"{settings.GOOGLE_API_URL}batch/calendar/v3"
            )
            for write in chunk:
                batch.add(_write_request(service, write), request_id=str(write.key))
            sent += 1
            try:
                batch.execute()
            except HttpError as error:
                failure = _error_from(error)
                if isinstance(failure, Unauthorized):
                    raise failure from None
            except (httplib2.HttpLib2Error, OSError) as error:
                failure = ProviderError(f"Google could not be reached ({type(error).__name__}).")
            except ValueError:
                failure = ProviderError("Google sent an answer that could not be read.")
            else:
                failure = ProviderError("Google's batch answer left out a call.")
            for write in chunk:  # calls the batch's answer did not cover
                if write.key not in outcomes:
                    outcomes[write.key] = WriteOutcome(write.key, Outcome.FAILED, error=failure)
        return [outcomes[write.key] for write in writes], sent

    push_per_calendar = True

    def watch(
        self,
        access_token: str,
        *,
        calendar_id: str,
        address: str,
        secret: str,
        expires_at: datetime,
    ) -> PushChannelInfo:
        """https://developers.google.com/calendar/api/v3/reference/events/watch"""
        body = {
            "id": str(uuid.uuid4()),
            "type": "web_hook",
            "address": address,
            "token": secret,
            "expiration": int(expires_at.timestamp() * 1000),
        }
        data = _execute(
            calendar_service(access_token).events().watch(calendarId=calendar_id, body=body)
        )
        try:
            ends = datetime.fromtimestamp(int(data["expiration"]) / 1000, tz=UTC)
            return PushChannelInfo(data["id"], data["resourceId"], ends)
        except (KeyError, TypeError, ValueError):
            raise ProviderError("Google sent an answer that could not be read.") from None

    def renew_watch(
        self, access_token: str, *, channel_id: str, expires_at: datetime
    ) -> datetime | None:
        return None  # https://developers.google.com/calendar/api/guides/push#renewing

    def stop_watch(self, access_token: str, *, channel_id: str, resource_id: str) -> None:
        """https://developers.google.com/calendar/api/v3/reference/channels/stop"""
        request = (
            calendar_service(access_token)
            .channels()
            .stop(body={"id": channel_id, "resourceId": resource_id})
        )
        _execute(request, expect_object=False, absent_ok=True)

    def revoke(self, credentials: dict[str, Any]) -> None:
        token = credentials.get("refresh_token") or credentials.get("token")
        if not token:
            return
        try:
            response = requests.post(
                settings.GOOGLE_REVOKE_URI,
                data={"token": token},
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                timeout=settings.CALENDAR_HTTP_TIMEOUT,
            )
        except requests.RequestException as error:
            logger.warning("Google revocation failed: %s", type(error).__name__)
            return
        if response.status_code not in (200, 400):  # 400: already revoked or expired
            logger.warning("Google revocation answered %s", response.status_code)


class _AccessToken(Credentials):
    """An access token owned by services.integration_access_token.

    On a 401 the client library would refresh the credentials itself; the refresh must instead
    happen under the integration's row lock (Outlook-style rotation, saved tokens), so this
    reports Unauthorized and integration_call refreshes and tries again.
    """

    def refresh(self, request: Any) -> None:
        raise Unauthorized("Google refused the access token.")


def calendar_service(access_token: str) -> Any:
    """The Calendar v3 client on GOOGLE_API_URL, from the discovery document shipped with
    google-api-python-client (no network), with our timeout."""
    http = google_auth_httplib2.AuthorizedHttp(
        _AccessToken(token=access_token), http=httplib2.Http(timeout=settings.CALENDAR_HTTP_TIMEOUT)
    )
    return build(
        "calendar",
        "v3",
        http=http,
        static_discovery=True,
        cache_discovery=False,
        client_options={"api_endpoint": f"{settings.GOOGLE_API_URL}calendar/v3/"},
    )


BATCH_SIZE = 50  # Google's advice; each call still counts against the quota


def _write_request(service: Any, write: Write) -> Any:
    events = service.events()
    if write.kind == WriteKind.CREATE:
        return events.insert(
            calendarId=write.calendar_id, body={**(write.body or {}), "id": write.event_id}
        )
    if write.kind == WriteKind.UPDATE:
        # A patch leaves `status` alone: an event the learner deleted stays deleted, and the
        # answer says so.
        return events.patch(calendarId=write.calendar_id, eventId=write.event_id, body=write.body)
    if write.kind == WriteKind.DELETE:
        return events.delete(calendarId=write.calendar_id, eventId=write.event_id)
    raise ValueError(f"Google needs no {write.kind!r}: its event ids are chosen in advance.")


def _write_outcome(write: Write, response: Any, exception: Exception | None) -> WriteOutcome:
    if isinstance(exception, HttpError):
        status = exception.resp.status
        if status == 409 and write.kind == WriteKind.CREATE:
            return WriteOutcome(write.key, Outcome.EXISTS, event_id=write.event_id)
        if status in (404, 410) and write.kind != WriteKind.CREATE:
            return WriteOutcome(write.key, Outcome.GONE, event_id=write.event_id)
        return WriteOutcome(write.key, Outcome.FAILED, error=_error_from(exception))
    if exception is not None:
        return WriteOutcome(
            write.key,
            Outcome.FAILED,
            error=ProviderError(f"Google's answer could not be read ({type(exception).__name__})."),
        )
    if write.kind == WriteKind.DELETE:
        return WriteOutcome(write.key, Outcome.OK, event_id=write.event_id)
    if not isinstance(response, dict) or not response.get("id"):
        return WriteOutcome(
            write.key,
            Outcome.FAILED,
            error=ProviderError("Google sent an answer that could not be read."),
        )
    status = Outcome.REMOVED if response.get("status") == "cancelled" else Outcome.OK
    return WriteOutcome(
        write.key, status, event_id=response["id"], version=response.get("etag") or ""
    )


RATE_LIMIT_REASONS = {"rateLimitExceeded", "userRateLimitExceeded"}


def _execute(request: Any, *, expect_object: bool = True, absent_ok: bool = False) -> Any:
    """Runs a client-library request, turning Google's answers into our two kinds of error;
    with `absent_ok`, a 404 (nothing there to act on) is no error and gives None.

    https://developers.google.com/calendar/api/guides/errors
    """
    try:
        result = request.execute(num_retries=0)
    except HttpError as error:
        if absent_ok and error.resp.status == 404:
            return None
        raise _error_from(error) from None
    except (httplib2.HttpLib2Error, OSError) as error:  # timeouts, refused connections
        raise ProviderError(f"Google could not be reached ({type(error).__name__}).") from None
    except ValueError:  # a body that is not JSON
        raise ProviderError("Google sent an answer that could not be read.") from None
    # googleapiclient hands a 2xx body that is not JSON back as a string.
    if expect_object and not isinstance(result, dict):
        raise ProviderError("Google sent an answer that could not be read.")
    return result


def _error_from(error: HttpError) -> ProviderError:
    status = error.resp.status
    reasons = {d.get("reason") for d in (error.error_details or []) if isinstance(d, dict)}
    retry_after = retry_after_seconds(error.resp.get("retry-after"))
    if status == 401:
        return Unauthorized("Google refused the access token.")
    if status == 410 and "fullSyncRequired" in reasons:
        return SyncTokenExpired("Google wants a full listing again (sync token expired).")
    if status == 429 or (status == 403 and reasons & RATE_LIMIT_REASONS):
        return ProviderError("Google's rate limit was reached.", retry_after=retry_after)
    if status == 403 and "quotaExceeded" in reasons:
        # The daily quota: retrying soon does not help.
        return ProviderError("Google's usage limit was reached.", retry_after=3600)
    if status >= 500:
        return ProviderError(f"Google answered {status}.", retry_after=retry_after)
    return ProviderError(f"Google answered {status} ({', '.join(sorted(reasons)) or 'error'}).",
                         permanent=True)  # fmt: skip


EVENTS_PAGE_SIZE = 2500  # Google's maximum
# Event types imported; others (workingLocation, birthday, types Google adds later) are not
# calendar entries a learner means to see beside formations: skipped and counted.
IMPORTED_TYPES = {"default", "fromGmail", "outOfOffice", "focusTime"}


def _remote_event(item: Any) -> RemoteEvent | Removed | None:
    """A Google event in our shape; None when it cannot be understood."""
    if not isinstance(item, dict) or not item.get("id"):
        return None
    if item.get("status") == "cancelled":
        return Removed(item["id"])
    if item.get("eventType", "default") not in IMPORTED_TYPES:
        return None
    try:
        start, end = item["start"], item["end"]
        if "date" in start:
            start_date, end_date = (
                date.fromisoformat(start["date"]),
                date.fromisoformat(end["date"]),
            )
            if end_date <= start_date:
                return None
            times = {
                "all_day": True,
                "start_date": start_date,
                "end_date": end_date,
                "start": datetime.combine(start_date, datetime.min.time(), UTC),
                "end": datetime.combine(end_date, datetime.min.time(), UTC),
            }
        else:
            begins = datetime.fromisoformat(start["dateTime"])
            ends = datetime.fromisoformat(end["dateTime"])
            if begins.tzinfo is None or ends.tzinfo is None or ends < begins:
                return None
            times = {"start": begins.astimezone(UTC), "end": ends.astimezone(UTC)}
    except (KeyError, TypeError, ValueError):
        return None
    entry_points = (item.get("conferenceData") or {}).get("entryPoints") or []
    video = next((e.get("uri") for e in entry_points if e.get("entryPointType") == "video"), "")
    private = (item.get("extendedProperties") or {}).get("private") or {}
    return RemoteEvent(
        external_id=item["id"],
        title=item.get("summary") or "",
        description=item.get("description") or "",
        location=item.get("location") or "",
        online_url=item.get("hangoutLink") or video or "",
        time_zone=item["start"].get("timeZone") or "",
        ical_uid=item.get("iCalUID") or "",
        status=item.get("status") or "confirmed",
        series_id=item.get("recurringEventId") or "",
        change_marker=item.get("etag") or "",
        html_link=item.get("htmlLink") or "",
        formation_marker=private.get(FORMATION_PROPERTY, ""),
        **times,
    )


def _aware(value: datetime | None) -> datetime | None:
    """google-auth keeps expiries as naive UTC datetimes."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _is_invalid_grant(error: google.auth.exceptions.RefreshError) -> bool:
    details = error.args[1] if len(error.args) > 1 else None
    if isinstance(details, dict):
        return details.get("error") == "invalid_grant"
    return "invalid_grant" in str(error.args[0] if error.args else "")
