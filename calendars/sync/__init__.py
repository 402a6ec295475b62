"""The sync engine: learners' calendars imported (`importing`), what they did to exported
formations read from those listings (`reconcile`), formations exported (`exporting`), and runs
that do both, one at a time per integration, recorded and retried (`runs`, `retry`)."""
