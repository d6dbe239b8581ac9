"""What the web app's exception logging writes: a traceback means a bug (docs/operations.md)."""

from __future__ import annotations

import logging

import psycopg
import pytest
from litestar.exceptions import NotFoundException

from web.app import _log_exception

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
