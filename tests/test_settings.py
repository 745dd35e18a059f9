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


# --- backends and routes (docs/routing.md) ----------------------------------------------------


ROUTING_YAML = """
backends:
  gpt:
    kind: openai
    base_url: http://127.0.0.1:9/v1
    model: gpt-x
    api_key_env: TEST_GPT_KEY
    first_token_timeout_s: 5
    total_timeout_s: 60
    max_concurrency: 4
    breaker: {failure_threshold: 3, reset_timeout_s: 10}
  local:
    kind: llamacpp
    options: {n_ctx: 4096}
routes:
  default: [gpt, local]
  rules:
    - {name: code, kinds: [code], chain: [gpt]}
    - {characters: [bram], min_prompt_tokens: 6000, chain: [local, gpt]}
  retry: {retries: 2, budget_s: 5}
  cache: {enabled: true}
"""


def test_routing_defaults_keep_the_llm_section_as_the_only_backend(tmp_path: Path) -> None:
    settings = load_settings(tmp_path)
    assert settings.backends == {}
    assert settings.routes.default == []
    assert settings.routes.rules == []
    assert settings.routes.retry.retries == 1
    assert settings.routes.cache.enabled is False
    assert settings.llm.first_token_timeout_s == 60
    assert settings.llm.max_concurrency is None


def test_backends_and_routes_from_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "personae.yaml").write_text(ROUTING_YAML)
    monkeypatch.setenv("TEST_GPT_KEY", "sk-from-the-environment")

    settings = load_settings(tmp_path)

    gpt = settings.backends["gpt"]
    assert (gpt.kind, gpt.model, gpt.max_concurrency) == ("openai", "gpt-x", 4)
    assert (gpt.first_token_timeout_s, gpt.total_timeout_s) == (5, 60)
    assert (gpt.breaker.failure_threshold, gpt.breaker.reset_timeout_s) == (3, 10)
    assert gpt.api_key is not None
    assert gpt.api_key.get_secret_value() == "sk-from-the-environment"
    assert "sk-from" not in repr(settings)
    assert settings.backends["local"].options == {"n_ctx": 4096}
    assert list(settings.backends) == ["gpt", "local"]  # declaration order is kept
    routes = settings.routes
    assert routes.default == ["gpt", "local"]
    first = routes.rules[0]
    assert (first.name, first.kinds, first.chain) == ("code", ["code"], ["gpt"])
    assert routes.rules[1].characters == ["bram"]
    assert routes.rules[1].min_prompt_tokens == 6000
    assert (routes.retry.retries, routes.retry.budget_s) == (2, 5)
    assert routes.cache.enabled is True


def test_routing_environment_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONAE_BACKENDS_GPT", '{"kind": "openai", "model": "gpt-x"}')
    monkeypatch.setenv("PERSONAE_ROUTES_DEFAULT", "gpt, llamacpp")  # or a JSON list
    monkeypatch.setenv("PERSONAE_ROUTES_RETRY", '{"retries": 0}')
    monkeypatch.setenv("PERSONAE_LLM_FIRST_TOKEN_TIMEOUT_S", "12.5")
    monkeypatch.setenv("PERSONAE_LLM_MAX_CONCURRENCY", "2")

    settings = load_settings(tmp_path)

    assert settings.backends["gpt"].model == "gpt-x"
    assert settings.routes.default == ["gpt", "llamacpp"]
    assert settings.routes.retry.retries == 0
    assert settings.llm.first_token_timeout_s == 12.5
    assert settings.llm.max_concurrency == 2

    monkeypatch.setenv("PERSONAE_ROUTES_DEFAULT", '["gpt"]')
    assert load_settings(tmp_path).routes.default == ["gpt"]


def test_a_whole_backends_mapping_from_one_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERSONAE_BACKENDS", '{"a": {"kind": "openai"}, "b": {"kind": "llamacpp"}}')
    assert list(load_settings(tmp_path).backends) == ["a", "b"]


@pytest.mark.parametrize(
    ("backend", "message"),
    [
        ({"kind": "openai", "api_key_env": "TEST_UNSET_KEY"}, "TEST_UNSET_KEY, which is not set"),
        (
            {"kind": "openai", "api_key": "sk-x", "api_key_env": "TEST_GPT_KEY"},
            "either api_key or api_key_env",
        ),
        ({"kind": "openai", "first_token_timout_s": 5}, "first_token_timout_s"),  # a typo
        ({"kind": "openai", "max_concurrency": 0}, "max_concurrency"),
        ({"model": "no-kind"}, "kind"),
    ],
)
def test_invalid_backends_are_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: dict[str, object], message: str
) -> None:
    monkeypatch.setenv("TEST_GPT_KEY", "sk-set")
    monkeypatch.delenv("TEST_UNSET_KEY", raising=False)
    with pytest.raises(ValueError, match=message):
        load_settings(tmp_path, backends={"gpt": backend})


def test_a_rule_needs_a_chain(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="chain"):
        load_settings(tmp_path, routes={"rules": [{"kinds": ["code"], "chain": []}]})


def test_hot_reload_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = load_settings(tmp_path)
    assert (defaults.watch_characters, defaults.characters_reload) == (True, "switch")
    monkeypatch.setenv("PERSONAE_WATCH_CHARACTERS", "false")
    monkeypatch.setenv("PERSONAE_CHARACTERS_RELOAD", "pin")
    settings = load_settings(tmp_path)
    assert (settings.watch_characters, settings.characters_reload) == (False, "pin")
    with pytest.raises(ValueError, match="characters_reload"):
        load_settings(tmp_path, characters_reload="sometimes")
