"""The admin API over HTTP: key lifecycle, the audit log (JSON and JSON lines), users' data
export and erasure; every admin action leaves an audit row, and model calls do too."""

from __future__ import annotations

import json
from pathlib import Path

import sqlean

from tests.transports.security_helpers import Deployment, deployment


def audit(d: Deployment, **params: str) -> list[dict[str, object]]:
    answer = d.call("admin", "GET", "/api/admin/audit", params=params)
    assert answer.status_code == 200, answer.text
    rows = answer.json()
    assert isinstance(rows, list)
    return rows


def test_key_lifecycle_over_http(tmp_path: Path) -> None:
    with deployment(tmp_path) as d:
        token = d.issue("dave", "user", "dave")
        key_id = d.key_ids["dave"]
        listed = {k["id"]: k for k in d.call("admin", "GET", "/api/admin/keys").json()}
        assert listed[key_id]["subject"] == "dave"
        assert "token" not in listed[key_id]  # shown once, at creation
        assert token not in json.dumps(listed)
        assert d.call("dave", "GET", "/v1/models").status_code == 200
        revoked = d.call("admin", "DELETE", f"/api/admin/keys/{key_id}")
        assert revoked.status_code == 200
        assert revoked.json()["revoked_at"] is not None
        refused = d.call("dave", "GET", "/v1/models")
        assert refused.status_code == 401
        assert "revoked" in refused.json()["error"]["message"]


def test_bad_key_requests_get_clear_errors_and_store_nothing(tmp_path: Path) -> None:
    with deployment(tmp_path) as d:
        before = len(d.call("admin", "GET", "/api/admin/keys").json())
        for body in (
            {"role": "root", "subject": "x"},
            {"role": "user", "subject": "a/b"},
            {"role": "user", "subject": "x", "expires_at": "2000-01-01T00:00:00Z"},
            {"role": "user", "subject": "x", "expires_at": "2999-01-01T00:00:00"},  # naive
        ):
            answer = d.call("admin", "POST", "/api/admin/keys", json=body)
            assert answer.status_code == 400, (body, answer.text)
        assert len(d.call("admin", "GET", "/api/admin/keys").json()) == before


def test_every_admin_action_is_audited(tmp_path: Path) -> None:
    with deployment(tmp_path) as d:
        d.issue("dave", "user", "dave")
        assert d.chat("dave").status_code == 200
        d.call("admin", "GET", "/api/users/dave/export").raise_for_status()
        d.call("admin", "DELETE", "/api/users/dave").raise_for_status()
        d.call("admin", "DELETE", f"/api/admin/keys/{d.key_ids['dave']}").raise_for_status()
        rows = audit(d)
        actions = [(r["action"], r["target"]) for r in rows if r["action"] != "model.call"]
        key_ids = [d.key_ids[n] for n in ("alice", "bob", "acme-bot", "stored-admin", "dave")]
        assert actions == [
            *(("key.create", k) for k in key_ids),
            ("user.export", "dave"),
            ("user.delete", "dave"),
            ("key.revoke", d.key_ids["dave"]),
        ]
        create = rows[0]
        assert create["actor"] == "key-0"  # the settings admin key
        assert create["role"] == "admin"
        assert create["client"] == "127.0.0.1"
        assert create["details"] == {"role": "user", "subject": "alice", "tenant": "default"}
        delete = next(r for r in rows if r["action"] == "user.delete")
        assert delete["details"]["erased"]["messages"] == 3  # greeting, message, reply
        # Filters and the JSON-lines export.
        assert [r["action"] for r in audit(d, action="key.revoke")] == ["key.revoke"]
        assert audit(d, actor="nobody") == []
        assert audit(d, since="2999-01-01T00:00:00") == []
        assert len(audit(d, limit="2")) == 2
        jsonl = d.call("admin", "GET", "/api/admin/audit", params={"format": "jsonl"})
        assert jsonl.headers["content-type"].startswith("application/x-ndjson")
        assert [json.loads(line)["id"] for line in jsonl.text.splitlines()] == [
            r["id"] for r in rows
        ]


def test_model_calls_are_audited_with_who_for_whom_and_tokens(tmp_path: Path) -> None:
    with deployment(tmp_path) as d:
        assert d.chat("acme-bot", "carol").status_code == 200
        d.model.enqueue("never", error=RuntimeError("boom"))
        assert d.chat("alice").status_code == 500
        calls = audit(d, action="model.call")
        ok, failed = calls
        assert ok["actor"] == "bot"
        assert ok["role"] == "service"
        assert ok["tenant"] == "acme"
        assert ok["key_id"] == d.key_ids["acme-bot"]
        assert ok["target"] == "aria"
        assert ok["outcome"] == "ok"
        assert ok["client"] == "127.0.0.1"
        assert ok["details"]["user"] == "acme/carol"
        assert ok["details"]["backend"] == "fake"
        assert ok["details"]["tokens_in"] > 0
        assert ok["details"]["tokens_out"] > 0
        assert failed["actor"] == "alice"
        assert failed["outcome"] == "error"
        # Numbers and ids only, never message text.
        assert set(ok["details"]) == {
            "backend",
            "tokens_in",
            "tokens_out",
            "latency_ms",
            "user",
            "conversation",
            "trace_id",
        }


def test_export_returns_all_the_users_data_and_erase_removes_it(tmp_path: Path) -> None:
    with deployment(tmp_path) as d:
        assert d.chat("alice", text="remember me").status_code == 200
        assert d.chat("bob", text="keep me").status_code == 200
        exported = d.call("alice", "GET", "/api/users/alice/export").json()
        assert exported["user"]["external_id"] == "alice"
        [conversation] = exported["conversations"]
        assert [m["content"] for m in conversation["messages"]][1:] == [
            "remember me",
            "Hello from the fake model.",
        ]
        erased = d.call("alice", "DELETE", "/api/users/alice").json()
        assert erased["erased"]["users"] == 1
        assert erased["erased"]["conversations"] == 1
        assert erased["memory"]["erased"] is False  # memory is not wired in yet, and says so
        assert d.call("alice", "GET", "/api/users/alice/export").status_code == 404
        conn = sqlean.connect(str(d.db))
        try:
            contents = [r[0] for r in conn.execute("SELECT content FROM messages")]
        finally:
            conn.close()
        assert "remember me" not in contents
        assert "keep me" in contents  # bob's data is untouched
        again = d.call("admin", "DELETE", "/api/users/alice").json()
        assert again["erased"]["users"] == 0  # erasing an unknown user is harmless
