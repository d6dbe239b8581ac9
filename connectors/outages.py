"""Errors of the infrastructure (the database or the broker away, a deadlock, a lost
connection) as opposed to bugs: the first go away with time and are logged as a line, the
second are logged with their traceback. The operations guide says a traceback means a bug."""

from __future__ import annotations

import logging
import sys

import psycopg
from aiokafka.errors import KafkaError
from psycopg_pool import PoolTimeout

from connectors.kafka.producer import BrokerUnavailable

INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,  # connection lost, server shutting down, deadlock, …
    psycopg.InterfaceError,
    PoolTimeout,
    KafkaError,
    BrokerUnavailable,
    ConnectionError,
    TimeoutError,
)


def is_infrastructure(error: BaseException) -> bool:
    """Whether ``error`` would go away with time rather than with a different message.

    >>> is_infrastructure(psycopg.errors.AdminShutdown()), is_infrastructure(KeyError("id"))
    (True, False)
    """
    return isinstance(error, INFRASTRUCTURE_ERRORS)


def log_failure(logger: logging.Logger, message: str, *args: object) -> None:
    """Inside an ``except`` block: an outage as one warning line naming the error, anything
    else as an error with its traceback."""
    error = sys.exc_info()[1]
    if error is not None and is_infrastructure(error):
        detail = str(error).strip().splitlines()
        # The error's text as an argument: a "%" in it must not be read as a placeholder.
        logger.warning(
            message + " (%s: %s)", *args, type(error).__name__, detail[0] if detail else ""
        )
    else:
        logger.exception(message, *args)
