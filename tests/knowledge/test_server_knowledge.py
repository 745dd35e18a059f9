"""Knowledge in the running server: with ``memory.knowledge_dir`` set, the watcher runs under
the supervisor, a document dropped into the folder is indexed while the server runs, and the
next turn over HTTP recalls it, cited (full-text recall here: ``embedder: none``)."""

from __future__ import annotations

import time
from pathlib import Path

from personae.core.memory.stage import KNOWLEDGE_HEADING
from tests.knowledge.pdfs import make_pdf
from tests.transports.security_helpers import Deployment, deployment

DEADLINE_S = 15.0


def ask_until_recalled(d: Deployment, question: str) -> str:
    """Ask until a prompt carries a knowledge note (the watcher indexes in the background)."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        assert d.chat("alice", text=question).status_code == 200
        notes = [m.content for m in d.model.requests[-1].messages if m.role == "system"]
        found = [note for note in notes if KNOWLEDGE_HEADING in note]
        if found:
            return found[0]
        assert time.monotonic() < deadline, "the document was not recalled in time"
        time.sleep(0.2)


def test_a_document_added_while_the_server_runs_is_recalled(tmp_path: Path) -> None:
    knowledge = tmp_path / "knowledge"
    memory = {"enabled": True, "embedder": "none", "knowledge_dir": str(knowledge)}
    with deployment(tmp_path, memory=memory) as d:
        assert knowledge.is_dir()  # created at start
        (knowledge / "aria").mkdir()
        pdf = make_pdf([["The Saltwind ferry leaves the harbour at 07:40."]])
        (knowledge / "aria" / "ferry.pdf").write_bytes(pdf)

        note = ask_until_recalled(d, "When does the Saltwind ferry leave?")

        status = d.call("admin", "GET", "/readyz").json()
    assert "- [ferry.pdf#0] The Saltwind ferry leaves the harbour at 07:40." in note
    assert status["checks"]["task:knowledge-watcher"] == "ok"
