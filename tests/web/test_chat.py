"""The chat page in Chromium: sign in, pick a character, stream a reply over the WebSocket,
resume after a reload or a dropped connection, stop a reply, see the mood move."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
from playwright.sync_api import expect

from tests.web.conftest import Site, Tab, serve, sign_in

REPLY = " ".join(f"word{i}" for i in range(40)) + " done."


def start_chat(tab: Tab, site: Site, character: str = "aria") -> None:
    sign_in(tab, site.url, site.new_key())
    tab.page.click(f'[data-character="{character}"]')
    expect(tab.page.locator("#chat")).to_be_visible()


def say(tab: Tab, text: str) -> None:
    tab.page.fill("#composer-text", text)
    tab.page.press("#composer-text", "Enter")


def replies(tab: Tab) -> list[str]:
    """The character's messages after its greeting (stored with the conversation)."""
    return tab.page.locator(".message.assistant .body").all_inner_texts()[1:]


def test_sign_in_pick_a_character_and_see_the_reply_stream(tab: Tab, site: Site) -> None:
    site.model.enqueue(REPLY, delay_s=0.04)
    sign_in(tab, site.url, site.new_key())
    cards = tab.page.locator(".card-button")
    expect(cards.first).to_be_visible()
    assert tab.page.locator('[data-character="aria"] .card-name').inner_text() == "Aria"
    tab.screenshot("gallery")
    tab.page.click('[data-character="aria"]')
    say(tab, "Where to, navigator?")

    streaming = tab.page.locator(".message.streaming .body")
    expect(streaming).to_contain_text("word3")  # part of the reply, before the rest arrived
    assert "done." not in streaming.inner_text()
    expect(tab.page.locator(".message.assistant[data-id] .body").last).to_have_text(REPLY)
    assert tab.page.locator(".message.user .body").all_inner_texts() == ["Where to, navigator?"]
    expect(tab.page.locator(".message.streaming")).to_have_count(0)
    expect(tab.page.locator(".conversation")).to_have_count(1)
    expect(tab.page.locator("#announce")).to_have_text(f"Aria: {REPLY}")  # for screen readers
    tab.screenshot("chat")
    assert tab.errors == []


def test_a_reload_mid_reply_resumes_to_the_full_text(tab: Tab, site: Site) -> None:
    site.model.enqueue(REPLY, delay_s=0.05)
    start_chat(tab, site)
    say(tab, "Tell me a long story.")
    expect(tab.page.locator(".message.streaming .body")).to_contain_text("word5")

    tab.page.reload()
    expect(tab.page.locator(".message.assistant[data-id] .body").last).to_have_text(REPLY)
    assert replies(tab) == [REPLY]  # once: the replayed deltas did not double it
    assert tab.page.locator(".message.user .body").all_inner_texts() == ["Tell me a long story."]
    assert len(site.model.requests) == 1
    assert tab.errors == []


def test_a_dropped_connection_resumes_the_reply(tab: Tab, site: Site) -> None:
    site.model.enqueue(REPLY, delay_s=0.05)
    start_chat(tab, site)
    say(tab, "Keep talking.")
    expect(tab.page.locator(".message.streaming .body")).to_contain_text("word5")

    tab.page.evaluate("window.personae.realtime.drop()")
    expect(tab.page.locator("body")).to_have_attribute("data-connection", "online")
    expect(tab.page.locator(".message.assistant[data-id] .body").last).to_have_text(REPLY)
    assert replies(tab) == [REPLY]
    assert tab.errors == []


SLOW_LISTS = """
// The conversation and memory lists answer late (a busy server): nothing sent meanwhile is lost.
// The count of late answers still due is an attribute: the page's CSP rules out
// wait_for_function, which evaluates a string.
let pending = 0;
const due = (by) => document.documentElement.setAttribute("data-slow", String((pending += by)));
const realFetch = window.fetch;
window.fetch = async (input, init) => {
  const url = String(input);
  const late = url.startsWith("/api/conversations?") || url.startsWith("/api/memory?");
  if (!late) return realFetch(input, init);
  due(1);
  try {
    await new Promise((resolve) => setTimeout(resolve, 1500));
    return await realFetch(input, init);
  } finally {
    due(-1);
  }
};
"""


def test_a_message_sent_before_the_side_lists_arrive_stays(tab: Tab, site: Site) -> None:
    tab.page.add_init_script(SLOW_LISTS)
    site.model.enqueue("Right away.", delay_s=0.01)
    start_chat(tab, site)
    say(tab, "Quick question.")
    reply = tab.page.locator(".message.assistant[data-id] .body")
    expect(reply.last).to_have_text("Right away.")
    expect(tab.page.locator("html")).to_have_attribute("data-slow", "0")  # the late lists landed
    assert tab.page.locator(".message.user .body").all_inner_texts() == ["Quick question."]
    assert reply.all_inner_texts()[-1] == "Right away."
    expect(tab.page.locator('.conversation[aria-current="true"]')).to_have_count(1)
    assert tab.errors == []


def test_a_send_made_while_offline_goes_out_once_after_the_reconnect(tab: Tab, site: Site) -> None:
    site.model.enqueue("Heard you.", delay_s=0.01)
    start_chat(tab, site)
    expect(tab.page.locator("body")).to_have_attribute("data-connection", "online")
    tab.page.evaluate("window.personae.realtime.drop()")
    say(tab, "Are you there?")
    expect(tab.page.locator(".message.assistant[data-id] .body").last).to_have_text("Heard you.")
    assert tab.page.locator(".message.user .body").all_inner_texts() == ["Are you there?"]
    assert len(site.model.requests) == 1


def test_stop_ends_the_reply_and_keeps_what_arrived(tab: Tab, site: Site) -> None:
    site.model.enqueue("word " * 200, delay_s=0.05)
    start_chat(tab, site)
    say(tab, "Ramble on.")
    streaming = tab.page.locator(".message.streaming .body")
    expect(streaming).to_contain_text("word word")
    tab.page.click("#cancel")
    expect(tab.page.locator("#notice")).to_have_text("The reply was stopped.")
    stopped = tab.page.locator('.message[data-status="cancelled"] .body')
    assert 0 < len(stopped.inner_text().split()) < 200
    expect(tab.page.locator("#cancel")).to_be_hidden()

    site.model.enqueue("Sorry, go on.")
    say(tab, "Thanks.")  # the conversation goes on after a stop
    expect(tab.page.locator(".message.assistant[data-id] .body").last).to_have_text("Sorry, go on.")
    assert tab.errors == []


def test_mood_and_affinity_follow_state_changed_events(tab: Tab, site: Site) -> None:
    site.model.enqueue("Oh. Thank you.")
    start_chat(tab, site, "mira")
    say(tab, "Thanks, you are lovely")
    expect(tab.page.locator('#state dd[data-name="mood"]')).to_have_text("happy")
    expect(tab.page.locator('#state dd[data-name="affinity"]')).to_have_text("45")
    assert tab.page.locator('#state dd[data-name="mood"]').get_attribute("title") == "was neutral"
    assert tab.page.locator('#state dd[data-name="affinity"] meter').get_attribute("value") == "45"
    tab.screenshot("behaviour")
    # After a reload the state is replayed from the conversation's event log.
    tab.page.reload()
    expect(tab.page.locator('#state dd[data-name="mood"]')).to_have_text("happy")
    assert tab.errors == []


def test_earlier_conversations_open_with_their_history(tab: Tab, site: Site) -> None:
    site.model.enqueue("First answer.")
    start_chat(tab, site)
    say(tab, "First question.")
    expect(tab.page.locator(".message.assistant[data-id] .body").last).to_have_text("First answer.")
    tab.page.click("#new-conversation")
    expect(tab.page.locator(".message.user")).to_have_count(0)
    site.model.enqueue("Second answer.")
    say(tab, "Second question.")
    expect(tab.page.locator(".message.assistant[data-id] .body").last).to_have_text(
        "Second answer."
    )
    expect(tab.page.locator(".conversation")).to_have_count(2)

    tab.page.locator(".conversation").last.click()  # the older one (newest first)
    expect(tab.page.locator(".message.user .body")).to_have_text(["First question."])
    assert "First answer." in replies(tab)
    assert tab.errors == []


def test_a_wrong_key_is_refused_with_a_clear_message(tab: Tab, site: Site) -> None:
    sign_in(tab, site.url, "pk_nothing_wrong")
    expect(tab.page.locator("#signin-error")).to_have_text("That key was not accepted.")
    expect(tab.page.locator("#gallery")).to_be_hidden()
    assert tab.page.evaluate("sessionStorage.getItem('personae.apiKey')") is None


def test_phone_layout_and_keyboard_only(phone: Tab, site: Site) -> None:
    site.model.enqueue("Small screens are fine.")
    sign_in(phone, site.url, site.new_key())
    expect(phone.page.locator(".card-button").first).to_be_visible()
    # Keyboard only: focus the first card, open it, write and send with Enter.
    phone.page.locator('[data-character="aria"]').focus()
    phone.page.keyboard.press("Enter")
    expect(phone.page.locator("#composer-text")).to_be_focused()
    phone.page.keyboard.type("Hello from a phone")
    phone.page.keyboard.press("Enter")
    expect(phone.page.locator(".message.assistant[data-id] .body").last).to_have_text(
        "Small screens are fine."
    )
    overflow = phone.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    phone.screenshot("phone")
    assert phone.errors == []


def test_a_refused_message_says_why_and_keeps_the_text(tab: Tab, site: Site) -> None:
    start_chat(tab, site)
    too_long = "x" * 8001  # limits.max_message_chars is 8000
    say(tab, too_long)
    expect(tab.page.locator("#notice")).to_contain_text("Not sent:")
    expect(tab.page.locator("#composer-text")).to_have_value(too_long)  # nothing lost
    expect(tab.page.locator(".message.user")).to_have_count(0)
    assert site.http("GET", "/api/conversations?user=sam").json() == []
    assert site.model.requests == []
    assert tab.errors == []


def test_a_token_from_a_configured_login_signs_in_and_chats(tab: Tab, tmp_path: Path) -> None:
    secret = "a-web-test-secret-that-is-long-enough-for-hs256"
    login = {"jwt": {"secret": secret, "audience": "personae", "issuer": "login"}}
    claims = {"sub": "zoe", "aud": "personae", "iss": "login", "exp": int(time.time()) + 300}
    with serve(tmp_path, security=login) as site:
        site.model.enqueue("Hello, Zoe.", delay_s=0.01)
        sign_in(tab, site.url, jwt.encode(claims, secret, algorithm="HS256"))
        expect(tab.page.locator("#status")).to_contain_text("zoe")
        tab.page.click('[data-character="aria"]')
        say(tab, "Hi there.")
        expect(tab.page.locator(".message.assistant[data-id] .body").last).to_have_text(
            "Hello, Zoe."
        )
        expect(tab.page.locator("#to-admin")).to_be_hidden()
        assert tab.errors == []


def test_what_the_character_remembers_can_be_seen_and_forgotten(tab: Tab, tmp_path: Path) -> None:
    with serve(tmp_path, memory={"enabled": True, "embedder": "none"}) as site:
        site.model.enqueue("Noted, Sam.")
        start_chat(tab, site)
        expect(tab.page.locator("#memory-empty")).to_be_visible()
        say(tab, "My name is Sam Okafor. I love sailing.")
        items = tab.page.locator("#memory li")
        expect(items.first).to_be_visible()
        texts = tab.page.locator("#memory .memory-text").all_inner_texts()
        assert any("Sam Okafor" in t for t in texts), texts
        tab.screenshot("memory")

        count = items.count()
        first = texts[0]
        tab.page.get_by_role("button", name=f"Forget: {first}").click()
        expect(items).to_have_count(count - 1)
        assert first not in tab.page.locator("#memory .memory-text").all_inner_texts()

        tab.page.click("#forget-all")  # confirm() is accepted
        expect(items).to_have_count(0)
        expect(tab.page.locator("#memory-empty")).to_be_visible()
        assert tab.dialogs == [("confirm", "Make Aria forget everything about you?")]
        assert site.http("GET", "/api/memory?user=sam&character=aria").json() == []
        assert tab.errors == []


def test_the_gallery_shows_each_card_s_picture(tab: Tab, site: Site) -> None:
    key = site.new_key()
    sign_in(tab, site.url, key)
    served = len(site.http("GET", "/api/characters", key=key).json())
    # Counted only once the gallery has rendered: a count taken before it would be 0.
    expect(tab.page.locator(".card-button")).to_have_count(served)
    pictures = tab.page.locator(".card-button .avatar img")
    expect(pictures).to_have_count(served)
    # Each one arrived and decoded (a broken image has no natural size).
    expect(tab.page.locator('[data-character="juniper-quill"] .avatar img')).to_be_visible()
    sizes = pictures.evaluate_all("(imgs) => imgs.map((i) => [i.complete, i.naturalWidth])")
    assert sizes
    assert all(complete and width > 0 for complete, width in sizes), sizes
    assert tab.errors == []


def test_an_alternate_greeting_chosen_opens_the_conversation(tab: Tab, site: Site) -> None:
    sign_in(tab, site.url, site.new_key())
    tab.page.click('[data-character="aria"]')
    greeting = tab.page.locator(".message.assistant .body").first
    expect(greeting).to_contain_text("The charts are ready")
    tab.page.click("#greeting-next")  # Aria has two greetings
    expect(tab.page.locator(".swipe .hint")).to_have_text("2/2")
    expect(greeting).to_contain_text("cargo manifest")
    expect(tab.page.locator("#greeting-next")).to_be_focused()  # the arrows stay usable by keys
    tab.page.keyboard.press("Enter")  # wraps around to the first, then back to the second
    expect(tab.page.locator(".swipe .hint")).to_have_text("1/2")
    tab.page.click("#greeting-next")
    say(tab, "Stall them.")
    reply = tab.page.locator(".message.assistant[data-id] .body").last
    expect(reply).to_have_text(site.model.default_reply)

    # What was stored: the chosen greeting first, as the conversation's own message.
    conversation = tab.page.locator(".conversation[aria-current=true]").get_attribute(
        "data-conversation"
    )
    path = f"/api/conversations/{conversation}/messages"
    stored = site.http("GET", path, params={"user": "sam"}).json()
    assert "cargo manifest" in stored[0]["content"]
    assert "charts are ready" not in " ".join(m["content"] for m in stored)
    assert tab.errors == []


def test_regenerate_swipe_back_and_edit_the_last_message(tab: Tab, site: Site) -> None:
    site.model.enqueue("First take.")
    start_chat(tab, site)
    say(tab, "Where to?")
    last = tab.page.locator(".message.assistant[data-id]").last
    expect(last.locator(".body")).to_have_text("First take.")

    site.model.enqueue("Second take.", delay_s=0.02)
    last.get_by_role("button", name="Regenerate").click()
    expect(last.locator(".body")).to_have_text("Second take.")
    expect(tab.page.locator(".swipe-position")).to_have_text("2/2")
    assert tab.page.locator(".message.assistant", has_text="take.").count() == 1  # one shown
    # The model was not shown its first take.
    assert "First take." not in [m.content for m in site.model.requests[-1].messages]

    tab.page.get_by_role("button", name="previous reply").click()
    expect(tab.page.locator(".message.assistant[data-id] .body").last).to_have_text("First take.")
    expect(tab.page.locator(".swipe-position")).to_have_text("1/2")
    tab.page.reload()  # the choice is the server's, not the page's
    expect(tab.page.locator(".message.assistant[data-id] .body").last).to_have_text("First take.")
    expect(tab.page.locator(".swipe-position")).to_have_text("1/2")
    tab.screenshot("swipes")

    site.model.enqueue("Ceres it is.")
    tab.page.locator(".message.user").last.get_by_role("button", name="Edit").click()
    field = tab.page.get_by_role("textbox", name="edit your message")
    field.fill("Where to, Ceres?")
    field.press("Enter")
    expect(tab.page.locator(".message.user .body").last).to_have_text("Where to, Ceres?")
    expect(tab.page.locator(".message.assistant[data-id] .body").last).to_have_text("Ceres it is.")
    assert site.model.requests[-1].messages[-1].content == "Where to, Ceres?"
    assert tab.page.locator(".message.user").count() == 1
    assert tab.errors == []
