"""Prompts for base models, which have no chat format: a plain transcript of named lines, and
a trimmer for the reply that streams back."""

from __future__ import annotations

from personae.core.types import ChatRequest, Role


def transcript_prompt(request: ChatRequest) -> tuple[str, list[str]]:
    """A plain-text chat transcript for base models, and the stop sequences that end the
    assistant's turn when the model starts writing another speaker's line."""
    system = [m.content.strip() for m in request.messages if m.role is Role.SYSTEM]
    speakers = dict.fromkeys([request.user_name, request.assistant_name])
    lines: list[str] = []
    for message in request.messages:
        if message.role is Role.SYSTEM:
            continue
        default = request.user_name if message.role is Role.USER else request.assistant_name
        speaker = message.name or default
        speakers[speaker] = None
        lines.append(f"{speaker}: {message.content.strip()}")
    lines.append(f"{request.assistant_name}:")
    head = "\n\n".join(text for text in system if text)
    prompt = (f"{head}\n\n" if head else "") + "\n".join(lines)
    stops = [f"\n{speaker}:" for speaker in speakers] + list(request.params.stop)
    return prompt, [stop for stop in stops if stop]


class ReplyTrimmer:
    """Trims a streamed reply: trailing whitespace is held back until more text follows."""

    def __init__(self) -> None:
        self.started = False
        self.pending = ""

    def feed(self, text: str) -> str:
        if not self.started:
            text = text.lstrip()
            self.started = bool(text)
        body = text.rstrip()
        if not body:
            self.pending += text
            return ""
        out, self.pending = self.pending + body, text[len(body) :]
        return out
