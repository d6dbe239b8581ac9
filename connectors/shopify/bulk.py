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
_POLL = "{ currentBulkOperation { id status url objectCount errorCode query createdAt } }"
_FINISHED = ("COMPLETED", "FAILED", "CANCELED", "EXPIRED")


async def run(client: AdminClient, query: str, *, poll_s: float = 1.0) -> dict[str, Any]:
    """Run ``query`` as a bulk operation and wait until it is done; the finished operation
    (with ``url``: None when there was nothing to export).

    Shopify runs one bulk query per app and store at a time. When one is running already and
    it is this same query (ours, from a run that was interrupted), it is joined; any other is
    waited out, then ours is started."""
    while True:
        started = (await client.query(_RUN, {"query": query}))["bulkOperationRunQuery"]
        errors = started["userErrors"]
        if not errors:
            break
        if not _busy(errors[0]["message"]):
            raise AdminError(errors[0]["message"])
        current = await _wait(client, poll_s, until_finished=False)
        if current is not None and current.get("query") == query:
            break
        await _wait(client, poll_s, until_finished=True)
    operation = await _wait(client, poll_s, until_finished=True)
    if operation is None:
        raise AdminError("the bulk operation vanished")
    if operation["status"] != "COMPLETED":
        raise AdminError(f"bulk operation {operation['status']}: {operation['errorCode']}")
    return operation


def _busy(message: str) -> bool:
    return "in progress" in message or "running" in message


async def _wait(
    client: AdminClient, poll_s: float, *, until_finished: bool
) -> dict[str, Any] | None:
    while True:
        operation: dict[str, Any] | None = (await client.query(_POLL))["currentBulkOperation"]
        if operation is None or not until_finished or operation["status"] in _FINISHED:
            return operation
        await asyncio.sleep(poll_s)


async def stitched(
    http: httpx.AsyncClient, url: str, read: list[int] | None = None
) -> AsyncIterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Each root object of the export with all its descendants, streamed (never all in
    memory). A child names its parent in ``__parentId``: the root, an object nested inside
    the root (a refund in an order's ``refunds`` list), or an earlier child. ``read``, when
    given, counts the lines read so far (for progress)."""
    root: dict[str, Any] | None = None
    children: list[dict[str, Any]] = []
    family: set[str] = set()
    async with http.stream("GET", url) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.strip():
                continue
            if read is not None:
                read[0] += 1
            obj = json.loads(line)
            if "__parentId" in obj:
                if root is None or obj["__parentId"] not in family:
                    raise AdminError(f"a child before its parent: {obj['__parentId']}")
                children.append(obj)
                if isinstance(obj.get("id"), str):
                    family.add(obj["id"])
                continue
            if root is not None:
                yield root, children
            root, children, family = obj, [], set(_ids(obj))
    if root is not None:
        yield root, children


def _ids(obj: Any) -> list[str]:
    """Every ``id`` in an object and the objects nested in it."""
    if isinstance(obj, dict):
        own = [obj["id"]] if isinstance(obj.get("id"), str) else []
        return own + [i for value in obj.values() for i in _ids(value)]
    if isinstance(obj, list):
        return [i for value in obj for i in _ids(value)]
    return []
