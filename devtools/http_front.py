"""The local server's HTTP front end, shaped like API Gateway's edge (HTTP API).

:func:`make_http_server` serves an ``app`` (``(method, target, headers, body, source_ip) ->
HttpResponse``, :class:`devtools.local_server.ApiGatewayEmulator`) with a thread per
connection, a listen backlog of :data:`LISTEN_BACKLOG` and API Gateway's answers to what never
reaches a function:

* any method at all reaches ``app`` (which answers a route it does not know with API Gateway's
  ``404 {"message":"Not Found"}``), rather than ``http.server``'s HTML 501;
* a ``Content-Length`` that is not a number, or several that differ: ``400 {"message":"Bad
  Request"}``; a body over API Gateway's payload limit (:data:`MAX_BODY_BYTES`): ``413``,
  answered before reading the body; both close the connection;
* a socket that stays silent for ``socket_timeout`` seconds (a body shorter than declared, an
  idle keep-alive connection) is closed, so no thread waits for ever;
* ``http.server``'s own errors (a malformed request line, headers too long) are JSON too.

``http.server`` is kept (rather than a framework) because it is in the standard library and the
front end only parses requests: everything API Gateway decides is in ``app``.
"""

from __future__ import annotations

import http
import json
import logging
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger("devtools.local_server")

# API Gateway HTTP API's payload limit ("Quotas for HTTP APIs": 10 MB).
MAX_BODY_BYTES = 10 * 1024 * 1024
# Connections the kernel queues while the accept loop is busy; http.server's default is 5,
# which resets clients as soon as a few dozen connect at once. (The kernel may cap it lower:
# net.core.somaxconn, 4096 on current Linux.)
LISTEN_BACKLOG = 1024
SOCKET_TIMEOUT_SECONDS = 30.0
_DIGITS = re.compile(r"[0-9]+")
# The gateway's wording where it differs from the status's phrase (Python 3.13 calls 413
# "Content Too Large"; API Gateway still says "Request Entity Too Large").
_MESSAGES = {413: "Request Entity Too Large"}


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


App = Callable[[str, str, list[tuple[str, str]], bytes, str], HttpResponse]


def json_response(status: int, message: str) -> HttpResponse:
    """API Gateway's own answers: ``{"message": ...}`` as JSON."""
    body = json.dumps({"message": message}, separators=(",", ":")).encode()
    return HttpResponse(status, [("content-type", "application/json")], body)


class _BadRequest(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class GatewayServer(ThreadingHTTPServer):
    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True


def make_http_server(
    app: App,
    host: str,
    port: int,
    *,
    socket_timeout: float = SOCKET_TIMEOUT_SECONDS,
    max_body: int = MAX_BODY_BYTES,
) -> GatewayServer:
    """A server (not yet serving) for ``app`` on ``host:port`` (0: a free port)."""

    class RequestHandler(_GatewayRequestHandler):
        pass

    RequestHandler.app = staticmethod(app)
    RequestHandler.timeout = socket_timeout
    RequestHandler.max_body = max_body
    return GatewayServer((host, port), RequestHandler)


class _GatewayRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "credit-meter-local"
    app: App
    max_body: int

    def __getattr__(self, name: str) -> Any:
        # http.server looks up do_<METHOD>; every method goes to the app, as every method
        # reaches API Gateway's router.
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def _handle(self) -> None:
        try:
            body = self._read_body()
        except _BadRequest as bad:
            self.send_error(bad.status)
            return
        except TimeoutError:
            self.log_error("the body did not arrive within %s s", self.timeout)
            self.send_error(http.HTTPStatus.REQUEST_TIMEOUT)
            return
        except ConnectionError:
            body = None
        if body is None:  # the client went away mid-body
            self.close_connection = True
            return
        try:
            response = self.app(
                self.command, self.path, list(self.headers.items()), body, self.client_address[0]
            )
        except Exception:
            self.log_error("the gateway failed on %s %s", self.command, self.path)
            log.exception("local gateway error")
            response = json_response(500, "Internal Server Error")
        self._send(response)

    def _read_body(self) -> bytes | None:
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            return self._read_chunked()
        length = self._declared_length()
        if length is None:
            return b""
        body = self.rfile.read(length)
        return body if len(body) == length else None

    def _declared_length(self) -> int | None:
        """The ``Content-Length`` (None without one); :class:`_BadRequest` if it is not a
        number or over the limit."""
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            return None
        values = {v.strip() for v in self.headers.get_all("content-length") or []}
        if not values:
            return None
        if len(values) != 1 or not _DIGITS.fullmatch(value := values.pop()):
            raise _BadRequest(400)
        length = int(value)
        if length > self.max_body:
            raise _BadRequest(413)
        return length

    def _read_chunked(self) -> bytes | None:
        """A ``Transfer-Encoding: chunked`` body (RFC 9112 section 7.1), trailers dropped."""
        chunks: list[bytes] = []
        size = 0
        while True:
            line = self.rfile.readline(1024)
            if not line:
                return None
            text = line.split(b";", 1)[0].strip()
            if not re.fullmatch(rb"[0-9A-Fa-f]+", text):
                raise _BadRequest(400)
            chunk = int(text, 16)
            size += chunk
            if size > self.max_body:
                raise _BadRequest(413)
            if chunk == 0:
                break
            data = self.rfile.read(chunk + 2)  # the chunk and its CRLF
            if len(data) != chunk + 2:
                return None
            chunks.append(data[:chunk])
        while (line := self.rfile.readline(65537)) not in (b"\r\n", b"\n", b""):
            pass
        return b"".join(chunks)

    def handle_expect_100(self) -> bool:
        # A client that waits for "100 Continue" before sending its body is refused first
        # when the body could not be taken anyway.
        try:
            self._declared_length()
        except _BadRequest as bad:
            self.send_error(bad.status)
            return False
        return super().handle_expect_100()

    def _send(self, response: HttpResponse) -> None:
        self.send_response(response.status, _MESSAGES.get(response.status))
        names = set()
        for name, value in response.headers:
            names.add(name.lower())
            self.send_header(name, value)
        if "content-length" not in names:
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """``http.server``'s errors, and the ones above, as API Gateway's JSON; the connection
        is closed after them (what is left of the request cannot be trusted)."""
        status = http.HTTPStatus(code)
        self.log_error("code %d, message %s", code, message or status.phrase)
        response = json_response(code, _MESSAGES.get(code, status.phrase))
        response.headers.append(("Connection", "close"))
        self.close_connection = True
        if not self.command:  # no request line was parsed: answer as HTTP/1.1 anyway
            self.request_version = "HTTP/1.1"
        self._send(response)

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.address_string()} - {format % args}\n")
