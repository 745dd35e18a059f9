import pytest

from personae.transports.ws_frames import event_frame
from personae.transports.ws_outbox import Outbox, OutboxFull


def delta(conversation: str, seq: int, text: str) -> dict[str, object]:
    return event_frame("message.delta", {"text": text}, conversation=conversation, seq=seq)


def test_deltas_of_a_conversation_merge_across_other_conversations() -> None:
    box = Outbox(limit=100)
    for frame in [
        delta("a", 2, "One"),
        delta("b", 7, "x"),
        delta("a", 3, " two"),
        delta("b", 8, "y"),
        delta("a", 4, " three"),
        event_frame("message.done", {}, conversation="a", seq=5),
        delta("a", 6, "late"),  # after a's done: never merged past it
    ]:
        box.put(frame)
    first = box.pop()
    merged = box.take_deltas_after(first)
    assert (merged["first_seq"], merged["seq"], merged["payload"]) == (
        2,
        4,
        {"text": "One two three"},
    )
    rest = [box.pop() for _ in range(len(box))]
    assert [(f["conversation"], f["seq"], f["event"]) for f in rest] == [
        ("b", 7, "message.delta"),
        ("b", 8, "message.delta"),
        ("a", 5, "message.done"),
        ("a", 6, "message.delta"),
    ]


def test_a_gap_stops_the_merge() -> None:
    box = Outbox(limit=10)
    box.put(delta("a", 2, "x"))
    box.put(delta("a", 4, "z"))
    first = box.pop()
    assert box.take_deltas_after(first) is first
    assert len(box) == 1


def test_a_full_outbox_refuses() -> None:
    box = Outbox(limit=2)
    box.put(delta("a", 1, "x"))
    box.put(delta("a", 2, "y"))
    with pytest.raises(OutboxFull):
        box.put(delta("a", 3, "z"))
