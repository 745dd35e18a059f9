"""Opening PostgreSQL: bad settings and an unreachable server are clear errors at open, fast
(no hang), and a server restart under an open store costs the calls made while it is down,
nothing more: the pool reconnects."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest

from personae.errors import ConfigurationError, StorageError
from personae.storage.postgres import PostgresConversationStore, PostgresDatabase
from tests.postgres_server import PostgresServer, free_port


@pytest.mark.parametrize("url", ["not a url", "postgresql://host:notaport/db?x"])
def test_a_malformed_url_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match="postgres_url"):
        PostgresDatabase(url)


def test_a_pool_of_impossible_size_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="pool"):
        PostgresDatabase("postgresql://127.0.0.1/x", min_size=5, max_size=2)


async def test_nothing_listening_is_a_storage_error_at_open() -> None:
    url = f"postgresql://postgres:secret@127.0.0.1:{free_port()}/personae"
    store = PostgresConversationStore(url)
    with pytest.raises(
        StorageError, match=r"could not connect to PostgreSQL at 127\.0\.0\.1"
    ) as err:
        await store.open()
    assert "secret" not in str(err.value)  # the password is never in an error
    with pytest.raises(StorageError, match="not open"):
        await store.get_user("u")


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback port that accepts connections and never answers: a server that hangs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield int(listener.getsockname()[1])


async def test_a_server_that_never_answers_fails_after_the_connect_timeout(
    silent_server: int,
) -> None:
    url = f"postgresql://postgres@127.0.0.1:{silent_server}/personae"
    started = time.monotonic()
    with pytest.raises(StorageError, match="could not connect"):
        await PostgresDatabase(url, connect_timeout_s=2).open()
    assert time.monotonic() - started < 6


async def test_an_unknown_database_is_named_in_the_error(pg_url: str) -> None:
    url = pg_url.rsplit("/", 1)[0] + "/no_such_database"
    with pytest.raises(StorageError, match="no_such_database"):
        await PostgresDatabase(url).open()


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    yield server
    server.remove()


async def test_a_restarted_server_fails_calls_while_down_then_serves_again(
    own_server: PostgresServer,
) -> None:
    database = PostgresDatabase(own_server.url(), max_size=3, wait_timeout_s=2)
    async with PostgresConversationStore(database) as store:
        opened = await store.open_turn(external_user_id="u", character_id="c", text="before")

        await asyncio.to_thread(own_server.stop)
        with pytest.raises(StorageError, match=r"PostgreSQL at 127\.0\.0\.1") as down:
            await store.open_turn(external_user_id="u", character_id="c", text="while down")
        assert "could not store the user message" in str(down.value)

        await asyncio.to_thread(own_server.start)
        after = await store.open_turn(external_user_id="u", character_id="c", text="after")
        assert after.conversation.id == opened.conversation.id
        assert after.message.seq == 2  # the failed call stored nothing
        texts = [m.content for m in await store.list_messages(opened.conversation.id)]
        assert texts == ["before", "after"]
