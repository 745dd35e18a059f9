"""The MQTT channel through a real mosquitto: round trip, malformed payloads, and a broker
outage after which the queued reply arrives once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.channels.helpers import Personae, eventually, make_settings, running
from tests.channels.mosquitto import Mosquitto


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    mosquitto = Mosquitto(tmp_path)
    mosquitto.start()
    try:
        yield mosquitto
    finally:
        mosquitto.stop()


@pytest.fixture
def personae(tmp_path: Path, broker: Mosquitto) -> Iterator[Personae]:
    adapters = {
        "devices": {
            "kind": "mqtt",
            "default_character": "aria",
            "options": {"port": broker.port, "keepalive": 5, "timeout_s": 2},
        }
    }
    with running(make_settings(tmp_path, adapters)) as server:
        yield server


class Device:
    """A device on the broker: publishes to in/<id>, collects what arrives on out/<id>."""

    def __init__(self, port: int, device: str = "kitchen") -> None:
        self.port = port
        self.device = device
        self.replies: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.client: aiomqtt.Client | None = None

    async def __aenter__(self) -> Device:
        self._task = asyncio.create_task(self._run())
        async with asyncio.timeout(10):
            await self._ready.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        async with aiomqtt.Client(
            "127.0.0.1", self.port, identifier=f"dev-{self.device}", clean_session=False
        ) as c:
            await c.subscribe(f"personae/out/{self.device}", qos=1)
            self.client = c
            self._ready.set()
            async for message in c.messages:
                assert isinstance(message.payload, bytes)
                self.replies.append(json.loads(message.payload))

    async def say(self, payload: str | bytes) -> None:
        assert self.client is not None
        await self.client.publish(f"personae/in/{self.device}", payload, qos=1)


@pytest.fixture
async def device(broker: Mosquitto, personae: Personae) -> AsyncIterator[Device]:
    await wait_up(personae)
    async with Device(broker.port) as d:
        yield d


async def wait_up(personae: Personae) -> None:
    async def state() -> str:
        async with httpx.AsyncClient() as client:
            return str((await client.get(f"{personae.url}/channels")).json()["devices"])

    for _ in range(500):
        if await state() == "up":
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the channel is {await state()}")


async def test_a_device_message_gets_the_reply_on_its_out_topic(
    personae: Personae, device: Device
) -> None:
    personae.model.enqueue("Lights dimmed to forty percent.")
    await device.say(json.dumps({"text": "Dim the lights", "id": "d-1"}))
    await eventually(lambda: device.replies)
    assert device.replies[0]["text"] == "Lights dimmed to forty percent."
    assert device.replies[0]["reply_to"] == "d-1"
    await device.say("Plain text works too")
    await eventually(lambda: len(device.replies) == 2)
    assert personae.model.requests[-1].messages[-1].content == "Plain text works too"


async def test_a_redelivered_message_makes_no_second_turn(
    personae: Personae, device: Device
) -> None:
    await device.say(json.dumps({"text": "Once", "id": "same"}))
    await eventually(lambda: device.replies)
    await device.say(json.dumps({"text": "Once", "id": "same"}))  # a QoS 1 duplicate
    await asyncio.sleep(0.5)
    assert len(personae.model.requests) == 1
    assert len(device.replies) == 1


@pytest.mark.parametrize(
    "payload", [b"\xff\xfe not utf-8", b"{broken json", b'{"id": "x"}', b'{"text": 5}', b"   "]
)
async def test_malformed_payloads_are_skipped_and_the_channel_keeps_working(
    personae: Personae, device: Device, payload: bytes
) -> None:
    await device.say(payload)
    personae.model.enqueue("Still here.")
    await device.say("Are you there?")
    await eventually(lambda: device.replies)
    assert [r["text"] for r in device.replies] == ["Still here."]
    assert len(personae.model.requests) == 1


async def test_a_broker_outage_delays_the_reply_which_then_arrives_once(
    personae: Personae, broker: Mosquitto
) -> None:
    outage_s = 2.0  # the 30 s, shortened; the code has no notion of its length
    await wait_up(personae)
    async with Device(broker.port) as device:
        personae.model.enqueue("Back online, captain.", first_token_delay_s=0.5)
        await device.say("Report when you can")
        await eventually(lambda: personae.model.requests)
    assert channel_up(personae) == 1.0
    broker.stop()  # the reply is ready while the broker is gone
    async with httpx.AsyncClient() as client:
        await asyncio.sleep(outage_s)
        states = (await client.get(f"{personae.url}/channels")).json()
        assert states["devices"].startswith(("reconnecting", "down"))
        # Reported, but the server stays ready: WebSocket users and other channels go on.
        ready = await client.get(f"{personae.url}/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["channel:devices"].startswith("warning: ")
    assert channel_up(personae) == 0.0
    broker.start()
    await wait_up(personae)
    assert channel_up(personae) == 1.0
    async with Device(broker.port) as device:
        await eventually(lambda: device.replies)
        await asyncio.sleep(0.5)
        assert [r["text"] for r in device.replies] == ["Back online, captain."]


def channel_up(personae: Personae) -> float:
    """``personae_channel_up{channel="devices"}`` as /metrics says it now."""
    text = httpx.get(f"{personae.url}/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "personae_channel_up" and sample.labels["channel"] == "devices":
                return float(sample.value)
    raise AssertionError("no personae_channel_up for the channel")
