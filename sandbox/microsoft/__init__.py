"""The Microsoft identity platform and Microsoft Graph (calendars), as the sandbox emulates them.

Four routers, one per error shape:

- identity (OAuth JSON errors, tokens.py): OpenID configuration, token endpoint, signing keys
  (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow), on the
  identity platform's state (identity.py);
- sign-in pages (HTML errors, signin.py): the account chooser and consent page a browser opens,
  served from the plain HTTP listener so that a browser never meets the sandbox's certificate;
- Graph v1.0 (Graph JSON errors, graph.py): /me and its calendars (mailbox.py), calendarView,
  events (events.py, rendered by render.py), the delta of a calendarView (delta.py), JSON
  batching (batch.py), change-notification subscriptions (subscriptions.py, notifications.py)
  (https://learn.microsoft.com/graph/api/resources/event);
- control: sandbox-only routes for tests (lifecycle notifications); the operator's side (an
  expired client secret, tenants that let no member consent) is set through the control API
  (sandbox/control.py).

Deliberate departures from the real service, to make client bugs visible:

- with `Options(strict_refresh_rotation=True)`, a refresh token stops working as soon as it
  has been used once (Entra ID keeps old ones valid until they expire, which is the default),
  for the tests that check the newest one is always persisted;
- more than 4 requests at the same time for one mailbox get 429 (Outlook's documented limit,
  enforced every time rather than statistically, throttling.py).

provider.py puts the parts together.
"""

from sandbox.microsoft.provider import MicrosoftSandbox, install

__all__ = ["MicrosoftSandbox", "install"]
