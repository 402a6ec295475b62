"""Batch requests: https://developers.google.com/calendar/api/guides/batch.

A multipart/mixed body of up to 50 calls; each goes through `Sandbox.handle`, so counters
and fault rules apply to it as to any call.
"""

from __future__ import annotations

import http
import re
import secrets
from email.message import Message
from typing import TYPE_CHECKING

from sandbox.google.errors import GoogleError, google_error
from sandbox.server import Request, Response

if TYPE_CHECKING:
    from sandbox.core import Sandbox


MAX_BATCH_CALLS = 50


class Batch:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def handle(self, request: Request) -> Response:
        message = Message()
        message["Content-Type"] = request.headers.get("content-type", "")
        boundary = message.get_param("boundary")
        if message.get_content_type() != "multipart/mixed" or not isinstance(boundary, str):
            raise GoogleError(400, "badRequest", "Batch requests must be multipart/mixed.")
        parts = _split_multipart(request.body, boundary.encode())
        if not parts:
            raise GoogleError(400, "badRequest", "Invalid multipart request with 0 mime parts.")
        if len(parts) > MAX_BATCH_CALLS:
            raise GoogleError(
                400,
                "badRequest",
                f"A batch request cannot contain more than {MAX_BATCH_CALLS} calls.",
            )
        answers = []
        for headers, payload in parts:
            content_id = headers.get("content-id", "")
            inner = _parse_inner_request(payload)
            if inner is None or inner[1].startswith("/batch"):
                response = google_error(GoogleError(400, "badRequest", "Invalid batch part."))
            else:
                verb, target, inner_headers, inner_body = inner
                if "authorization" not in inner_headers and "authorization" in request.headers:
                    inner_headers["authorization"] = request.headers["authorization"]
                response, _ = self.sandbox.handle(
                    Request(
                        verb,
                        target,
                        inner_headers,
                        inner_body,
                        base_url=request.base_url,
                        secure=request.secure,
                    )
                )
            answers.append((content_id, response))
        boundary_out = "batch_" + secrets.token_hex(12)
        chunks = []
        for index, (content_id, response) in enumerate(answers, start=1):
            if content_id.startswith("<") and content_id.endswith(">"):
                answer_id = f"<response-{content_id[1:-1]}>"
            else:
                answer_id = f"<response-{content_id or f'item{index}'}>"
            try:
                phrase = http.HTTPStatus(response.status).phrase
            except ValueError:
                phrase = "Unknown"
            lines = [f"HTTP/1.1 {response.status} {phrase}"]
            lines += [
                f"{name}: {value}"
                for name, value in response.headers.items()
                if name.lower() != "content-length"
            ]
            lines.append(f"Content-Length: {len(response.body)}")
            head = (
                f"--{boundary_out}\r\nContent-Type: application/http\r\n"
                f"Content-ID: {answer_id}\r\n\r\n" + "\r\n".join(lines) + "\r\n\r\n"
            )
            chunks.append(head.encode() + response.body + b"\r\n")
        chunks.append(f"--{boundary_out}--\r\n".encode())
        return Response(
            200,
            b"".join(chunks),
            {"Content-Type": f"multipart/mixed; boundary={boundary_out}"},
        )


def _split_multipart(body: bytes, boundary: bytes) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a multipart body: (lower-cased headers, payload)."""
    delimiter = b"--" + boundary
    sections = body.split(delimiter)
    parts = []
    for section in sections[1:]:
        if section.startswith(b"--"):
            break
        section = section.removeprefix(b"\r\n").removeprefix(b"\n")
        section = section.removesuffix(b"\r\n") if section.endswith(b"\r\n") else section
        section = section.removesuffix(b"\n")
        head, payload = _split_head(section)
        parts.append((_parse_headers(head), payload))
    return parts


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    """Headers and body, at the first blank line (CRLF or bare LF, as clients differ)."""
    match = re.search(rb"\r?\n\r?\n", data)
    if match is None:
        return data, b""
    return data[: match.start()], data[match.end() :]


def _parse_headers(head: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in re.split(rb"\r?\n", head):
        name, colon, value = line.decode("utf-8", "replace").partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return headers


def _parse_inner_request(payload: bytes) -> tuple[str, str, dict[str, str], bytes] | None:
    """An application/http part: request line, headers, body."""
    payload = payload.lstrip(b"\r\n")
    line, _, rest = payload.partition(b"\n")
    words = line.decode("utf-8", "replace").strip().split(" ")
    if len(words) < 2 or not words[1]:
        return None
    if rest.startswith((b"\r\n", b"\n")):  # no headers
        head, body = b"", rest.partition(b"\n")[2]
    else:
        head, body = _split_head(rest)
    headers = _parse_headers(head)
    length = headers.get("content-length", "")
    if length.isdigit():
        body = body[: int(length)]
    return words[0].upper(), words[1], headers, body
