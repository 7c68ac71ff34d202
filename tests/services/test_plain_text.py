"""services.plain_text: the scan that clears a plain JSON body, and the cleaning of what it cannot clear."""

from __future__ import annotations

import json

import pytest

from bapp_cli.services.plain_text import (
    cleaned_message,
    json_may_hold_controls,
    json_with_controls_escaped,
    strip_controls,
)


@pytest.mark.parametrize(
    "body",
    [
        b'{"name": "a\\u001bb"}',  # ESC escaped
        b'{"name": "a\\u0000b"}',  # NUL
        b'{"name": "a\\u007Fb"}',  # DEL escaped, upper-case hex
        b'{"name": "a\\u009bb"}',  # C1 escaped
        b'{"name": "a\\ud800b"}',  # half a surrogate pair
        b'{"name": "a\x7fb"}',  # raw DEL
        '{"name": "a\x85b"}'.encode(),  # raw C1 (UTF-8 C2 85)
    ],
)
def test_every_form_of_a_control_character_in_json_text_is_found(body: bytes) -> None:
    assert json_may_hold_controls(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"name": "plain"}',
        b'{"name": "tab\\tline\\nreturn\\r, \\"quoted\\" \\/ \\u0009\\u000a\\u000d \\u00e9 \\u2028"}',
        '{"name": "caf\u00e9 \u00a0 \u00bf \U0001f680"}'.encode(),  # raw é, no-break space, ¿ (C2 A0, C2 BF), emoji
    ],
)
def test_plain_text_is_cleared_by_the_scan(body: bytes) -> None:
    assert not json_may_hold_controls(body)


def test_strip_controls_names_the_nearest_item_with_a_uri_and_keeps_tabs_and_line_breaks() -> None:
    document = json.loads(
        '{"collection": [{"uri": "u1", "name": "A\\u001b[1m", "custom_questions": [{"name": "Q\\u0000"}]},'
        ' {"uri": "u2", "name": "tab\\there\\nok", "scheduled_event": {"uri": "e3", "name": "E\\u0085"}}],'
        ' "pagination": {"next_page": "\\u0007"}}'
    )
    assert sorted(strip_controls(document)) == ["(text outside any item)", 'e3 "E"', 'u1 "A[1m"']
    assert document["collection"][0]["custom_questions"] == [{"name": "Q"}]
    assert document["collection"][1]["name"] == "tab\there\nok"
    assert strip_controls(document) == []  # clean now


def test_a_document_nested_as_deep_as_the_parser_allows_is_cleaned() -> None:
    document = json.loads("[" * 900 + '"x\\u001b"' + "]" * 900)
    assert strip_controls(document) == ["(text outside any item)"]


def test_the_warning_names_each_item_once_and_the_first_three() -> None:
    message = cleaned_message(["a", "b", "a", "c", "d", "e"])
    assert message.endswith("in 5 item(s): a, b, c and 2 more")


def test_raw_del_and_c1_in_json_text_become_escapes_of_the_same_document() -> None:
    text = '{"answer": "Bo\x85ld\x7f", "tab": "a\\tb"}'
    escaped = json_with_controls_escaped(text)
    assert escaped == '{"answer": "Bo\\u0085ld\\u007f", "tab": "a\\tb"}'
    assert json.loads(escaped) == json.loads(text)
