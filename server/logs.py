"""Structured logging with a request id on every line.

The request id comes from the caller's `x-request-id` metadata or is generated; it is kept in a
context variable for the request's thread, added to every log record by a filter, echoed in
trailing metadata and in `RankResponse.request_id`, so one id ties a client's report to the
server's log lines.
"""

from __future__ import annotations

import contextvars
import itertools
import json
import logging
import os
import time
import uuid

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
MAX_REQUEST_ID = 128


# Generated ids: a random per-process prefix and a counter, unique across processes and
# restarts without a urandom read per request (uuid4 costs a few microseconds each). A forked
# serving process draws its own prefix, or it would repeat its parent's ids.
_ID_PREFIX = uuid.uuid4().hex[:16]
_ID_COUNTER = itertools.count()


def _new_id_prefix() -> None:
    global _ID_PREFIX, _ID_COUNTER
    _ID_PREFIX = uuid.uuid4().hex[:16]
    _ID_COUNTER = itertools.count()


os.register_at_fork(after_in_child=_new_id_prefix)


def new_request_id(given: str | None) -> str:
    """The caller's id if it is sane (printable, bounded), else a fresh one."""
    if given and len(given) <= MAX_REQUEST_ID and given.isprintable():
        return given
    return f"{_ID_PREFIX}{next(_ID_COUNTER):08x}"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, request_id, message (+ exception)."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure(level: str = "INFO", fmt: str = "text") -> None:
    """Root logging for the server process: text for people, json for log pipelines."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
