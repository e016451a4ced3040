"""The live KPI dashboard in a real browser, against the real platform.

Debian's Chromium (``scripts/chromium.sh ensure`` installs it when missing; test tools' own
browser downloads do not work on the project's machines) is driven by Playwright. The page is
opened with a token in its URL fragment, shows KPI numbers and draws its charts; tickets created
through the gateway's JSON/HTTP API then change the numbers on the page without a reload, over
the NDJSON stream of ``MetricsService/StreamKpis``. A screenshot is left in
``test-artifacts/dashboard.png`` at the repository root.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import pytest
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Page,
    Response,
    async_playwright,
    expect,
)
from playwright.async_api import Error as PlaywrightError

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Every chart of the page, by canvas id.
CHARTS = (
    "chart-volume",
    "chart-sla",
    "chart-clock-trend",
    "chart-clocks",
    "chart-gap-histogram",
    "chart-csat-by-wait",
)
# Every headline number of the page.
TILES = (
    "tickets_created",
    "backlog",
    "awaiting_first_response",
    "frt_wall",
    "frt_business",
    "resolution_wall",
    "sla_first_response",
    "sla_resolution",
    "reopen_rate",
    "first_contact_resolution",
    "csat",
    "nps",
    "company_frt",
    "customer_wait",
    "perception_gap",
    "green_inside_red_outside",
    "expectation_breach",
    "survey_response_rate",
)
# How long the platform may take to carry a ticket to the page (service desk → Kafka → metrics
# → stream → browser); usually a few seconds.
PROPAGATION_MS = 60_000

# True when a canvas has drawn pixels (a blank canvas is fully transparent).
CANVAS_DRAWN = """(id) => {
  const canvas = document.getElementById(id);
  if (!canvas || !canvas.width || !canvas.height || !window.Chart || !Chart.getChart(canvas)) {
    return false;
  }
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let drawn = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) drawn += 1;
  return drawn > 500;
}"""


class Stack(Protocol):
    """What this test uses of the ``gateway_stack`` fixture (crm_testing.gateway.GatewayStack)."""

    @property
    def http_url(self) -> str: ...

    def token(self, tenant: str, role: str = "admin", subject: str = "alice") -> str: ...


def _run_script(*command: str) -> str:
    """Run one of the project's scripts; its stdout, or a failed test with its stderr."""
    done = subprocess.run(
        ["bash", *command], cwd=REPO, capture_output=True, text=True, timeout=900, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done.stdout.strip()


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's Chromium, installed by the project's own script when missing."""
    path = _run_script("scripts/chromium.sh", "ensure").splitlines()[-1]
    assert Path(path).is_file(), path
    return path


@pytest.fixture(scope="session")
def dashboard_assets() -> None:
    """The vendored Chart.js build the page loads (generated, not committed)."""
    _run_script("scripts/web-assets.sh", "ensure")


@pytest.fixture(scope="session")
async def browser(chromium_path: str) -> AsyncIterator[Browser]:
    """A headless Chromium (Playwright gives each launch a fresh, empty profile)."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


async def _open_page(browser: Browser) -> tuple[Page, list[str]]:
    """A page in a context of its own, and the console errors and uncaught exceptions it logs."""
    context = await browser.new_context(viewport={"width": 1440, "height": 1000})
    page = await context.new_page()
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console: {message.text}")

    async def on_response(response: Response) -> None:
        if response.status >= 400:
            try:
                body = await response.text()
            except PlaywrightError:
                body = "(no body)"
            sent = response.request.post_data or ""
            problems.append(f"HTTP {response.status} {response.url} {sent[:300]} -> {body[:300]}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("response", on_response)
    return page, problems


class Api:
    """The gateway's JSON/HTTP API as one tenant's admin."""

    def __init__(self, session: aiohttp.ClientSession, base: str, token: str) -> None:
        self.session = session
        self.base = base
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.session.post(
            f"{self.base}/v1/{method}", json=body, headers=self.headers
        ) as response:
            payload: dict[str, Any] = await response.json()
            assert response.status == 200, (method, response.status, payload)
            return payload


async def _tile_value(page: Page, kpi: str) -> float:
    raw = await page.locator(f'[data-kpi="{kpi}"]').get_attribute("data-value")
    assert raw is not None, f"{kpi} shows no number"
    return float(raw)


async def _expect_value(
    page: Page, kpi: str, value: float, timeout: float = PROPAGATION_MS
) -> None:
    await expect(page.locator(f'[data-kpi="{kpi}"]')).to_have_attribute(
        "data-value", str(int(value)) if value == int(value) else str(value), timeout=timeout
    )


async def _updates(page: Page) -> int:
    return int(await page.locator("main").get_attribute("data-updates") or "0")


@pytest.mark.timeout(900)
async def test_dashboard_shows_live_kpis(
    gateway_stack: Stack, browser: Browser, dashboard_assets: None
) -> None:
    tenant = f"dash-{uuid.uuid4().hex[:8]}"  # a tenant of its own: its KPIs start at zero
    token = gateway_stack.token(tenant, "admin", "olivia")
    page, problems = await _open_page(browser)

    # --- the page opens with the token of its URL fragment, and goes live -------------------
    await page.goto(f"{gateway_stack.http_url}/dashboard#token={token}")
    await expect(page.locator("#live")).to_have_attribute("data-state", "live", timeout=30_000)
    assert "token=" not in page.url, "the token must leave the address bar"
    stored = await page.evaluate("sessionStorage.getItem('crm.dashboard.credential')")
    assert stored is not None
    assert token in stored
    await expect(page.locator("#caller")).to_contain_text(tenant)
    await expect(page.locator("#last-update")).not_to_have_text("—")
    await expect(page.locator("#login")).to_be_hidden()

    # --- every number is there; the new tenant has no tickets ---------------------------------
    for kpi in TILES:
        await expect(page.locator(f'[data-kpi="{kpi}"]')).to_have_count(1)
    assert await _tile_value(page, "tickets_created") == 0
    assert await _tile_value(page, "backlog") == 0

    # --- every chart is drawn ----------------------------------------------------------------
    for chart in CHARTS:
        await page.wait_for_function(CANVAS_DRAWN, arg=chart, timeout=15_000)
    await expect(page.locator("main")).to_have_attribute(
        "data-gap-loads", re.compile(r"^[1-9][0-9]*$"), timeout=15_000
    )
    await expect(page.locator('[data-kpi="wait_bucket.lt1h.tickets"]')).to_have_attribute(
        "data-value", "0"
    )

    # A marker that a reload would wipe out.
    await page.evaluate("window.__dashboardTestMarker = 'still here'")

    # --- tickets created through the API show up without a reload ----------------------------
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        api = Api(session, gateway_stack.http_url, token)
        contact = await api.call(
            "ContactsService/CreateContact",
            {"contact": {"givenName": "Ada", "familyName": "Lovelace"}},
        )
        contact_id = contact["contact"]["id"]
        three_hours_ago = datetime.now(UTC) - timedelta(hours=3)
        tickets = []
        for i, (channel, priority) in enumerate(
            [
                ("CHANNEL_EMAIL", "PRIORITY_HIGH"),
                ("CHANNEL_EMAIL", "PRIORITY_HIGH"),
                ("CHANNEL_PHONE", "PRIORITY_LOW"),
            ]
        ):
            ticket: dict[str, Any] = {
                "type": "TICKET_TYPE_INCIDENT",
                "channel": channel,
                "priority": priority,
                "subject": f"The dashboard test's ticket {i}",
                "contactId": contact_id,
                "teamId": "tier1",
            }
            if i == 0:
                # The customer first reached out three hours before the ticket was opened: the
                # company's clock starts now, the customer's three hours ago.
                ticket["firstTouchTime"] = three_hours_ago.isoformat().replace("+00:00", "Z")
            created = await api.call(
                "TicketService/CreateTicket",
                {"ticket": ticket, "firstMessage": "It is broken.", "requestId": uuid.uuid4().hex},
            )
            tickets.append(created["ticket"]["id"])

        await _expect_value(page, "tickets_created", 3)
        await _expect_value(page, "backlog", 3)
        await _expect_value(page, "awaiting_first_response", 3)

        # An agent answers the first ticket: both clocks stop, and the gap is about 3 hours.
        await api.call(
            "TicketService/AddMessage",
            {
                "ticketId": tickets[0],
                "message": {
                    "authorType": "AUTHOR_TYPE_AGENT",
                    "authorId": "agent-ann",
                    "visibility": "VISIBILITY_PUBLIC",
                    "body": "We are on it.",
                },
                "requestId": uuid.uuid4().hex,
            },
        )
    await _expect_value(page, "awaiting_first_response", 2)
    await expect(page.locator('[data-kpi="customer_wait.count"]')).to_have_attribute(
        "data-value", "1", timeout=PROPAGATION_MS
    )
    wait = await _tile_value(page, "customer_wait")
    company = await _tile_value(page, "company_frt")
    assert 2.9 * 3600 < wait < 3.2 * 3600, wait
    assert company < 600, company
    # The perception gap's table and histogram follow (GetPerceptionGap, refreshed on change).
    await expect(page.locator('[data-kpi="wait_bucket.1-4h.tickets"]')).to_have_attribute(
        "data-value", "1", timeout=PROPAGATION_MS
    )
    await expect(page.locator("#worst-tickets tbody tr")).to_have_count(1)
    await expect(page.locator(f'#worst-tickets [data-ticket-id="{tickets[0]}"]')).to_have_count(1)
    assert await page.evaluate("window.__dashboardTestMarker") == "still here", "page reloaded"

    # --- a slice restarts the stream: channel, then channel and priority, then team -------------
    before = await _updates(page)
    await page.select_option("#channel", "email")
    await _expect_value(page, "tickets_created", 2, timeout=20_000)
    assert await _updates(page) > before
    await page.select_option("#priority", "low")
    await _expect_value(page, "tickets_created", 0, timeout=20_000)
    await page.select_option("#channel", "")
    await _expect_value(page, "tickets_created", 1, timeout=20_000)
    await expect(page.locator('#team option[value="tier1"]')).to_have_count(1, timeout=20_000)
    await page.select_option("#team", "tier1")
    await expect(page.locator("#priority")).to_have_value("")  # priority and team exclude
    # The gap's breakdown by wait bucket is kept per channel only, and the page says so.
    await expect(page.locator("[data-gap-scope]").first).to_contain_text("every priority and team")
    await _expect_value(page, "tickets_created", 3, timeout=20_000)
    for period in ("7d", "30d", "24h"):
        await page.select_option("#period", period)
        await _expect_value(page, "tickets_created", 3, timeout=20_000)
    await page.select_option("#team", "")
    await expect(page.locator("[data-gap-scope]").first).to_have_text("")
    await expect(page.locator("#live")).to_have_attribute("data-state", "live")
    await expect(page.locator("#banner")).to_be_hidden()
    for chart in CHARTS:
        await page.wait_for_function(CANVAS_DRAWN, arg=chart, timeout=15_000)
    assert await page.evaluate("window.__dashboardTestMarker") == "still here", "page reloaded"

    ARTIFACTS.mkdir(exist_ok=True)
    await page.wait_for_timeout(500)  # let the last chart animation finish
    await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert not problems, "\n".join(problems)
    await page.context.close()


@pytest.mark.timeout(900)
async def test_dashboard_asks_for_a_credential(
    gateway_stack: Stack, browser: Browser, dashboard_assets: None
) -> None:
    """Without a credential the page asks for one; a refused one is said so; a pasted one works."""
    page, problems = await _open_page(browser)
    await page.goto(f"{gateway_stack.http_url}/dashboard")
    await expect(page.locator("#login")).to_be_visible()
    await expect(page.locator("main")).to_be_hidden()

    await page.fill("#login-credential", "not-a-valid-key")
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#login-error")).to_contain_text("refused")
    await expect(page.locator("#login")).to_be_visible()

    token = gateway_stack.token(f"dash-{uuid.uuid4().hex[:8]}", "analyst", "ivan")
    await page.fill("#login-credential", token)
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#live")).to_have_attribute("data-state", "live", timeout=30_000)
    await expect(page.locator("#caller")).to_contain_text("analyst")
    await expect(page.locator('[data-kpi="tickets_created"]')).to_have_attribute("data-value", "0")

    await page.click("#sign-out")
    await expect(page.locator("#login")).to_be_visible()
    assert await page.evaluate("sessionStorage.getItem('crm.dashboard.credential')") is None
    # The refused key's 401 is the one console error the page may log.
    assert [p for p in problems if "401" not in p] == [], problems
    await page.context.close()
