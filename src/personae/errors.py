"""The one exception tree of Personae.

Every error the server raises on purpose is a ``PersonaeError``. Each carries a stable ``code``
(for clients and logs), whether retrying may help, and context. Only transports turn these into
status codes (HTTP status, WebSocket error frames); nothing else knows about HTTP.

    PersonaeError
    ├── InvalidInput                 the request itself is wrong; do not retry it unchanged
    │   ├── PayloadTooLarge          over a configured size limit
    │   ├── ContextOverflow          the message cannot fit the model's context even alone
    │   └── ContentBlocked           the message has a word on the moderation block list
    ├── NotAuthenticated             no or unknown credentials
    │   └── PermissionDenied         known caller, not allowed to do this
    ├── NotFound
    │   ├── CharacterNotFound
    │   └── ConversationNotFound
    ├── Conflict                     the request contradicts stored state
    │   ├── Busy                     a reply is being generated in that conversation
    │   └── StateConflict            a versioned state moved since it was read
    ├── Overloaded                   shed by admission control; retry after ``retry_after``
    ├── RateLimited                  the caller's request or token budget is spent for now
    ├── BackendError                 the model backend failed; ``backend`` names it
    │   ├── BackendUnavailable       cannot connect, or it answered 5xx / 429
    │   ├── BackendTimeout           no answer within the configured time
    │   └── BackendProtocolError     it answered with something we cannot use
    ├── CharacterDefinitionError     a character file is invalid; ``source`` names it
    ├── StorageError                 the database failed or its schema is unusable
    │   └── StorageUnavailable       the database server cannot be reached; retry later
    ├── CoordinationError            Redis (locks, the event bus) is unreachable; retry later
    └── ConfigurationError           settings are invalid or name something missing

    IllegalTransition (a RuntimeError, outside the tree: a bug, never an expected outcome)
                                     a state machine was asked for a move it does not allow
"""

from __future__ import annotations

from typing import Any, ClassVar


class PersonaeError(Exception):
    """Base of every deliberate error. ``code`` is stable and safe to show to clients."""

    code: ClassVar[str] = "internal_error"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    def __str__(self) -> str:
        return self.message


class InvalidInput(PersonaeError):
    code = "invalid_request"


class PayloadTooLarge(InvalidInput):
    code = "payload_too_large"


class ContextOverflow(InvalidInput):
    code = "context_length_exceeded"


class ContentBlocked(InvalidInput):
    code = "content_blocked"


class NotAuthenticated(PersonaeError):
    code = "not_authenticated"


class PermissionDenied(NotAuthenticated):
    code = "permission_denied"


class NotFound(PersonaeError):
    code = "not_found"


class CharacterNotFound(NotFound):
    code = "character_not_found"

    def __init__(self, character_id: str) -> None:
        super().__init__(f"unknown character {character_id!r}", character_id=character_id)
        self.character_id = character_id


class ConversationNotFound(NotFound):
    code = "conversation_not_found"

    def __init__(self, conversation_id: str) -> None:
        super().__init__(
            f"unknown conversation {conversation_id!r}", conversation_id=conversation_id
        )
        self.conversation_id = conversation_id


class Conflict(PersonaeError):
    code = "conflict"


class Busy(Conflict):
    code = "busy"
    retryable = True


class StateConflict(Conflict):
    """``put_state`` with a version that is no longer the stored one: re-read and retry."""

    code = "state_conflict"
    retryable = True


class Overloaded(PersonaeError):
    code = "overloaded"
    retryable = True

    def __init__(self, message: str, *, retry_after: float, **context: Any) -> None:
        super().__init__(message, retry_after=retry_after, **context)
        self.retry_after = retry_after


class RateLimited(PersonaeError):
    """A caller's budget (requests or tokens per minute) is spent; retry after ``retry_after``."""

    code = "rate_limited"
    retryable = True

    def __init__(self, message: str, *, retry_after: float, **context: Any) -> None:
        super().__init__(message, retry_after=retry_after, **context)
        self.retry_after = retry_after


class BackendError(PersonaeError):
    """The model backend named ``backend`` failed before or while producing a reply."""

    code = "backend_error"
    retryable = True

    def __init__(self, message: str, *, backend: str, **context: Any) -> None:
        super().__init__(f"backend {backend!r}: {message}", backend=backend, **context)
        self.backend = backend


class BackendUnavailable(BackendError):
    code = "backend_unavailable"


class BackendTimeout(BackendError):
    code = "backend_timeout"


class BackendProtocolError(BackendError):
    code = "backend_protocol_error"


class CharacterDefinitionError(PersonaeError):
    code = "invalid_character"

    def __init__(self, message: str, *, source: str, **context: Any) -> None:
        super().__init__(f"{source}: {message}", source=source, **context)
        self.source = source


class StorageError(PersonaeError):
    code = "storage_error"


class StorageUnavailable(StorageError):
    """No connection to the database server (restarting, unreachable, every connection busy):
    the same call may work in a moment."""

    code = "storage_unavailable"
    retryable = True


class CoordinationError(PersonaeError):
    code = "coordination_unavailable"
    retryable = True


class ConfigurationError(PersonaeError):
    code = "configuration_error"


class IllegalTransition(RuntimeError):
    """A state machine (connection, session, circuit breaker, ...) was asked for a transition
    its table does not allow."""

    def __init__(self, machine: str, source: object, target: object) -> None:
        super().__init__(f"{machine}: {source} -> {target} is not a legal transition")
        self.machine = machine
        self.source = source
        self.target = target
