"""PII redaction to reversible tokens: each kind, its checks, round trips, streamed tokens."""

from __future__ import annotations

import pytest

from personae.core.pii import Redactor, iban_valid, luhn_valid


def redact(text: str, **patterns: str) -> str:
    return Redactor(patterns).vault().redact(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to ann.lee+x@mail.example.org.", "write to [EMAIL_1]."),
        ("call +44 20 7946 0958 now", "call [PHONE_1] now"),
        ("call (555) 123-4567 now", "call [PHONE_1] now"),
        ("call 020 7946 0958", "call [PHONE_1]"),
        ("card 4111 1111 1111 1111 ok", "card [CARD_1] ok"),
        ("card 4111-1111-1111-1111", "card [CARD_1]"),
        ("card 378282246310005", "card [CARD_1]"),
        ("iban DE89 3704 0044 0532 0130 00 thanks", "iban [IBAN_1] thanks"),
        ("iban GB82WEST12345698765432", "iban [IBAN_1]"),
        ("iban DE89 3704 0044 0532 0130 00 THEN go", "iban [IBAN_1] THEN go"),
        ("host 192.168.1.10, ok", "host [IP_1], ok"),
        ("host 2001:db8::1 ok", "host [IP_1] ok"),
    ],
)
def test_each_kind_is_replaced_by_a_token(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112",  # fails the Luhn check
        "iban GB82WEST12345698765431",  # fails mod 97
        "ip 10.0.0.256 or 1.2.3.4.5",
        "on 2024-01-15 at 12:30:45, version 1.2.3",
        "order 12345 of 3 items",
        "not@an-email",
    ],
)
def test_lookalikes_are_left_alone(text: str) -> None:
    assert redact(text) == text


def test_an_iban_failing_mod_97_is_no_iban() -> None:
    assert "[IBAN" not in redact("iban DE89 3704 0044 0532 0130 01")


def test_checksums() -> None:
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")
    assert iban_valid("GB82 WEST 1234 5698 7654 32")
    assert not iban_valid("GB82 WEST 1234 5698 7654 33")
    assert not iban_valid("GB82")


def test_tokens_are_stable_within_a_vault_and_numbered_per_kind() -> None:
    vault = Redactor().vault()
    first = vault.redact("a@example.com b@example.com")
    second = vault.redact("again b@example.com, and 192.168.0.1")
    assert first == "[EMAIL_1] [EMAIL_2]"
    assert second == "again [EMAIL_2], and [IP_1]"
    assert Redactor().vault().redact("b@example.com") == "[EMAIL_1]"  # a new turn starts over


def test_configured_patterns_get_their_own_kind() -> None:
    vault = Redactor({"employee id": r"EMP-\d{4}"}).vault()
    redacted = vault.redact("ask EMP-0042 or EMP-0042")
    assert redacted == "ask [EMPLOYEE_ID_1] or [EMPLOYEE_ID_1]"
    assert vault.restore(redacted) == "ask EMP-0042 or EMP-0042"


def test_round_trip_restores_every_original() -> None:
    text = (
        "Ann (ann@example.org, +1 415 555 0100) pays with 5555 5555 5555 4444 from "
        "FR14 2004 1010 0505 0001 3M02 606 at 10.1.2.3."
    )
    vault = Redactor().vault()
    redacted = vault.redact(text)
    for secret in ("ann@example.org", "555 0100", "4444", "FR14", "10.1.2.3"):
        assert secret not in redacted
    assert vault.restore(redacted) == text
    assert vault.restore("unknown [EMAIL_9] and [x]") == "unknown [EMAIL_9] and [x]"


def test_streamed_tokens_split_across_chunks_are_restored() -> None:
    vault = Redactor().vault()
    vault.redact("ann@example.org and 192.168.1.1")
    restorer = vault.restorer()
    chunks = ["Mail [", "EMA", "IL_1", "] from [IP_", "1]", " [no", "t a token] [EMAIL_1", "]"]
    out = [restorer.feed(c) for c in chunks]
    out.append(restorer.flush())
    assert "".join(out) == "Mail ann@example.org from 192.168.1.1 [not a token] ann@example.org"
    assert out[1] == ""  # held back until the token closes


def test_an_unclosed_bracket_is_released_at_the_end() -> None:
    vault = Redactor().vault()
    restorer = vault.restorer()
    assert restorer.feed("a list [A") == "a list "
    assert restorer.flush() == "[A"
    long_tail = "[" + "A" * 60
    assert restorer.feed(long_tail) == long_tail  # too long to be a token: not held


def test_a_text_found_clean_is_remembered_and_returned_as_it_is() -> None:
    redactor = Redactor()
    clean = "nothing to hide here, only words and day 12"
    assert redactor.vault().redact(clean) == clean
    assert clean in redactor._clean  # remembered: the next turn does not scan it again
    assert redactor.vault().redact(clean) == clean


def test_a_text_with_pii_is_never_remembered_and_each_vault_numbers_its_own() -> None:
    redactor = Redactor()
    text = "mail ann@example.org"
    first = redactor.vault()
    assert first.redact("mail bob@example.org") == "mail [EMAIL_1]"
    assert first.redact(text) == "mail [EMAIL_2]"
    assert text not in redactor._clean
    second = redactor.vault()  # another turn: its own table, the same text found again
    assert second.redact(text) == "mail [EMAIL_1]"
    assert second.restore("[EMAIL_1]") == "ann@example.org"


def test_lookalikes_are_remembered_as_clean_without_changing_them() -> None:
    redactor = Redactor()
    lookalike = "card 4111 1111 1111 1112"  # matched by the pattern, fails the Luhn check
    assert redactor.vault().redact(lookalike) == lookalike
    assert lookalike in redactor._clean
    assert redactor.vault().redact(lookalike) == lookalike


def test_the_memory_of_clean_texts_is_bounded_and_keeps_the_recently_used() -> None:
    redactor = Redactor(clean_chars=40)  # four texts of ten characters
    vault = redactor.vault()
    a, b, c, d, e = (letter * 10 for letter in "abcde")
    for text in (a, b, c):
        vault.redact(text)
    vault.redact(a)  # used again: now the most recent
    vault.redact(d)  # 40 characters: all kept
    vault.redact(e)  # evicts b, the least recently used
    assert [t in redactor._clean for t in (a, b, c, d, e)] == [True, False, True, True, True]


def test_a_text_too_long_for_the_memory_is_scanned_each_time_and_still_clean() -> None:
    redactor = Redactor(clean_chars=12)
    long = "plain words only"
    assert redactor.vault().redact(long) == long
    assert long not in redactor._clean


def test_no_memory_of_clean_texts_when_turned_off() -> None:
    redactor = Redactor(clean_chars=0)
    assert redactor.vault().redact("plain") == "plain"
    assert "plain" not in redactor._clean
