"""Alert settings against the running stack: owners save them through the page or the API, all
or nothing; viewers and read-only tokens only read; the test email really goes through the
alert sender to a real SMTP server, and the one-click link in its List-Unsubscribe header turns
its recipient off without a session or a CSRF token, while an altered link changes nothing."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx

from connectors import links
from ops.stack import Stack
from tests.integration.test_accounts import csrf_of, sign_up, user_id
from tests.mailbox import MAILBOX
from tests.support import auth, grant, new_shop, query, scalar, signed_in_client

VALID = {
    "mode": "digest",
    "digest_hour": "7",
    "time_zone": "Europe/Berlin",
    "stockout_within_days": "10",
    "cooldown_hours": "12",
}


def api_url(stack: Stack, shop: str) -> str:
    return f"{stack.base_url}/api/v1/shops/{shop}/alert-settings"


def address(tag: str = "ops") -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}@example.com"


def stored(stack: Stack, shop: str) -> tuple[list[tuple], list[tuple]]:
    """The shop's alert settings row and its recipients, as PostgreSQL has them."""
    settings = query(
        stack,
        "SELECT mode, digest_hour, time_zone, stockout_within_days, cooldown_hours, rules"
        " FROM alert_settings WHERE shop = %s",
        shop,
    )
    people = query(
        stack,
        "SELECT email, active FROM alert_recipients WHERE shop = %s ORDER BY email",
        shop,
    )
    return settings, people


def test_an_owner_saves_alert_settings_with_the_form_and_reads_them_back(stack: Stack) -> None:
    shop = new_shop(stack, timezone="America/New_York")
    first, second = address("first"), address("second")
    browser = signed_in_client(stack)
    page = browser.get(f"/shops/{shop}/settings")
    assert page.status_code == 200 and 'id="alerts"' in page.text
    assert "the shop's own: America/New_York" in page.text
    saved = browser.post(
        f"/shops/{shop}/settings/alerts",
        data={
            **VALID,
            # Mixed separators, a repeat and an upper-case domain: one of each, lowercased.
            "recipients": f"{first.replace('example.com', 'Example.COM')}, {second}\n{first}\n",
            "rules": ["low_stock", "overstock"],
            "csrf_token": csrf_of(page.text),
        },
    )
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"] == f"/shops/{shop}/settings?saved=alerts#alerts"

    settings, people = stored(stack, shop)
    assert settings == [("digest", 7, "Europe/Berlin", 10, 12, ["low_stock", "overstock"])]
    assert people == sorted([(first, True), (second, True)])
    read = httpx.get(api_url(stack, shop), headers=auth(stack), timeout=10)
    assert read.status_code == 200, read.text
    body = read.json()
    assert body["mode"] == "digest" and body["digest_hour"] == 7
    assert body["time_zone"] == "Europe/Berlin" and body["shop_time_zone"] == "America/New_York"
    assert body["rules"] == ["low_stock", "overstock"]
    assert [r["email"] for r in body["recipients"]] == [first, second]
    next_digest = datetime.fromisoformat(body["next_digest_at"])
    assert next_digest.astimezone(ZoneInfo("Europe/Berlin")).hour == 7
    shown = browser.get(saved.headers["location"]).text
    assert "Alert settings saved." in shown and "Next daily digest" in shown

    # The API changes what it is given and keeps the rest; null time zone: the shop's own.
    put = httpx.put(
        api_url(stack, shop),
        json={"mode": "immediate", "time_zone": None, "cooldown_hours": 0},
        headers=auth(stack),
        timeout=10,
    )
    assert put.status_code == 200, put.text
    assert put.json()["time_zone_in_force"] == "America/New_York"
    settings, people = stored(stack, shop)
    assert settings == [("immediate", 7, None, 10, 0, ["low_stock", "overstock"])]
    assert len(people) == 2


def test_invalid_alert_settings_get_a_clear_error_and_nothing_is_saved(stack: Stack) -> None:
    shop = new_shop(stack)
    kept = address("kept")
    ok = httpx.put(
        api_url(stack, shop),
        json={"recipients": [kept], "cooldown_hours": 6},
        headers=auth(stack),
        timeout=10,
    )
    assert ok.status_code == 200, ok.text
    before = stored(stack, shop)
    good = {"recipients": [address()], "cooldown_hours": 48, "mode": "digest"}
    for bad, field, says in (
        ({"recipients": ["not-an-address"]}, "recipients", "not an email address"),
        ({"recipients": ["two words@example.com"]}, "recipients", "space"),
        ({"recipients": ["a@b@example.com"]}, "recipients", "exactly one @"),
        ({"recipients": [address() for _ in range(21)]}, "recipients", "at most 20"),
        ({"cooldown_hours": -1}, "cooldown_hours", "greater than or equal to 0"),
        ({"cooldown_hours": 721}, "cooldown_hours", "less than or equal to 720"),
        ({"stockout_within_days": 0}, "stockout_within_days", "greater than or equal to 1"),
        ({"digest_hour": 24}, "digest_hour", "less than or equal to 23"),
        ({"cooldown_hours": True}, "cooldown_hours", "a number"),  # was read as 1
        ({"time_zone": "Mars/Olympus"}, "time_zone", "unknown time zone"),
        ({"time_zone": "../../etc/passwd"}, "time_zone", "unknown time zone"),
        ({"time_zone": "UTC\u0000"}, "time_zone", "unknown time zone"),
        ({"recipients": ["nul\u0000@example.com"]}, "recipients", "control character"),
        ({"recipients": ["ops@example..com"]}, "recipients", "two periods"),
        # Each was stored and "accepted by the mail server" in an outside test.
        ({"recipients": ["ops@b"]}, "recipients", "should have a period"),
        ({"recipients": ["ops@localhost"]}, "recipients", "not an email address"),
        ({"recipients": [".ops@example.com"]}, "recipients", "cannot start with a period"),
        ({"recipients": ["ops@-example.com"]}, "recipients", "hyphen"),
        ({"recipients": ["üser@example.com"]}, "recipients", "Internationalized"),
        ({"recipients": ["a" * 65 + "@example.com"]}, "recipients", "too long before the @"),
        ({"rules": ["low_stock", "full_moon"]}, "rules", "low_stock"),
        ({"mode": "weekly"}, "mode", "immediate"),
        ({"thresholds": 3}, "thresholds", "not permitted"),
    ):
        answer = httpx.put(
            api_url(stack, shop), json={**good, **bad}, headers=auth(stack), timeout=10
        )
        assert answer.status_code == 400, (bad, answer.text)
        errors = {e.get("key", ""): e["message"] for e in answer.json()["extra"]}
        assert any(k.split(".")[0] == field for k in errors), (bad, errors)
        assert says in " ".join(errors.values()), (bad, errors)
        assert stored(stack, shop) == before, bad

    # The form: every wrong field is marked, what was typed comes back, nothing is saved.
    browser = signed_in_client(stack)
    token = csrf_of(browser.get(f"/shops/{shop}/settings").text)
    typed = f"{address('fine')}\nnobody-at-example.com"
    refused = browser.post(
        f"/shops/{shop}/settings/alerts",
        data={
            **VALID,
            "recipients": typed,
            "cooldown_hours": "-5",
            "stockout_within_days": "ten",
            "time_zone": "Atlantis/Capital",
            "rules": ["low_stock", "full_moon"],
            "csrf_token": token,
        },
    )
    assert refused.status_code == 400
    text = refused.text
    assert "Nothing was saved" in text
    assert "&#39;nobody-at-example.com&#39; is not an email address" in text
    assert "enter a whole number from 0 to 720" in text
    assert "enter a whole number from 1 to 90" in text
    assert "unknown time zone &#39;Atlantis/Capital&#39;" in text
    assert "unknown rule &#39;full_moon&#39;" in text
    assert typed in text and 'value="-5"' in text and 'value="Atlantis/Capital"' in text
    assert stored(stack, shop) == before
    # One bad field among good ones is enough to save nothing.
    one_bad = browser.post(
        f"/shops/{shop}/settings/alerts",
        data={**VALID, "recipients": address(), "digest_hour": "25", "csrf_token": token},
    )
    assert one_bad.status_code == 400 and "enter a whole number from 0 to 23" in one_bad.text
    assert stored(stack, shop) == before


def test_viewers_and_read_only_tokens_cannot_change_alert_settings(stack: Stack) -> None:
    shop = new_shop(stack)
    viewer, viewer_email = sign_up(stack)
    grant(stack, shop, role="viewer", user_id=user_id(stack, viewer_email))
    page = viewer.get(f"/shops/{shop}/settings")
    assert page.status_code == 200
    alerts = page.text.split('id="alerts"', 1)[1]
    assert "Only an owner" in alerts and "Send a test email" not in alerts
    assert "Save alert settings" not in alerts
    csrf = csrf_of(page.text)
    refused = viewer.post(
        f"/shops/{shop}/settings/alerts",
        data={**VALID, "recipients": address(), "rules": "low_stock", "csrf_token": csrf},
    )
    assert refused.status_code == 403
    assert (
        viewer.post(f"/shops/{shop}/settings/alerts/test", data={"csrf_token": csrf}).status_code
        == 403
    )
    assert viewer.get(f"/api/v1/shops/{shop}/alert-settings").status_code == 200
    assert (
        viewer.put(
            f"/api/v1/shops/{shop}/alert-settings",
            json={"cooldown_hours": 1},
            headers={"X-CSRF-Token": csrf},
        ).status_code
        == 403
    )

    # The owner's own read-only token reads but never writes.
    owner = signed_in_client(stack)
    made = owner.post(
        "/api/v1/tokens",
        json={"name": "read-only script", "read_only": True},
        headers={"X-CSRF-Token": csrf_of(owner.get(f"/shops/{shop}/settings").text)},
    )
    assert made.status_code == 201, made.text
    bearer = {"Authorization": f"Bearer {made.json()['token']}"}
    assert httpx.get(api_url(stack, shop), headers=bearer, timeout=10).status_code == 200
    write = httpx.put(api_url(stack, shop), json={"cooldown_hours": 1}, headers=bearer, timeout=10)
    assert write.status_code == 403 and "read-only" in write.text
    # A session without its CSRF token is refused too; strangers see no shop at all.
    assert (
        owner.post(
            f"/shops/{shop}/settings/alerts", data={**VALID, "rules": "low_stock"}
        ).status_code
        == 403
    )
    stranger, _ = sign_up(stack)
    assert stranger.get(f"/api/v1/shops/{shop}/alert-settings").status_code == 404
    assert httpx.get(api_url(stack, shop), timeout=10).status_code == 401
    assert stored(stack, shop) == ([], [])


def test_the_test_email_arrives_and_its_one_click_link_unsubscribes(stack: Stack) -> None:
    shop = new_shop(stack)
    browser = signed_in_client(stack)
    token = csrf_of(browser.get(f"/shops/{shop}/settings").text)
    nobody = browser.post(f"/shops/{shop}/settings/alerts/test", data={"csrf_token": token})
    assert nobody.status_code == 200 and "add a recipient" in nobody.text

    recipient, refused = address("inbox"), address("refused")
    put = httpx.put(
        api_url(stack, shop), json={"recipients": [recipient, refused]}, headers=auth(stack)
    )
    assert put.status_code == 200, put.text
    MAILBOX.refused.add(refused)
    try:
        tried = browser.post(f"/shops/{shop}/settings/alerts/test", data={"csrf_token": token})
    finally:
        MAILBOX.refused.discard(refused)
    assert tried.status_code == 200, tried.text
    assert re.search(rf"{re.escape(recipient)}:\s*accepted by the mail server \(250", tried.text)
    assert re.search(rf"{re.escape(refused)}:\s*refused: .*550", tried.text)
    # Recipients never confirmed their address: the button sends one round a minute.
    again = browser.post(f"/shops/{shop}/settings/alerts/test", data={"csrf_token": token})
    assert again.status_code == 429 and "try again in" in again.text
    # The button's own request (htmx swaps no 4xx) hears it in the box the button fills.
    button = browser.post(
        f"/shops/{shop}/settings/alerts/test",
        data={"csrf_token": token},
        headers={"HX-Request": "true"},
    )
    box = button.text.split('id="alert-test"', 1)[1].split("</div>", 1)[0]
    assert button.status_code == 200 and "try again in" in box and "accepted" not in box
    assert scalar(stack, "SELECT count(*) FROM alert_emails WHERE shop = %s", shop) == 2

    mail = MAILBOX.wait_for(recipient)
    assert "Test alert" in str(mail["Subject"])
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    found = re.fullmatch(r"<(\S+)>", str(mail["List-Unsubscribe"]))
    assert found, mail["List-Unsubscribe"]
    link = found.group(1)
    assert link.startswith(f"{stack.base_url}/alerts/unsubscribe/")

    # No cookies and no CSRF token: a mail client, not a browser session.
    with httpx.Client(timeout=10) as client:
        confirm = client.get(link)
        assert confirm.status_code == 200
        assert f"Stop alert emails of <strong>{shop}</strong> to <strong>{recipient}" in (
            confirm.text
        )
        assert scalar(stack, "SELECT active FROM alert_recipients WHERE email = %s", recipient)

        signed = link.rsplit("/", 1)[1]
        body, mac = signed.split(".")
        for forged in (
            f"{body}.{mac[:-2]}{'AA' if mac[-2:] != 'AA' else 'BB'}",
            f"{links.sign('another-key', links.UNSUBSCRIBE, [shop, recipient])}",
            links.sign("development-only-secret-key", "other-purpose", [shop, recipient]),
            "not-a-token",
            "a" * 5000,
        ):
            for method in ("GET", "POST"):
                answer = client.request(
                    method,
                    f"{stack.base_url}/alerts/unsubscribe/{forged}",
                    content=b"List-Unsubscribe=One-Click",
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                )
                assert answer.status_code in (400, 404), (forged, method, answer.text)
        assert scalar(stack, "SELECT active FROM alert_recipients WHERE email = %s", recipient)

        for _ in range(2):  # a second click still says done
            done = client.post(
                link,
                content=b"List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert done.status_code == 200, done.text
            assert "gets no more alert emails" in done.text
    assert not scalar(stack, "SELECT active FROM alert_recipients WHERE email = %s", recipient)
    assert scalar(stack, "SELECT active FROM alert_recipients WHERE email = %s", refused)
    read = httpx.get(api_url(stack, shop), headers=auth(stack), timeout=10).json()
    state = {r["email"]: r for r in read["recipients"]}
    assert not state[recipient]["active"] and state[recipient]["unsubscribed_at"]
    # Listed again in capitals, they are the same mailbox, still unsubscribed.
    shouted = recipient.upper()
    again_listed = httpx.put(
        api_url(stack, shop), json={"recipients": [shouted, refused]}, headers=auth(stack)
    )
    assert again_listed.status_code == 200, again_listed.text
    rows = query(
        stack, "SELECT email, active FROM alert_recipients WHERE lower(email) = lower(%s)", shouted
    )
    assert rows == [(recipient, False)], rows

    # The page says so, and an owner can bring them back.
    page = browser.get(f"/shops/{shop}/settings").text
    assert f"{recipient} —" in page and "unsubscribed on" in page
    back = browser.post(
        f"/shops/{shop}/settings/alerts/resubscribe",
        data={"email": recipient, "csrf_token": token},
    )
    assert back.status_code == 303
    assert scalar(stack, "SELECT active FROM alert_recipients WHERE email = %s", recipient)


def test_the_schema_has_the_alert_settings_api_but_not_the_unsubscribe_pages(stack: Stack) -> None:
    schema = httpx.get(f"{stack.base_url}/schema/openapi.json", timeout=10).json()
    path = schema["paths"]["/api/v1/shops/{shop_domain}/alert-settings"]
    assert {"get", "put"} <= set(path)
    assert not any(p.startswith("/alerts/") for p in schema["paths"])
    assert "AlertSettingsOut" in str(path["get"]["responses"]["200"])
