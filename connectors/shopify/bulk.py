"""GraphQL bulk operations: start an export, wait for it, read its JSONL stitched back together.

Shopify runs one bulk query per app and store at a time; the result is a JSONL file in which
each child object (a line item) follows its parent (an order) and names it in ``__parentId``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from connectors.shopify.admin import AdminClient, AdminError

_RUN = (
    "mutation Run($query: String!) { bulkOperationRunQuery(query: $query) {"
    " bulkOperation { id status } userErrors { message } } }"
)
_POLL = "{ currentBulkOperation { id status url objectCount errorCode } }"


async def run(client: AdminClient, query: str, *, poll_s: float = 1.0) -> dict[str, Any]:
    """Start ``query`` as a bulk operation (or join the one already running) and wait until it
    is done; the finished operation (with ``url``: None when there was nothing to export)."""
    started = (await client.query(_RUN, {"query": query}))["bulkOperationRunQuery"]
    if started["userErrors"] and "running" not in started["userErrors"][0]["message"]:
        raise AdminError(started["userErrors"][0]["message"])
    while True:
        operation = (await client.query(_POLL))["currentBulkOperation"]
        if operation is None:
            raise AdminError("the bulk operation vanished")
        if operation["status"] == "COMPLETED":
            return operation
        if operation["status"] in ("FAILED", "CANCELED", "EXPIRED"):
            raise AdminError(f"bulk operation {operation['status']}: {operation['errorCode']}")
        await asyncio.sleep(poll_s)


async def stitched(
    http: httpx.AsyncClient, url: str
) -> AsyncIterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Each root object of the export with its children, streamed (never all in memory)."""
    root: dict[str, Any] | None = None
    children: list[dict[str, Any]] = []
    async with http.stream("GET", url) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.strip():
                continue
            obj = json.loads(line)
            if "__parentId" in obj:
                if root is None or obj["__parentId"] != root["id"]:
                    raise AdminError(f"a child before its parent: {obj['__parentId']}")
                children.append(obj)
                continue
            if root is not None:
                yield root, children
            root, children = obj, []
    if root is not None:
        yield root, children
