"""API tokens managed from the "API tokens" page, and shop invitations: an owner invites an
address, which gets a single-use link that carries through sign-up or login, whether or not
it has an account; inviting a member again changes their role; viewers cannot invite; a shop
keeps an owner."""

from __future__ import annotations

import asyncio
import re
import uuid

import httpx
import pytest
import websockets

from connectors.db.accounts import digest
from ops.account_tools import assign
from ops.stack import Stack
from tests.support import (
    from_own_address,
    grant,
    invitation_link,
    new_shop,
    reset_password_by_mail,
    scalar,
    verify_email,
)

PASSWORD = "Correct-Horse-42"


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page[:2000]
    return found.group(1)


def new_email() -> str:
    return f"u{uuid.uuid4().hex[:10]}@example.com"


def sign_up(stack: Stack, email: str | None = None, *, verify: bool = True) -> httpx.Client:
    """A browser-like client of a new account: signed up, its address confirmed from the mail
    (unless not ``verify``), then logged in."""
    email = email or new_email()
    client = signed_up(stack, email)
    if verify:
        assert verify_email(stack, email, PASSWORD, client).status_code == 303
    log_in(client, email)
    return client


def signed_up(stack: Stack, email: str, invitation: str = "") -> httpx.Client:
    """A client that has signed up as a new account (perhaps through an invitation's link):
    not signed in, its confirmation link mailed."""
    client = from_own_address(stack)
    form = client.get("/signup", params={"invitation": invitation} if invitation else None)
    data = {"email": email, "password": PASSWORD, "csrf_token": csrf_of(form.text)}
    if invitation:
        data["invitation"] = invitation
    answer = client.post("/signup", data=data)
    assert answer.status_code == 200 and "Check your email" in answer.text, answer.text
    assert "sp_session" not in client.cookies
    return client


def log_in(client: httpx.Client, email: str, invitation: str = "") -> httpx.Response:
    """Log in through the form (carrying ``invitation``); where it sent the client."""
    form = client.get("/login", params={"invitation": invitation} if invitation else None)
    data = {"email": email, "password": PASSWORD, "csrf_token": csrf_of(form.text)}
    if invitation:
        data["invitation"] = invitation
    answer = client.post("/login", data=data)
    assert answer.status_code == 303, answer.text
    return answer


def user_id(stack: Stack, email: str) -> int:
    return scalar(stack, "SELECT id FROM users WHERE lower(email) = lower(%s)", email)


def role(stack: Stack, shop: str, email: str) -> str | None:
    return scalar(
        stack,
        "SELECT m.role FROM shop_members m JOIN users u ON u.id = m.user_id"
        " WHERE m.shop = %s AND lower(u.email) = lower(%s)",
        shop,
        email,
    )


def owned_shop(stack: Stack) -> tuple[httpx.Client, str, str]:
    """A new account owning a new shop: its client, email and the shop."""
    email = new_email()
    client = sign_up(stack, email)
    shop = new_shop(stack)
    grant(stack, shop, user_id=user_id(stack, email))
    # The tests' own account owns every new_shop too; keep this one to a single owner.
    scalar(
        stack,
        "DELETE FROM shop_members WHERE shop = %s AND user_id <> %s RETURNING 1",
        shop,
        user_id(stack, email),
    )
    return client, email, shop


def test_a_token_made_on_the_page_works_on_the_api_until_revoked(stack: Stack) -> None:
    client, _, shop = owned_shop(stack)
    page = client.get("/account/tokens")
    assert page.status_code == 200 and "No token yet" in page.text
    assert 'href="/account/tokens"' in client.get(f"/shops/{shop}").text  # in the header
    assert client.post("/account/tokens", data={"name": "no csrf"}).status_code == 403

    made = client.post(
        "/account/tokens", data={"name": "nightly export", "csrf_token": csrf_of(page.text)}
    )
    assert made.status_code == 200 and made.headers["cache-control"] == "no-store"
    secret = re.search(r'class="secret" type="text" readonly value="([^"]+)"', made.text)
    assert secret and "shown only this once" in made.text
    token = secret.group(1)
    assert scalar(stack, "SELECT count(*) FROM api_tokens WHERE token_hash = %s", digest(token))
    assert token not in client.get("/account/tokens").text  # shown once

    bearer = httpx.Client(
        base_url=stack.base_url, timeout=10, headers={"Authorization": f"Bearer {token}"}
    )
    assert bearer.get(f"/api/v1/shops/{shop}/skus").status_code == 200
    listed = bearer.get("/api/v1/tokens")
    assert listed.status_code == 200 and token not in listed.text
    (mine,) = listed.json()["tokens"]
    assert mine["name"] == "nightly export" and mine["read_only"] is False
    assert mine["last_used_at"] is not None
    # A token neither mints nor revokes tokens: a leaked one cannot lock its user out.
    assert bearer.delete(f"/api/v1/tokens/{mine['id']}").status_code == 403

    page = client.get("/account/tokens")
    assert "<td>nightly export</td>" in page.text and "read and write" in page.text
    revoked = client.post(
        f"/account/tokens/{mine['id']}/revoke", data={"csrf_token": csrf_of(page.text)}
    )
    assert revoked.status_code == 303
    assert bearer.get(f"/api/v1/shops/{shop}/skus").status_code == 401  # at once
    assert "<td>nightly export</td>" not in client.get("/account/tokens").text

    # The JSON equivalents, from the session.
    csrf = {"X-CSRF-Token": csrf_of(page.text)}
    second = client.post("/api/v1/tokens", json={"name": "ci", "read_only": True}, headers=csrf)
    assert second.status_code == 201
    (ci,) = client.get("/api/v1/tokens").json()["tokens"]
    assert ci["read_only"] is True and "token" not in ci
    assert client.delete(f"/api/v1/tokens/{ci['id']}").status_code == 403  # no CSRF token
    assert client.delete(f"/api/v1/tokens/{ci['id']}", headers=csrf).status_code == 204
    assert client.delete(f"/api/v1/tokens/{ci['id']}", headers=csrf).status_code == 404
    assert (
        httpx.get(
            f"{stack.base_url}/api/v1/tokens",
            headers={"Authorization": f"Bearer {second.json()['token']}"},
        ).status_code
        == 401
    )


def test_another_users_token_is_unknown(stack: Stack) -> None:
    alice, bob = sign_up(stack), sign_up(stack)
    bob_csrf = {"X-CSRF-Token": csrf_of(bob.get("/account/tokens").text)}
    token = bob.post("/api/v1/tokens", json={"name": "bob's"}, headers=bob_csrf).json()["token"]
    (bobs,) = bob.get("/api/v1/tokens").json()["tokens"]
    page = alice.get("/account/tokens")
    assert "bob&#39;s" not in page.text and "bob's" not in page.text
    assert alice.get("/api/v1/tokens").json()["tokens"] == []
    alice_csrf = csrf_of(page.text)
    assert (
        alice.delete(
            f"/api/v1/tokens/{bobs['id']}", headers={"X-CSRF-Token": alice_csrf}
        ).status_code
        == 404
    )
    assert (
        alice.post(
            f"/account/tokens/{bobs['id']}/revoke", data={"csrf_token": alice_csrf}
        ).status_code
        == 404
    )
    still = httpx.get(
        f"{stack.base_url}/api/v1/tokens", headers={"Authorization": f"Bearer {token}"}
    )
    assert still.status_code == 200


def test_inviting_a_new_address_mails_a_single_use_link_that_signing_up_accepts(
    stack: Stack,
) -> None:
    owner, owner_email, shop = owned_shop(stack)
    page = owner.get(f"/shops/{shop}/members")
    assert page.status_code == 200 and "Invite someone" in page.text
    invitee = new_email()
    assert (
        owner.post(f"/shops/{shop}/members", data={"email": invitee, "role": "viewer"}).status_code
        == 403
    )  # no CSRF token
    sent = owner.post(
        f"/shops/{shop}/members",
        data={"email": invitee, "role": "viewer", "csrf_token": csrf_of(page.text)},
    )
    assert sent.status_code == 200 and f"Invitation sent to {invitee}" in sent.text
    assert invitee in sent.text  # listed as waiting
    path = invitation_link(stack, invitee)
    token = path.rsplit("/", 1)[1]
    # Only the hash is stored, with who invited, the role and a week to live.
    row = scalar(
        stack,
        "SELECT array[role, invited_by::text, (expires_at - created_at)::text]"
        " FROM shop_invitations WHERE token_hash = %s",
        digest(token),
    )
    assert row == ["viewer", str(user_id(stack, owner_email)), "7 days"]
    assert role(stack, shop, invitee) is None

    anonymous = from_own_address(stack)
    landing = anonymous.get(path)
    assert landing.status_code == 200
    assert f"/signup?invitation={token}" in landing.text
    signup_form = anonymous.get(f"/signup?invitation={token}")
    assert f'value="{invitee}"' in signup_form.text
    # Signing up through the link with another address is refused, saying why: that account
    # could not accept it, and would have been made without a word about the invitation.
    other = new_email()
    refused = anonymous.post(
        "/signup",
        data={
            "email": other,
            "password": PASSWORD,
            "csrf_token": csrf_of(signup_form.text),
            "invitation": token,
        },
    )
    assert refused.status_code == 400 and f"This invitation is for {invitee}" in refused.text
    assert scalar(stack, "SELECT count(*) FROM users WHERE lower(email) = lower(%s)", other) == 0
    # Signing up through the link makes the account and mails a confirmation link that
    # leads back to the invitation; logging in there accepts it.
    joined = signed_up(stack, invitee, invitation=token)
    assert role(stack, shop, invitee) is None
    confirmed = verify_email(stack, invitee, PASSWORD, joined)
    assert confirmed.status_code == 303 and confirmed.headers["location"] == path
    assert "log in</a> as" in joined.get(path).text
    assert log_in(joined, invitee, invitation=token).headers["location"] == f"/shops/{shop}"
    assert role(stack, shop, invitee) == "viewer"
    assert joined.get(f"/shops/{shop}").status_code == 200

    # Spent: the link no longer works, signed in or not, and accepts nothing.
    again = anonymous.get(path)
    assert again.status_code == 404 and "expired, was withdrawn or was used" in again.text
    someone = sign_up(stack)
    refused = someone.post(path, data={"csrf_token": csrf_of(someone.get("/").text)})
    assert refused.status_code == 404
    assert someone.get(f"/shops/{shop}").status_code == 404


def test_an_invitation_is_accepted_through_login_or_by_a_signed_in_account(
    stack: Stack,
) -> None:
    owner, _, shop = owned_shop(stack)
    csrf = {"X-CSRF-Token": csrf_of(owner.get(f"/shops/{shop}/members").text)}
    first, second = new_email(), new_email()
    for email, role_name in ((first, "owner"), (second, "viewer")):
        answer = owner.post(
            f"/api/v1/shops/{shop}/members", json={"email": email, "role": role_name}, headers=csrf
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "invited" and answer.json()["mailed"] is True
    listed = owner.get(f"/api/v1/shops/{shop}/members").json()
    assert {i["email"] for i in listed["invitations"]} == {first, second}

    # The first signs up on their own, then logs in through the link.
    first_token = invitation_link(stack, first).rsplit("/", 1)[1]
    sign_up(stack, first)
    browser = httpx.Client(base_url=stack.base_url, timeout=10)
    login = browser.get(f"/login?invitation={first_token}")
    assert f'name="invitation" value="{first_token}"' in login.text
    entered = browser.post(
        "/login",
        data={
            "email": first,
            "password": PASSWORD,
            "csrf_token": csrf_of(login.text),
            "invitation": first_token,
        },
    )
    assert entered.status_code == 303 and entered.headers["location"] == f"/shops/{shop}"
    assert role(stack, shop, first) == "owner"

    # The second, signed in already, confirms on the page the link opens.
    second_path = invitation_link(stack, second)
    signed_in = sign_up(stack, second)
    landing = signed_in.get(second_path)
    assert landing.status_code == 200 and f"Accept as {second}" in landing.text
    assert signed_in.post(second_path).status_code == 403  # CSRF
    assert role(stack, shop, second) is None
    # Another account holding the link (forwarded, or read off a mail scanner's log) is told
    # whose it is and cannot spend it.
    stranger_email = new_email()
    stranger = sign_up(stack, stranger_email)
    shown = stranger.get(second_path)
    assert shown.status_code == 200 and f"This invitation is for <strong>{second}" in shown.text
    assert "Accept as" not in shown.text
    taken = stranger.post(second_path, data={"csrf_token": csrf_of(stranger.get("/").text)})
    assert taken.status_code == 403 and role(stack, shop, stranger_email) is None
    # Logging in through the link as that other account lands on the page that says so.
    second_token = second_path.rsplit("/", 1)[1]
    elsewhere = httpx.Client(base_url=stack.base_url, timeout=10)
    login = elsewhere.get(f"/login?invitation={second_token}")
    entered = elsewhere.post(
        "/login",
        data={
            "email": stranger_email,
            "password": PASSWORD,
            "csrf_token": csrf_of(login.text),
            "invitation": second_token,
        },
    )
    assert entered.status_code == 303, entered.text
    assert entered.headers["location"] == f"/invitations/{second_token}"
    assert "This invitation is for" in elsewhere.get(entered.headers["location"]).text
    assert role(stack, shop, stranger_email) is None
    accepted = signed_in.post(second_path, data={"csrf_token": csrf_of(landing.text)})
    assert accepted.status_code == 303 and accepted.headers["location"] == f"/shops/{shop}"
    assert role(stack, shop, second) == "viewer"
    assert owner.get(f"/api/v1/shops/{shop}/members").json()["invitations"] == []


def test_an_existing_account_is_invited_and_a_members_role_changes_at_once(
    stack: Stack,
) -> None:
    """An existing account was added outright: it got a shop it never asked for, and
    "added" against "invited" told the owner which addresses have an account."""
    owner, _, shop = owned_shop(stack)
    member_email = new_email()
    member = sign_up(stack, member_email)
    page = owner.get(f"/shops/{shop}/members")
    csrf = csrf_of(page.text)
    answers = [
        owner.post(
            f"/api/v1/shops/{shop}/members",
            json={"email": email, "role": "viewer"},
            headers={"X-CSRF-Token": csrf},
        ).json()
        for email in (member_email.upper(), new_email())
    ]
    assert [(a["status"], a["mailed"]) for a in answers] == [("invited", True)] * 2, answers
    assert [sorted(a) for a in answers] == [sorted(answers[1])] * 2  # the same shape
    assert role(stack, shop, member_email) is None
    assert member.get(f"/shops/{shop}/members").status_code == 404
    path = invitation_link(stack, member_email)
    landing = member.get(path)
    accepted = member.post(path, data={"csrf_token": csrf_of(landing.text)})
    assert accepted.status_code == 303 and role(stack, shop, member_email) == "viewer"
    assert member.get(f"/shops/{shop}/members").status_code == 200

    # A pending invitation of the member's is withdrawn by a role change: accepting it later
    # would undo the change.
    scalar(
        stack,
        "INSERT INTO shop_invitations (token_hash, shop, email, role, expires_at)"
        " VALUES (%s, %s, %s, 'owner', now() + interval '1 day') RETURNING 1",
        digest(uuid.uuid4().hex),
        shop,
        member_email,
    )
    promoted = owner.post(
        f"/shops/{shop}/members",
        data={"email": member_email, "role": "owner", "csrf_token": csrf},
    )
    assert promoted.status_code == 200 and "is now an owner" in promoted.text
    assert role(stack, shop, member_email) == "owner"
    demoted = owner.post(
        f"/api/v1/shops/{shop}/members",
        json={"email": member_email, "role": "viewer"},
        headers={"X-CSRF-Token": csrf},
    ).json()
    assert demoted["status"] == "changed" and role(stack, shop, member_email) == "viewer"
    pending = (
        "SELECT count(*) FROM shop_invitations WHERE shop = %s AND lower(email) = lower(%s)"
        " AND accepted_at IS NULL"
    )
    assert scalar(stack, pending, shop, member_email) == 0
    bad = owner.post(
        f"/api/v1/shops/{shop}/members",
        json={"email": "not an address", "role": "viewer"},
        headers={"X-CSRF-Token": csrf},
    )
    assert bad.status_code == 400


def test_viewers_see_the_members_but_cannot_invite_and_strangers_get_404(stack: Stack) -> None:
    _, owner_email, shop = owned_shop(stack)
    viewer_email = new_email()
    viewer = sign_up(stack, viewer_email)
    grant(stack, shop, "viewer", user_id=user_id(stack, viewer_email))
    page = viewer.get(f"/shops/{shop}/members")
    assert page.status_code == 200 and owner_email in page.text
    assert "Invite someone" not in page.text and "Remove" not in page.text
    csrf = csrf_of(page.text)
    invited = new_email()
    form = viewer.post(
        f"/shops/{shop}/members", data={"email": invited, "role": "owner", "csrf_token": csrf}
    )
    assert form.status_code == 403
    api = viewer.post(
        f"/api/v1/shops/{shop}/members",
        json={"email": invited, "role": "owner"},
        headers={"X-CSRF-Token": csrf},
    )
    assert api.status_code == 403
    assert "invitations" not in viewer.get(f"/api/v1/shops/{shop}/members").json()
    assert scalar(stack, "SELECT count(*) FROM shop_invitations WHERE shop = %s", shop) == 0

    stranger = sign_up(stack)
    stranger_csrf = csrf_of(stranger.get("/account/tokens").text)
    assert stranger.get(f"/shops/{shop}/members").status_code == 404
    assert (
        stranger.post(
            f"/shops/{shop}/members",
            data={"email": invited, "role": "owner", "csrf_token": stranger_csrf},
        ).status_code
        == 404
    )


def test_owners_remove_members_but_never_the_last_owner(stack: Stack) -> None:
    owner, owner_email, shop = owned_shop(stack)
    owner_id = user_id(stack, owner_email)
    page = owner.get(f"/shops/{shop}/members")
    csrf = csrf_of(page.text)
    assert f"/members/{owner_id}/remove" not in page.text  # no button for the last owner
    last = owner.post(f"/shops/{shop}/members/{owner_id}/remove", data={"csrf_token": csrf})
    assert last.status_code == 409 and "last owner" in last.text
    api = owner.delete(f"/api/v1/shops/{shop}/members/{owner_id}", headers={"X-CSRF-Token": csrf})
    assert api.status_code == 409
    demote = owner.post(
        f"/api/v1/shops/{shop}/members",
        json={"email": owner_email, "role": "viewer"},
        headers={"X-CSRF-Token": csrf},
    )
    assert demote.status_code == 409
    assert role(stack, shop, owner_email) == "owner"

    other_email = new_email()
    sign_up(stack, other_email)
    other_id = user_id(stack, other_email)
    grant(stack, shop, "owner", user_id=other_id)
    removed = owner.post(f"/shops/{shop}/members/{other_id}/remove", data={"csrf_token": csrf})
    assert removed.status_code == 303
    assert role(stack, shop, other_email) is None
    gone = owner.delete(f"/api/v1/shops/{shop}/members/{other_id}", headers={"X-CSRF-Token": csrf})
    assert gone.status_code == 404


async def _close_code(socket: websockets.ClientConnection, timeout_s: float) -> int | None:
    """The code the server closed the feed with, reading what it sends meanwhile; None if it
    stayed open."""
    try:
        async with asyncio.timeout(timeout_s):
            async for _ in socket:
                pass
    except TimeoutError:
        return None
    except websockets.ConnectionClosed:
        pass
    return socket.close_code


async def test_an_open_feed_ends_with_its_session_its_token_or_its_membership(
    stack: Stack,
) -> None:
    """A feed is authorised at its handshake and then lives for hours: it is closed (4401)
    once the session behind it logs out, its token is revoked or its member is removed, as
    the same credentials then get 401 or 404 on every page (the stack re-checks every 1 s)."""
    owner, _, shop = owned_shop(stack)
    csrf = {"X-CSRF-Token": csrf_of(owner.get(f"/shops/{shop}/members").text)}
    url = f"ws://127.0.0.1:{stack.web_port}/ws/shops/{shop}"

    viewer_email = new_email()
    viewer = sign_up(stack, viewer_email)
    grant(stack, shop, "viewer", user_id=user_id(stack, viewer_email))
    minted = owner.post("/api/v1/tokens", json={"name": "feed"}, headers=csrf)
    assert minted.status_code == 201, minted.text
    token = minted.json()

    def cookie(client: httpx.Client) -> dict[str, str]:
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in client.cookies.items())}

    by_owner = await websockets.connect(url, additional_headers=cookie(owner))
    by_viewer = await websockets.connect(url, additional_headers=cookie(viewer))
    by_token = await websockets.connect(
        url, additional_headers={"Authorization": f"Bearer {token['token']}"}
    )
    for socket in (by_owner, by_viewer, by_token):
        assert "hello" in await asyncio.wait_for(socket.recv(), 10)
    # Nothing has ended yet: every feed stays open past a few checks.
    assert await _close_code(by_token, 2.5) is None

    removed = owner.delete(
        f"/api/v1/shops/{shop}/members/{user_id(stack, viewer_email)}", headers=csrf
    )
    assert removed.status_code == 204
    assert await _close_code(by_viewer, 5) == 4401
    [listed] = [t for t in owner.get("/api/v1/tokens").json()["tokens"] if t["name"] == "feed"]
    assert owner.delete(f"/api/v1/tokens/{listed['id']}", headers=csrf).status_code == 204
    assert await _close_code(by_token, 5) == 4401
    assert await _close_code(by_owner, 0.5) is None
    assert owner.post("/logout", data={"csrf_token": csrf["X-CSRF-Token"]}).status_code == 303
    assert await _close_code(by_owner, 5) == 4401


def test_nul_control_characters_and_absurd_numbers_get_a_4xx_never_a_500(stack: Stack) -> None:
    """Values no column or mail header can hold, sent to every form and JSON route that takes
    text from a person (a black-box run got a 500 from each), are refused and change nothing."""
    anonymous = from_own_address(stack)
    for path in ("/login", "/signup", "/password/forgot"):
        form = anonymous.get(path)
        data = {"csrf_token": csrf_of(form.text), "email": "a\x00b@example.com"}
        answer = anonymous.post(path, data={**data, "password": PASSWORD})
        assert 400 <= answer.status_code < 500 or "valid email" in answer.text, (path, answer)
    deep = "[" * 100_000 + "]" * 100_000
    answer = anonymous.put(
        "/api/v1/shops/x.myshopify.com/settings",
        content=deep,
        headers={"content-type": "application/json"},
    )
    assert 400 <= answer.status_code < 500, answer.text

    owner, _, shop = owned_shop(stack)
    csrf = csrf_of(owner.get(f"/shops/{shop}/members").text)
    header = {"X-CSRF-Token": csrf}
    refused = [
        owner.post("/account/tokens", data={"csrf_token": csrf, "name": "a\x00b"}),
        owner.post("/api/v1/tokens", json={"name": "a\x00b"}, headers=header),
        owner.post("/api/v1/tokens", json={"name": "line\r\nbreak"}, headers=header),
        owner.post(
            f"/shops/{shop}/settings",
            data={"csrf_token": csrf, "lead_time_days": "1e400", "service_level": "90"},
        ),
        owner.post(
            f"/shops/{shop}/settings/alerts/resubscribe",
            data={"csrf_token": csrf, "email": "a\x00b"},
        ),
    ]
    for email in ("z\x00@example.com", "z\x01@example.com", "evil\u202egro.elpmaxe@example.com"):
        refused.append(
            owner.post(
                f"/api/v1/shops/{shop}/members",
                json={"email": email, "role": "viewer"},
                headers=header,
            )
        )
        page = owner.post(
            f"/shops/{shop}/members", data={"csrf_token": csrf, "email": email, "role": "viewer"}
        )
        assert page.status_code < 500 and "valid email" in page.text, page.text[:300]
    for answer in refused:
        assert 400 <= answer.status_code < 500, (
            answer.request.url,
            answer.status_code,
            answer.text,
        )
    assert not scalar(stack, "SELECT count(*) FROM shop_invitations WHERE shop = %s", shop)
    assert not scalar(
        stack, "SELECT count(*) FROM api_tokens WHERE name LIKE %s OR name LIKE %s", "a%b", "line%"
    )
    assert httpx.get(f"{stack.base_url}/healthz", timeout=5).status_code == 200


def test_a_leaked_invitation_link_makes_nobody_a_member_without_the_mailbox(
    stack: Stack,
) -> None:
    """An outside test took an invitation over: whoever held the link signed up with the
    invited address (any password) and was a member at once."""
    owner, _, shop = owned_shop(stack)
    csrf = {"X-CSRF-Token": csrf_of(owner.get(f"/shops/{shop}/members").text)}
    invitee = new_email()
    sent = owner.post(
        f"/api/v1/shops/{shop}/members", json={"email": invitee, "role": "owner"}, headers=csrf
    )
    assert sent.json()["status"] == "invited"
    path = invitation_link(stack, invitee)
    token = path.rsplit("/", 1)[1]

    holder = signed_up(stack, invitee, invitation=token)  # no session, no membership
    assert role(stack, shop, invitee) is None
    # Logging in through the link with the password they chose lands on the invitation,
    # which asks for the address to be confirmed first, and accepting is refused.
    landed = log_in(holder, invitee, invitation=token).headers["location"]
    assert landed == path
    shown = holder.get(path)
    assert "Confirm your email address first" in shown.text and "Accept as" not in shown.text
    refused = holder.post(path, data={"csrf_token": csrf_of(shown.text)})
    assert refused.status_code == 403 and role(stack, shop, invitee) is None
    assert holder.get(f"/shops/{shop}").status_code == 404
    # The invitation stays for the address's owner.
    listed = owner.get(f"/api/v1/shops/{shop}/members").json()["invitations"]
    assert [i["email"] for i in listed] == [invitee]


def test_an_account_made_first_with_someone_elses_address_is_only_invited(
    stack: Stack,
) -> None:
    """An outside test signed up as heidi@ before an owner added Heidi: "added", and the
    squatter owned the shop at once. Now an unconfirmed account is invited like a stranger,
    and only whoever receives Heidi's mail can take the account and the invitation."""
    owner, _, shop = owned_shop(stack)
    heidi = new_email()
    squatter = sign_up(stack, heidi, verify=False)
    csrf = {"X-CSRF-Token": csrf_of(owner.get(f"/shops/{shop}/members").text)}
    answer = owner.post(
        f"/api/v1/shops/{shop}/members",
        json={"email": heidi.title(), "role": "owner"},
        headers=csrf,
    )
    assert answer.status_code == 200 and answer.json()["status"] == "invited", answer.text
    assert role(stack, shop, heidi) is None
    assert squatter.get(f"/shops/{shop}").status_code == 404
    path = invitation_link(stack, heidi)
    page = squatter.get(path)
    refused = squatter.post(path, data={"csrf_token": csrf_of(page.text)})
    assert refused.status_code == 403 and role(stack, shop, heidi) is None

    # Heidi, who receives the mail, takes the account back with a reset link (confirming the
    # address), then accepts by logging in through the invitation.
    heidis = reset_password_by_mail(stack, heidi, PASSWORD)
    assert squatter.get("/").status_code == 303  # the squatter's session ended
    token = path.rsplit("/", 1)[1]
    assert log_in(heidis, heidi, invitation=token).headers["location"] == f"/shops/{shop}"
    assert role(stack, shop, heidi) == "owner"


def test_invitations_and_sign_up_mails_are_limited(stack: Stack) -> None:
    """Both mail addresses that never asked for it: an outside tester had one address sent 18
    invitations in seconds."""
    owner, _, shop = owned_shop(stack)
    csrf = {"X-CSRF-Token": csrf_of(owner.get(f"/shops/{shop}/members").text)}
    victim = new_email()

    def invite() -> httpx.Response:
        return owner.post(
            f"/api/v1/shops/{shop}/members", json={"email": victim, "role": "viewer"}, headers=csrf
        )

    assert [invite().status_code for _ in range(3)] == [200, 200, 200]
    refused = invite()
    assert refused.status_code == 429 and refused.headers["retry-after"], refused.text
    assert scalar(stack, "SELECT count(*) FROM shop_invitations WHERE email = %s", victim) == 1

    # One client signs up twenty addresses; the next gets the same page and no account, no mail.
    client = from_own_address(stack)
    csrf_token = csrf_of(client.get("/signup").text)
    addresses = [new_email() for _ in range(21)]
    for address in addresses:
        answer = client.post(
            "/signup", data={"email": address, "password": PASSWORD, "csrf_token": csrf_token}
        )
        assert answer.status_code == 200 and "Check your email" in answer.text
    made = scalar(stack, "SELECT count(*) FROM users WHERE email = ANY(%s)", addresses)
    assert made == 20
    assert scalar(stack, "SELECT count(*) FROM users WHERE email = %s", addresses[-1]) == 0


def test_the_operator_assigns_a_shop_to_a_confirmed_account_only(stack: Stack) -> None:
    """`stockpulse shops assign` named an account by its address: whoever signed up with it
    first got the shop."""
    shop = new_shop(stack)
    squatter = new_email()
    sign_up(stack, squatter, verify=False)
    with pytest.raises(LookupError, match="has not confirmed its address"):
        assign(stack.database_url, shop, squatter, "owner")
    assert role(stack, shop, squatter) is None
    assign(stack.database_url, shop, squatter, "viewer", unconfirmed_ok=True)
    assert role(stack, shop, squatter) == "viewer"
    confirmed = new_email()
    sign_up(stack, confirmed)
    assign(stack.database_url, shop, confirmed, "owner")
    assert role(stack, shop, confirmed) == "owner"
