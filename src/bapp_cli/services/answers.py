"""Answers to a session type's custom questions, shared by booking, import and Calendly pulls.

Questions keep Calendly's shape (`name, type, position, enabled, required, answer_choices,
include_other`). Answers are stored as one normalised list `[{question, answer, position}]` — Calendly's
`questions_and_answers` shape — where a multi-select answer is a list of strings, the question text is
the session type's own spelling, and the list is ordered by question position.

The API, in the order a caller uses it:
- `questions_from(custom_questions)`: the stored JSON as typed `Question`s (tolerant of missing keys);
- `parse_answer_option("Q=A")` / `parse_answers_document(text)`: raw answers as given by a person;
- `validate_answers(questions, answers)`: the normalised list, or InvalidInput naming every bad answer;
- `answers_from_calendly(items, questions)`: Calendly's own answers, normalised without refusing any
  (Calendly already accepted them; a later edit of the questions must not make history unreadable).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bapp_cli.db.domains import QUESTION_LIMIT
from bapp_cli.errors import InvalidInput, holds_lone_surrogate, read_json_input, too_long
from bapp_cli.services.pathways import answer_key
from bapp_cli.services.plain_text import CONTROL_CHARACTER, control_message

STRING_LIMIT = 255
TEXT_LIMIT = 10_000
# E.164: a plus, a non-zero country digit, at most 15 digits in all — checked after removing the
# spaces, dashes and brackets people type for readability.
PHONE_PATTERN = re.compile(r"^\+[1-9]\d{1,14}$")
PHONE_NOISE = re.compile(r"[\s\-()]")


@dataclass(frozen=True)
class Question:
    name: str
    type: str
    position: int
    enabled: bool
    required: bool
    answer_choices: tuple[str, ...]
    include_other: bool


@dataclass(frozen=True)
class AnswerInput:
    """One answer as a person or a file gave it, before validation."""

    question: str
    answer: str | list[str]


def questions_from(custom_questions: Any) -> list[Question]:
    """Typed questions from a session type's stored `custom_questions` (Calendly's shape). Stored JSON of
    another shape (raw SQL's or another program's, valid JSON on both backends) yields no question, rather
    than failing every command that reads the session (R9)."""
    if not isinstance(custom_questions, list):
        return []
    questions = [
        Question(
            name=str(raw["name"]).strip(),
            type=str(raw.get("type") or "string"),
            position=raw["position"] if isinstance(raw.get("position"), int) else index,
            # a null flag is one not given, as an import takes it (`catalogue._question`): a null `enabled` read
            # as False disabled a question its restore (which cannot keep a null: TOML has none) enables
            enabled=bool(True if raw.get("enabled") is None else raw["enabled"]),
            required=bool(raw.get("required", False)),
            answer_choices=tuple(str(choice) for choice in _listed(raw.get("answer_choices")) if choice is not None),
            include_other=bool(raw.get("include_other", False)),
        )
        for index, raw in enumerate(custom_questions)
        if isinstance(raw, Mapping) and str(raw.get("name") or "").strip()
    ]
    return sorted(questions, key=lambda question: question.position)


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def parse_answer_option(text: str, *, field: str = "answer") -> AnswerInput:
    """`QUESTION=ANSWER` (split at the first `=`, so answers may contain `=`)."""
    question, separator, answer = text.partition("=")
    if not separator or not question.strip():
        hint = "e.g. --answer 'What do you want to build?=A chatbot'"
        raise InvalidInput(f"{field}: {text!r} is not QUESTION=ANSWER", hint=hint, code="invalid_answer")
    return AnswerInput(question.strip(), answer)


def parse_answers_document(text: str, *, field: str = "answers-file") -> list[AnswerInput]:
    """A JSON object `{question: answer-or-list}` or Calendly's `[{question, answer}]` list."""

    def refused(problem: str) -> InvalidInput:
        return InvalidInput(f"{field}: {problem}", code="invalid_answers_file")

    document = read_json_input(text, field, code="invalid_answers_file")
    if isinstance(document, dict):
        items: list[tuple[str, Any, str]] = [(str(key), value, f"key {key!r}") for key, value in document.items()]
    elif isinstance(document, list):
        items = []
        for index, item in enumerate(document, start=1):
            if not isinstance(item, dict) or not isinstance(item.get("question"), str):
                raise refused(f"item {index} is not an object with a 'question' string")
            items.append((item["question"], item.get("answer"), f"item {index}"))
    else:
        raise refused("expected an object {question: answer} or a list of {question, answer}")
    for question, value, where in items:
        if not (isinstance(value, str) or (isinstance(value, list) and all(isinstance(part, str) for part in value))):
            raise refused(f"{where}: the answer must be a string or a list of strings")
        if holds_lone_surrogate([question, value]):
            raise refused(f"{where}: holds an unpaired \\u surrogate escape, which is not text")
    return [AnswerInput(question, value if isinstance(value, str) else list(value)) for question, value, _ in items]


def answer_values(answer: AnswerInput) -> list[str]:
    """The answer's parts (one, or a multi-select's several), trimmed, blank ones left out."""
    parts = answer.answer if isinstance(answer.answer, list) else [answer.answer]
    return [part.strip() for part in parts if part.strip()]


def _check_choice(question: Question, value: str, problems: list[str]) -> str:
    """The session type's spelling of `value` if it is one of the choices; else `value`, a problem unless
    the question takes "other"."""
    wanted = answer_key(value)
    for choice in question.answer_choices:
        if answer_key(choice) == wanted:
            return choice
    if not question.include_other:
        choices = ", ".join(question.answer_choices) or "(none)"
        problems.append(f"answer {question.name!r}: {value!r} is not one of: {choices}")
    elif len(value) > TEXT_LIMIT:  # free text like a text answer's: a booking row's import takes no more
        problems.append(too_long(len(value), TEXT_LIMIT, f"answer {question.name!r}"))
    return value


def _check_single(question: Question, value: str, problems: list[str]) -> str:
    if question.type == "single_select":
        return _check_choice(question, value, problems)
    if question.type == "phone_number":
        if not PHONE_PATTERN.match(PHONE_NOISE.sub("", value)):
            problems.append(f"answer {question.name!r}: {value!r} is not a phone number (E.164, e.g. +44 7700 900123)")
    elif len(value) > (limit := STRING_LIMIT if question.type == "string" else TEXT_LIMIT):
        problems.append(too_long(len(value), limit, f"answer {question.name!r}"))
    return value


def validate_answers(
    questions: Sequence[Question], answers: Sequence[AnswerInput], *, field: str = "answers"
) -> list[dict[str, Any]]:
    """The normalised answer list, or InvalidInput listing every problem (each naming its question)."""
    by_key = {answer_key(question.name): question for question in questions}
    given: dict[str, list[AnswerInput]] = {}
    problems: list[str] = []
    for answer in answers:
        question = by_key.get(answer_key(answer.question))
        if question is None:
            problems.append(f"answer {answer.question.strip()!r}: the session has no such question")
        elif not question.enabled:
            problems.append(f"answer {question.name!r}: the question is disabled and takes no answers")
        else:
            given.setdefault(answer_key(question.name), []).append(answer)
    normalised: list[dict[str, Any]] = []
    for question in questions:
        if not question.enabled:
            continue
        entries = given.get(answer_key(question.name), [])
        values = [value for entry in entries for value in answer_values(entry)]
        # the rule of all stored text (services.plain_text): else the backup of the booking would not restore
        control = next((found for value in values if (found := CONTROL_CHARACTER.search(value))), None)
        if control is not None:
            problems.append(f"answer {question.name!r}: {control_message(control.group())}")
            continue
        if not values:
            if question.required:
                problems.append(f"answer {question.name!r}: required")
            continue
        if question.type == "multi_select":
            chosen: str | list[str] = list(dict.fromkeys(_check_choice(question, value, problems) for value in values))
        elif len(entries) > 1 or len(values) > 1:
            problems.append(f"answer {question.name!r}: answered more than once; the question takes one answer")
            continue
        else:
            chosen = _check_single(question, values[0], problems)
        normalised.append({"question": question.name, "answer": chosen, "position": question.position})
    if problems:
        message = problems[0] if len(problems) == 1 else f"{field}: {len(problems)} problems"
        names = ", ".join(repr(question.name) for question in questions if question.enabled)
        hint = f"the session's questions: {names}" if names else "this session has no questions"
        raise InvalidInput(message, hint=hint, details=problems if len(problems) > 1 else None, code="invalid_answer")
    return normalised


def answers_from_calendly(items: Sequence[Mapping[str, Any]], questions: Sequence[Question]) -> list[dict[str, Any]]:
    """Calendly's `questions_and_answers` as the normalised list, refusing nothing.

    Calendly joins multi-select answers with newlines; they become lists when the question is known to
    be multi-select. Unknown questions are kept with Calendly's own position. Texts are cut to what a booking
    row of `import` takes (QUESTION_LIMIT characters of question, TEXT_LIMIT of each answer), so its backup restores.
    """
    by_key = {answer_key(question.name): question for question in questions}
    normalised: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        text = str(item.get("question") or "").strip()[:QUESTION_LIMIT]
        if not text:
            continue
        raw = item.get("answer")
        question = by_key.get(answer_key(text))
        if isinstance(raw, list):
            answer: str | list[str] = [str(part)[:TEXT_LIMIT] for part in raw]
        elif question is not None and question.type == "multi_select":
            answer = [part.strip()[:TEXT_LIMIT] for part in str(raw or "").split("\n") if part.strip()]
        else:
            answer = "" if raw is None else str(raw)[:TEXT_LIMIT]
        position = question.position if question is not None else item.get("position")
        name = question.name if question is not None else text
        at = position if isinstance(position, int) else index
        normalised.append({"question": name, "answer": answer, "position": at})
    return sorted(normalised, key=lambda entry: entry["position"])
