"""The operator's command line against the running stack: input it cannot use is a usage
error or a one-line reason, never a traceback (an outside test found nine of those)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from ops.embedded import free_port
from ops.stack import Stack
from tests.support import scalar


def run(stack: Stack, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", *args],
        env={**os.environ, **stack.env(), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def refused(answer: subprocess.CompletedProcess[str], code: int, says: str) -> None:
    out = answer.stdout + answer.stderr
    assert answer.returncode == code and says in out, out
    assert "Traceback" not in out, out


def test_a_shop_added_by_hand_has_a_real_domain_and_time_zone(stack: Stack) -> None:
    """`shops add x --timezone Mars/Base` stopped the nightly refits of every shop."""
    refused(run(stack, "shops", "add", "bad_domain"), 2, "not a STORE.myshopify.com domain")
    name = f"t{uuid.uuid4().hex[:12]}.myshopify.com"
    for zone in ("Mars/Base", "posixrules", "right/UTC", "localtime"):
        refused(run(stack, "shops", "add", name, "--timezone", zone), 2, "not a time zone")
    assert scalar(stack, "SELECT count(*) FROM shops WHERE domain = %s", name) == 0
    # A pasted page of text is not echoed back whole.
    long = run(stack, "shops", "add", name, "--timezone", "Europe/" + "x" * 5000)
    refused(long, 2, "not a time zone")
    assert len(long.stderr) < 600, long.stderr
    # Webhooks name a shop in lower case: so does the shop added; a zone pasted with a blank
    # around it is the zone, as on the settings page.
    added = run(stack, "shops", "add", name.upper(), "--timezone", " Europe/Berlin ")
    assert added.returncode == 0, added.stderr
    assert run(stack, "shops", "add", name).returncode == 0  # added again: its zone stays
    assert scalar(stack, "SELECT timezone FROM shops WHERE domain = %s", name) == "Europe/Berlin"
    # The database refuses the name too, whoever writes it.
    with (
        psycopg.connect(stack.database_url, autocommit=True) as conn,
        pytest.raises(psycopg.errors.InvalidParameterValue, match="unknown time zone"),
    ):
        conn.execute("UPDATE shops SET timezone = 'Mars/Base' WHERE domain = %s", (name,))


def test_a_zone_this_database_does_not_know_installs_the_shop_on_utc(stack: Stack) -> None:
    """Python's tz database may be newer than PostgreSQL's: a shop Shopify reports in a new
    zone was refused by the database, so its merchant could not connect at all."""
    from connectors.db.shops import install_shop

    name = f"t{uuid.uuid4().hex[:12]}.myshopify.com"
    install_shop(stack.database_url, name, timezone="America/Not_Yet_A_Zone")
    assert scalar(stack, "SELECT timezone FROM shops WHERE domain = %s", name) == "UTC"
    install_shop(stack.database_url, name, timezone="Asia/Tokyo")
    install_shop(stack.database_url, name, timezone=None)  # by hand again: its zone stays
    assert scalar(stack, "SELECT timezone FROM shops WHERE domain = %s", name) == "Asia/Tokyo"


def test_adding_a_shop_again_says_what_it_did_and_leaves_shopifys_zone_alone(stack: Stack) -> None:
    """`shops add` on a connected shop with `--timezone` moved its day until the next
    reconcile, and every add said "installed" (an outside test)."""
    name = f"t{uuid.uuid4().hex[:12]}.myshopify.com"
    zone = "SELECT timezone FROM shops WHERE domain = %s"
    assert "installed " in run(stack, "shops", "add", name).stdout
    assert "nothing changed" in run(stack, "shops", "add", name).stdout
    installed = "SELECT installed_at FROM shops WHERE domain = %s"
    first_installed = scalar(stack, installed, name)
    by_hand = run(stack, "shops", "add", name, "--timezone", "Asia/Tokyo")
    assert "its time zone as given now" in by_hand.stdout, by_hand.stdout
    assert scalar(stack, zone, name) == "Asia/Tokyo"
    # Its install stays when it was: an uninstall triggered since still applies (a re-add
    # moved it to now, and Shopify's retry of a genuine uninstall was then dropped).
    assert scalar(stack, installed, name) == first_installed
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO shop_credentials (shop, mode, access_token) VALUES (%s, 'static', '')",
            (name,),
        )
        try:
            moved = run(stack, "shops", "add", name, "--timezone", "Europe/Paris")
            refused(moved, 1, "connected to Shopify")
            assert scalar(stack, zone, name) == "Asia/Tokyo"
            assert "nothing changed" in run(stack, "shops", "add", name).stdout
        finally:
            conn.execute("DELETE FROM shop_credentials WHERE shop = %s", (name,))


def test_bad_input_and_an_unreachable_database_are_told_in_a_line(stack: Stack) -> None:
    nobody = f"nope{uuid.uuid4().hex[:8]}.myshopify.com"
    refused(run(stack, "reconcile", "--shop", nobody), 1, "not known")
    refused(run(stack, "reconcile", "--shop", "not_a_domain"), 2, "STORE.myshopify.com")
    refused(run(stack, "backfill", "--shop", nobody), 1, "not known")
    refused(run(stack, "backfill", "--shop", nobody, "--months", "-1"), 2, "-1")
    # A shop named that is not installed fails alone (the others still run), in a line.
    refused(
        run(stack, "nightly", "--shop", nobody, "--no-progress"),
        1,
        f"{nobody} : failed: no such shop",
    )
    gone = f"t{uuid.uuid4().hex[:12]}.myshopify.com"
    assert run(stack, "shops", "add", gone).returncode == 0
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute("UPDATE shops SET uninstalled_at = now() WHERE domain = %s", (gone,))
    uninstalled = run(stack, "nightly", "--shop", gone, "--no-progress")
    refused(uninstalled, 1, "the shop is uninstalled")
    # Said once, in a line: not also logged as an error, with the counts of a run not made.
    said = (uninstalled.stdout + uninstalled.stderr).strip().splitlines()
    assert said == [f"{gone} {datetime.now(UTC).date()}: failed: the shop is uninstalled"], said
    assert scalar(stack, "SELECT count(*) FROM forecast_runs WHERE shop = %s", gone) == 0

    # An operator's account is created confirmed: an address no mail reaches was (an outside
    # test), and nothing is stored for one.
    for email in ("", "bad", "ü@exämple.com", "ops@localhost"):
        said = run(stack, "users", "create", "--email", email, "--password", "Xx-Password-12345!")
        refused(said, 2, "Invalid value for --email")
        assert scalar(stack, "SELECT count(*) FROM users WHERE email = %s", email) == 0
    refused(run(stack, "nightly", "--processes", "-3"), 2, "-3")
    refused(run(stack, "dead-letters", "list", "--limit", "-1"), 2, "-1")
    refused(run(stack, "dead-letters", "replay", "999999999"), 1, "no open dead letter 999999999")
    refused(run(stack, "dead-letters", "replay", "1", "--all"), 2, "not both")
    refused(run(stack, "dead-letters", "replay", "1", "--shop", "x.myshopify.com"), 2, "--all")
    nobody = run(stack, "dead-letters", "replay", "--all", "--shop", "NOPE.myshopify.com")
    assert nobody.returncode == 0 and "of nope.myshopify.com: nothing" in nobody.stdout, (
        nobody.stdout
    )
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    refused(run(stack, "dead-letters", "list", DATABASE_URL=closed), 1, "cannot reach the database")


def test_the_web_app_answers_while_its_database_is_down(stack: Stack) -> None:
    """It did not listen for 30 s, then exited with a traceback (and ignored Ctrl-C)."""
    import signal
    import time

    import httpx

    port = free_port()
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    web = subprocess.Popen(
        [sys.executable, "-m", "ops.cli", "web", "--port", str(port)],
        env={**os.environ, **stack.env(), "DATABASE_URL": closed},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and web.poll() is None, web.stdout
                time.sleep(0.2)
        assert health.status_code == 200
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["checks"]["database"] is False
    finally:
        web.send_signal(signal.SIGINT)
        out, _ = web.communicate(timeout=20)
    assert "Traceback" not in out, out


def test_a_bad_setting_is_named_in_a_line_without_its_value(stack: Stack) -> None:
    """A value the settings cannot read ended every command in a pydantic or psycopg
    traceback (LEAD_TIME_DAYS=abc, NIGHTLY_AT=25:00, SMTP_URL=garbage, MAIL_FROM=x,
    DATABASE_URL=garbage), and RECONCILE_INTERVAL_S=abc blamed the encryption keys."""
    for name, value, says in (
        ("LEAD_TIME_DAYS", "abc", "LEAD_TIME_DAYS: Input should be a valid number"),
        # NaN passed every bound and crashed the worker at each start; -5 shrank every plan.
        ("LEAD_TIME_DAYS", "nan", "LEAD_TIME_DAYS: Input should be a finite number"),
        ("LEAD_TIME_DAYS", "-5", "LEAD_TIME_DAYS: Input should be greater than or equal to 1"),
        ("TARGET_COVER_DAYS", "inf", "TARGET_COVER_DAYS: Input should be a finite number"),
        ("SERVICE_LEVEL", "2", "SERVICE_LEVEL"),
        ("NIGHTLY_AT", "25:00", "NIGHTLY_AT"),
        ("SMTP_URL", "http://x:25", "SMTP_URL must start with smtp://"),
        ("SMTP_URL", "smtp://127.0.0.1:25?starttls=maybe", "SMTP_URL"),
        ("MAIL_FROM", "notanaddress", "MAIL_FROM"),
        ("DATABASE_URL", "garbage secret-password", "DATABASE_URL: Value error, not a"),
        ("RECONCILE_INTERVAL_S", "abc", "RECONCILE_INTERVAL_S"),
    ):
        answer = run(stack, "dead-letters", "list", **{name: value})
        refused(answer, 1, says)
        assert "secret-password" not in answer.stderr
        assert "ENCRYPTION" not in answer.stderr
        assert len(answer.stderr.strip().splitlines()) == 1, answer.stderr
    refused(run(stack, "web", "--port", "99999"), 2, "99999 is not in the range")


def test_the_command_line_cannot_leave_a_shop_without_an_owner(stack: Stack) -> None:
    shop = f"t{uuid.uuid4().hex[:12]}.myshopify.com"
    email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
    assert run(stack, "shops", "add", shop).returncode == 0
    made = run(stack, "users", "create", "--email", email, "--password", "a long enough password 1")
    assert made.returncode == 0, made.stderr
    assert run(stack, "shops", "assign", "--shop", shop, "--email", email).returncode == 0
    demoted = run(stack, "shops", "assign", "--shop", shop, "--email", email, "--role", "viewer")
    refused(demoted, 1, "only owner")
    refused(run(stack, "tokens", "create", "--email", email, "--name", " "), 2, "a name of 1")
    role = "SELECT role FROM shop_members m JOIN users u ON u.id = m.user_id WHERE m.shop = %s"
    assert scalar(stack, role, shop) == "owner"


def test_the_simulator_and_connect_refuse_what_they_cannot_use(stack: Stack) -> None:
    """`simulate --shop bad --backfill-days -1` was taken, and `connect` with both kinds of
    credentials tried a real store with one of them (an outside test)."""
    refused(run(stack, "simulate", "--shop", "bad"), 2, "not a STORE.myshopify.com domain")
    refused(run(stack, "simulate", "--backfill-days", "-1"), 2, "-1 is not in the range")
    # It retried a URL where nothing listens for good, saying only "retrying".
    refused(run(stack, "simulate", "--url", "http://127.0.0.1:9"), 1, "nothing answers at")
    refused(run(stack, "simulate", "--url", "not a url"), 1, "nothing answers at")
    # And a secret the web app does not know was retried for good too.
    wrong = run(stack, "simulate", "--url", stack.base_url, SHOPIFY_API_SECRET="not-the-secret")
    refused(wrong, 1, "answered 401")
    both = ("--client-id", "a", "--client-secret", "b", "--token", "shpat_x")
    refused(run(stack, "connect", "--shop", "x1.myshopify.com", *both), 2, "give either")


def test_nightly_on_a_database_that_is_not_there_says_so_at_once(stack: Stack) -> None:
    """Its pool retried a missing database for 30 s, a warning a second, before the error (an
    outside test); 20 s is a bound no retrying run meets."""
    missing = stack.database_url.rsplit("/", 1)[0] + "/no_such_database"
    answer = subprocess.run(
        [sys.executable, "-m", "ops.cli", "nightly", "--no-progress"],
        env={**os.environ, **stack.env(), "DATABASE_URL": missing},
        capture_output=True,
        text=True,
        timeout=20,
    )
    refused(answer, 1, "cannot reach the database")
