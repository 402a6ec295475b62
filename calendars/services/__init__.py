"""The verbs views, the API, tasks and commands share: `credentials` (access tokens, refreshed
under a row lock), `connection` (connecting and choosing calendars), `lifecycle`
(disconnecting, which closes channels and takes exports back)."""
