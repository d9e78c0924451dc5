"""The web dashboard end to end: real headless Chromium (Debian's ``chromium``, driven by
Playwright) against a real ``accord up`` on the demo federation (SQLite, the dispatcher
running, every site on the local backend).

The world: the administrator enrols Ada (a UK researcher at the Turing, with her project),
a UK programme officer, the operator of Isambard-AI and a UK auditor, and mints each an API
token through the API, as a deployment would. The administrator also runs one job from
the UK at Killarney under ``uk-ca`` (so the agreement's books have an entry) and submits a
large run from Canada that the compliance rules hold for Isambard-AI's operator.

The demo federation's agreements end on fixed dates; the server runs on a copy of it whose
agreements end years from today (:mod:`tests.integration.in_force`), so that ``uk-ca`` is
in force whenever the test runs.

Then, through the browser only: Ada signs in, previews and submits a job from the form,
watches it finish without reloading and opens its placement explanation; she cannot open
an agreement's page (the API refuses with 403 and the page says so). The officer downloads
the ``uk-ca`` statement and verifies it through the page, and a tampered copy fails. The
operator sees the held run and refuses it. Ada sets where her notifications go (a malformed
address is named at its field). The pages are used with the keyboard alone, and every form
control has a label.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    Page,
    Playwright,
    Request,
    Response,
    ViewportSize,
    expect,
    sync_playwright,
)
from playwright.sync_api import Error as PlaywrightError

from tests.integration.in_force import demo_in_force
from tests.integration.server import AccordProcess

# One worker runs the module under pytest-xdist: one server and one Chromium for all its tests.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("dashboard")]

CHROMIUM = "/usr/bin/chromium"
LAPTOP: ViewportSize = {"width": 1366, "height": 768}
# Chromium logs every 4xx answer to fetch; the tests cause some on purpose (401, 403, 422)
EXPECTED_REFUSAL = "Failed to load resource: the server responded with a status of 4"
# Chromium drops loads in flight when the host's network changes, and the site-agent tests
# make and remove network namespaces (veth pairs) while these run: such a load is made again.
NETWORK_CHANGED = "net::ERR_NETWORK_CHANGED"

SLACK_S = 20

# user -> (name, institution, grants as (role, scope, target), token scopes)
PEOPLE: dict[str, tuple[str, str, list[tuple[str, str, str]], list[str]]] = {
    "ada": ("Ada Lovelace", "turing", [],
            ["jobs:read", "jobs:write", "projects:read", "projects:write", "ledger:read"]),
    "pouk": ("Priya Officer", "dsit", [("programme_officer", "partner", "uk")],
             ["jobs:read", "ledger:read", "projects:read", "projects:write", "compliance"]),
    "opisa": ("Owen Operator", "bristol", [("site_operator", "site", "isambard-ai")],
              ["jobs:read", "jobs:write", "compliance", "ledger:read"]),
    "auduk": ("Aditi Auditor", "ukri", [("auditor", "partner", "uk")],
              ["jobs:read", "ledger:read", "audit:read", "compliance"]),
}


@dataclass
class World:
    """The running server, everyone's token and the jobs made for the story."""

    server: AccordProcess
    tokens: dict[str, str] = field(default_factory=dict)
    jobs: dict[str, str] = field(default_factory=dict)

    def admin(self) -> httpx.Client:
        """An API client as the local administrator."""
        return self.server.client()


def _ok(r: httpx.Response) -> Any:
    assert r.status_code < 300, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    return r.json()


def build_world(server: AccordProcess) -> World:
    """Enrol :data:`PEOPLE` with their tokens, give Ada a project, and submit the
    administrator's two jobs (one abroad that runs, one large run that is held)."""
    w = World(server)
    with w.admin() as admin:
        for user, (name, institution, grants, scopes) in PEOPLE.items():
            _ok(admin.post("/api/v1/users", json={"id": user, "name": name, "institution": institution}))
            for role, scope, target in grants:
                _ok(admin.post(f"/api/v1/users/{user}/grants",
                               json={"role": role, "scope": scope, "target": target}))
            w.tokens[user] = _ok(admin.post("/api/v1/tokens", json={
                "name": f"{user}-dashboard", "scopes": scopes, "for_user": user, "days": 7}))["token"]
        with httpx.Client(base_url=server.url, timeout=30,
                          headers={"Authorization": f"Bearer {w.tokens['ada']}"}) as ada:
            _ok(ada.post("/api/v1/projects", json={"id": "ada-climate", "name": "Climate downscaling",
                                                   "partner": "uk", "theme": "climate"}))
        w.jobs["abroad"] = _ok(admin.post("/api/v1/jobs", json={
            "name": "uk climate run at killarney", "command": ["sleep", "1"], "partner": "uk",
            "theme": "climate", "gpu_model": "H100-SXM5-80GB", "gpus": 2, "time_limit": 60,
            "deadline": deadline(60)}))["id"]
        big = int(timedelta(hours=21).total_seconds())
        w.jobs["held"] = _ok(admin.post("/api/v1/jobs", json={
            "name": "large training run from Canada", "command": ["sleep", "1"], "partner": "ca",
            "theme": "ai-research", "gpu_model": "GH200", "gpus": 1000, "time_limit": big,
            "deadline": deadline(big)}))["id"]
    return w


def deadline(run_s: int) -> str:
    """A deadline that leaves a run of ``run_s`` seconds at most :data:`SLACK_S` of slack:
    the agreements let placement shift work by hours to a cleaner grid, and a test cannot
    wait that long (a shift, if any, is then shorter than the slack)."""
    return (datetime.now(UTC) + timedelta(seconds=run_s + SLACK_S)).isoformat()


def wait_for_job(w: World, job_id: str, states: set[str], timeout: float = 60) -> dict[str, Any]:
    """The job (as the admin sees it) once it is in one of ``states``."""
    deadline = time.monotonic() + timeout
    with w.admin() as admin:
        while True:
            job: dict[str, Any] = _ok(admin.get(f"/api/v1/jobs/{job_id}"))
            if job["state"] in states:
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} is {job['state']}, not {states}: {job['reason']}")
            time.sleep(0.3)


def wait_for_ledger(w: World, job_id: str, timeout: float = 30) -> list[dict[str, Any]]:
    """The job's ledger entries, once its usage is posted."""
    deadline = time.monotonic() + timeout
    with w.admin() as admin:
        while not (entries := _ok(admin.get("/api/v1/ledger/entries", params={"job": job_id}))["entries"]):
            assert time.monotonic() < deadline, f"job {job_id}'s usage was never posted"
            time.sleep(0.3)
    return list(entries)


def launch(pw: Playwright) -> Browser:
    """Debian's Chromium, headless."""
    return pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])


def open_page(page: Page, url: str, tries: int = 3) -> None:
    """``page.goto(url)`` until it loads with nothing dropped by a change of the host's network
    (at most ``tries`` times). Raises what the last try raised, or AssertionError."""
    dropped: list[str] = []

    def note(r: Request) -> None:
        if NETWORK_CHANGED in (r.failure or ""):
            dropped.append(r.url)

    page.on("requestfailed", note)
    try:
        for attempt in range(tries):
            if attempt:
                page.wait_for_timeout(500)   # the changes come in bursts: let this one pass
            dropped.clear()
            try:
                page.goto(url)
                page.wait_for_load_state("networkidle")
            except PlaywrightError:
                if not dropped:
                    raise
            if not dropped:
                return
    finally:
        page.remove_listener("requestfailed", note)
    raise AssertionError(f"{url}: loads dropped by network changes {tries} times")


def sign_in(page: Page, url: str, token: str) -> None:
    """Open the dashboard and sign in with ``token`` through the form."""
    open_page(page, f"{url}/dashboard/")
    page.get_by_label("API token or OIDC bearer token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1, name="Federation")).to_be_visible()


def unlabelled_controls(page: Page) -> list[str]:
    """Form controls on the page with no accessible label (describes each)."""
    found: list[str] = page.evaluate("""() => [...document.querySelectorAll(
        'input:not([type=hidden]), select, textarea, button')].filter((el) => {
          if (el.tagName === 'BUTTON') return !(el.textContent.trim() || el.getAttribute('aria-label'));
          const byLabel = [...(el.labels || [])].some((l) => l.textContent.trim());
          return !(byLabel || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby'));
        }).map((el) => el.outerHTML.slice(0, 120))""")
    return found


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("dashboard")
    server = AccordProcess(home / "data", demo_in_force(home / "federation.toml"))
    server.start()
    try:
        yield build_world(server)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = launch(pw)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=LAPTOP, accept_downloads=True)
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    p.on("console", lambda m: errors.append(m.text) if m.type == "error" and not m.text.startswith(
        EXPECTED_REFUSAL) and NETWORK_CHANGED not in m.text else None)
    yield p
    context.close()
    assert not errors, f"the page had script errors: {errors}"


# ---------------------------------------------------------------- tests
def test_sign_in_is_checked_by_the_server_and_sign_out_forgets_the_token(world: World, page: Page) -> None:
    open_page(page, f"{world.server.url}/dashboard/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to Accord")
    page.get_by_label("API token or OIDC bearer token").fill("acc_not_a_real_token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".field-error")).to_contain_text("Not signed in (401)")
    assert page.evaluate("sessionStorage.getItem('accord.token')") is None
    assert unlabelled_controls(page) == []

    sign_in(page, world.server.url, world.tokens["ada"])
    assert page.evaluate("sessionStorage.getItem('accord.token')") == world.tokens["ada"]
    expect(page.locator("#who-name")).to_contain_text("Ada Lovelace (ada)")
    # what /me says she cannot use is not offered; the overview shows every site's load
    expect(page.get_by_role("link", name="Agreements")).to_be_hidden()
    expect(page.get_by_role("link", name="Audit")).to_be_hidden()
    expect(page.get_by_role("link", name="Submit")).to_be_visible()
    expect(page.locator("svg.chart[role=img]")).to_be_visible()
    expect(page.get_by_role("table")).to_contain_text("Killarney (PAICE), Toronto")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to Accord")
    assert page.evaluate("sessionStorage.getItem('accord.token')") is None


def test_a_researcher_previews_submits_and_watches_a_job_finish(world: World, page: Page) -> None:
    sign_in(page, world.server.url, world.tokens["ada"])
    page.get_by_role("link", name="Submit", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Submit a job")
    assert unlabelled_controls(page) == []
    page.get_by_label("Name").fill("dashboard hello")
    page.get_by_label("Project").select_option("ada-climate")
    page.get_by_label("Command").fill("sleep 2 && echo hello from the dashboard")
    page.get_by_label("GPUs").fill("2")
    page.get_by_label("Time limit").fill("5m")
    preview = page.locator(".preview")
    expect(preview).to_contain_text("Would run at")
    expect(preview).to_contain_text("kWh")
    expect(preview).to_contain_text("CO2e")
    expect(preview).to_contain_text("(pool ")
    # a bad field is named next to its control, from the API's 422
    page.get_by_label("Time limit").fill("soon")
    limit_id = page.get_by_label("Time limit").get_attribute("id")
    expect(page.locator(f"#{limit_id}-error")).to_be_visible()
    expect(page.get_by_label("Time limit")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Time limit").fill("5m")
    expect(preview).to_contain_text("Would run at")

    page.get_by_role("button", name="Submit the job").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Job ")
    job_id = page.get_by_role("heading", level=1).inner_text().removeprefix("Job ").strip()
    url = page.url
    # the page follows the job to its end by itself: no reload, no navigation
    expect(page.locator(".job-state")).to_contain_text("completed", timeout=30_000)
    assert page.url == url
    expect(page.locator("pre.log").first).to_have_text("hello from the dashboard\n", timeout=10_000)
    expect(page.locator("#fp-h + *")).to_contain_text("kWh", timeout=10_000)
    story = page.locator("ol.story")
    for kind in ("submit", "place", "dispatch", "complete"):
        expect(story).to_contain_text(f"· {kind}")
    page.get_by_text("Why here? The placement explanation").click()
    explanation = page.locator("#explanation")
    expect(explanation).to_have_attribute("open", "")
    expect(explanation).to_contain_text("score")
    expect(explanation).to_contain_text("Estimated at placement")
    assert wait_for_job(world, job_id, {"completed"})["owner"] == "ada"


def test_a_researcher_cannot_open_an_agreement_page(world: World, page: Page) -> None:
    sign_in(page, world.server.url, world.tokens["ada"])
    statuses: list[int] = []

    def watch(r: Response) -> None:
        if "/api/v1/agreements/uk-ca/" in r.url:
            statuses.append(r.status)

    page.on("response", watch)
    open_page(page, f"{world.server.url}/dashboard/#/agreements/uk-ca")
    refusal = page.get_by_role("alert")
    expect(refusal).to_contain_text("Refused (403)")
    expect(refusal).to_contain_text("only programme officers and auditors of its parties")
    assert statuses == [403]
    expect(page.get_by_role("button", name="Download JSON")).to_have_count(0)


def test_an_officer_downloads_a_statement_and_verifies_it_in_the_page(
        world: World, page: Page, tmp_path: Path) -> None:
    wait_for_job(world, world.jobs["abroad"], {"completed"})
    posted = wait_for_ledger(world, world.jobs["abroad"])
    period = posted[0]["period"]   # the month the run was booked in (the page offers the last 6)
    sign_in(page, world.server.url, world.tokens["pouk"])
    page.get_by_role("link", name="Agreements").click()
    page.get_by_role("link", name="UK–Canada cooperation in AI compute (uk-ca)").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("UK–Canada cooperation in AI compute")
    expect(page.get_by_role("meter", name="uk → ca, year")).to_be_visible()
    used = float(page.get_by_role("meter", name="uk → ca, year").get_attribute("aria-valuenow") or 0)
    assert used > 0   # the administrator's run at Killarney
    expect(page.locator("figure").first).to_contain_text("Net balance per partner")
    assert unlabelled_controls(page) == []

    page.get_by_label("Period", exact=True).select_option(period)
    with page.expect_download() as got:
        page.get_by_role("button", name="Download JSON").click()
    saved = tmp_path / got.value.suggested_filename
    got.value.save_as(saved)
    doc = json.loads(saved.read_text())
    assert doc["agreement"]["id"] == "uk-ca" and doc["period"] == period, doc["totals"]
    assert posted[0]["id"] in {json.loads(e["body"])["id"] for e in doc["entries"]}
    expect(page.get_by_label("Operator's public key (PEM)")).to_have_value(
        (world.server.data_dir / "ledger-signing.pub.pem").read_text())

    page.get_by_label("Statement file (JSON)").set_input_files(saved)
    page.get_by_role("button", name="Verify", exact=True).click()
    result = page.locator(".verify-result")
    expect(result).to_contain_text(f"Verified: uk-ca {doc['period']}")
    expect(result).to_contain_text(f"{len(doc['entries'])} entries included in the signed tree")

    doc["totals"]["net_by_partner"]["uk"] = "999"
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(doc))
    page.get_by_label("Statement file (JSON)").set_input_files(forged)
    page.get_by_role("button", name="Verify", exact=True).click()
    expect(result).to_contain_text("Does not verify")
    expect(result).to_contain_text("the totals do not match the entries")

    with page.expect_download() as html:
        page.get_by_role("button", name="Download HTML").click()
    assert html.value.suggested_filename.endswith(".html")


def test_an_operator_sees_and_decides_the_compliance_view(world: World, page: Page) -> None:
    held = world.jobs["held"]
    wait_for_job(world, held, {"held"})
    sign_in(page, world.server.url, world.tokens["opisa"])
    expect(page.get_by_role("link", name="Agreements")).to_be_hidden()
    page.get_by_role("link", name="Compliance").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Compliance")
    table = page.get_by_role("table")
    expect(table).to_contain_text(held)
    expect(table).to_contain_text("foreign-training-scrutiny")
    assert unlabelled_controls(page) == []
    page.get_by_label(f"Reason for job {held}").fill("no export licence on file")
    page.get_by_role("button", name=f"Refuse {held}").click()
    expect(page.locator(".outcome")).to_contain_text(f"Job {held} refused")
    expect(table).not_to_contain_text(held)
    job = wait_for_job(world, held, {"failed"})
    assert "no export licence on file" in job["reason"]


def test_an_officer_sees_what_a_site_of_her_partner_enforces(world: World, page: Page) -> None:
    sign_in(page, world.server.url, world.tokens["pouk"])
    page.get_by_role("link", name="Sites").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sites")
    page.get_by_role("link", name="Isambard-AI", exact=False).first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Site isambard-ai")
    expect(page.get_by_role("status").first).to_contain_text("The agent has not synced yet.")
    expect(page.get_by_role("table", name="Visitors' local users")).to_be_visible()
    expect(page.get_by_role("heading", name="Drift")).to_be_visible()


def test_a_researcher_sets_her_notifications_and_a_bad_address_is_named(world: World, page: Page) -> None:
    sign_in(page, world.server.url, world.tokens["ada"])
    page.get_by_role("link", name="Notifications").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Notifications")
    assert unlabelled_controls(page) == []
    page.get_by_label("Email address").fill("ada-at-turing")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".field-error:visible")).to_contain_text("is not an email address")
    expect(page.locator(".outcome")).to_contain_text("Invalid input (422)")
    page.get_by_label("Email address").fill("ada@turing.example.org")
    page.get_by_label("Webhook URL").fill("https://hooks.example.org/accord")
    page.get_by_label("job.held").uncheck()
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".outcome")).to_contain_text("Saved.")
    expect(page.locator("code.secret")).to_have_text(re.compile(r"^[A-Za-z0-9_-]{43}$"))
    with httpx.Client(base_url=world.server.url, timeout=30,
                      headers={"Authorization": f"Bearer {world.tokens['ada']}"}) as client:
        mine = _ok(client.get("/api/v1/me/notifications"))
    assert (mine["email"], mine["webhook_url"]) == ("ada@turing.example.org", "https://hooks.example.org/accord")
    assert "job.held" not in mine["events"] and "job.ended" in mine["events"]


def test_the_auditor_reads_the_audit_log_and_emissions(world: World, page: Page) -> None:
    sign_in(page, world.server.url, world.tokens["auduk"])
    page.get_by_role("link", name="Audit").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Audit log")
    expect(page.get_by_role("table")).to_contain_text("project.create")
    assert unlabelled_controls(page) == []
    page.get_by_role("link", name="Emissions").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Emissions")
    summary = page.locator("p.lead[role=status]")
    expect(summary).to_contain_text("CO2e over 6 months")
    expect(summary).to_contain_text("Placement estimated")
    expect(page.locator("figure").first).to_contain_text("Emissions per partner")
    expect(page.get_by_role("table").last).to_contain_text("uk")
    assert unlabelled_controls(page) == []


def test_keyboard_alone_reaches_the_main_controls_with_visible_focus(world: World, page: Page) -> None:
    open_page(page, f"{world.server.url}/dashboard/")
    expect(page.get_by_label("API token or OIDC bearer token")).to_be_focused()
    page.keyboard.type(world.server.token)   # the local administrator: every page is offered
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1, name="Federation")).to_be_focused()

    reached: list[str] = []
    page.locator(".skip").focus()   # the top of the page, where a keyboard user starts
    while "Sign out" not in reached and len(reached) < 16:
        page.keyboard.press("Tab")
        focused = page.evaluate("""() => {
            const el = document.activeElement, style = getComputedStyle(el);
            return {text: (el.textContent || el.getAttribute('aria-label') || '').trim(),
                    outline: style.outlineStyle, width: parseFloat(style.outlineWidth)};
        }""")
        assert focused["outline"] != "none" and focused["width"] >= 2, focused   # visible focus
        reached.append(focused["text"])
    for control in ("Federation", "Jobs", "Submit", "Agreements", "Emissions", "Compliance", "Audit",
                    "Sign out"):
        assert control in reached, reached

    # Enter on a focused link navigates; the page's heading then takes focus
    page.get_by_role("link", name="Submit", exact=True).focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Submit a job")
    expect(page.get_by_role("heading", level=1)).to_be_focused()
    names: list[str] = []
    for _ in range(12):
        page.keyboard.press("Tab")
        names.append(page.evaluate("document.activeElement.name || document.activeElement.textContent"))
    for control in ("name", "project", "command", "gpus", "gpu_model", "time_limit", "theme",
                    "Submit the job"):
        assert control in names, names
