"""Custom-question answers (a session type's Calendly questions): parsing what people type, validating, normalising."""

from __future__ import annotations

from typing import Any

import pytest

from bapp_cli.errors import InvalidInput
from bapp_cli.services.answers import (
    AnswerInput,
    answers_from_calendly,
    parse_answer_option,
    parse_answers_document,
    questions_from,
    validate_answers,
)
from tests.services.test_booking_factories import question

QUESTIONS = questions_from(
    [
        question("What do you want to build?", "text", position=0, required=True),
        question("Company size", "single_select", position=1, choices=["1-10", "11-50", "51+"]),
        question("Tools", "multi_select", position=2, choices=["Python", "Zapier", "Excel"]),
        question("Phone", "phone_number", position=3),
        question("Nickname", "string", position=4),
        question("Role", "single_select", position=5, choices=["Founder", "Engineer"], include_other=True),
        question("Interests", "multi_select", position=6, choices=["Agents", "RAG"], include_other=True),
        question("Old question", "string", position=7, enabled=False, required=True),
    ]
)
GOAL = AnswerInput("What do you want to build?", "A chatbot")


def validate(*answers: AnswerInput) -> list[dict[str, Any]]:
    return validate_answers(QUESTIONS, [GOAL, *answers])


def refusal(*answers: AnswerInput) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        validate_answers(QUESTIONS, list(answers))
    assert caught.value.exit_code == 6
    return caught.value


def test_questions_keep_calendly_fields_and_tolerate_missing_keys() -> None:
    parsed = questions_from(
        [{"name": " Goal ", "type": "text"}, "junk", {"type": "string"}, {"name": "B", "position": 9}]
    )
    assert [(item.name, item.type, item.position, item.enabled, item.required) for item in parsed] == [
        ("Goal", "text", 0, True, False),
        ("B", "string", 9, True, False),
    ]


def test_a_null_flag_is_the_default_as_a_restore_stores_it() -> None:
    # another program's null `enabled` (or any flag) reads as the flag left out: a restore stores the default
    (question,) = questions_from([dict.fromkeys(("position", "enabled", "required", "include_other")) | {"name": "G"}])
    assert (question.position, question.enabled, question.required, question.include_other) == (0, True, False, False)


def test_normalised_list_is_ordered_by_position_with_the_sessions_spelling() -> None:
    result = validate_answers(
        QUESTIONS,
        [AnswerInput("company SIZE ", "11-50"), AnswerInput(" what do you want to build?", "  A chatbot ")],
    )
    assert result == [
        {"question": "What do you want to build?", "answer": "A chatbot", "position": 0},
        {"question": "Company size", "answer": "11-50", "position": 1},
    ]


def test_required_question_must_be_answered() -> None:
    error = refusal(AnswerInput("Company size", "1-10"))
    assert error.message == "answer 'What do you want to build?': required"
    assert "What do you want to build?" in (error.hint or "")
    # blank counts as unanswered
    assert "required" in refusal(AnswerInput("What do you want to build?", "   ")).message


def test_unknown_and_disabled_questions_are_refused() -> None:
    assert refusal(GOAL, AnswerInput("Favourite colour", "blue")).message == (
        "answer 'Favourite colour': the session has no such question"
    )
    disabled = refusal(GOAL, AnswerInput("old question", "x"))
    assert "'Old question'" in disabled.message and "disabled" in disabled.message


def test_disabled_required_question_is_not_demanded() -> None:
    assert validate() == [{"question": "What do you want to build?", "answer": "A chatbot", "position": 0}]


def test_single_select_takes_a_choice_in_any_case() -> None:
    assert validate(AnswerInput("Company size", "51+"))[1]["answer"] == "51+"
    assert validate(AnswerInput("Role", "founder"))[1]["answer"] == "Founder"
    error = refusal(GOAL, AnswerInput("Company size", "huge"))
    assert error.message == "answer 'Company size': 'huge' is not one of: 1-10, 11-50, 51+"


def test_include_other_accepts_free_text() -> None:
    assert validate(AnswerInput("Role", "Product manager"))[1]["answer"] == "Product manager"
    assert validate(AnswerInput("Interests", "rag"), AnswerInput("Interests", "Robotics"))[1]["answer"] == [
        "RAG",
        "Robotics",
    ]


def test_other_answers_are_held_to_the_text_limit() -> None:
    # a longer one was stored by `bookings create`, and then its booking's backup did not restore (the import
    # takes TEXT_LIMIT characters of each answer)
    assert validate(AnswerInput("Role", "y" * 10_000))[1]["answer"] == "y" * 10_000
    assert (
        refusal(GOAL, AnswerInput("Role", "y" * 10_001)).message == "answer 'Role': 10,001 characters; at most 10,000"
    )
    other_part = refusal(GOAL, AnswerInput("Interests", ["RAG", "y" * 10_001]))
    assert other_part.message == "answer 'Interests': 10,001 characters; at most 10,000"


def test_multi_select_is_stored_as_a_list_from_repeats_or_a_list() -> None:
    repeated = validate(AnswerInput("Tools", "zapier"), AnswerInput("tools", "Python"), AnswerInput("Tools", "Zapier"))
    assert repeated[1] == {"question": "Tools", "answer": ["Zapier", "Python"], "position": 2}
    single = validate(AnswerInput("Tools", "Excel"))
    assert single[1]["answer"] == ["Excel"]
    from_list = validate(AnswerInput("Tools", ["Excel", "Python"]))
    assert from_list[1]["answer"] == ["Excel", "Python"]
    error = refusal(GOAL, AnswerInput("Tools", "Python"), AnswerInput("Tools", "Notion"))
    assert error.message == "answer 'Tools': 'Notion' is not one of: Python, Zapier, Excel"


def test_single_answer_questions_take_one_answer() -> None:
    error = refusal(GOAL, AnswerInput("Nickname", "a"), AnswerInput("nickname", "b"))
    assert "answered more than once" in error.message
    assert "more than once" in refusal(GOAL, AnswerInput("Company size", ["1-10", "51+"])).message


@pytest.mark.parametrize("number", ["+44 7700 900123", "+1 (415) 555-0100", "+4915112345678"])
def test_phone_numbers_in_e164_after_removing_spacing(number: str) -> None:
    assert validate(AnswerInput("Phone", number))[1]["answer"] == number


@pytest.mark.parametrize("number", ["07700 900123", "+0 123", "call me", "+1234567890123456", "+44 7700 900123 ext 2"])
def test_phone_numbers_that_are_not_e164_are_refused(number: str) -> None:
    assert "is not a phone number" in refusal(GOAL, AnswerInput("Phone", number)).message


def test_length_limits_for_string_and_text() -> None:
    assert validate(AnswerInput("Nickname", "x" * 255))[1]["answer"] == "x" * 255
    assert refusal(GOAL, AnswerInput("Nickname", "x" * 256)).message == "answer 'Nickname': 256 characters; at most 255"
    assert validate_answers(QUESTIONS, [AnswerInput("What do you want to build?", "y" * 10_000)])
    long_text = refusal(AnswerInput("What do you want to build?", "y" * 10_001))
    assert "10,001 characters; at most 10,000" in long_text.message


def test_every_problem_is_reported_at_once() -> None:
    error = refusal(AnswerInput("Company size", "huge"), AnswerInput("Phone", "nope"), AnswerInput("Ghost", "boo"))
    assert error.message == "answers: 4 problems"
    assert len(error.details) == 4
    assert any("required" in detail for detail in error.details)


def test_answer_option_splits_at_the_first_equals_sign() -> None:
    assert parse_answer_option("Formula=a=b") == AnswerInput("Formula", "a=b")
    assert parse_answer_option(" Goal =  ") == AnswerInput("Goal", "  ")
    for bad in ("no separator", "=answer only"):
        with pytest.raises(InvalidInput) as caught:
            parse_answer_option(bad)
        assert caught.value.message.startswith("answer: ")


def test_answers_document_as_object_or_calendly_list() -> None:
    assert parse_answers_document('{"Goal": "ship", "Tools": ["Python", "Excel"]}') == [
        AnswerInput("Goal", "ship"),
        AnswerInput("Tools", ["Python", "Excel"]),
    ]
    assert parse_answers_document('[{"question": "Goal", "answer": "ship", "position": 0}]') == [
        AnswerInput("Goal", "ship")
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "not valid JSON (line 1"),
        ('"a string"', "expected an object"),
        ('{"Goal": 3}', "key 'Goal': the answer must be a string or a list of strings"),
        ('[{"answer": "x"}]', "item 1 is not an object with a 'question' string"),
    ],
)
def test_bad_answers_documents_are_refused(text: str, expected: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_answers_document(text)
    assert caught.value.message.startswith("answers-file: ") and expected in caught.value.message


def test_calendly_answers_are_normalised_without_refusal() -> None:
    items = [
        {"question": "tools", "answer": "Python\nNotion", "position": 2},
        {"question": "Removed question", "answer": "kept", "position": 9},
        {"question": "Company size", "answer": "enormous", "position": 1},
    ]
    assert answers_from_calendly(items, QUESTIONS) == [
        {"question": "Company size", "answer": "enormous", "position": 1},
        {"question": "Tools", "answer": ["Python", "Notion"], "position": 2},
        {"question": "Removed question", "answer": "kept", "position": 9},
    ]
