"""How a few values look on a terminal, the same in every group that shows them.

Plain data and text only: command modules import this at load time, so it must not import Rich
(`bapp --help` stays light).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# an enrolment's status: `progress show` and `progress table`, the client-progress and analytics reports
ENROLMENT_STYLES = {"active": "cyan", "paused": "yellow", "completed": "green"}
# a skill's status as a mark and a colour: the progress tree, and the marks of `skills start/complete/reset`
SKILL_STATUS_STYLES = {"completed": ("✔", "green"), "in_progress": ("◐", "yellow"), "not_started": ("○", "dim")}


def percent_style(percent: float) -> str:
    """Green once done, yellow once started, dim before anything is done."""
    return "green" if percent >= 100 else "yellow" if percent > 0 else "dim"


def answers_text(answers: Any) -> str:
    """A booking's custom answers, one `QUESTION: ANSWER` line each; a multi-select's choices joined by commas.

    Stored JSON of another shape (raw SQL's, another program's: a number, an object, a list of strings) is
    valid JSON on both backends, so it is shown as it is rather than failing the table (R9)."""
    if not isinstance(answers, list):
        return "" if answers is None else str(answers)

    def line(item: Any) -> str:
        if not isinstance(item, Mapping):
            return str(item)
        answer = item.get("answer")
        shown = ", ".join(str(value) for value in answer) if isinstance(answer, list) else str(answer)
        return f"{item.get('question')}: {shown}"

    return "\n".join(map(line, answers))
