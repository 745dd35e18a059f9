"""What a plugin author imports: the hook marker, the ports, the value types and the errors.

    from personae.sdk import hookimpl, ChatModel, ChatRequest, ModelChunk

    class EchoModel(ChatModel):
        name = "echo"

        async def stream(self, request):
            yield ModelChunk(text=request.messages[-1].content, finish_reason="stop")

    @hookimpl
    def register_chat_models(register):
        register("echo", lambda config: EchoModel())

A skill is registered the same way (see docs/skills.md)::

    class Shout(Skill):
        name = "shout"
        triggers = (SlashCommand("shout"),)

        async def run(self, context, args):
            return SkillResult(text=args["text"].upper())

    @hookimpl
    def register_skills(register):
        register(Shout())

Expose the module under the ``personae`` entry-point group and Personae loads it at start-up.
"""

from personae.core.ports import (
    Authenticator,
    Channel,
    ChatModel,
    ConversationLock,
    ConversationStore,
    Embedder,
    EventBus,
    MemoryStore,
    RateLimiter,
    Resource,
)
from personae.core.skills import (
    Intent,
    Keywords,
    Pattern,
    Skill,
    SkillContext,
    SkillResult,
    SlashCommand,
    Trigger,
)
from personae.core.types import (
    ChatMessage,
    ChatRequest,
    GenerationParams,
    InboundMessage,
    ModelChunk,
    Role,
    Usage,
)
from personae.errors import (
    BackendError,
    BackendProtocolError,
    BackendTimeout,
    BackendUnavailable,
    ConfigurationError,
    InvalidInput,
    PersonaeError,
)
from personae.plugins.specs import BackendConfig, RegisterChatModel, RegisterSkill, hookimpl

__all__ = [
    "Authenticator",
    "BackendConfig",
    "BackendError",
    "BackendProtocolError",
    "BackendTimeout",
    "BackendUnavailable",
    "Channel",
    "ChatMessage",
    "ChatModel",
    "ChatRequest",
    "ConfigurationError",
    "ConversationLock",
    "ConversationStore",
    "Embedder",
    "EventBus",
    "GenerationParams",
    "InboundMessage",
    "Intent",
    "InvalidInput",
    "Keywords",
    "MemoryStore",
    "ModelChunk",
    "Pattern",
    "PersonaeError",
    "RateLimiter",
    "RegisterChatModel",
    "RegisterSkill",
    "Resource",
    "Role",
    "Skill",
    "SkillContext",
    "SkillResult",
    "SlashCommand",
    "Trigger",
    "Usage",
    "hookimpl",
]
