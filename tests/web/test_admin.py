"""The dashboard in Chromium: card import by drag and drop, API keys, the audit log and the
live view, against a live server through the admin API."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from personae.characters.cards.codec import decode_character
from tests.characters.card_fixtures import card_png, v2_card
from tests.web.conftest import ADMIN_KEY, Site, Tab, serve, sign_in


def drop_file(page: Page, data: bytes, name: str, kind: str = "image/png") -> None:
    """Drop a file on the import zone, as a drag from the desktop does."""
    page.evaluate(
        """([b64, name, kind]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: kind }));
            const zone = document.querySelector("#drop");
            const init = { dataTransfer: transfer, bubbles: true, cancelable: true };
            for (const type of ["dragenter", "dragover", "drop"]) {
                zone.dispatchEvent(new DragEvent(type, init));
            }
        }""",
        [base64.b64encode(data).decode(), name, kind],
    )


def admin(tab: Tab, site: Site, section: str = "live") -> None:
    sign_in(tab, site.url, ADMIN_KEY, "/admin")
    expect(tab.page.locator("#dashboard")).to_be_visible()
    tab.page.click(f"#tab-{section}")


def test_a_png_card_dropped_on_the_dashboard_is_served_at_once(tab: Tab, site: Site) -> None:
    admin(tab, site, "characters")
    rows = tab.page.locator("#character-rows tr")
    expect(rows).to_have_count(5)
    assert tab.page.locator("#character-rows td.good").count() == 5  # every one loaded
    drop_file(tab.page, card_png(v2_card()), "wren.png")
    expect(tab.page.locator("#import-result")).to_contain_text("Imported Wren Halloway")
    expect(rows).to_have_count(6)
    wren = tab.page.locator("#character-rows tr", has_text="Wren Halloway")
    expect(wren.locator("td").nth(1)).to_have_text("SENTINEL-VERSION-2.1")
    expect(wren.locator("td").nth(3)).to_have_text("ok")
    tab.screenshot("dashboard-characters")

    # The card is on disk and served: the API lists it, the chat's gallery shows it.
    served = {c["name"] for c in site.http("GET", "/api/characters").json()}
    assert "Wren Halloway" in served
    tab.page.goto(site.url + "/")
    expect(tab.page.locator(".card-name", has_text="Wren Halloway")).to_be_visible()
    # And the import is in the audit log.
    tab.page.goto(site.url + "/admin#audit")
    expect(tab.page.locator('#audit-rows tr[data-action="character.import"]')).to_have_count(1)
    tab.screenshot("dashboard-audit")
    assert tab.errors == []


def test_a_broken_card_is_refused_with_the_reason_and_changes_nothing(tab: Tab, site: Site) -> None:
    before = sorted(p.name for p in site.folder.iterdir())
    admin(tab, site, "characters")
    expect(tab.page.locator("#character-rows tr")).to_have_count(5)
    drop_file(tab.page, b"\x89PNG\r\n\x1a\nnot really a png", "broken.png")
    result = tab.page.locator("#import-result")
    expect(result).to_contain_text("Not imported:")
    assert result.get_attribute("class") == "error"
    expect(tab.page.locator("#character-rows tr")).to_have_count(5)
    assert sorted(p.name for p in site.folder.iterdir()) == before
    # The browser logged the refused upload (a 4xx); nothing else went wrong.
    assert all("status of 4" in e for e in tab.errors)


def test_keys_are_created_shown_once_and_revoked(tab: Tab, site: Site) -> None:
    admin(tab, site, "keys")
    tab.page.fill("#key-subject", "alice")
    tab.page.click("#key-form button[type=submit]")
    token = tab.page.locator("#new-key-token")
    expect(token).to_contain_text("pk_")
    issued = token.inner_text()
    assert site.http("GET", "/ui/whoami", key=issued).json() == {
        "user": "alice",
        "role": "user",
        "tenant": "default",
        "admin": False,
    }
    key_id = issued.split("_")[1]
    row = tab.page.locator(f'#key-rows tr[data-key="{key_id}"]')
    expect(row.locator("td").nth(2)).to_have_text("alice")
    tab.screenshot("dashboard-keys")

    row.get_by_role("button", name=f"Revoke {key_id}").click()  # confirm() is accepted
    expect(row.locator("td").nth(6)).not_to_have_text("")
    assert tab.dialogs == [("confirm", f"Revoke key {key_id}? Clients using it stop working.")]
    assert site.http("GET", "/api/characters", key=issued).status_code == 401

    tab.page.click("#tab-audit")
    expect(tab.page.locator('#audit-rows tr[data-action="key.create"]')).to_have_count(1)
    expect(tab.page.locator('#audit-rows tr[data-action="key.revoke"]')).to_have_count(1)
    assert tab.errors == []


def test_an_empty_subject_is_refused_and_creates_no_key(tab: Tab, site: Site) -> None:
    admin(tab, site, "keys")
    tab.page.fill("#key-subject", "   ")
    tab.page.click("#key-form button[type=submit]")
    expect(tab.page.locator("#key-error")).to_contain_text("Not created")
    assert site.http("GET", "/api/admin/keys").json() == []


def test_the_live_view_counts_turns_and_connections(tab: Tab, site: Site) -> None:
    sign_in(tab, site.url, ADMIN_KEY, "/admin?every=250")
    turns = tab.page.locator("#m-turns")
    expect(turns).to_have_attribute("data-value", "0")
    expect(tab.page.locator("#m-connections")).to_have_attribute("data-value", "0")

    # A user chats in another tab: a connection, then a turn.
    chat = tab.page.context.new_page()
    sign_in(Tab(chat), site.url, site.new_key())
    expect(tab.page.locator("#m-connections")).to_have_attribute("data-value", "1")
    site.model.enqueue("Plotted.", delay_s=0.05)
    chat.click('[data-character="aria"]')
    chat.fill("#composer-text", "Plot a course.")
    chat.press("#composer-text", "Enter")
    expect(chat.locator(".message.assistant[data-id] .body").last).to_have_text("Plotted.")

    expect(turns).to_have_attribute("data-value", "1")
    assert tab.page.locator("#chart-rate polyline").count() >= 1
    expect(tab.page.locator("#chart-latency circle")).not_to_have_count(0)
    expect(tab.page.locator("#backends tr")).not_to_have_count(0)
    assert tab.page.locator("#backends td").nth(1).inner_text() == "closed"
    tab.screenshot("dashboard-live")
    assert tab.errors == []


def test_a_user_key_does_not_open_the_dashboard(tab: Tab, site: Site) -> None:
    sign_in(tab, site.url, site.new_key(), "/admin")
    expect(tab.page.locator("#signin-error")).to_have_text("That key is not an admin's.")
    expect(tab.page.locator("#dashboard")).to_be_hidden()
    assert tab.errors == []


def test_a_broken_edit_shows_its_error_while_the_old_version_serves(
    tab: Tab, tmp_path: Path
) -> None:
    with serve(tmp_path, watch_characters=True) as site:
        admin(tab, site, "characters")
        aria = tab.page.locator('#character-rows tr[data-character="aria"]')
        expect(aria.locator("td").nth(3)).to_have_text("ok")
        (site.folder / "aria.yaml").write_text("id: aria\nname: [unclosed\n")
        expect(aria.locator("td").nth(3)).to_have_text("error", timeout=15_000)
        assert aria.locator("td").nth(4).inner_text().strip() != ""
        expect(aria.locator("td").first).to_contain_text("Aria")  # still serving
        tab.screenshot("dashboard-reload-error")
        assert tab.errors == []


def test_the_tabs_work_from_the_keyboard(tab: Tab, site: Site) -> None:
    admin(tab, site, "live")
    tab.page.focus("#tab-live")
    tab.page.keyboard.press("ArrowRight")
    expect(tab.page.locator("#tab-characters")).to_be_focused()
    expect(tab.page.locator("#characters")).to_be_visible()
    expect(tab.page.locator("#live")).to_be_hidden()
    tab.page.keyboard.press("ArrowLeft")
    tab.page.keyboard.press("ArrowLeft")
    expect(tab.page.locator("#audit")).to_be_visible()
    assert tab.page.url.endswith("#audit")
    assert tab.errors == []


EXPOSITION = """\
# HELP personae_turn_duration_seconds From the start of a turn to its end, any outcome.
# TYPE personae_turn_duration_seconds histogram
personae_turn_duration_seconds_bucket{backend="a",character="x",outcome="ok",le="0.1"} 1.0
personae_turn_duration_seconds_bucket{backend="a",character="x",outcome="ok",le="0.5"} 3.0
personae_turn_duration_seconds_bucket{backend="a",character="x",outcome="ok",le="+Inf"} 4.0
personae_turn_duration_seconds_bucket{backend="b",character="x",outcome="ok",le="0.1"} 1.0
personae_turn_duration_seconds_bucket{backend="b",character="x",outcome="ok",le="0.5"} 1.0
personae_turn_duration_seconds_bucket{backend="b",character="x",outcome="ok",le="+Inf"} 1.0
personae_turns_total{backend="a",character="x",outcome="ok"} 4.0
personae_turns_total{backend="b",character="say \\"hi\\"",outcome="failed"} 1.0
"""


def test_the_live_view_reads_prometheus_text_like_histogram_quantile(tab: Tab, site: Site) -> None:
    tab.page.goto(site.url + "/admin")
    figures = tab.page.evaluate(
        """async (text) => {
            const m = await import("/ui/metrics.js");
            const samples = m.parseMetrics(text);
            const counts = m.buckets(samples, "personae_turn_duration_seconds");
            return {
                turns: m.sum(samples, "personae_turns_total"),
                failed: m.sum(samples, "personae_turns_total", (l) => l.outcome !== "ok"),
                quoted: samples.at(-1).labels.character,
                p10: m.quantile(0.1, counts),
                p50: m.quantile(0.5, counts),
                p95: m.quantile(0.95, counts),
                none: m.quantile(0.5, m.minus(counts, counts)),
            };
        }""",
        EXPOSITION,
    )
    # Buckets summed over label sets: <=0.1: 2, <=0.5: 4, all: 5; linear within a bucket, and
    # a rank in +Inf answers the highest finite bound, as Prometheus does.
    assert figures == {
        "turns": 5,
        "failed": 1,
        "quoted": 'say "hi"',
        "p10": pytest.approx(0.025),
        "p50": pytest.approx(0.2),
        "p95": 0.5,
        "none": None,
    }


@pytest.mark.parametrize(("button", "suffix"), [("PNG", ".png"), ("JSON", ".json")])
def test_a_character_exported_from_the_dashboard_reads_back(
    tab: Tab, site: Site, button: str, suffix: str
) -> None:
    admin(tab, site, "characters")
    row = tab.page.locator('#character-rows tr[data-character="juniper-quill"]')
    with tab.page.expect_download() as download:
        row.get_by_role("button", name=f"Export Juniper Quill as {button}").click()
    saved = Path(download.value.path())
    assert download.value.suggested_filename == f"juniper-quill{suffix}"
    read = decode_character(saved.read_bytes(), suffix=suffix, source=saved.name)
    assert read.name == "Juniper Quill"
    expect(tab.page.locator("#import-result")).to_contain_text("Exported juniper-quill")
    assert tab.errors == []
