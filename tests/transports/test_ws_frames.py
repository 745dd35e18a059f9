"""The frame parser never fails in an undefined way: every input parses or raises FrameError."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from personae.transports.ws_frames import PARAMS, FrameError, parse_request

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)

frames = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["req", "res", "event", "REQ", ""]) | st.text(max_size=5),
        "id": st.text(max_size=10) | st.integers(),
        "method": st.sampled_from(sorted(PARAMS)) | st.text(max_size=12),
        "params": st.dictionaries(
            st.sampled_from(
                ["character", "text", "conversation", "after_seq", "protocol", "resume", "x"]
            ),
            json_values,
            max_size=4,
        )
        | json_values,
    },
)


def check(text: str) -> None:
    try:
        request, params = parse_request(text)
    except FrameError as exc:
        error: FrameError | None = exc
    else:
        error = None
        assert request.method in PARAMS
        assert isinstance(params, PARAMS[request.method])
    if error is not None:
        assert error.code in {"bad_frame", "invalid_request", "unknown_method"}
        assert error.message
        assert error.request_id is None or isinstance(error.request_id, str)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=200))
def test_any_text_parses_or_is_a_frame_error(text: str) -> None:
    check(text)


@settings(max_examples=600, deadline=None)
@given(frames)
def test_any_json_object_parses_or_is_a_frame_error(frame: dict[str, Any]) -> None:
    check(json.dumps(frame))


@pytest.mark.parametrize(
    ("frame", "code", "request_id"),
    [
        ("[]", "bad_frame", None),
        ('{"type": "res", "id": "7"}', "bad_frame", "7"),
        ('{"type": "req", "id": "7", "method": "fly"}', "unknown_method", "7"),
        ('{"type": "req", "id": "7", "method": "message.send"}', "invalid_request", "7"),
        ('{"type": "req", "method": "ping"}', "invalid_request", None),
        ("[" * 100_000, "bad_frame", None),
    ],
)
def test_known_bad_frames(frame: str, code: str, request_id: str | None) -> None:
    with pytest.raises(FrameError) as caught:
        parse_request(frame)
    assert caught.value.code == code
    assert caught.value.request_id == request_id
