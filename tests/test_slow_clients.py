"""Slow and greedy clients against a real `ved serve` whose open-file limit is 1,024, over loopback
(several 127.0.0.x source addresses stand for several attacking machines). Bounded in count and
time; it stops by itself."""

import resource
import socket
import time

import httpx
from conftest import serving

FILE_LIMIT = 1024
SLOW_SOCKETS = 2000


def limit_files():
    resource.setrlimit(resource.RLIMIT_NOFILE, (FILE_LIMIT, FILE_LIMIT))


class Trickler:
    """`count` connections from `addresses` in turn, each sending a request's headers a byte at a
    time and never finishing them; one the server closes is opened again, as a slowloris does."""

    REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Padding: " + b"a" * 10_000

    def __init__(self, port: int, count: int, addresses: list[str]):
        self.port, self.addresses = port, addresses
        self.sockets = [self.connect(i) for i in range(count)]
        self.sent = [0] * count
        self.reopened = 0

    def connect(self, i: int) -> socket.socket:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # no TIME_WAIT
        s.bind((self.addresses[i % len(self.addresses)], 0))
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", self.port))
        return s

    def trickle(self) -> None:
        """One more byte on every socket; a socket the server answered or closed is opened anew."""
        for i, s in enumerate(self.sockets):
            try:
                if s.recv(1024, socket.MSG_PEEK) is not None:  # an answer (408, 503) or EOF: it was closed
                    raise ConnectionResetError
            except BlockingIOError:  # nothing to read: still open, still waiting for us
                try:
                    s.send(self.REQUEST[self.sent[i] : self.sent[i] + 1])
                    self.sent[i] += 1
                except BlockingIOError:  # still connecting
                    pass
                except OSError:
                    self.reopen(i)
                continue
            except OSError:
                pass
            self.reopen(i)

    def reopen(self, i: int) -> None:
        self.sockets[i].close()
        self.sockets[i], self.sent[i] = self.connect(i), 0
        self.reopened += 1

    def close(self) -> None:
        for s in self.sockets:
            s.close()


def test_good_requests_are_answered_while_2000_slow_sockets_trickle_their_headers():
    with serving("--workers", "1", preexec_fn=limit_files) as url:
        port = int(url.rsplit(":", 1)[1])
        # 40 attacking addresses, 50 sockets each: under the per-client cap, so only the worker's
        # own connection limit and its eviction of the oldest unfinished request keep it answering
        slow = Trickler(port, SLOW_SOCKETS, [f"127.0.0.{i}" for i in range(2, 42)])
        answered, seconds = [], []
        try:
            with httpx.Client(timeout=30) as good:
                for _ in range(40):
                    slow.trickle()
                    t0 = time.perf_counter()
                    r = good.get(url + "/api/models", headers={"Connection": "close"})
                    seconds.append(time.perf_counter() - t0)
                    answered.append(r.status_code)
                    assert len(slow.sockets) == SLOW_SOCKETS
                    time.sleep(0.1)
        finally:
            slow.close()
        assert answered == [200] * 40, answered
        assert slow.reopened > 0  # the server did shed slow sockets to stay under its file limit
        assert max(seconds) < 10, seconds  # a hang guard (the request deadline), not a speed target


def test_one_client_gets_a_bounded_number_of_connections():
    with serving("--workers", "1", "--client-connections", "16", preexec_fn=limit_files) as url:
        port = int(url.rsplit(":", 1)[1])
        greedy = Trickler(port, 100, ["127.0.0.2"])
        try:
            deadline = time.time() + 20
            while time.time() < deadline:
                greedy.trickle()
                answers = [_peek(s) for s in greedy.sockets]
                if sum(b"503" in a for a in answers) >= 50:
                    break
                time.sleep(0.1)
            assert any(b"503" in a and b"x-content-type-options: nosniff" in a for a in answers)
            assert httpx.get(url + "/api/models").status_code == 200  # another address is answered
        finally:
            greedy.close()


def test_a_request_not_finished_in_time_is_answered_408():
    with serving("--workers", "1", "--request-seconds", "1") as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: local")
            s.settimeout(30)
            answer = b""
            while chunk := s.recv(4096):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 408") and b"content-security-policy" in answer


def _peek(s: socket.socket) -> bytes:
    try:
        return s.recv(4096, socket.MSG_PEEK)
    except OSError:
        return b""
