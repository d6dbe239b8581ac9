"""CSV reports over HTTP: only for the shop's members, streamed as attachments, parsed back."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime

import httpx

from connectors.db.shops import install_shop
from ops.stack import Stack
from tests.support import (
    auth,
    deliver_ok,
    make_variant,
    new_shop,
    product_hook,
    stock_hook,
    stock_of,
    wait_until,
)


def test_a_members_csv_reports_download_and_nobody_elses(stack: Stack) -> None:
    shop = new_shop(stack)
    variant = make_variant("=CMD|calc")  # a spreadsheet formula, as a hostile SKU
    deliver_ok(stack, product_hook(shop, variant))
    deliver_ok(stack, stock_hook(shop, variant, 9, datetime.now(UTC)))
    wait_until(lambda: stock_of(stack, shop, variant) == 9, what="stock")
    base = f"{stack.base_url}/api/v1/shops/{shop}/reports"
    for report in ("inventory", "forecasts", "reorder-plan"):
        answer = httpx.get(f"{base}/{report}.csv", headers=auth(stack), timeout=10)
        assert answer.status_code == 200, (report, answer.text)
        assert answer.headers["content-type"].startswith("text/csv")
        assert f'filename="{shop}-{report}-' in answer.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(answer.text)))
        if report == "inventory":
            [row] = rows
            assert row["sku"] == "'=CMD|calc" and row["available"] == "9"
        if report == "reorder-plan":
            assert [r["sku"] for r in rows] == ["'=CMD|calc"] and rows[0]["stock"] == "9"
    assert httpx.get(f"{base}/inventory.csv", timeout=10).status_code == 401
    # A shop the tests' account is no member of does not exist for it.
    strangers = f"s{uuid.uuid4().hex[:12]}.myshopify.com"
    install_shop(stack.database_url, strangers)
    foreign = f"{stack.base_url}/api/v1/shops/{strangers}/reports/inventory.csv"
    assert httpx.get(foreign, headers=auth(stack), timeout=10).status_code == 404
    assert httpx.get(f"{base}/nonsense.csv", headers=auth(stack), timeout=10).status_code == 404
