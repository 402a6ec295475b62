"""The API's OpenAPI schema is a contract with other clients: its operation ids stay put
whichever module of calendars/api/ defines an endpoint."""

from __future__ import annotations

from calendars.api import api


def test_operation_ids_are_the_ones_clients_know():
    schema = api.get_openapi_schema(path_prefix="/api/")
    ids = {op["operationId"] for path in schema["paths"].values() for op in path.values()}
    assert ids == {
        "calendars_api_auth_url",
        "calendars_api_callback",
        "calendars_api_connect_password",
        "calendars_api_integrations",
        "calendars_api_update_settings",
        "calendars_api_disconnect",
        "calendars_api_import_now",
        "calendars_api_export_formation",
        "calendars_api_events",
        "calendars_api_formation",
        "calendars_api_dismiss_conflict",
        "calendars_api_restore_conflict",
    }
