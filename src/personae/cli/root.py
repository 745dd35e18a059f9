"""The root ``personae`` app: every command and command group is registered here, in the order
``--help`` lists them."""

from __future__ import annotations

import typer

from personae.cli import characters, keys, mcp, memory
from personae.cli.chat import chat
from personae.cli.release import release_command
from personae.cli.replay import replay_command, trace_command
from personae.cli.serve import serve
from personae.fakellm.command import fake_llm
from personae.loadgen.command import bench

cli = typer.Typer(help="Personae: a self-hosted gateway for AI characters.", no_args_is_help=True)
cli.add_typer(characters.characters_cli, name="characters")
cli.add_typer(keys.keys_cli, name="keys")
cli.add_typer(memory.memory_cli, name="memory")
cli.add_typer(mcp.mcp_cli, name="mcp")
cli.command("fake-llm")(fake_llm)  # personae/fakellm: a fake OpenAI-compatible backend
cli.command("bench")(bench)  # personae/loadgen: the load generator
cli.command()(serve)
cli.command()(chat)
cli.command("release")(release_command)
cli.command("trace")(trace_command)
cli.command("replay")(replay_command)


def main() -> None:
    cli()
