"""The admin console in a real browser: Debian's headless Chromium driven by
Playwright, against a live Envoy running rag-guard. Sign in with the admin
secret, see the keys, revoke one and see the API refuse it, restore it; no
asset comes from outside the filter; a screenshot is saved."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from client import request
from conftest import KEYS, base_plugin_config, digest

ADMIN_SECRET = "console-admin-secret"
PREFIX = "/rag-guard/admin/"
SCREENSHOT = Path(__file__).resolve().parents[2] / "target" / "screenshots" / "console.png"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

@pytest.fixture(scope="module")
def console_envoy(stacks):
    cfg = base_plugin_config(admin={"secret_sha256": digest(ADMIN_SECRET)})
    # The shipped tiers (free: burst 10, 60/min, 1000/h), so the page shows
    # realistic numbers.
    cfg.pop("tiers")
    return stacks.envoy(cfg, name="console")


@pytest.fixture(scope="module")
def browser():
    assert Path(CHROMIUM).exists(), "Chromium is missing: `make chromium` installs it (make test does)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()


def use(envoy, key: str) -> int:
    return request(envoy.port, path="/echo/x", headers=[("X-API-Key", key)]).status


def test_assets_are_small_and_carry_a_strict_csp(console_envoy):
    total = 0
    for path in ("console", "console/console.js", "console/console.css"):
        resp = request(console_envoy.port, path=PREFIX + path)
        assert resp.status == 200, path
        csp = resp.all("content-security-policy")
        assert len(csp) == 1 and "default-src 'none'" in csp[0] and "script-src 'self'" in csp[0]
        assert "unsafe-inline" not in csp[0]
        total += len(resp.body)
    assert total <= 60 * 1024, total
    # The API behind it still needs the secret.
    assert request(console_envoy.port, path=PREFIX + "keys").status == 403


def test_sign_in_see_keys_revoke_and_restore(console_envoy, browser):
    origin = f"http://127.0.0.1:{console_envoy.port}"
    page = browser.new_page(viewport={"width": 1200, "height": 560})
    requested: list[str] = []
    problems: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    # Some traffic first, so the usage chart and tokens left have numbers
    # (usage reaches shared data within a second).
    for _ in range(6):
        assert use(console_envoy, KEYS["good"]) == 200
    for _ in range(3):
        assert use(console_envoy, KEYS["pro"]) == 200
    time.sleep(1.5)
    page.goto(origin + PREFIX + "console")

    # A wrong secret is refused.
    page.fill("#credential", "not-the-secret")
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#signin-error:has-text('403')", timeout=10000)
    problems.clear()  # the failed fetch's own console line

    page.fill("#credential", ADMIN_SECRET)
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#keys tbody tr[data-key='client-good']", timeout=10000)
    names = page.eval_on_selector_all("#keys tbody tr", "rows => rows.map(r => r.dataset.key)")
    assert {"client-good", "client-pro", "client-expired", "client-disabled"} <= set(names)
    row = page.locator("tr[data-key='client-pro']")
    assert row.locator("td").nth(1).inner_text() == "pro"
    assert "active" in row.locator("td").nth(2).inner_text()
    assert "expired" in page.locator("tr[data-key='client-expired'] td").nth(2).inner_text()
    good = page.locator("tr[data-key='client-good'] td")
    assert good.nth(5).inner_text() == "6"  # admitted today
    # The hour bucket refills one token per 3.6 s: still 6 spent; the burst
    # and minute buckets refill one per second.
    burst, minute, hour = good.nth(7).inner_text().split(" · ")
    assert hour == "994/1000" and burst.endswith("/10") and minute.endswith("/60")
    assert int(burst.split("/")[0]) < 10
    assert page.locator("tr[data-key='client-good'] svg.chart rect:not(.day)").count() == 1
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # Revoke through the page: the API refuses the key from then on.
    assert use(console_envoy, KEYS["pro"]) == 200
    row.locator("button.revoke").click()
    page.wait_for_selector("tr[data-key='client-pro'] button.restore", timeout=10000)
    assert "revoked (admin)" in row.locator("td").nth(2).inner_text()
    assert use(console_envoy, KEYS["pro"]) == 403
    # Restore: accepted again.
    row.locator("button.restore").click()
    page.wait_for_selector("tr[data-key='client-pro'] button.revoke", timeout=10000)
    assert use(console_envoy, KEYS["pro"]) == 200

    assert requested and all(u.startswith(origin + "/") for u in requested), requested
    assert not problems, problems
    page.close()


def test_sign_in_with_an_admin_role_token(stacks, browser):
    """The console with JWT callers: a token with the admin role signs in
    (jwt_authn verifies it, rag-guard grants the admin API by role); a
    reader's token is refused by the API."""
    from test_jwt import plugin_config, start, token

    envoy = start(stacks, plugin_config(), "console-jwt")
    origin = f"http://127.0.0.1:{envoy.port}"
    page = browser.new_page()
    page.goto(origin + PREFIX + "console")
    page.check("input[name=mode][value=token]")
    page.fill("#credential", token("reader-1", roles=["reader"]))
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#signin-error:has-text('403')", timeout=10000)
    page.fill("#credential", token("ops-1", roles=["admin"]))
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#keys tbody tr[data-key='client-good']", timeout=10000)
    assert page.inner_text("#who") == "signed in with a token"
    page.close()
