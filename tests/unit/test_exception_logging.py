"""What the web app's exception logging writes: a traceback means a bug (docs/operations.md)."""

from __future__ import annotations

import logging

import psycopg
import pytest
from litestar.exceptions import NotFoundException

from web.app import _DatabaseGoneMidResponse, _log_exception

SCOPE = {"type": "http", "method": "GET", "path": "/api/v1/shops/x.myshopify.com/skus"}


def _logged(exc: Exception, caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    logger = logging.getLogger("test.web")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="test.web"):
        try:
            raise exc
        except Exception:
            _log_exception(logger, SCOPE, [])  # type: ignore[arg-type]
    return caplog.records


def test_the_database_going_away_is_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """PostgreSQL killed under requests in flight logged a traceback for each, though each got
    its 503 and the handler's own warning line (an outside test)."""
    assert _logged(psycopg.errors.AdminShutdown("terminating connection"), caplog) == []
    (client,) = _logged(NotFoundException("unknown shop"), caplog)
    assert client.levelno == logging.INFO and client.exc_info is None
    (bug,) = _logged(ZeroDivisionError("a bug"), caplog)
    assert bug.levelno == logging.ERROR and bug.exc_info is not None


def test_a_response_the_database_cut_short_is_one_warning_line() -> None:
    """A CSV report streaming when PostgreSQL was killed: uvicorn logged "Exception in ASGI
    application" with the traceback of an exception group (an outside test)."""

    def record_of(exc: BaseException) -> logging.LogRecord:
        try:
            raise exc
        except BaseException:
            import sys

            return logging.LogRecord(
                "uvicorn.error",
                logging.ERROR,
                "",
                0,
                "Exception in ASGI application",
                (),
                sys.exc_info(),
            )

    try:
        try:
            raise psycopg.errors.AdminShutdown("terminating connection")
        except psycopg.Error as cause:
            raise RuntimeError("Exception caught after response started") from cause
    except RuntimeError as after_start:
        cut = record_of(ExceptionGroup("unhandled errors in a TaskGroup", [after_start]))
    assert _DatabaseGoneMidResponse().filter(cut)
    assert cut.levelno == logging.WARNING and cut.exc_info is None
    assert "database went away" in cut.getMessage()
    bug = record_of(ExceptionGroup("unhandled errors in a TaskGroup", [ZeroDivisionError()]))
    assert _DatabaseGoneMidResponse().filter(bug)
    assert bug.levelno == logging.ERROR and bug.exc_info is not None
