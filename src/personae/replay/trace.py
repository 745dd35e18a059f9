"""``personae trace``: a recorded turn in the terminal: who answered and how (the route, with
retries and failovers), how long each stage took, the lore and memory that went into the
prompt, and the prompt itself, message by message, as the backend got it."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from personae.core.route_log import RouteTaken
from personae.core.turn_record import TurnRecord


def render_trace(record: TurnRecord, console: Console) -> None:
    console.print(Text(f"turn {record.turn_id}", style="bold"))
    version = (record.character_version or "?")[:12]
    console.print(
        f"conversation {escape(record.conversation_id)}, character "
        f"{escape(record.character_id)} (version {escape(version)}), model "
        f"{escape(record.model)}, at {record.created_at.isoformat(timespec='seconds')}"
    )
    if record.experiment is not None:
        tag = record.experiment
        console.print(f"experiment {escape(tag.experiment_id)}: variant {escape(tag.variant)}")
    if record.overrides is not None and not record.overrides.empty:
        console.print(f"overrides: {escape(repr(record.overrides))}")
    params = record.params
    console.print(
        f"generation: max_tokens={params.max_tokens} temperature={params.temperature} "
        f"top_p={params.top_p}" + (f" seed={params.seed}" if params.seed is not None else "")
    )
    _route(record, console)
    _stages(record, console)
    _inputs(record, console)
    _prompt(record, console)


def _route(record: TurnRecord, console: Console) -> None:
    console.print(Text("\nroute", style="bold"))
    if not record.routes:
        console.print("  no backend asked (a skill answered)" if record.skill else "  not known")
    for number, route in enumerate(record.routes, start=1):
        console.print(Text(f"  request {number}: {describe_route(route)}"))
        for attempt in route.failures:
            console.print(Text(f"    failed: {attempt.backend}: {attempt.outcome}", style="red"))


def describe_route(route: RouteTaken) -> str:
    """One line: the chain, who answered, retries and failover."""
    chain = " > ".join(route.chain)
    if route.cached:
        return f"chain {chain}: answered from the cache"
    if route.backend is None:
        return f"chain {chain}: no backend answered ({route.rounds} rounds)"
    words = [f"chain {chain}: answered by {route.backend}"]
    if route.failed_over:
        words.append("after failover")
    if route.retries:
        words.append(f"{route.retries} retr{'y' if route.retries == 1 else 'ies'}")
    return ", ".join(words)


def _stages(record: TurnRecord, console: Console) -> None:
    table = Table("stage", "ms", title="timings", title_justify="left")
    for stage in record.stages:
        table.add_row(stage.name, f"{stage.ms:.1f}")
    table.add_row("total", f"{record.total_ms:.1f}", style="bold")
    if record.first_token_ms is not None:
        table.add_row("first token", f"{record.first_token_ms:.1f}")
    console.print(table)
    if record.usage is not None:
        console.print(
            f"tokens: prompt {record.usage.prompt_tokens}, reply {record.usage.completion_tokens}"
            f" (assembled prompt: {record.prompt_tokens})"
        )


def _inputs(record: TurnRecord, console: Console) -> None:
    console.print(Text("\nlore", style="bold"))
    if record.lore:
        for label in record.lore:
            console.print(Text(f"  - {label}"))
    else:
        console.print("  none activated")
    if record.lore_dropped:
        console.print(f"  ({record.lore_dropped} activated entries left out by the budget)")
    console.print(Text("\nmemory", style="bold"))
    console.print(Text(_indent(record.memory_note) if record.memory_note else "  none"))
    if record.knowledge:
        console.print(Text(f"  cites: {', '.join(record.knowledge)}"))
    if record.skill is not None:
        skill = record.skill
        how = "answered the turn" if skill.answered else "added a note"
        state = "ok" if skill.ok else "failed"
        console.print(Text(f"\nskill {skill.name} ({state}) {how}", style="bold"))


def _prompt(record: TurnRecord, console: Console) -> None:
    console.print(Text(f"\nprompt ({len(record.prompt)} messages, as sent)", style="bold"))
    for message in record.prompt:
        who = message.role.value + (f" ({message.name})" if message.name else "")
        console.print(Text(f"[{who}]", style="cyan"))
        console.print(Text(_indent(message.content)))


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())
