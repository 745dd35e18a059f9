"""The ``personae`` command: serve, chat, characters, keys."""

from personae.cli.root import cli, main

__all__ = ["cli", "main"]
