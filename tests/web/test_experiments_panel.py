"""The dashboard's Experiments tab in Chromium: an A/B test with its report (turns and users
per variant), a ramp by the slider and the kill switch reaching the API, a refused change
showing the server's reason, and names rendered as text."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.web.conftest import ADMIN_KEY, Site, Tab, sign_in

SPEC: dict[str, Any] = {
    "id": "tone-test",
    "targeting": {"characters": ["aria"]},
    "variants": [
        {"name": "brief", "percent": 25, "instructions": "Be brief."},
        {"name": "<b>loud</b>", "percent": 10, "generation": {"temperature": 0.2}},
    ],
}


def chat(site: Site, user: str) -> None:
    body = {"model": "aria", "user": user, "messages": [{"role": "user", "content": "hi"}]}
    answer = site.http("POST", "/v1/chat/completions", json=body)
    assert answer.status_code == 200, answer.text


def spec_of(site: Site) -> dict[str, Any]:
    answer = site.http("GET", "/api/admin/experiments/tone-test")
    answer.raise_for_status()
    found: dict[str, Any] = answer.json()["spec"]
    return found


def test_the_experiments_tab_ramps_kills_and_reports(tab: Tab, site: Site) -> None:
    site.http("POST", "/api/admin/experiments", json=SPEC).raise_for_status()
    users = [f"u{i}" for i in range(12)]
    for user in users:
        chat(site, user)
    sign_in(tab, site.url, ADMIN_KEY, "/admin")
    tab.page.click("#tab-experiments")
    panel = tab.page.locator('article[data-experiment="tone-test"]')
    expect(panel).to_be_visible()
    expect(panel.locator("h2")).to_have_text("tone-test")
    rows = panel.locator("table.report tbody tr")
    expect(rows).to_have_count(3)  # control, brief, <b>loud</b>
    turns = [int(t) for t in panel.locator('td[data-field="turns"]').all_inner_texts()]
    assert sum(turns) == len(users)
    assert panel.locator("b").count() == 0  # a variant's name is text, never markup
    expect(panel.locator('tr[data-variant="<b>loud</b>"] td').first).to_have_text("<b>loud</b>")
    tab.screenshot("dashboard-experiments")

    # A ramp: the slider goes up to the variant's share (50 % with two variants).
    slider = panel.locator('input[data-variant="brief"]')
    assert slider.get_attribute("max") == "50"
    slider.fill("40")
    expect(tab.page.locator("#experiments-status")).to_contain_text("brief at 40 %")
    assert spec_of(site)["variants"][0]["percent"] == 40

    # The kill switch, and back.
    panel.locator('button[data-action="kill"]').click()
    expect(tab.page.locator("#experiments-status")).to_contain_text("killed")
    assert spec_of(site)["killed"] is True
    expect(panel).to_contain_text("killed: everyone in control")
    panel.locator('button[data-action="kill"]').click()
    expect(panel).to_contain_text("running")
    assert spec_of(site)["killed"] is False

    # Gone behind the page's back: the change is refused with the server's reason.
    site.http("DELETE", "/api/admin/experiments/tone-test").raise_for_status()
    panel.locator('button[data-action="kill"]').click()
    expect(panel.locator("[role=alert]")).to_contain_text("no experiment 'tone-test'")
    tab.page.click("#experiments-refresh")
    expect(tab.page.locator("#experiment-list")).to_contain_text("No experiments")
    # The one console line is the browser's own note of the refused request's 404.
    assert [e for e in tab.errors if "404" not in e] == []
