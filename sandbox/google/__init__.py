"""Google OAuth 2.0 and Calendar API v3, as the sandbox emulates them.

OAuth follows https://developers.google.com/identity/protocols/oauth2/web-server: authorization
codes bound to PKCE (authorize.py), refresh tokens that do not rotate, revocation of whole
grants, RS256 id_tokens (tokens.py), on a state both share (oauth.py). The Calendar API
(https://developers.google.com/calendar/api/v3/reference) is driven by the discovery document
that ships with google-api-python-client (discovery.py): every method in it gets a route named
`google.<method id>` (`google.events.list`), every request is checked against the method's
parameters and scopes (api.py), and the methods the sandbox does not emulate answer 501. The
emulated ones: calendar_list.py, events.py, listing.py (events.list and its sync tokens), push.py.
Batch requests (https://developers.google.com/calendar/api/guides/batch, batch.py) dispatch
each inner call through `Sandbox.handle`, so counters and fault rules apply per call. Push
notifications (https://developers.google.com/calendar/api/guides/push) go out from a worker
thread. provider.py puts the parts together.
"""

from sandbox.google.provider import GoogleSandbox, install

__all__ = ["GoogleSandbox", "install"]
