"""Below the app: uvicorn's own HTTP protocol (httptools) with the limits it lacks.

uvicorn waits for a request's headers without end, so a client that trickles them a byte at a
time holds a socket for as long as it likes, and a few thousand such sockets exhaust the server's
open files (1,024 by default) until good requests fail. Here, in each worker process:

- a connection must deliver a whole request (headers and body) within `request_seconds` of its
  first byte, or of connecting; else it is answered 408 and closed;
- one client address holds at most `client_connections` connections (0: no cap, for a reverse
  proxy in front, which is then the one client); one more is answered 503 and closed at once;
- the worker keeps fewer connections than it may open files: when full, a new connection evicts
  the oldest one that is not being answered (still sending its request, or idle between
  requests), so trickling clients can never crowd out one that sends its request at once.

uvicorn's own answers (a malformed request, a bad Content-Length) carry the same security headers
as the app's. docs/http-api.md says all this.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

REQUEST_SECONDS = 10  # a whole request (headers, then a body of at most 64 KiB) in this time
CLIENT_CONNECTIONS = 64  # open connections per client address
SPARE_FILES = 64  # files a worker keeps free of connections: its model, logs, the event loop


def security_headers(frame_ancestors: str = "") -> list[tuple[bytes, bytes]]:
    """The headers of every answer. The page may be framed only by `frame_ancestors` (origins
    separated by spaces, e.g. a Hugging Face Space's; `ved serve --frame-ancestors`), by none by
    default. Opener isolation would break a framed page, so it goes with framing."""
    framed = bool(frame_ancestors.strip())
    policy = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; "
        f"frame-ancestors {frame_ancestors.strip() if framed else chr(39) + 'none' + chr(39)}"
    )
    headers = [
        (b"content-security-policy", policy.encode("ascii")),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    ]
    if not framed:
        headers += [(b"x-frame-options", b"DENY"), (b"cross-origin-opener-policy", b"same-origin")]
    return headers


# this worker's connections: per client address, every one counted, and those not being answered
# (oldest first: a dict keeps insertion order)
_per_client: dict[str, int] = {}
_counted: set = set()
_waiting: dict = {}


def setting(name: str, default: int) -> int:
    """A limit `ved serve` passes to its workers in the environment (VED_SERVE_<NAME>)."""
    value = os.environ.get(f"VED_SERVE_{name}", "")
    return int(value) if value.isdigit() else default


def connection_limit() -> int:
    """How many connections a worker holds at once: its open-file limit less SPARE_FILES."""
    try:
        import resource
    except ImportError:  # Windows: no such limit to respect
        return 1 << 20
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return max(16, (soft if soft != resource.RLIM_INFINITY else 1 << 20) - SPARE_FILES)


@dataclass(frozen=True)
class Limits:
    """A worker's limits, read once (its environment and file limit do not change while it serves)."""

    client_connections: int
    request_seconds: int
    connections: int
    headers: tuple


@functools.cache
def limits() -> Limits:
    return Limits(
        client_connections=setting("CLIENT_CONNECTIONS", CLIENT_CONNECTIONS),
        request_seconds=setting("REQUEST_SECONDS", REQUEST_SECONDS),
        connections=connection_limit(),
        headers=tuple(security_headers(os.environ.get("VED_SERVE_FRAME_ANCESTORS", ""))),
    )


class GuardedHttpTools(HttpToolsProtocol):
    """HttpToolsProtocol with a deadline for each request and caps on connections."""

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.address, self.request_timer = (self.client[0] if self.client else ""), None
        cap = limits().client_connections
        if cap and _per_client.get(self.address, 0) >= cap:
            return self.answer_and_close(503, "too many connections from this client")
        if len(_counted) >= limits().connections:
            oldest = next(iter(_waiting), None)
            if oldest is None:  # every connection is being answered: this one must wait its turn
                return self.answer_and_close(503, "the server is busy; retry in a moment")
            oldest.answer_and_close(408, "request not received in time")
        _counted.add(self)
        _per_client[self.address] = _per_client.get(self.address, 0) + 1
        _waiting[self] = None
        self.arm()

    def connection_lost(self, exc) -> None:
        self.uncount()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.arm()  # a kept-alive connection's next request starts its own clock

    def on_message_complete(self) -> None:
        self.disarm()
        _waiting.pop(self, None)  # being answered: never evicted
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self in _counted and not self.transport.is_closing():
            _waiting[self] = None  # idle until its next request: the newest to evict

    def arm(self) -> None:
        if self.request_timer is None and self in _counted:
            self.request_timer = self.loop.call_later(limits().request_seconds, self.too_slow)

    def disarm(self) -> None:
        if self.request_timer is not None:
            self.request_timer.cancel()
            self.request_timer = None

    def uncount(self) -> None:
        self.disarm()
        _waiting.pop(self, None)
        if self in _counted:
            _counted.discard(self)
            left = _per_client.get(self.address, 1) - 1
            if left > 0:
                _per_client[self.address] = left
            else:
                del _per_client[self.address]

    def too_slow(self) -> None:
        self.request_timer = None
        if self.cycle is None or self.cycle.response_complete:  # no answer under way: say why
            self.answer_and_close(408, "request not received in time")
        else:
            self.uncount()
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        self.answer_and_close(400, msg)

    def answer_and_close(self, status: int, message: str) -> None:
        self.uncount()  # its file is given back now, not when the loop gets to it
        if self.transport.is_closing():
            return
        body = message.encode("ascii", "replace")
        headers = [
            *self.server_state.default_headers,
            *limits().headers,
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        head = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        self.transport.write(STATUS_LINE[status] + head + b"\r\n" + body)
        self.transport.close()
