"""PDFs are read in a child process, which is killed when an object overruns its time budget.

A time budget checked by the parser itself holds only between its checks, and pypdf can spend long stretches
without one (one big stream to decompress or parse, fonts, a damaged stream it decodes byte by byte), in Python or in
one C call that no signal interrupts. Airflow's `execution_timeout` is a SIGALRM in the task process: it cannot stop
such a call either, and it would fail the whole task. So the task sends each PDF to a long-lived child
(``python -m latechunk.sources.pdf_process``) and waits for its answer until the deadline plus a grace period; a child
that
has not answered by then is killed and the object quarantined as `too_slow`; the next PDF starts a new child.

Only PDFs go there: text, JSON and HTML are parsed in the task by linear code, and a round trip per object would
cost more than parsing a small one. One child serves every PDF of the task (it starts in about half a second,
which is not counted against any object's budget); it exits when the task closes its stdin, or dies.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from latechunk.sources.extractors import Deadline, Limits, SkipDocument, SkipReason
from latechunk.sources.structure import DocumentStructure

# How long past the object's budget a child may take to answer before it is killed: its own checks usually stop it
# in time and answer `too_slow` with the page it reached.
GRACE_S = 1.0
_START_TIMEOUT_S = 120.0
_READY = b"ready"


class PdfProcess:
    """The child that reads PDFs for this process; started on first use, restarted after it was killed."""

    def __init__(self) -> None:
        self._child: subprocess.Popen[bytes] | None = None
        self._send: Connection | None = None
        self._receive: Connection | None = None
        self._lock = threading.Lock()

    def text(self, data: bytes, limits: Limits) -> tuple[str, dict[str, Any], DocumentStructure]:
        """Text, metadata and structure of a PDF, as `latechunk.sources.pdf_text.pdf_text` gives them, or
        `SkipDocument`."""
        with self._lock:
            send, receive = self._started()
            deadline = Deadline(limits.time_budget_s)
            try:
                send.send_bytes(json.dumps(dataclasses.asdict(limits)).encode())
                send.send_bytes(data)
                answered = receive.poll(max(0.0, deadline.expires - time.monotonic()) + GRACE_S)
                answer = receive.recv_bytes() if answered else None
            except (EOFError, OSError):
                code = self._stop()
                detail = f"the PDF parser process died (exit code {code})"
                raise SkipDocument(SkipReason.EXTRACTION_ERROR, detail) from None
            except BaseException:  # e.g. the task's execution_timeout: no answer may be left for the next object
                self._stop()
                raise
            if answer is None:
                self._stop()
                raise SkipDocument(
                    SkipReason.TOO_SLOW,
                    f"extraction took more than {limits.time_budget_s:g} s (the PDF parser was stopped)",
                )
        reply = json.loads(answer.decode("utf-8", "surrogatepass"))
        if "skip" in reply:
            raise SkipDocument(SkipReason(reply["skip"]), reply["detail"])
        if "error" in reply:
            raise SkipDocument(SkipReason.EXTRACTION_ERROR, reply["error"])
        return reply["text"], reply["metadata"], DocumentStructure.from_json(reply["structure"])

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _started(self) -> tuple[Connection, Connection]:
        if self._child is None or self._child.poll() is not None:
            self._stop()
            package_root = str(Path(__file__).resolve().parents[1])
            path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
            self._child = subprocess.Popen(
                [sys.executable, "-m", "latechunk.sources.pdf_process"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": path},
            )
            # The connections own their descriptors (they close them), so they get copies of the pipes'.
            self._send = Connection(os.dup(self._child.stdin.fileno()), readable=False)
            self._receive = Connection(os.dup(self._child.stdout.fileno()), writable=False)
            self._child.stdin.close()
            self._child.stdout.close()
            try:
                ready = self._receive.poll(_START_TIMEOUT_S) and self._receive.recv_bytes() == _READY
            except (EOFError, OSError):
                ready = False
            if not ready:
                code = self._stop()
                raise RuntimeError(f"the PDF parser process did not start (exit code {code}; see its errors above)")
        return self._send, self._receive

    def _stop(self) -> int | None:
        """Kill the child if it runs; its exit code."""
        child, self._child = self._child, None
        if child is None:
            return None
        for connection in (self._send, self._receive):
            connection.close()
        self._send = self._receive = None
        child.kill()
        return child.wait()


PDF_PROCESS = PdfProcess()
atexit.register(PDF_PROCESS.close)


def serve() -> None:
    """The child's loop: limits and bytes in, one JSON answer out, until the parent closes stdin. Output meant for
    stdout goes to stderr (the task log), so that nothing but answers reaches the parent."""
    from latechunk.sources.pdf_text import pdf_text

    answers = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)
    requests = Connection(0, writable=False)
    answers.send_bytes(_READY)
    while True:
        try:
            limits = Limits(**json.loads(requests.recv_bytes()))
            data = requests.recv_bytes()
        except EOFError:
            return
        try:
            text, metadata, structure = pdf_text(data, limits, Deadline(limits.time_budget_s))
            reply: dict[str, Any] = {"text": text, "metadata": metadata, "structure": structure.to_json()}
        except SkipDocument as skip:
            reply = {"skip": skip.reason.value, "detail": skip.detail}
        except Exception as error:
            reply = {"error": f"{type(error).__name__}: {error}"}
        answers.send_bytes(json.dumps(reply, ensure_ascii=False).encode("utf-8", "surrogatepass"))


if __name__ == "__main__":
    serve()
