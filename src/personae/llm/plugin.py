"""The built-in chat-model plugin: registers the backends of this package through the same
hook a third-party plugin uses."""

from __future__ import annotations

from personae.llm.llamacpp import LlamaCppChatModel
from personae.llm.openai_compat import OpenAICompatChatModel
from personae.plugins.specs import RegisterChatModel, hookimpl


@hookimpl
def register_chat_models(register: RegisterChatModel) -> None:
    register("openai", OpenAICompatChatModel.from_config)
    # Options: model_path (required), n_ctx (2048), n_threads (2), prompt_format, seed.
    register("llamacpp", LlamaCppChatModel.from_config)
