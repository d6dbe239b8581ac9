"""The webhook subscriptions a connected store needs, registered through the Admin GraphQL API
and reconciled rather than blindly created: running it again changes nothing.

The three mandatory privacy topics (``customers/data_request``, ``customers/redact``,
``shop/redact``) cannot be subscribed through the API: Shopify takes them from the app's
configuration (the Dev Dashboard's compliance webhooks, pointing at the same
``/webhooks/shopify``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from connectors.shopify.admin import AdminClient, AdminError

TOPICS = (
    "ORDERS_CREATE",
    "ORDERS_UPDATED",
    "ORDERS_CANCELLED",
    "REFUNDS_CREATE",
    "INVENTORY_LEVELS_UPDATE",
    "PRODUCTS_CREATE",
    "PRODUCTS_UPDATE",
    "PRODUCTS_DELETE",
    "APP_UNINSTALLED",
)

_LIST = (
    "query Subscriptions($after: String) { webhookSubscriptions(first: 100, after: $after) {"
    " nodes { id topic uri } pageInfo { hasNextPage endCursor } } }"
)
_CREATE = (
    "mutation Subscribe($topic: WebhookSubscriptionTopic!, $uri: String!) {"
    " webhookSubscriptionCreate(topic: $topic, webhookSubscription: {uri: $uri, format: JSON})"
    " { webhookSubscription { id } userErrors { message } } }"
)
_DELETE = (
    "mutation Unsubscribe($id: ID!) { webhookSubscriptionDelete(id: $id)"
    " { deletedWebhookSubscriptionId userErrors { message } } }"
)


@dataclass(frozen=True)
class Reconciled:
    created: list[str]
    deleted: list[str]
    kept: list[str]


async def reconcile(client: AdminClient, uri: str) -> Reconciled:
    """Exactly one subscription per topic in :data:`TOPICS` pointing at ``uri``: missing ones
    are created, copies and our subscriptions to topics no longer wanted are deleted.
    Subscriptions to other addresses (another app instance, the merchant's own) are left."""
    ours: dict[str, list[str]] = defaultdict(list)
    async for node in client.pages(_LIST, {}, ("webhookSubscriptions",)):
        if node["uri"] == uri:
            ours[node["topic"]].append(node["id"])
    created, deleted, kept = [], [], []
    for topic in TOPICS:
        ids = ours.pop(topic, [])
        if ids:
            kept.append(topic)
            for extra in ids[1:]:
                await _delete(client, extra)
                deleted.append(topic)
            continue
        answer = (await client.query(_CREATE, {"topic": topic, "uri": uri}))[
            "webhookSubscriptionCreate"
        ]
        if answer["userErrors"]:
            raise AdminError(f"{topic}: {answer['userErrors'][0]['message']}")
        created.append(topic)
    for topic, ids in ours.items():  # ours, for topics we no longer use
        for stale in ids:
            await _delete(client, stale)
            deleted.append(topic)
    return Reconciled(created, deleted, kept)


async def _delete(client: AdminClient, subscription_id: str) -> None:
    answer = (await client.query(_DELETE, {"id": subscription_id}))["webhookSubscriptionDelete"]
    if answer["userErrors"]:
        raise AdminError(answer["userErrors"][0]["message"])
