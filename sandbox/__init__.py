"""The provider sandbox: a local emulator of Google OAuth 2.0 and Calendar API v3, the Microsoft
identity platform and Microsoft Graph, for development, tests and benchmarks (README.md here).

A development tool, never part of a production install: no application package imports it, and
it imports none of them.
"""
