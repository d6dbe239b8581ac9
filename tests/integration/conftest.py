"""Fixtures of the whole-stack tests that need a store on a fake Shopify."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ops.fake_shopify import FakeShopify


@pytest.fixture
async def fake_shopify() -> AsyncIterator[FakeShopify]:
    """A fake Shopify, a real HTTP server on loopback, with no stores yet."""
    server = FakeShopify()
    await server.start()
    yield server
    await server.stop()
