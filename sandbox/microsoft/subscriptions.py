"""Change-notification subscriptions: https://learn.microsoft.com/graph/api/resources/subscription.

Create, list, get, renew, delete and reauthorize; every change to a subscribed calendar
queues a notification (notifications.py), and the control API sends lifecycle
notifications on demand (https://learn.microsoft.com/graph/change-notifications-lifecycle-events).
"""

from __future__ import annotations

import re
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from sandbox.microsoft.formats import json_object, parse_datetime, stamp
from sandbox.microsoft.identity import READ_SCOPES, AccessToken
from sandbox.microsoft.notifications import Notifier
from sandbox.microsoft.render import etag
from sandbox.server import HTTPError, Request, Response, Router
from sandbox.store import MICROSOFT, Account, Calendar, Event

if TYPE_CHECKING:
    from sandbox.core import Sandbox


# https://learn.microsoft.com/graph/api/resources/subscription: Outlook message, event,
# contact: 10,080 minutes (under 7 days); older versions of the page said 4,230.
SUBSCRIPTION_MAX_MINUTES = 10080
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")


@dataclass
class Subscription:
    id: str
    email: str
    client_id: str
    calendar_id: str | None  # None: every calendar of the mailbox (me/events)
    resource: str
    change_types: list[str]
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expires: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.client_id,
            "changeType": ",".join(self.change_types),
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": stamp(self.expires),
            "creatorId": "",
            "includeResourceData": False,
            "latestSupportedTlsVersion": "v1_2",
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationUrlAppId": None,
        }


class Subscriptions:
    def __init__(self, sandbox: Sandbox, lock: threading.RLock, control: Router) -> None:
        self.sandbox = sandbox
        self.store = sandbox.store
        self._lock = lock
        self.by_id: dict[str, Subscription] = {}
        self.notifier = Notifier(sandbox, lock)
        # Ids that exist already: a change to one of them is "updated", to any other "created".
        self._known_ids: set[str] = set()
        with self.store.lock:
            for account in self.store.accounts_of(MICROSOFT):
                for calendar in account.calendars.values():
                    self._known_ids.update(calendar.events)
        control.route("GET", r"/_sandbox/api/subscriptions", "sandbox.subscriptions")(
            self._list_all
        )
        control.route(
            "POST",
            r"/_sandbox/api/subscriptions/(?P<id>[^/]+)/lifecycle/(?P<event>[^/]+)",
            "sandbox.subscriptions.lifecycle",
        )(self._lifecycle)
        self.store.on_change(self._on_change)

    def subscriptions(self) -> list[Subscription]:
        with self._lock:
            return list(self.by_id.values())

    def send_lifecycle_notification(self, subscription_id: str, lifecycle_event: str) -> None:
        """Queue a lifecycle notification (reauthorizationRequired, subscriptionRemoved, missed).

        https://learn.microsoft.com/graph/change-notifications-lifecycle-events
        Raises KeyError for an unknown subscription, ValueError for an unknown event or a
        subscription without a lifecycleNotificationUrl.
        """
        if lifecycle_event not in LIFECYCLE_EVENTS:
            raise ValueError(f"unknown lifecycle event {lifecycle_event!r}")
        with self._lock:
            subscription = self.by_id[subscription_id]
            if not subscription.lifecycle_url:
                raise ValueError("the subscription has no lifecycleNotificationUrl")
            if lifecycle_event == "subscriptionRemoved":
                del self.by_id[subscription_id]
        account = self.store.account(subscription.email)
        item = {
            "lifecycleEvent": lifecycle_event,
            "subscriptionId": subscription.id,
            "subscriptionExpirationDateTime": stamp(subscription.expires),
            "clientState": subscription.client_state,
            "tenantId": account.tenant_id if account else "",
            "resource": subscription.resource,
        }
        self.notifier.enqueue("lifecycle", subscription.lifecycle_url, item)

    def reauthorization_required(self, subscription_id: str) -> None:
        self.send_lifecycle_notification(subscription_id, "reauthorizationRequired")

    def subscription_removed(self, subscription_id: str) -> None:
        self.send_lifecycle_notification(subscription_id, "subscriptionRemoved")

    def missed(self, subscription_id: str) -> None:
        self.send_lifecycle_notification(subscription_id, "missed")

    def create_subscription(
        self, request: Request, account: Account, token: AccessToken
    ) -> Response:
        """https://learn.microsoft.com/graph/api/subscription-post-subscriptions"""
        body = json_object(request)
        if not token.scopes & READ_SCOPES:
            raise HTTPError(
                403,
                "ExtensionError",
                "Operation: Create; Exception: [Status Code: "
                "Forbidden; Reason: Access is denied. Check credentials and try "
                "again.]",
            )
        change_types = [c.strip() for c in str(body.get("changeType") or "").split(",")]
        if not change_types or any(
            c not in {"created", "updated", "deleted"} for c in change_types
        ):
            raise HTTPError(
                400,
                "InvalidRequest",
                "changeType must list created, updated and deleted, separated by commas.",
            )
        resource = body.get("resource")
        if not isinstance(resource, str) or not resource:
            raise HTTPError(400, "InvalidRequest", "resource is required.")
        calendar = self._resource_calendar(account, resource)
        client_state = body.get("clientState")
        if client_state is not None and (
            not isinstance(client_state, str) or len(client_state) > 128
        ):
            raise HTTPError(400, "InvalidRequest", "clientState is at most 128 characters.")
        expires = self._check_expiration(body.get("expirationDateTime"))
        lifecycle = body.get("lifecycleNotificationUrl")
        notification = self.notifier.validate(body.get("notificationUrl"), "notificationUrl")
        if lifecycle is not None:
            self.notifier.validate(lifecycle, "lifecycleNotificationUrl")
        subscription = Subscription(
            id=str(uuid.uuid4()),
            email=account.email,
            client_id=token.client_id,
            calendar_id=calendar.id if calendar is not None else None,
            resource=resource,
            change_types=change_types,
            notification_url=notification,
            lifecycle_url=lifecycle,
            client_state=client_state,
            expires=expires,
        )
        with self._lock:
            self.by_id[subscription.id] = subscription
        self.notifier.ensure_worker()
        data = {
            "@odata.context": f"{request.base_url}/v1.0/$metadata#subscriptions/$entity",
            **subscription.as_json(),
            "creatorId": account.uid,
        }
        return Response.json(data, 201)

    def update_subscription(
        self, request: Request, account: Account, token: AccessToken
    ) -> Response:
        """https://learn.microsoft.com/graph/api/subscription-update"""
        subscription = self._subscription_of(request, token)
        body = json_object(request)
        unknown = set(body) - {"expirationDateTime", "notificationUrl"}
        if unknown:
            raise HTTPError(
                400, "InvalidRequest", f"Property '{sorted(unknown)[0]}' cannot be updated."
            )
        expires = (
            self._check_expiration(body["expirationDateTime"])
            if "expirationDateTime" in body
            else subscription.expires
        )
        url = (
            self.notifier.validate(body["notificationUrl"], "notificationUrl")
            if "notificationUrl" in body
            else subscription.notification_url
        )
        with self._lock:
            subscription.expires, subscription.notification_url = expires, url
        return Response.json(subscription.as_json() | {"creatorId": account.uid})

    def list_subscriptions(
        self, request: Request, account: Account, token: AccessToken
    ) -> Response:
        mine = [s.as_json() | {"creatorId": account.uid} for s in self._subscriptions_of(token)]
        return Response.json(
            {
                "@odata.context": f"{request.base_url}/v1.0/$metadata#subscriptions",
                "value": mine,
            }
        )

    def get_subscription(self, request: Request, account: Account, token: AccessToken) -> Response:
        subscription = self._subscription_of(request, token)
        return Response.json(subscription.as_json() | {"creatorId": account.uid})

    def delete_subscription(
        self, request: Request, account: Account, token: AccessToken
    ) -> Response:
        subscription = self._subscription_of(request, token)
        with self._lock:
            self.by_id.pop(subscription.id, None)
        return Response(204)

    def reauthorize(self, request: Request, account: Account, token: AccessToken) -> Response:
        self._subscription_of(request, token)
        return Response(204)

    def _subscriptions_of(self, token: AccessToken) -> list[Subscription]:
        now = datetime.now(UTC)
        with self._lock:
            for key in [k for k, s in self.by_id.items() if s.expires <= now]:
                del self.by_id[key]  # Graph deletes expired subscriptions
            return [
                s
                for s in self.by_id.values()
                if s.email == token.email and s.client_id == token.client_id
            ]

    def _subscription_of(self, request: Request, token: AccessToken) -> Subscription:
        wanted = unquote(request.params["subscription"])
        for subscription in self._subscriptions_of(token):
            if subscription.id == wanted:
                return subscription
        raise HTTPError(404, "ResourceNotFound", "The object was not found.")

    def _resource_calendar(self, account: Account, resource: str) -> Calendar | None:
        """The calendar a subscription's resource names; None for `me/events`, which Graph
        documents as every event of the mailbox."""
        path = resource.strip().strip("/")
        match = re.fullmatch(
            r"(?i:me|users/(?P<user>[^/]+))/(?:(?i:events)|(?i:calendar)/(?i:events)|"
            r"(?i:calendars)(?:/(?P<id1>[^/()]+)|\('(?P<id2>[^']+)'\))/(?i:events))",
            path,
        )
        if match is None or (
            match["user"] and unquote(match["user"]).lower() not in {account.email, account.uid}
        ):
            raise HTTPError(400, "InvalidRequest", f"Resource '{resource}' is not supported.")
        calendar_id = match["id1"] or match["id2"]
        if calendar_id is None:
            return account.primary if "calendar/" in path.lower() else None
        calendar = account.calendars.get(unquote(calendar_id))
        if calendar is None:
            raise HTTPError(404, "ResourceNotFound", f"Resource '{resource}' was not found.")
        return calendar

    def _check_expiration(self, value: Any) -> datetime:
        expires = parse_datetime(value) if isinstance(value, str) else None
        if expires is None:
            raise HTTPError(
                400, "InvalidRequest", "expirationDateTime is required: an ISO 8601 date and time."
            )
        now = datetime.now(UTC)
        if expires <= now:
            raise HTTPError(
                400, "InvalidRequest", "Subscription expiration can only be in the future."
            )
        if expires > now + timedelta(minutes=SUBSCRIPTION_MAX_MINUTES):
            raise HTTPError(
                400,
                "InvalidRequest",
                f"Subscription expiration can only be "
                f"{SUBSCRIPTION_MAX_MINUTES} minutes in the future.",
            )
        return expires

    def _on_change(self, account: Account, calendar: Calendar, event: Event) -> None:
        # Called by Store.save, often with the store's lock held: only queue work here.
        if account.provider != MICROSOFT:
            return
        with self._lock:
            created = event.id not in self._known_ids
            self._known_ids.add(event.id)
            if not self.by_id:
                return
            now = datetime.now(UTC)
            targets = [
                s
                for s in self.by_id.values()
                if s.email == account.email
                and s.calendar_id in (None, calendar.id)
                and s.expires > now
            ]
        if event.deleted or event.status == "cancelled":
            change = "deleted"
        else:
            change = "created" if created else "updated"
        resource = f"Users/{account.uid}/Events/{event.id}"
        for subscription in targets:
            if change not in subscription.change_types:
                continue
            self.notifier.enqueue(
                "change",
                subscription.notification_url,
                {
                    "subscriptionId": subscription.id,
                    "subscriptionExpirationDateTime": stamp(subscription.expires),
                    "changeType": change,
                    "resource": resource,
                    "resourceData": {
                        "@odata.type": "#Microsoft.Graph.Event",
                        "@odata.id": resource,
                        "@odata.etag": etag(event),
                        "id": event.id,
                    },
                    "clientState": subscription.client_state,
                    "tenantId": account.tenant_id,
                },
            )

    # --- control routes -----------------------------------------------------------------------

    def _list_all(self, request: Request) -> Response:
        return Response.json(
            [
                {k: v for k, v in s.as_json().items() if k != "clientState"} | {"email": s.email}
                for s in self.subscriptions()
            ]
        )

    def _lifecycle(self, request: Request) -> Response:
        try:
            self.send_lifecycle_notification(request.params["id"], request.params["event"])
        except KeyError:
            raise HTTPError(404, "notFound", "no such subscription") from None
        except ValueError as error:
            raise HTTPError(400, "badRequest", str(error)) from None
        return Response(202)
