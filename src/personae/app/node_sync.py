"""Changes one node makes that every other node must apply at once: characters (an upload,
a hot reload), experiments and API keys (the admin API). Announced on the event bus under a topic no
conversation can have; each node listens and reloads from the shared source (the characters
folder, the store), ignoring its own announcements.

With ``coordination: local`` there is nobody to tell and the bus is this process's: the same
code runs and simply has no listener elsewhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

import structlog

from personae.app.background import rescan_characters
from personae.app.coordination import Coordination
from personae.characters.reload import CharacterFolder
from personae.core.events import ConversationEvent
from personae.core.experiments.admin import ExperimentAdmin
from personae.core.ports import EventBus
from personae.core.supervisor import Supervisor
from personae.errors import CoordinationError
from personae.security.api_keys import KeyRegistry

log = structlog.get_logger(__name__)

TOPIC = "~nodes"  # conversation ids are "conv_...": this one is never a conversation's
CHARACTERS = "characters.changed"
EXPERIMENTS = "experiments.changed"
KEYS = "keys.changed"  # an API key issued or revoked: others drop their cache at once

Reload = Callable[[], Awaitable[None]]


class NodeSync:
    def __init__(self, bus: EventBus, node: str, reloads: Mapping[str, Reload]) -> None:
        self._bus = bus
        self._node = node
        self._reloads = dict(reloads)
        self._sending: set[asyncio.Task[None]] = set()

    def announcer(self, what: str) -> Callable[[], None]:
        """A callback for synchronous code (``CharacterFolder.on_change``): it announces
        ``what`` in the background."""

        def announce() -> None:
            task = asyncio.get_running_loop().create_task(self.announce(what))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

        return announce

    async def announce(self, what: str) -> None:
        event = ConversationEvent(TOPIC, 0, what, {"node": self._node})
        try:
            await self._bus.publish(event)
        except CoordinationError as exc:  # others catch up at their next periodic refresh
            log.warning("change not announced to other nodes", what=what, error=str(exc))

    async def listen(self) -> None:
        """Apply other nodes' changes until cancelled (a supervised task)."""
        async with self._bus.subscribe(TOPIC) as events:
            async for event in events:
                if event.payload.get("node") == self._node:
                    continue
                reload = self._reloads.get(event.event)
                if reload is None:
                    log.warning("unknown change announced", what=event.event)
                    continue
                try:
                    await reload()
                except Exception:  # one failed reload must not stop the next ones
                    log.exception("reload after another node's change failed", what=event.event)
                else:
                    log.info("reloaded after another node's change", what=event.event)


def start_node_sync(
    coordination: Coordination,
    supervisor: Supervisor,
    *,
    characters: CharacterFolder,
    experiments: ExperimentAdmin,
    keys: KeyRegistry,
) -> NodeSync:
    """Announce this node's changes and apply the others' (a supervised listener)."""

    async def forget_keys() -> None:
        keys.forget()

    sync = NodeSync(
        coordination.bus,
        coordination.node,
        {
            CHARACTERS: lambda: rescan_characters(characters),
            EXPERIMENTS: experiments.refresh,
            KEYS: forget_keys,
        },
    )
    characters.on_change = sync.announcer(CHARACTERS)
    experiments.on_change = sync.announcer(EXPERIMENTS)
    keys.on_change = sync.announcer(KEYS)
    supervisor.start("node-sync", sync.listen)
    return sync
