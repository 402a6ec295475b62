"""The sandbox's defaults: the OAuth clients it knows and the ports it listens on.

For standalone use and tests; `calendar_sandbox` also registers the clients Django's settings
name. The application never imports this: config/settings.py writes the same values out.
"""

from __future__ import annotations

# The OAuth clients the sandbox knows (it accepts any redirect URI for them).
GOOGLE_CLIENT_ID = "sandbox-client.apps.googleusercontent.test"
GOOGLE_CLIENT_SECRET = "sandbox-google-client-secret"  # noqa: S105
OUTLOOK_CLIENT_ID = "5a4d1b6e-0c1f-4f7e-9d2a-5a4d1b6e0c1f"
OUTLOOK_CLIENT_SECRET = "sandbox-outlook-client-secret"  # noqa: S105

DEFAULT_PORT = 8400  # plain HTTP: pages a browser opens, Google's endpoints
DEFAULT_TLS_PORT = 8401  # HTTPS: the Microsoft identity platform and Graph
