from pathlib import Path

import pytest

from personae.settings import load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("PERSONAE_"):
            monkeypatch.delenv(name)


def test_defaults_without_any_file(tmp_path: Path) -> None:
    settings = load_settings(tmp_path)
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.data_dir == Path("data")
    assert settings.characters_dir == Path("characters")
    assert settings.llm.kind == "auto"
    assert settings.llm.base_url is None


def test_layers_override_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "personae.yaml").write_text(
        "port: 9001\nuser_name: Sam\nllm: {model: base-model, timeout_s: 5}\n"
        "limits: {max_message_chars: 100}\n"
    )
    (tmp_path / "personae.staging.yaml").write_text("port: 9002\nllm: {model: staging-model}\n")
    (tmp_path / ".env").write_text("PERSONAE_PORT=9003\nPERSONAE_USER_NAME=Dot\n")
    monkeypatch.setenv("PERSONAE_ENV", "staging")
    monkeypatch.setenv("PERSONAE_PORT", "9004")

    settings = load_settings(tmp_path)
    assert settings.port == 9004  # environment beats .env
    assert settings.user_name == "Dot"  # .env beats YAML
    assert settings.llm.model == "staging-model"  # personae.<env>.yaml beats personae.yaml
    assert settings.llm.timeout_s == 5  # nested sections merge instead of being replaced
    assert settings.limits.max_message_chars == 100
    assert load_settings(tmp_path, port=1).port == 1  # explicit overrides (CLI flags) win


def test_documented_environment_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONAE_LLM_BASE_URL", "http://127.0.0.1:9999/v1")
    monkeypatch.setenv("PERSONAE_LLM_MODEL", "some-model")
    monkeypatch.setenv("PERSONAE_LLM_API_KEY", "sk-test-not-a-secret")
    monkeypatch.setenv("PERSONAE_DATA_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("PERSONAE_CHARACTERS_DIR", str(tmp_path / "chars"))
    settings = load_settings(tmp_path)
    assert settings.llm.base_url == "http://127.0.0.1:9999/v1"
    assert settings.llm.model == "some-model"
    assert settings.llm.api_key is not None
    assert settings.llm.api_key.get_secret_value() == "sk-test-not-a-secret"
    assert "sk-test" not in repr(settings)  # secrets never print
    assert settings.data_dir == tmp_path / "state"
    assert settings.characters_dir == tmp_path / "chars"


def test_unknown_keys_in_yaml_are_errors(tmp_path: Path) -> None:
    (tmp_path / "personae.yaml").write_text("prot: 8000\n")
    with pytest.raises(ValueError, match="prot"):
        load_settings(tmp_path)
