"""A page or API request the database cannot answer gets 503 and Retry-After, never a hang or a
500 (the live case, a paused PostgreSQL, is in tests/integration/test_supervisor.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import psycopg
from litestar import Litestar, get
from litestar.response import Stream
from litestar.testing import TestClient

from web.deadline import database_unavailable, request_deadline

DEADLINE_S = 0.3
cancelled: list[str] = []


@get("/api/v1/hangs")
async def hangs() -> dict[str, str]:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        cancelled.append("hangs")
        raise
    return {}


@get("/api/v1/refused")
async def refused() -> dict[str, str]:
    raise psycopg.OperationalError("connection refused")


@get("/page")
async def page() -> str:
    raise psycopg.OperationalError("server closed the connection unexpectedly")


@get("/download")
async def download() -> Stream:
    async def slowly() -> AsyncIterator[bytes]:
        for _ in range(3):
            await asyncio.sleep(DEADLINE_S)
            yield b"row\n"

    return Stream(slowly(), media_type="text/csv")


@get("/webhooks/slow")
async def own_deadline() -> str:
    await asyncio.sleep(DEADLINE_S * 2)
    return "done"


app = Litestar(
    route_handlers=[hangs, refused, page, download, own_deadline],
    middleware=[request_deadline(DEADLINE_S)],
    exception_handlers={psycopg.OperationalError: database_unavailable},
)


def test_a_request_past_its_deadline_is_told_to_retry_and_its_handler_is_cancelled() -> None:
    with TestClient(app) as client:
        began = time.monotonic()
        response = client.get("/api/v1/hangs")
        assert time.monotonic() - began < DEADLINE_S + 0.5
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert "could not answer in time" in response.json()["detail"]
        time.sleep(0.1)
        assert cancelled == ["hangs"]


def test_a_database_error_is_a_503_for_the_api_and_for_pages() -> None:
    with TestClient(app) as client:
        api = client.get("/api/v1/refused")
        assert api.status_code == 503 and api.json()["status_code"] == 503
        assert api.headers["retry-after"]
        page = client.get("/page", headers={"Accept": "text/html"})
        assert page.status_code == 503 and "Try again" in page.text


def test_a_started_download_and_the_webhook_path_are_left_to_finish() -> None:
    with TestClient(app) as client:
        download = client.get("/download")
        assert download.status_code == 200 and download.text == "row\n" * 3
        webhook = client.get("/webhooks/slow")
        assert webhook.status_code == 200 and webhook.text == "done"
