"""A loopback HTTP proxy that injects faults between a client and a real server.

Every request is forwarded to the real upstream server unless a rule says otherwise; each TCP connection carries
one request (the proxy adds ``Connection: close``, which is not a signed header for S3), so a rule can act on any
single request. A rule sees the parsed request and returns what to do:

* ``None`` or ``FORWARD``: pass it to the server and the answer back;
* ``Respond(status, body)``: answer it without the server (a 429, a 503, ...);
* ``DROP``: close the connection without an answer (a connection reset before the server saw anything);
* ``FORWARD_THEN_DROP``: let the server process it, then close without passing the answer back (the write
  happened, the client cannot know);
* ``Rewrite(body)``: forward a modified body (the server rejects what the client did not send).

``proxy.refuse = True`` makes the proxy close every new connection at once: the server "is down" as the client sees
it. Rules run in the proxy's threads, so they may block (to hold a request while a test kills its client).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def is_bulk(self) -> bool:
        return self.path.split("?", 1)[0].endswith("/_bulk")


@dataclass(frozen=True)
class Respond:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Rewrite:
    body: bytes


FORWARD = "forward"
DROP = "drop"
FORWARD_THEN_DROP = "forward_then_drop"

Rule = Callable[[Request], Any]
_REASONS = {
    200: "OK",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class FaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int, rule: Rule | None = None):
        self.upstream = (upstream_host, upstream_port)
        self.rule = rule
        # Called as on_forwarded(request) once the server has answered a forwarded request, before the answer goes
        # back: it may block (hold the answer while a test kills the client).
        self.on_forwarded: Callable[[Request], None] | None = None
        self.refuse = False
        self.log: list[tuple[str, str, str, float]] = []  # (method, path, what the proxy did, monotonic time)
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._closed = False
        self._thread = threading.Thread(target=self._accept_loop, name=f"fault-proxy-{self.port}", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self, what: str | None = None, bulk: bool | None = None) -> list[tuple[str, str, str, float]]:
        with self._lock:
            entries = list(self.log)
        return [
            entry
            for entry in entries
            if (what is None or entry[2] == what)
            and (bulk is None or entry[1].split("?")[0].endswith("/_bulk") == bulk)
        ]

    def close(self) -> None:
        self._closed = True
        self._server.close()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self.refuse:
                _reset(client)
                continue
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _record(self, request: Request, what: str) -> None:
        with self._lock:
            self.log.append((request.method, request.path, what, time.monotonic()))

    def _handle(self, client: socket.socket) -> None:
        try:
            parsed = _read_request(client)
            if parsed is None:
                return
            head, request = parsed
            action = self.rule(request) if self.rule else None
            if isinstance(action, Respond):
                self._record(request, f"respond {action.status}")
                client.sendall(_response(action))
                return
            if action == DROP:
                self._record(request, "drop")
                _reset(client)
                return
            body = request.body
            if isinstance(action, Rewrite):
                body = action.body
            self._record(request, "rewrite" if isinstance(action, Rewrite) else (action or FORWARD))
            with socket.create_connection(self.upstream, timeout=120) as upstream:
                upstream.sendall(_request_head(head, len(body)) + body)
                answer = _read_all(upstream)
            if self.on_forwarded is not None:
                self.on_forwarded(request)
            if action == FORWARD_THEN_DROP:
                _reset(client)
                return
            client.sendall(answer)
        except OSError:
            pass
        finally:
            client.close()


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset: the client sees its connection broken, not an empty answer."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    finally:
        sock.close()


def _read_request(sock: socket.socket) -> tuple[list[str], Request] | None:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            return None
        data += piece
    raw_head, _, rest = data.partition(b"\r\n\r\n")
    lines = raw_head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("expect", "").lower() == "100-continue":
        sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _read_chunked(sock, rest)
    else:
        length = int(headers.get("content-length", "0") or 0)
        body = rest
        while len(body) < length:
            piece = sock.recv(max(65536, length - len(body)))
            if not piece:
                break
            body += piece
    return lines, Request(method, path, headers, body)


def _read_chunked(sock: socket.socket, data: bytes) -> bytes:
    body = b""
    while True:
        while b"\r\n" not in data:
            data += sock.recv(65536)
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        while len(data) < size + 2:
            data += sock.recv(65536)
        body += data[:size]
        data = data[size + 2 :]
        if size == 0:
            return body


def _request_head(lines: list[str], length: int) -> bytes:
    drop = ("connection", "content-length", "transfer-encoding", "keep-alive", "expect")
    kept = [line for line in lines[1:] if line.split(":", 1)[0].strip().lower() not in drop]
    out = [lines[0], *kept, f"Content-Length: {length}", "Connection: close", "", ""]
    return "\r\n".join(out).encode("latin-1")


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        piece = sock.recv(65536)
        if not piece:
            return b"".join(chunks)
        chunks.append(piece)


def _response(action: Respond) -> bytes:
    headers = {
        "Content-Type": action.content_type,
        "Content-Length": str(len(action.body)),
        "Connection": "close",
        **action.headers,
    }
    head = f"HTTP/1.1 {action.status} {_REASONS.get(action.status, 'Error')}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    return head.encode("latin-1") + action.body
