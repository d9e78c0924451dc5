"""Screenshots of the web dashboard's main pages, with real data, into ``docs/img/``.

Runs a real ``accord up`` on the demo federation in a temporary directory, builds the
same world as ``tests/integration/test_dashboard.py`` (people, tokens, a project, a
held large run), runs a few jobs across borders so the books, balances and emissions
have something to show, then drives Debian's Chromium (Playwright) through the pages
at a laptop's 1366×768 and saves a PNG of each::

    uv run python scripts/screenshots.py            # into docs/img/
    uv run python scripts/screenshots.py --out /tmp/shots

Exit status 0 when every screenshot was written; an AssertionError (with the page's
state) when a page did not show what it should.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# (partner, theme, GPU model, GPUs, seconds of work): runs that cross borders in the demo
RUNS = [
    ("uk", "ai-research", "H100-SXM5-80GB", 8, 4),
    ("ca", "climate", "GH200", 16, 3),
    ("kr", "data-science", "GH200", 4, 3),
    ("fr", "ai-research", "GH200", 8, 2),
    ("uk", "climate", "H100-SXM5-80GB", 4, 2),
]


def seed(w: Any, t: Any) -> str:
    """Run :data:`RUNS` as the administrator and two jobs as Ada; wait until they are
    booked. Returns the id of Ada's finished job."""
    ids = []
    with w.admin() as admin:
        for partner, theme, model, gpus, seconds in RUNS:
            ids.append(t._ok(admin.post("/api/v1/jobs", json={
                "name": f"{theme} run from {partner}", "command": ["sleep", str(seconds)],
                "partner": partner, "theme": theme, "gpu_model": model, "gpus": gpus,
                "time_limit": 600, "deadline": t.deadline(600)}))["id"])
        # flexible work from the UK: placement may pick a cleaner grid abroad or a later hour
        t._ok(admin.post("/api/v1/jobs", json={
            "name": "flexible fine-tuning", "command": ["sleep", "2"], "partner": "uk",
            "theme": "ai-research", "gpus": 8, "time_limit": 3600}))
    import httpx

    with httpx.Client(base_url=w.server.url, timeout=30,
                      headers={"Authorization": f"Bearer {w.tokens['ada']}"}) as ada:
        mine = [t._ok(ada.post("/api/v1/jobs", json={
            "name": name, "project": "ada-climate", "command": ["sh", "-c", command],
            "gpus": gpus, "time_limit": "20m"}))["id"]
            for name, command, gpus in (("downscaling epoch 1", "sleep 2; echo epoch 1 done", 4),
                                        ("downscaling epoch 2", "sleep 3; echo epoch 2 done", 4))]
    for job in [*ids, *mine]:
        t.wait_for_job(w, job, {"completed"}, timeout=60)
    t.wait_for_ledger(w, ids[0])
    return str(mine[0])


def shoot(page: Any, path: Path, *, full: bool = True) -> None:
    """Save the page (its whole height, or the 1366×768 viewport) as ``path``."""
    page.wait_for_timeout(600)   # let charts and the live load draw
    page.screenshot(path=str(path), full_page=full)
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def main(argv: list[str] | None = None) -> int:
    """Take the screenshots; returns the exit status."""
    args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    out: Path = args.parse_args(argv).out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    t = importlib.import_module("tests.integration.test_dashboard")
    server_mod = importlib.import_module("tests.integration.server")
    from playwright.sync_api import expect, sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        server = server_mod.AccordProcess(Path(tmp) / "data", t.DEMO)
        server.start()
        try:
            w = t.build_world(server)
            job = seed(w, t)
            t.wait_for_job(w, w.jobs["held"], {"held"})
            with sync_playwright() as pw:
                browser = t.launch(pw)
                context = browser.new_context(viewport=t.LAPTOP, accept_downloads=True)
                page = context.new_page()
                url = server.url
                page.goto(f"{url}/dashboard/")
                shoot(page, out / "dashboard-signin.png", full=False)

                t.sign_in(page, url, server.token)
                shoot(page, out / "dashboard-federation.png")
                page.goto(f"{url}/dashboard/#/jobs")
                expect(page.get_by_role("table")).to_contain_text("completed")
                shoot(page, out / "dashboard-jobs.png", full=False)
                page.get_by_role("button", name="Sign out").click()

                t.sign_in(page, url, w.tokens["ada"])
                page.goto(f"{url}/dashboard/#/submit")
                page.get_by_label("Project").select_option("ada-climate")
                page.get_by_label("Command").fill("python train.py --epochs 3")
                page.get_by_label("GPUs").fill("8")
                page.get_by_label("Time limit").fill("2h")
                expect(page.locator(".preview")).to_contain_text("Would run at")
                shoot(page, out / "dashboard-submit.png", full=False)
                page.goto(f"{url}/dashboard/#/jobs/{job}")
                expect(page.locator(".job-state")).to_contain_text("completed")
                page.get_by_text("Why here? The placement explanation").click()
                expect(page.locator("#fp-h + *")).to_contain_text("kWh")
                shoot(page, out / "dashboard-job.png")
                page.goto(f"{url}/dashboard/#/agreements/uk-ca")
                expect(page.get_by_role("alert")).to_contain_text("Refused (403)")
                shoot(page, out / "dashboard-refused.png", full=False)
                page.get_by_role("button", name="Sign out").click()

                t.sign_in(page, url, w.tokens["pouk"])
                page.goto(f"{url}/dashboard/#/agreements/uk-ca")
                with page.expect_download() as got:
                    page.get_by_role("button", name="Download JSON").click()
                saved = Path(tmp) / got.value.suggested_filename
                got.value.save_as(saved)
                page.get_by_label("Statement file (JSON)").set_input_files(saved)
                page.get_by_role("button", name="Verify", exact=True).click()
                expect(page.locator(".verify-result")).to_contain_text("Verified")
                shoot(page, out / "dashboard-agreement.png")
                page.goto(f"{url}/dashboard/#/emissions")
                expect(page.locator("p.lead[role=status]")).to_contain_text("CO2e")
                shoot(page, out / "dashboard-emissions.png")
                page.get_by_role("button", name="Sign out").click()

                t.sign_in(page, url, w.tokens["opisa"])
                page.goto(f"{url}/dashboard/#/compliance")
                expect(page.get_by_role("table")).to_contain_text(w.jobs["held"])
                shoot(page, out / "dashboard-compliance.png", full=False)
                page.get_by_role("button", name="Sign out").click()

                t.sign_in(page, url, w.tokens["auduk"])
                page.goto(f"{url}/dashboard/#/audit")
                expect(page.get_by_role("table")).to_contain_text("job.submit")
                shoot(page, out / "dashboard-audit.png", full=False)
                browser.close()
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
