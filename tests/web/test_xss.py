"""Untrusted text on the pages: card fields and model replies carrying script and event-handler
payloads render as text, and only the small Markdown subset becomes markup."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.characters.card_fixtures import v2_card
from tests.web.conftest import ADMIN_KEY, Site, Tab, sign_in

CARD_NAME = "Eve <img src=x onerror=alert('name')>"
CARD_TEXT = "<script>alert('card')</script> **bold claim** <a href=javascript:alert(1)>x</a>"
REPLY = "<img src=x onerror=alert('reply')> <script>alert('reply2')</script> *leans in*"


def hostile_card() -> dict[str, Any]:
    card = v2_card()
    card["data"] |= {
        "name": CARD_NAME,
        "creator_notes": CARD_TEXT,  # what the API calls the description (a line for people)
        "tags": ["<svg onload=alert('tag')>"],
        "first_mes": "<iframe src=javascript:alert('greeting')></iframe>",
        "alternate_greetings": [],
    }
    return card


def test_a_hostile_card_and_reply_render_as_text(tab: Tab, site: Site) -> None:
    uploaded = site.http("POST", "/api/characters", json=hostile_card())
    assert uploaded.status_code == 201, uploaded.text
    character = uploaded.json()["id"]
    site.model.enqueue(REPLY, delay_s=0.01)

    sign_in(tab, site.url, site.new_key())
    card = tab.page.locator(f'[data-character="{character}"]')
    expect(card.locator(".card-name")).to_have_text(CARD_NAME)
    expect(card.locator(".tag")).to_have_text("<svg onload=alert('tag')>")
    assert card.locator(".card-text strong").inner_text() == "bold claim"
    assert "<script>alert('card')</script>" in card.locator(".card-text").inner_text()

    card.click()
    tab.page.fill("#composer-text", "<img src=y onerror=alert('mine')>")
    tab.page.press("#composer-text", "Enter")
    last = tab.page.locator(".message.assistant[data-id] .body").last
    expect(last).to_contain_text("<script>alert('reply2')</script>")
    assert last.locator("em").inner_text() == "leans in"
    assert "<img src=y onerror=alert('mine')>" in tab.page.locator(".message.user").inner_text()
    # The greeting stored with the conversation is text too.
    assert "<iframe" in tab.page.locator(".message.assistant .body").first.inner_text()

    # Nothing became an element: no image, frame, svg, link or script beyond the page's own
    # (the avatars are the page's: pictures the server made, as blob: URLs).
    for tag in ("img:not(.avatar > img)", "iframe", "svg", "a[href^=javascript]"):
        assert tab.page.locator(tag).count() == 0, tag
    sources = tab.page.locator(".avatar > img").evaluate_all("(l) => l.map((i) => i.src)")
    assert all(src.startswith("blob:") for src in sources), sources
    assert tab.page.locator("script").count() == 1

    # The dashboard shows the same name as text.
    tab.page.goto(site.url + "/admin#characters")
    sign_in(tab, site.url, ADMIN_KEY, "/admin#characters")
    expect(
        tab.page.locator(f'#character-rows tr[data-character="{character}"] strong')
    ).to_have_text(CARD_NAME)
    assert tab.page.locator("img").count() == 0
    assert tab.dialogs == []
    assert tab.errors == []  # a blocked inline handler would be a CSP error here


@pytest.mark.parametrize(
    ("text", "html"),
    [
        (
            "**bold** and *it* and `co*de*` and snake_case_name\nnext",
            "<strong>bold</strong> and <em>it</em> and <code>co*de*</code> and "
            "snake_case_name<br>next",
        ),
        ("<b onclick=x()>b</b> & co", "&lt;b onclick=x()&gt;b&lt;/b&gt; &amp; co"),
        ("**<img src=x onerror=alert(1)>**", "<strong>&lt;img src=x onerror=alert(1)&gt;</strong>"),
        (
            "```js\n<script>x</script>\n```",
            "<pre><code>&lt;script&gt;x&lt;/script&gt;\n</code></pre>",
        ),
        ("**half open and ```unclosed", "**half open and ```unclosed"),
        ("_under_ but not in_word_", "<em>under</em> but not in_word_"),
        ("2 * 3 * 4", "2 * 3 * 4"),
    ],
)
def test_the_markdown_subset(tab: Tab, site: Site, text: str, html: str) -> None:
    tab.page.goto(site.url + "/")
    rendered = tab.page.evaluate(
        """async (text) => {
            const { renderMarkdown } = await import("/ui/markdown.js");
            const box = document.createElement("div");
            box.append(renderMarkdown(text));
            return box.innerHTML;
        }""",
        text,
    )
    assert rendered == html
