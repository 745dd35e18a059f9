"""A replay's report as one self-contained HTML page (no script, inline style). Every piece
of text that came from a conversation or a character is escaped: a reply may hold markup."""

from __future__ import annotations

from html import escape

from personae.core.replay import ComparedTurn, ReplayReport, Side, ms_label, tokens_label

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #ccc; padding: 6px; vertical-align: top; text-align: left; }
td.reply { white-space: pre-wrap; width: 30%; }
tr.changed td.replayed { background: #fff8e0; }
.failed { color: #b00; }
pre.diff { background: #f6f6f6; padding: 8px; overflow-x: auto; }
.add { color: #070; } .del { color: #b00; } .hunk { color: #07a; }
"""


def render_html(report: ReplayReport) -> str:
    plan = report.plan
    title = f"Replay of {plan.conversation_id} ({report.character_id}): {plan.label}"
    t = report.totals
    rows = "\n".join(_row(turn) for turn in report.turns)
    diffs = "\n".join(_diff(turn) for turn in report.turns if turn.prompt_diff)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>{_STYLE}</style></head>
<body>
<h1>{escape(title)}</h1>
<p class="totals">{t.turns} turns: {t.changed_replies} replies changed,
{t.changed_prompts} prompts changed, {t.failed} failed.
Latency {t.original_latency_ms:.0f} ms &rarr; {t.replayed_latency_ms:.0f} ms;
tokens {t.original_tokens} &rarr; {t.replayed_tokens}.</p>
<table>
<thead><tr><th>#</th><th>user</th><th>original</th><th>replayed</th><th>prompt</th>
<th>latency ms</th><th>tokens</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
<h2>Prompt differences</h2>
{diffs or "<p>None recorded.</p>"}
</body></html>
"""


def _row(turn: ComparedTurn) -> str:
    if turn.prompt_diff is None:
        prompt = "not recorded"
    else:
        prompt = f'<a href="#diff-{turn.index}">changed</a>' if turn.prompt_diff else "same"
    changed = "" if turn.same_reply else ' class="changed"'
    return (
        f"<tr{changed}><td>{turn.index}</td>"
        f'<td class="reply">{escape(turn.user_text)}</td>'
        f'<td class="reply">{_reply(turn.original)}</td>'
        f'<td class="reply replayed">{_reply(turn.replayed)}</td>'
        f"<td>{prompt}</td>"
        f"<td>{ms_label(turn.original.latency_ms)} &rarr; {ms_label(turn.replayed.latency_ms)}</td>"
        f"<td>{tokens_label(turn.original)} &rarr; {tokens_label(turn.replayed)}</td></tr>"
    )


def _reply(side: Side) -> str:
    if side.error is not None and not side.reply:
        return f'<span class="failed">{escape(side.error)}</span>'
    via = f"<br><small>{escape(side.backend or side.model or '')}</small>"
    return escape(side.reply) + (via if side.backend or side.model else "")


def _diff(turn: ComparedTurn) -> str:
    lines = "\n".join(_diff_line(line) for line in turn.prompt_diff or ())
    return f'<h3 id="diff-{turn.index}">Turn {turn.index}</h3>\n<pre class="diff">{lines}</pre>'


def _diff_line(line: str) -> str:
    text = escape(line)
    if line.startswith(("+++", "---")):
        return f"<b>{text}</b>"
    if line.startswith("+"):
        return f'<span class="add">{text}</span>'
    if line.startswith("-"):
        return f'<span class="del">{text}</span>'
    if line.startswith("@@"):
        return f'<span class="hunk">{text}</span>'
    return text
