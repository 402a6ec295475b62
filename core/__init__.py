"""Small helpers every app may use and that use no app: time zones, TLS trust."""
