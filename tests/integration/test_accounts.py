"""Accounts against the running stack: sign-up and login with sessions, CSRF, login rate
limiting, and what each caller may see and do: two accounts and two shops never see each
other's, viewers read, owners change, read-only tokens only read."""

from __future__ import annotations

import random
import re
import string
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest
import websockets.sync.client as ws
from websockets.exceptions import ConnectionClosed, InvalidStatus

from connectors.db.accounts import digest
from connectors.passwords import hash_password
from connectors.settings import Settings
from ops.stack import Stack
from tests.mailbox import MAILBOX
from tests.support import (
    auth,
    deliver_ok,
    from_own_address,
    grant,
    invitation_link,
    make_variant,
    new_shop,
    product_hook,
    reset_password_by_mail,
    scalar,
    verification_link,
    verify_email,
    wait_until,
)

PASSWORD = "Correct-Horse-42"


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page[:2000]
    return found.group(1)


def sign_up(
    stack: Stack, email: str | None = None, *, verify: bool = True
) -> tuple[httpx.Client, str]:
    """A browser-like client of a new account: signed up, its address confirmed from the mail
    (unless not ``verify``), then logged in."""
    email = email or f"u{uuid.uuid4().hex[:10]}@example.com"
    client = from_own_address(stack)
    form = client.get("/signup")
    answer = client.post(
        "/signup",
        data={"email": email, "password": PASSWORD, "csrf_token": csrf_of(form.text)},
    )
    assert answer.status_code == 200 and "Check your email" in answer.text, answer.text
    if verify:
        assert verify_email(stack, email, PASSWORD, client).status_code == 303
    log_in(client, email)
    return client, email


def log_in(client: httpx.Client, email: str, password: str = PASSWORD) -> httpx.Response:
    form = client.get("/login")
    answer = client.post(
        "/login", data={"email": email, "password": password, "csrf_token": csrf_of(form.text)}
    )
    assert answer.status_code == 303, answer.text
    return answer


def user_id(stack: Stack, email: str) -> int:
    return scalar(stack, "SELECT id FROM users WHERE lower(email) = lower(%s)", email)


def session_csrf(client: httpx.Client, shop: str) -> str:
    return csrf_of(client.get(f"/shops/{shop}").text)


def test_sign_up_log_out_and_log_in_with_a_rotated_http_only_session(stack: Stack) -> None:
    client = from_own_address(stack)
    form = client.get("/signup")
    email = f"u{uuid.uuid4().hex[:10]}@example.com"
    weak = client.post(
        "/signup", data={"email": email, "password": "short", "csrf_token": csrf_of(form.text)}
    )
    assert weak.status_code == 400 and "at least 12 characters" in weak.text
    for refused_address, why in (
        # No mail could be sent to it: refused here, as alert recipients are.
        ("<script>alert(1)</script>@example.com", "valid email address"),
        # A lookalike (the Kelvin sign lowercases to k) would claim the plain address's account.
        ("\u212aate@example.com", "plain letters"),
    ):
        bad = client.post(
            "/signup",
            data={"email": refused_address, "password": PASSWORD, "csrf_token": csrf_of(form.text)},
        )
        assert bad.status_code == 400 and why in bad.text, refused_address
    assert scalar(stack, "SELECT count(*) FROM users WHERE email = %s", email) == 0
    made = client.post(
        "/signup", data={"email": email, "password": PASSWORD, "csrf_token": csrf_of(form.text)}
    )
    # Signing up does not sign in (that would tell whether the address had an account).
    assert made.status_code == 200 and "Check your email" in made.text
    assert "sp_session" not in client.cookies
    stored = scalar(stack, "SELECT password_hash FROM users WHERE email = %s", email)
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    confirmed = verify_email(stack, email, PASSWORD, client)
    assert confirmed.status_code == 303 and confirmed.headers["location"] == "/login?verified=true"
    signed_in = log_in(client, email)
    assert signed_in.headers["location"] == "/"
    cookie = signed_in.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    first_session = client.cookies["sp_session"]
    home = client.get("/").text
    assert "Your shops" in home and "Send the link again" not in home

    # Logging out needs the session's CSRF token: a link on another site cannot do it.
    assert client.post("/logout").status_code == 403
    token = csrf_of(client.get("/").text)
    out = client.post("/logout", data={"csrf_token": token})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    # The logged-out session's cookie is dead.
    with httpx.Client(base_url=stack.base_url, cookies={"sp_session": first_session}) as stale:
        assert stale.get("/").status_code == 303

    login = client.get("/login?next=/api/v1/tokens")
    back = client.post(
        "/login",
        data={
            "email": email.upper(),
            "password": PASSWORD,
            "csrf_token": csrf_of(login.text),
            "next": "//evil.example/steal",
        },
    )
    assert back.status_code == 303 and back.headers["location"] == "/"  # never off-site
    assert client.cookies["sp_session"] != first_session  # rotated at login


def test_anonymous_callers_go_to_login_or_get_401_and_forms_need_their_csrf(
    stack: Stack,
) -> None:
    shop = new_shop(stack)
    anonymous = httpx.Client(base_url=stack.base_url, timeout=10)
    page = anonymous.get(f"/shops/{shop}")
    assert page.status_code == 303
    assert page.headers["location"] == f"/login?next=/shops/{shop}"
    api = anonymous.get(f"/api/v1/shops/{shop}/skus")
    assert api.status_code == 401 and api.headers["www-authenticate"].startswith("Bearer")
    assert (
        anonymous.get(
            f"/api/v1/shops/{shop}/skus", headers={"Authorization": "Bearer x"}
        ).status_code
        == 401
    )
    with (
        pytest.raises(InvalidStatus) as refused,
        ws.connect(f"ws://127.0.0.1:{stack.web_port}/ws/shops/{shop}"),
    ):
        pass
    assert refused.value.response.status_code == 403
    # A login form posted from elsewhere (no double-submit cookie) is refused.
    forged = anonymous.post(
        "/login", data={"email": "a@example.com", "password": "x", "csrf_token": "x"}
    )
    assert forged.status_code == 403


def test_two_accounts_never_see_each_others_shops(stack: Stack) -> None:
    alice, alice_email = sign_up(stack)
    _, bob_email = sign_up(stack)
    alices_shop, bobs_shop = new_shop(stack), new_shop(stack)
    grant(stack, alices_shop, user_id=user_id(stack, alice_email))
    grant(stack, bobs_shop, user_id=user_id(stack, bob_email))
    deliver_ok(stack, product_hook(bobs_shop, make_variant("BOBS-SECRET")))

    assert alice.get(f"/shops/{alices_shop}").status_code == 200
    for path in (
        f"/shops/{bobs_shop}",
        f"/shops/{bobs_shop}/rows",
        f"/shops/{bobs_shop}/sync",
        f"/api/v1/shops/{bobs_shop}/skus",
        f"/api/v1/shops/{bobs_shop}/sync",
        f"/api/v1/shops/{bobs_shop}/members",
        "/shops/not-even-a-shop.myshopify.com",
    ):
        answer = alice.get(path)
        assert answer.status_code == 404, path
        assert "BOBS-SECRET" not in answer.text
    index = alice.get("/")
    assert bobs_shop not in index.text
    # Alice's session cookie on Bob's feed is refused before any message.
    with (
        pytest.raises(InvalidStatus) as refused,
        ws.connect(
            f"ws://127.0.0.1:{stack.web_port}/ws/shops/{bobs_shop}",
            additional_headers={"Cookie": f"sp_session={alice.cookies['sp_session']}"},
        ),
    ):
        pass
    assert refused.value.response.status_code == 403
    # … and a page of another site cannot open Alice's own feed with her cookie.
    with (
        pytest.raises(InvalidStatus),
        ws.connect(
            f"ws://127.0.0.1:{stack.web_port}/ws/shops/{alices_shop}",
            additional_headers={
                "Cookie": f"sp_session={alice.cookies['sp_session']}",
                "Origin": "https://evil.example",
            },
        ),
    ):
        pass
    with ws.connect(
        f"ws://127.0.0.1:{stack.web_port}/ws/shops/{alices_shop}",
        additional_headers={"Cookie": f"sp_session={alice.cookies['sp_session']}"},
    ) as feed:
        assert '"hello"' in str(feed.recv(timeout=10))


def test_one_account_holds_a_bounded_number_of_feeds_that_read_no_big_messages(
    stack: Stack,
) -> None:
    owner, email = sign_up(stack)
    shop = new_shop(stack)
    grant(stack, shop, user_id=user_id(stack, email))

    def open_feed() -> ws.ClientConnection:
        return ws.connect(
            f"ws://127.0.0.1:{stack.web_port}/ws/shops/{shop}",
            additional_headers={"Cookie": f"sp_session={owner.cookies['sp_session']}"},
        )

    allowed = Settings().websocket_feeds_per_account
    feeds = [open_feed() for _ in range(allowed)]
    try:
        assert all('"hello"' in str(feed.recv(timeout=10)) for feed in feeds)
        with open_feed() as one_too_many, pytest.raises(ConnectionClosed) as refused:
            one_too_many.recv(timeout=10)
        assert refused.value.rcvd is not None and refused.value.rcvd.code == 4429
        # A closed feed frees its place.
        feeds.pop().close()
        with open_feed() as again:
            assert '"hello"' in str(again.recv(timeout=10))
            # The feed reads nothing from its client: a large message closes it (1009).
            again.send("x" * 100_000)
            with pytest.raises(ConnectionClosed) as too_big:
                again.recv(timeout=10)
            assert too_big.value.rcvd is not None and too_big.value.rcvd.code == 1009
    finally:
        for feed in feeds:
            feed.close()


def test_viewers_read_owners_change_and_session_writes_need_the_csrf_token(stack: Stack) -> None:
    owner, owner_email = sign_up(stack)
    viewer, viewer_email = sign_up(stack)
    shop = new_shop(stack)
    grant(stack, shop, user_id=user_id(stack, owner_email))
    invite = {"email": viewer_email, "role": "viewer"}

    assert owner.post(f"/api/v1/shops/{shop}/members", json=invite).status_code == 403
    token = session_csrf(owner, shop)
    invited = owner.post(
        f"/api/v1/shops/{shop}/members", json=invite, headers={"X-CSRF-Token": token}
    )
    assert invited.status_code == 200, invited.text
    path = invitation_link(stack, viewer_email)
    accepted = viewer.post(path, data={"csrf_token": csrf_of(viewer.get(path).text)})
    assert accepted.status_code == 303, accepted.text

    assert viewer.get(f"/shops/{shop}").status_code == 200
    assert viewer.get(f"/api/v1/shops/{shop}/skus").status_code == 200
    refused = viewer.post(
        f"/api/v1/shops/{shop}/members",
        json={"email": viewer_email, "role": "owner"},
        headers={"X-CSRF-Token": session_csrf(viewer, shop)},
    )
    assert refused.status_code == 403
    roles = {
        m["email"]: m["role"] for m in owner.get(f"/api/v1/shops/{shop}/members").json()["members"]
    }
    assert roles[owner_email] == "owner" and roles[viewer_email] == "viewer"


def test_api_tokens_act_for_their_user_and_a_read_only_one_never_writes(stack: Stack) -> None:
    client, email = sign_up(stack)
    shop = new_shop(stack)
    grant(stack, shop, user_id=user_id(stack, email))
    csrf = session_csrf(client, shop)
    made = client.post(
        "/api/v1/tokens", json={"name": "script", "read_only": True}, headers={"X-CSRF-Token": csrf}
    )
    assert made.status_code == 201, made.text
    token = made.json()["token"]
    # Only its hash is stored.
    assert (
        scalar(stack, "SELECT count(*) FROM api_tokens WHERE token_hash = %s", digest(token)) == 1
    )
    bearer = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=stack.base_url, timeout=10, headers=bearer) as script:
        assert script.get(f"/api/v1/shops/{shop}/skus").status_code == 200
        assert script.get(f"/api/v1/shops/{new_shop(stack)}/skus").status_code == 404
        write = script.post(f"/api/v1/shops/{shop}/members", json={"email": email, "role": "owner"})
        assert write.status_code == 403 and "read-only" in write.text
        assert script.post("/api/v1/tokens", json={"name": "more"}).status_code == 403
        with ws.connect(
            f"ws://127.0.0.1:{stack.web_port}/ws/shops/{shop}", additional_headers=bearer
        ) as feed:
            assert '"hello"' in str(feed.recv(timeout=10))
    # A full token writes without a CSRF token: no browser sends it on its own.
    grant(stack, shop)
    full = httpx.post(
        f"{stack.base_url}/api/v1/shops/{shop}/members",
        json={"email": email, "role": "owner"},
        headers=auth(stack),
    )
    assert full.status_code == 200, full.text


def test_failed_logins_are_limited_without_locking_the_owner_out(stack: Stack) -> None:
    owner, email = sign_up(stack)  # this browser has signed in to the account

    def browser_at(address: str) -> tuple[httpx.Client, str]:
        """A browser connecting from another loopback address, and its login form's token."""
        client = httpx.Client(
            base_url=stack.base_url,
            timeout=10,
            transport=httpx.HTTPTransport(local_address=address),
        )
        return client, csrf_of(client.get("/login").text)

    def log_in(client: httpx.Client, token: str, password: str) -> httpx.Response:
        return client.post(
            "/login", data={"email": email, "password": password, "csrf_token": token}
        )

    # Five wrong passwords from one address stop that address guessing this account.
    guesser, token = browser_at("127.0.0.2")
    for _ in range(5):
        assert log_in(guesser, token, "Wrong-Pass-123").status_code == 401
    blocked = log_in(guesser, token, PASSWORD)
    assert blocked.status_code == 429 and "Retry-After" in blocked.headers
    assert "sp_session" not in guesser.cookies
    # They do not lock the account: its owner signs in from anywhere else.
    elsewhere, token = browser_at("127.0.0.3")
    assert log_in(elsewhere, token, PASSWORD).status_code == 303

    # Guessing spread over many addresses: fifty failures in all close the account to every
    # browser that has not signed in to it before, and not to one that has.
    for n in range(4, 13):
        spread, token = browser_at(f"127.0.0.{n}")
        for _ in range(5):
            assert log_in(spread, token, "Wrong-Pass-123").status_code == 401
    stranger, token = browser_at("127.0.0.13")
    assert log_in(stranger, token, PASSWORD).status_code == 429
    assert log_in(owner, csrf_of(owner.get("/login").text), PASSWORD).status_code == 303
    # The mark is signed for its account: a browser known to another account is a stranger.
    other, _ = sign_up(stack)
    assert "sp_known" in other.cookies
    assert log_in(other, csrf_of(other.get("/login").text), PASSWORD).status_code == 429

    # Guesses sent all at once are counted as they come: five are checked, not eleven.
    _, target = sign_up(stack)
    racer, token = browser_at("127.0.0.14")
    wrong = {"email": target, "password": "Wrong-Pass-123", "csrf_token": token}
    with ThreadPoolExecutor(30) as parallel:
        answers = list(parallel.map(lambda _: racer.post("/login", data=wrong), range(30)))
    codes = [answer.status_code for answer in answers]
    assert sorted(codes) == [401] * 5 + [429] * 25, codes


def test_an_email_longer_than_any_address_is_refused_not_a_500(stack: Stack) -> None:
    client = httpx.Client(base_url=stack.base_url, timeout=10)
    token = csrf_of(client.get("/login").text)
    # Random, so PostgreSQL cannot compress it into an index row.
    huge = "".join(random.choices(string.ascii_letters, k=3000)) + "@example.com"
    login = client.post("/login", data={"email": huge, "password": PASSWORD, "csrf_token": token})
    assert login.status_code == 401, login.text
    forgot = client.post("/password/forgot", data={"email": huge, "csrf_token": token})
    assert forgot.status_code == 200 and "If an account uses that address" in forgot.text


def test_a_password_reset_mails_a_single_use_link_that_ends_old_sessions(stack: Stack) -> None:
    old_browser, email = sign_up(stack)
    client = httpx.Client(base_url=stack.base_url, timeout=10)
    form = client.get("/password/forgot")
    asked = client.post("/password/forgot", data={"email": email, "csrf_token": csrf_of(form.text)})
    assert asked.status_code == 200 and "link to choose a new password" in asked.text
    # Unknown addresses get the same answer (nobody learns who has an account) and no mail.
    unknown = client.post(
        "/password/forgot", data={"email": "nobody@example.com", "csrf_token": csrf_of(form.text)}
    )
    assert unknown.text.count("link to choose a new password") == 1

    mail = MAILBOX.wait_for(email, subject="Choose a new")
    assert mail["Subject"] == "Choose a new Stockpulse password"
    text = mail.get_body(preferencelist=("plain",)).get_content()
    html = mail.get_body(preferencelist=("html",)).get_content()
    link = re.search(r"(http\S+/password/reset\?token=\S+)", text)
    assert link and link.group(1) in html
    path = link.group(1).removeprefix(stack.base_url)

    page = client.get(path)
    assert page.status_code == 200
    weak = client.post(
        "/password/reset",
        data={
            "token": path.split("token=")[1],
            "password": "weak",
            "csrf_token": csrf_of(page.text),
        },
    )
    assert weak.status_code == 400
    new_password = "Another-Horse-77"
    done = client.post(
        "/password/reset",
        data={
            "token": path.split("token=")[1],
            "password": new_password,
            "csrf_token": csrf_of(page.text),
        },
    )
    assert done.status_code == 303 and done.headers["location"] == "/login?reset=true"
    assert old_browser.get("/").status_code == 303  # the sessions of the old password ended
    again = client.get(path)
    assert again.status_code == 400 and "expired or was used" in again.text  # single use
    login = client.get("/login")
    signed_in = client.post(
        "/login", data={"email": email, "password": new_password, "csrf_token": csrf_of(login.text)}
    )
    assert signed_in.status_code == 303


def test_the_openapi_schema_describes_the_json_api_and_its_bearer_tokens(stack: Stack) -> None:
    schema = httpx.get(f"{stack.base_url}/schema/openapi.json", timeout=10).json()
    paths = set(schema["paths"])
    assert "/api/v1/shops/{shop_domain}/skus" in paths
    assert "/api/v1/shops/{shop_domain}/settings" in paths
    assert not any(p.startswith(("/login", "/signup", "/shops/")) for p in paths)
    assert schema["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"


def test_sign_up_answers_the_same_whether_or_not_the_address_has_an_account(
    stack: Stack,
) -> None:
    """An outside test found "An account with this email exists already" on sign-up: anyone
    could learn who has an account, which the password-reset page is careful not to tell."""
    _, taken = sign_up(stack)
    free = f"u{uuid.uuid4().hex[:10]}@example.com"
    client = from_own_address(stack)
    csrf = csrf_of(client.get("/signup").text)
    other_password = "Other-Horse-93"
    answers = {
        address: client.post(
            "/signup", data={"email": address, "password": other_password, "csrf_token": csrf}
        )
        for address in (taken.upper(), free)
    }
    for answer in answers.values():
        assert answer.status_code == 200 and "sp_session" not in answer.cookies
    same, new = (answers[a].text.replace(a, "ADDRESS") for a in (taken.upper(), free))
    assert same == new
    assert dict(answers[taken.upper()].cookies) == dict(answers[free].cookies)

    # The owner of the taken address is told, with the way in; their account is unchanged.
    note = MAILBOX.wait_for(taken, subject="Someone tried to sign up")
    text = note.get_body(preferencelist=("plain",)).get_content()
    assert f"{stack.base_url}/login" in text and f"{stack.base_url}/password/forgot" in text
    assert scalar(stack, "SELECT count(*) FROM users WHERE lower(email) = lower(%s)", taken) == 1
    log_in(httpx.Client(base_url=stack.base_url, timeout=10), taken)
    assert verification_link(stack, free)  # the new address gets its confirmation link


def test_sign_up_answers_before_a_slow_mail_server_has_taken_the_mail(stack: Stack) -> None:
    """Sign-up waited for the mail server: a slow one held the page (past the request
    deadline, a 503 after the account was made) and timed who had an account."""
    email = f"u{uuid.uuid4().hex[:10]}@example.com"
    client = from_own_address(stack)
    csrf = csrf_of(client.get("/signup").text)
    MAILBOX.on_mail = lambda: time.sleep(3)
    try:
        started = time.monotonic()
        answer = client.post(
            "/signup", data={"email": email, "password": PASSWORD, "csrf_token": csrf}
        )
        took = time.monotonic() - started
        assert answer.status_code == 200 and "Check your email" in answer.text
        assert took < 2, f"sign-up took {took:.1f} s with the mail server taking 3 s"
        assert verification_link(stack, email)  # the mail still goes, after the answer
    finally:
        MAILBOX.on_mail = None


def test_a_verification_link_works_once_and_only_until_it_expires(stack: Stack) -> None:
    client, email = sign_up(stack, verify=False)  # logging in needs no confirmed address
    verified_at = "SELECT email_verified_at FROM users WHERE lower(email) = lower(%s)"
    home = client.get("/")
    assert home.status_code == 200 and "Send the link again" in home.text
    path = verification_link(stack, email)
    anonymous = httpx.Client(base_url=stack.base_url, timeout=10)
    page = anonymous.get(path)
    # Opening the link (a mail scanner does) changes nothing; the button does.
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert anonymous.get(path).status_code == 200
    assert scalar(stack, verified_at, email) is None
    token = path.split("token=")[1]
    forged = anonymous.post("/email/verify", data={"token": token, "csrf_token": "x"})
    assert forged.status_code == 403 and scalar(stack, verified_at, email) is None
    # The mailbox alone does not confirm: the owner of an address clicking a link they did not
    # expect would vouch for whoever made the account. Its password is asked for too.
    csrf_token = csrf_of(page.text)
    stranger = anonymous.post(
        "/email/verify", data={"token": token, "csrf_token": csrf_token, "password": "Guess-42-abc"}
    )
    assert stranger.status_code == 401 and scalar(stack, verified_at, email) is None
    done = anonymous.post(
        "/email/verify", data={"token": token, "csrf_token": csrf_token, "password": PASSWORD}
    )
    assert done.status_code == 303 and done.headers["location"] == "/login?verified=true"
    assert scalar(stack, verified_at, email) is not None
    assert "Send the link again" not in client.get("/").text
    again = anonymous.get(path)
    assert again.status_code == 400 and "expired or was used" in again.text
    spent = anonymous.post(
        "/email/verify", data={"token": token, "csrf_token": csrf_token, "password": PASSWORD}
    )
    assert spent.status_code == 400

    # A link asked for again from the notice, left past its day, is refused.
    late, late_email = sign_up(stack, verify=False)
    csrf = csrf_of(late.get("/").text)
    assert late.post("/email/verify/resend").status_code == 403  # CSRF
    resent = late.post("/email/verify/resend", data={"csrf_token": csrf})
    assert resent.status_code == 200 and f"on its way to {late_email}" in resent.text
    late_path = verification_link(stack, late_email)
    scalar(
        stack,
        "UPDATE email_verifications SET expires_at = now() - interval '1 second'"
        " WHERE token_hash = %s RETURNING 1",
        digest(late_path.split("token=")[1]),
    )
    expired = anonymous.get(late_path)
    assert expired.status_code == 400 and "expired or was used" in expired.text
    form = anonymous.post(
        "/email/verify",
        data={
            "token": late_path.split("token=")[1],
            "csrf_token": csrf_of(page.text),
            "password": PASSWORD,
        },
    )
    assert form.status_code == 400 and scalar(stack, verified_at, late_email) is None
    # Mail to one address is limited as password resets are: 5 in 15 minutes.
    statuses = [
        late.post("/email/verify/resend", data={"csrf_token": csrf}).status_code for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]


def test_a_password_reset_by_link_confirms_the_address_and_ends_a_squatters_access(
    stack: Stack,
) -> None:
    """Someone signs up with another person's address first (they cannot confirm it), and
    makes an API token. When the address's owner takes the account back with a reset link,
    the address is confirmed, and the squatter's sessions and tokens stop working."""
    squatter, email = sign_up(stack, verify=False)
    csrf = csrf_of(squatter.get("/account/tokens").text)
    made = squatter.post("/api/v1/tokens", json={"name": "kept"}, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201, made.text
    bearer = {"Authorization": f"Bearer {made.json()['token']}"}
    assert httpx.get(f"{stack.base_url}/api/v1/tokens", headers=bearer).status_code == 200

    owner = reset_password_by_mail(stack, email, "Owners-Horse-51")
    assert scalar(stack, "SELECT email_verified_at IS NOT NULL FROM users WHERE email = %s", email)
    assert squatter.get("/").status_code == 303
    assert httpx.get(f"{stack.base_url}/api/v1/tokens", headers=bearer).status_code == 401
    log_in(owner, email, "Owners-Horse-51")
    assert "Send the link again" not in owner.get("/").text


def test_a_login_or_a_token_racing_a_password_reset_does_not_outlive_it(stack: Stack) -> None:
    """An outside tester raced a reset with logins and token requests under the old password:
    some sessions and tokens outlived it. A reset holds the account until it commits."""
    client, email = sign_up(stack)
    uid = user_id(stack, email)
    csrf = csrf_of(client.get("/account/tokens").text)
    other = from_own_address(stack)
    login_csrf = csrf_of(other.get("/login").text)
    with psycopg.connect(stack.database_url) as reset:  # a reset, until it commits
        reset.execute(
            "SELECT pg_advisory_xact_lock(hashtext('stockpulse.account'), hashtext(%s))",
            (str(uid),),
        )
        with ThreadPoolExecutor(2) as racing:
            login = racing.submit(
                other.post,
                "/login",
                data={"email": email, "password": PASSWORD, "csrf_token": login_csrf},
            )
            token = racing.submit(
                client.post,
                "/api/v1/tokens",
                json={"name": "raced"},
                headers={"X-CSRF-Token": csrf},
            )
            wait_until(
                lambda: (
                    scalar(
                        stack,
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
                    )
                    >= 2
                ),
                what="the login and the token request waiting for the reset",
            )
            reset.execute(
                "UPDATE users SET password_hash = %s WHERE id = %s",
                (hash_password("Another-Horse-77"), uid),
            )
            reset.execute("DELETE FROM user_sessions WHERE user_id = %s", (uid,))
            reset.commit()
            assert login.result().status_code == 401
            assert token.result().status_code == 401
    assert scalar(stack, "SELECT count(*) FROM api_tokens WHERE user_id = %s", uid) == 0
    assert scalar(stack, "SELECT count(*) FROM user_sessions WHERE user_id = %s", uid) == 0


def test_a_reset_cancels_the_accounts_other_reset_links(stack: Stack) -> None:
    _, email = sign_up(stack)
    client = from_own_address(stack)
    form = csrf_of(client.get("/password/forgot").text)
    for _ in range(2):
        client.post("/password/forgot", data={"email": email, "csrf_token": form})
    links = [
        re.search(r"/password/reset\?token=(\S+)", m.get_body(("plain",)).get_content())
        for m in MAILBOX.wait_for_all(email, count=2, subject="Choose a new")
    ]
    older, newer = (link.group(1) for link in links if link)
    page = csrf_of(client.get(f"/password/reset?token={newer}").text)
    used = client.post(
        "/password/reset", data={"token": newer, "password": PASSWORD + "x", "csrf_token": page}
    )
    assert used.status_code == 303
    stale = client.post(
        "/password/reset", data={"token": older, "password": "Stale-Horse-88", "csrf_token": page}
    )
    assert stale.status_code == 400 and "expired or was used" in stale.text
