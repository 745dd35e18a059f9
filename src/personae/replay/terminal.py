"""A replay's report in the terminal: one row per turn (original and replayed reply side by
side, latency and tokens, whether the prompt changed), the totals, then each prompt diff."""

from __future__ import annotations

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from personae.core.replay import ReplayReport, Side, ms_label, tokens_label

#: Characters of a reply shown in the table; the HTML report has them whole.
REPLY_CHARS = 160


def render_terminal(report: ReplayReport, console: Console, *, diffs: bool = True) -> None:
    console.print(_table(report))
    console.print(_totals(report))
    if diffs:
        for turn in report.turns:
            if turn.prompt_diff:
                console.print(Text(f"\nprompt diff, turn {turn.index}", style="bold"))
                for line in turn.prompt_diff:
                    console.print(Text(line, style=_diff_style(line)))


def _table(report: ReplayReport) -> Table:
    table = Table(
        title=f"Replay of {report.plan.conversation_id} ({report.character_id}): "
        f"{report.plan.label}",
        show_lines=True,
    )
    for column in ("#", "user", "original", "replayed", "prompt", "latency ms", "tokens"):
        table.add_column(column, overflow="fold")
    for turn in report.turns:
        if turn.prompt_diff is None:
            prompt = "not recorded"
        else:
            prompt = "changed" if turn.prompt_diff else "same"
        table.add_row(
            str(turn.index),
            Text(_short(turn.user_text)),
            Text(_short(turn.original.reply) or turn.original.error or ""),
            _replayed(turn.replayed, same=turn.same_reply),
            prompt,
            f"{ms_label(turn.original.latency_ms)} → {ms_label(turn.replayed.latency_ms)}",
            f"{tokens_label(turn.original)} → {tokens_label(turn.replayed)}",
        )
    return table


def _totals(report: ReplayReport) -> Group:
    t = report.totals
    return Group(
        Text(
            f"{t.turns} turns: {t.changed_replies} replies changed, {t.changed_prompts} prompts"
            f" changed, {t.failed} failed"
        ),
        Text(
            f"latency {t.original_latency_ms:.0f} ms → {t.replayed_latency_ms:.0f} ms; "
            f"tokens {t.original_tokens} → {t.replayed_tokens}"
        ),
    )


def _replayed(side: Side, *, same: bool) -> Text:
    if side.error is not None:
        return Text(f"failed: {side.error}", style="red")
    return Text(_short(side.reply), style="" if same else "yellow")


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= REPLY_CHARS else text[: REPLY_CHARS - 1] + "…"


def _diff_style(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "bold"
    if line.startswith("+"):
        return "green"
    if line.startswith("-"):
        return "red"
    return "cyan" if line.startswith("@@") else ""
