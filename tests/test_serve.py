"""``personae serve`` and ``personae chat`` as a user runs them: real processes, real ports."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pytest

from tests.llm.fake_openai_server import FakeOpenAIServer, Reply
from tests.serve_process import wait_for_url

REPO = Path(__file__).parents[1]
pytestmark = pytest.mark.slow


def personae_env(tmp_path: Path, backend_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONAE_")}
    env.update(
        PERSONAE_LLM_BASE_URL=backend_url,
        PERSONAE_LLM_MODEL="fake-model",
        PERSONAE_LLM_API_KEY="sk-fake-not-secret",
        PERSONAE_DATA_DIR=str(tmp_path / "data"),
        PERSONAE_CHARACTERS_DIR=str(REPO / "characters"),
        PERSONAE_CONFIG_DIR=str(tmp_path),
    )
    return env


@contextmanager
def personae_serve(tmp_path: Path, env: dict[str, str]) -> Iterator[str]:
    log = tmp_path / f"serve-{time.monotonic_ns()}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "personae", "serve", "--port", "0"],
            env=env,
            cwd=tmp_path,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        url = wait_for_url(log, process)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal so that the process ends
        # the way SIGTERM ends a process.
        assert process.wait(timeout=30) in {0, -signal.SIGTERM}, log.read_text()
    output = log.read_text()
    assert "Application shutdown complete" in output
    assert "sk-fake-not-secret" not in output


def test_serve_on_a_free_port_keeps_history_across_a_restart(tmp_path: Path) -> None:
    with FakeOpenAIServer() as backend:
        env = personae_env(tmp_path, backend.base_url)
        backend.enqueue(Reply(["Aye,", " captain."]), Reply(["Vesta", " it", " is."]))
        with personae_serve(tmp_path, env) as url:
            assert not url.endswith(":0")
            assert httpx.get(f"{url}/healthz").status_code == 200
            with openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0) as client:
                first = client.chat.completions.create(
                    model="aria", user="sam", messages=[{"role": "user", "content": "Hello!"}]
                )
                assert first.choices[0].message.content == "Aye, captain."
                client.chat.completions.create(
                    model="aria", user="sam", messages=[{"role": "user", "content": "To Vesta."}]
                )

        backend.enqueue(Reply(["You", " said", " Vesta."]))
        with personae_serve(tmp_path, env) as url:
            with openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0) as client:
                stream = client.chat.completions.create(
                    model="aria",
                    user="sam",
                    messages=[{"role": "user", "content": "Where were we going?"}],
                    stream=True,
                )
                text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            assert text == "You said Vesta."
            conversations = httpx.get(f"{url}/api/conversations", params={"user": "sam"}).json()
            assert len(conversations) == 1
            assert conversations[0]["last_seq"] == 7

    sent = backend.requests[-1]["body"]
    assert sent["model"] == "fake-model"
    assert backend.requests[-1]["headers"]["authorization"] == "Bearer sk-fake-not-secret"
    contents = [m["content"] for m in sent["messages"]]
    assert contents[-5:] == [
        "Hello!",
        "Aye, captain.",
        "To Vesta.",
        "Vesta it is.",
        "Where were we going?",
    ]
    assert "navigator of the Wandering Lark" in contents[0]


def test_a_backend_that_is_down_is_named_in_a_503(tmp_path: Path) -> None:
    env = personae_env(tmp_path, "http://127.0.0.1:9/v1")  # the discard port: nothing listens
    with personae_serve(tmp_path, env) as url:
        response = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "bram", "messages": [{"role": "user", "content": "Anyone there?"}]},
            timeout=30,
        )
        assert response.status_code == 503
        assert "backend 'openai'" in response.json()["error"]["message"]
        assert httpx.get(f"{url}/api/conversations").json() == []


def test_chat_streams_in_the_terminal_in_process_and_against_a_server(tmp_path: Path) -> None:
    with FakeOpenAIServer() as backend:
        env = personae_env(tmp_path, backend.base_url)
        backend.enqueue(Reply(["Tea's", " on", " the", " stove."]))
        local = subprocess.run(
            [sys.executable, "-m", "personae", "chat", "bram", "--user", "ann"],
            input=b"Hello, Bram\n/quit\n",
            env=env,
            cwd=tmp_path,
            capture_output=True,
            timeout=60,
            check=True,
        )
        assert "Tea's on the stove." in local.stdout.decode()

        backend.enqueue(Reply(["Still", " here."]))
        with personae_serve(tmp_path, env) as url:
            remote = subprocess.run(
                [sys.executable, "-m", "personae", "chat", "bram", "--user", "ann", "--url", url],
                input=b"Are you still there?\n",
                env=env,
                cwd=tmp_path,
                capture_output=True,
                timeout=60,
                check=True,
            )
        assert "Still here." in remote.stdout.decode()
    # Both processes wrote to the same conversation: the second turn saw the first.
    contents = [m["content"] for m in backend.requests[-1]["body"]["messages"]]
    assert "Hello, Bram" in contents
    assert "Tea's on the stove." in contents


def test_chat_with_an_unknown_character_says_so(tmp_path: Path) -> None:
    env = personae_env(tmp_path, "http://127.0.0.1:9/v1")
    result = subprocess.run(
        [sys.executable, "-m", "personae", "chat", "nobody"],
        input=b"",
        env=env,
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "unknown character 'nobody'" in result.stdout.decode()


def self_signed_pair(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_serve_speaks_tls_with_the_configured_certificate(tmp_path: Path) -> None:
    cert_file, key_file = self_signed_pair(tmp_path)
    with FakeOpenAIServer() as backend:
        env = personae_env(tmp_path, backend.base_url)
        env.update(PERSONAE_TLS_CERTFILE=str(cert_file), PERSONAE_TLS_KEYFILE=str(key_file))
        with personae_serve(tmp_path, env) as url:
            assert url.startswith("https://127.0.0.1:")
            trusted = ssl.create_default_context(cafile=str(cert_file))
            assert httpx.get(f"{url}/healthz", verify=trusted).status_code == 200
            with pytest.raises(httpx.ConnectError):  # not trusted without the certificate
                httpx.get(f"{url}/healthz")


def test_half_a_tls_configuration_is_refused(tmp_path: Path) -> None:
    from personae.settings import Settings

    with pytest.raises(ValueError, match="set both or neither"):
        Settings(tls_certfile=tmp_path / "cert.pem")
