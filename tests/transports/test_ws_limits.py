import pytest

from personae.transports import ws_limits
from personae.transports.ws_limits import Bucket
from tests.conftest import ManualClock


@pytest.fixture(autouse=True)
def _bucket_clock(clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ws_limits.time, "monotonic", clock)


def test_a_bucket_lets_a_burst_through_then_paces(clock: ManualClock) -> None:
    bucket = Bucket(rate=50.0, burst=3)  # one per 20 ms
    assert [bucket.take() for _ in range(3)] == [None, None, None]
    wait = bucket.take()
    assert wait == pytest.approx(0.02)
    clock.now += 0.0201
    assert bucket.take() is None  # what it said to wait was enough
    assert bucket.take() == pytest.approx(0.02, abs=1e-3)


def test_a_bucket_refills_up_to_its_burst_only(clock: ManualClock) -> None:
    bucket = Bucket(rate=50.0, burst=3)
    for _ in range(3):
        bucket.take()
    clock.now += 60.0  # a long pause earns no more than the burst
    assert [bucket.take() for _ in range(3)] == [None, None, None]
    assert bucket.take() is not None


def test_a_reservation_is_spent_and_says_how_long_to_wait(clock: ManualClock) -> None:
    bucket = Bucket(rate=50.0, burst=2)
    assert [bucket.reserve() for _ in range(2)] == [0.0, 0.0]
    assert bucket.reserve() == pytest.approx(0.02)
    assert bucket.reserve() == pytest.approx(0.04)  # in line behind the one reserved
    clock.now += 0.04
    assert bucket.reserve() == pytest.approx(0.02)


def test_waiting_longer_than_told_is_credited_so_the_pace_holds(clock: ManualClock) -> None:
    bucket = Bucket(rate=50.0, burst=3)
    sent = 0
    while clock.now < 1001.0:  # one second of frames, every wait overshooting by 5 ms
        wait = bucket.reserve()
        clock.now += wait + 0.005 if wait else 0.0
        sent += 1
    # Still 50 a second (after the first burst): each overshoot counts towards the next wait.
    # Were it lost, as with a pace counted from each send, 40 would go out.
    assert 50 <= sent <= 50 + 3
