"""The operator console in a real browser: Debian's headless Chromium, driven by
Playwright, against a gateway with a stand-in engine and a fake cloud provider.

A key made on the Keys page serves a request through the official client, and the
request shows on Decisions with its route, reason and explanation; from the overview a
spill reason leads to its requests and keys. Sign-in refuses a wrong token, pages need a
session, changes need the CSRF token and this origin, the cookie is out of scripts'
reach, and no page or JSON ever holds a prompt.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fakes.openai_server import FakeOpenAIServer
from harness import GatewayProcess, standin_engine_config
from services import ADMIN, ADMIN_TOKEN, create_key, wait_for

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium on PATH: `make browser-tools` installs Debian's (make test runs it)",
)
sync_api = pytest.importorskip("playwright.sync_api")
PROVIDER_KEY = "sk-console-provider-key-4321"
CLOUD = "oai/gpt-4o-mini"
IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    fake = FakeOpenAIServer("openai", PROVIDER_KEY).start()
    engine = standin_engine_config(
        "local", ["small"], scheduling={"capabilities": {"images": False}}
    )
    config = {
        "engines": [engine],
        "providers": [
            {"name": "oai", "kind": "openai", "base_url": fake.base_url, "api_key": PROVIDER_KEY}
        ],
        "routes": {"smart": ["small", CLOUD]},
        "auth": {"enabled": True},
        "admin": {"token": ADMIN_TOKEN},
        "ledger": {"flush_interval_s": 0.05},
    }
    try:
        with GatewayProcess(config, tmp_path_factory.mktemp("console")) as gw:
            gw.wait_engine_ready("local")
            yield gw
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


def sign_in(page: Any, gateway: GatewayProcess) -> None:
    page.goto(f"{gateway.url}/ui/signin")
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()


def chat(gateway: GatewayProcess, key: str, content: Any, **kw: Any) -> Any:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
    messages = [{"role": "user", "content": content}]
    return client.chat.completions.with_raw_response.create(
        model="smart", messages=messages, max_tokens=16, **kw
    )


def test_a_key_made_in_the_console_serves_and_its_decision_shows(
    gateway: GatewayProcess, page: Any
) -> None:
    page.goto(f"{gateway.url}/ui/keys")
    assert "/ui/signin" in page.url  # no session yet: sent to sign in, then back
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    assert page.url.endswith("/ui/keys")

    page.get_by_label("Name").fill("browser-key")
    page.get_by_label("Requests per minute").fill("600")
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_label("The new key").input_value()
    assert secret.startswith("sk-sg-")
    assert page.locator("#keys").get_by_role("link", name="browser-key", exact=True).is_visible()

    local = chat(gateway, secret, "hello from the browser test")
    assert local.headers["x-spillgate-route"] == "local"
    spilled = chat(gateway, secret, [{"type": "text", "text": "what is this?"}, IMAGE])
    assert spilled.headers["x-spillgate-route"] == CLOUD

    page.goto(f"{gateway.url}/ui/decisions")
    rows = page.locator("#decisions tbody tr")
    assert rows.count() == 2
    newest, older = rows.nth(0), rows.nth(1)
    assert newest.locator("td").nth(1).inner_text() == "browser-key"
    assert newest.locator(".route").inner_text() == CLOUD
    assert newest.locator(".reason").inner_text() == "images_unsupported"
    assert older.locator(".route").inner_text() == "local"
    assert older.locator(".reason").inner_text() == "local"

    older.get_by_role("link", name="why").click()
    assert local.headers["x-request-id"] in page.url
    explain = page.locator("#explain").inner_text()
    assert "predicted_local_ttft_ms" in explain and "latency_budget_ms" in explain

    # From the overview: the spill reason, then the requests and keys behind it.
    page.goto(f"{gateway.url}/ui/overview")
    page.get_by_role("link", name="images_unsupported", exact=True).click()
    assert "reason=images_unsupported" in page.url
    assert page.locator("#view-keys").inner_text() == "browser-key (1)"
    assert page.locator("#decisions tbody tr").count() == 1

    # Filtering in the form narrows by route.
    page.goto(f"{gateway.url}/ui/decisions")
    page.get_by_label("Route").select_option("local")
    page.get_by_role("button", name="Filter").click()
    assert page.locator("#decisions .route").all_inner_texts() == ["local"]


def test_the_overview_updates_itself(gateway: GatewayProcess, page: Any) -> None:
    key = create_key(gateway.url, name="live-key")
    sign_in(page, gateway)
    page.goto(f"{gateway.url}/ui/overview")
    assert page.get_by_text("No GPU on this box.").is_visible()
    before = page.locator("#traffic").inner_text()
    chat(gateway, key["key"], "one more", extra_headers={"x-spillgate-data": "on-prem"})
    page.wait_for_function(
        "() => document.querySelector('#traffic').innerText.includes('live-key')", timeout=10_000
    )
    assert "live-key" not in before


def test_sign_in_sessions_and_csrf_refuse_what_they_should(
    gateway: GatewayProcess, page: Any
) -> None:
    page.goto(f"{gateway.url}/ui/decisions?reason=local")
    assert page.url.startswith(f"{gateway.url}/ui/signin")
    page.get_by_label("Admin token").fill("not-the-admin-token")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "That token is not right."
    assert page.context.cookies() == []

    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    assert page.url.endswith("/ui/decisions?reason=local")  # back where it was headed
    (cookie,) = page.context.cookies()
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert cookie["secure"] is False and cookie["path"] == "/ui"  # plain http on loopback
    assert page.evaluate("document.cookie") == ""  # out of scripts' reach

    session = httpx.Client(base_url=gateway.url, cookies={cookie["name"]: cookie["value"]})
    origin = {"origin": gateway.url}
    csrf = page.locator("input[name=csrf]").first.input_value()
    no_csrf = session.post("/ui/keys", data={"name": "forged-1"}, headers=origin)
    assert no_csrf.status_code == 403 and "CSRF" in no_csrf.text
    wrong_csrf = session.post("/ui/keys", data={"name": "forged-2", "csrf": "x"}, headers=origin)
    assert wrong_csrf.status_code == 403
    elsewhere = {"origin": "http://evil.example"}
    cross = session.post("/ui/keys", data={"name": "forged-3", "csrf": csrf}, headers=elsewhere)
    assert cross.status_code == 403 and "Origin" in cross.text
    names = [
        k["name"] for k in httpx.get(f"{gateway.url}/admin/keys", headers=ADMIN).json()["data"]
    ]
    assert not {"forged-1", "forged-2", "forged-3"} & set(names)
    made = session.post("/ui/keys", data={"name": "made-by-form", "csrf": csrf}, headers=origin)
    assert made.status_code == 201  # the same form with its token and origin does change

    page.get_by_role("button", name="Sign out").click()
    page.goto(f"{gateway.url}/ui/overview")
    assert "/ui/signin" in page.url
    assert session.get("/ui/overview", follow_redirects=False).status_code == 303


def test_no_page_or_json_holds_a_prompt(gateway: GatewayProcess, page: Any) -> None:
    marker = "zq-secret-prompt-marker-7731"
    key = create_key(gateway.url, name="marker-key")
    chat(gateway, key["key"], f"plain {marker}")
    chat(gateway, key["key"], f"kept home {marker}", extra_headers={"x-spillgate-data": "on-prem"})
    chat(gateway, key["key"], [{"type": "text", "text": f"spilled {marker}"}, IMAGE])
    chat(gateway, key["key"], f"streamed {marker}", stream=True).parse()
    wait_for(
        lambda: len(httpx.get(f"{gateway.url}/admin/decisions?key=marker-key", headers=ADMIN)
                    .json()["data"]) == 4,
        what="the four requests in the decision ring",
    )  # fmt: skip
    sign_in(page, gateway)
    paths = [
        "/ui/overview",
        "/ui/overview.json",
        "/ui/decisions",
        "/ui/decisions.json",
        "/ui/keys",
        f"/ui/keys/{key['id']}",
        "/ui/egress?verify=1",
        *(f"/ui/usage?group_by={g}" for g in ("key", "model", "day", "target")),
    ]
    page.goto(f"{gateway.url}/ui/decisions?key=marker-key")
    paths += page.locator("#decisions a").evaluate_all("links => links.map(a => a.pathname)")
    assert len(paths) == 11 + 4
    for path in paths:
        reply = page.request.get(f"{gateway.url}{path}")
        assert reply.status == 200, path
        assert marker not in reply.text(), path
    admin_paths = ["/admin/overview", "/admin/decisions?limit=1000"]
    ids = [p.rsplit("/", 1)[1] for p in paths if p.startswith("/ui/decisions/")]
    admin_paths += [f"/admin/decisions/{request_id}" for request_id in ids]
    for path in admin_paths:
        reply = httpx.get(f"{gateway.url}{path}", headers=ADMIN)
        assert reply.status_code == 200, path
        assert marker not in reply.text, path
    page.goto(f"{gateway.url}/ui/egress")
    assert "Marked on-prem yet left" in page.content()


def test_with_the_admin_api_off_the_console_is_off(tmp_path: Path, browser: Any) -> None:
    config = {"engines": [standin_engine_config("local", ["small"])]}
    with GatewayProcess(config, tmp_path) as gateway:
        page = browser.new_page()
        reply = page.goto(f"{gateway.url}/ui/overview")
        assert reply.status == 404
        assert "admin.token" in page.get_by_role("main").inner_text()
        signin = httpx.post(f"{gateway.url}/ui/signin", data={"token": ""})
        assert signin.status_code == 404 and "set-cookie" not in signin.headers
        admin = httpx.get(f"{gateway.url}/admin/decisions")
        assert admin.status_code == 403 and admin.json()["error"]["code"] == "admin_disabled"
        page.close()
