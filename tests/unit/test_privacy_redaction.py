"""Redaction for `redact-then-spill`: placeholders out, originals back in the answer."""

from __future__ import annotations

import copy
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from spillgate.server.privacy import Vault, redact

EMAIL, PHONE, CARD = "jane.doe@corp.io", "+44 20 7946 0958", "4111 1111 1111 1111"
PEM = (
    "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk\n"
    "-----END EC PRIVATE KEY-----"
)


def chat(*contents: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": c} for c in contents]}


def test_redaction_replaces_each_value_with_a_stable_placeholder() -> None:
    payload = chat(
        f"Mail {EMAIL} or call {PHONE}.",
        [
            {"type": "text", "text": f"Again: {EMAIL}, and ann@corp.io"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        ],
    )
    original = copy.deepcopy(payload)
    redacted, vault = redact(payload)
    assert payload == original  # the caller's payload is never changed
    assert redacted["messages"][0]["content"] == "Mail <EMAIL_1> or call <PHONE_1>."
    parts = redacted["messages"][1]["content"]
    assert parts[0]["text"] == "Again: <EMAIL_1>, and <EMAIL_2>"
    assert parts[1] is payload["messages"][1]["content"][1]  # untouched, not copied
    assert vault.findings.counts == {"email": 3, "phone": 1}
    assert len(vault) == 3
    assert vault.restore_text(parts[0]["text"]) == f"Again: {EMAIL}, and ann@corp.io"


def test_a_request_without_findings_comes_back_as_it_was() -> None:
    payload = chat("What is the capital of France?")
    redacted, vault = redact(payload)
    assert redacted is payload and len(vault) == 0


def test_placeholder_text_the_user_wrote_is_never_reused() -> None:
    text = f"The template says <EMAIL_1>; fill in {EMAIL}."
    redacted, vault = redact(chat(text))
    assert redacted["messages"][0]["content"] == "The template says <EMAIL_1>; fill in <EMAIL_2>."
    answer = "I put <EMAIL_2> where <EMAIL_1> was."
    assert vault.restore_text(answer) == f"I put {EMAIL} where <EMAIL_1> was."


def test_tool_call_arguments_stay_valid_json_both_ways() -> None:
    arguments = orjson.dumps({"key": PEM, "to": EMAIL}).decode()
    payload = {
        "model": "m",
        "messages": [
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "c",
                        "type": "function",
                        "function": {"name": "f", "arguments": arguments},
                    }
                ],
            }
        ],
    }
    redacted, vault = redact(payload)
    sent = redacted["messages"][0]["tool_calls"][0]["function"]["arguments"]
    assert orjson.loads(sent) == {"key": "<PRIVATE_KEY_1>", "to": "<EMAIL_1>"}
    # The answer calls a tool with the placeholders: the originals go back JSON-escaped.
    body = completion(
        tool_calls=[
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "f", "arguments": '{"key": "<PRIVATE_KEY_1>"}'},
            }
        ]
    )
    restored = orjson.loads(vault.restore_json(body))
    ChatCompletion.model_validate(restored)
    call = restored["choices"][0]["message"]["tool_calls"][0]
    assert orjson.loads(call["function"]["arguments"]) == {"key": PEM}
    # In prose the same key reads with real newlines.
    assert vault.restore_text("key: <PRIVATE_KEY_1>") == f"key: {PEM}"


def completion(content: str | None = None, tool_calls: list[Any] | None = None) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return orjson.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
        }
    )


def test_restore_json_restores_content_and_leaves_the_rest() -> None:
    _, vault = redact(chat(f"{EMAIL} {CARD}"))
    body = completion("Sent to <EMAIL_1>, card <PAYMENT_CARD_1>, not <EMAIL_9> nor <b>.")
    restored = ChatCompletion.model_validate_json(vault.restore_json(body))
    assert (
        restored.choices[0].message.content
        == f"Sent to {EMAIL}, card {CARD}, not <EMAIL_9> nor <b>."
    )
    assert restored.usage is not None and restored.usage.total_tokens == 8
    plain = completion("Nothing to restore here.")
    assert vault.restore_json(plain) is plain
    assert vault.restore_json(b"not json <EMAIL_1>") == b"not json <EMAIL_1>"
    legacy = orjson.dumps({"choices": [{"index": 0, "text": "hi <EMAIL_1>"}]})
    assert orjson.loads(vault.restore_json(legacy))["choices"][0]["text"] == f"hi {EMAIL}"


# --- streaming ---------------------------------------------------------------------------


def chunk(delta: dict[str, Any], finish: str | None = None, index: int = 0) -> bytes:
    payload = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def content_stream(pieces: list[str]) -> bytes:
    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": p}) for p in pieces]
    events.append(chunk({}, finish="stop"))
    return b"".join(events) + b"data: [DONE]\n\n"


def read_stream(sse: bytes) -> tuple[str, dict[int, str], bool]:
    """What a client accumulates: content, tool-call arguments by index, and [DONE] seen."""
    content, arguments, done = "", {}, False
    for event in sse.split(b"\n\n"):
        if not event:
            continue
        assert event.startswith(b"data: "), event
        if event == b"data: [DONE]":
            done = True
            continue
        parsed = ChatCompletionChunk.model_validate_json(event[6:])
        for choice in parsed.choices:
            content += choice.delta.content or ""
            for call in choice.delta.tool_calls or []:
                if call.function and call.function.arguments:
                    arguments[call.index] = arguments.get(call.index, "") + call.function.arguments
    return content, arguments, done


def restore_stream(vault: Vault, sse: bytes, cuts: list[int]) -> bytes:
    restorer = vault.stream_restorer()
    out, last = b"", 0
    for cut in [*cuts, len(sse)]:
        out += restorer.feed(sse[last:cut])
        last = cut
    return out + restorer.finish()


def test_a_placeholder_split_at_every_character_is_restored() -> None:
    _, vault = redact(chat(f"{EMAIL} {PHONE}"))
    answer = "Write to <EMAIL_1> or ring <PHONE_1>, ok <EMAIL_1>"
    expected = f"Write to {EMAIL} or ring {PHONE}, ok {EMAIL}"
    for i in range(len(answer) + 1):
        for j in range(i, len(answer) + 1, 3):
            sse = content_stream([answer[:i], answer[i:j], answer[j:]])
            content, _, done = read_stream(restore_stream(vault, sse, []))
            assert (content, done) == (expected, True), (i, j)


def test_sse_bytes_split_at_every_byte_are_restored() -> None:
    _, vault = redact(chat("Grüße an jürgen@müller.de 😀"))
    answer = "Schreib an <EMAIL_1> 😀 \u2013 <EMAIL_1>!"
    sse = content_stream([answer[:14], answer[14:25], answer[25:]])
    for cut in range(len(sse) + 1):
        content, _, done = read_stream(restore_stream(vault, sse, [cut]))
        assert content == "Schreib an jürgen@müller.de 😀 \u2013 jürgen@müller.de!", cut
        assert done


def test_text_that_only_looked_like_a_placeholder_goes_out_unchanged() -> None:
    _, vault = redact(chat(EMAIL))
    for answer in ["a <EMAIL_1x> b", "a <EMA", "x < y and <EMAIL_", "<", "<<EMAIL_1>>"]:
        for i in range(len(answer) + 1):
            sse = content_stream([answer[:i], answer[i:]])
            content, _, _ = read_stream(restore_stream(vault, sse, []))
            assert content == answer.replace("<EMAIL_1>", EMAIL), (answer, i)


def test_held_text_is_flushed_when_the_stream_ends_without_a_finish() -> None:
    _, vault = redact(chat(EMAIL))
    sse = chunk({"role": "assistant", "content": "mail <EMAIL_"})
    restorer = vault.stream_restorer()
    first = restorer.feed(sse)
    assert read_stream(first)[0] == "mail "
    assert read_stream(first + restorer.finish())[0] == "mail <EMAIL_"


def test_tool_call_argument_deltas_are_restored() -> None:
    _, vault = redact(chat(f"{EMAIL} {PEM}"))
    arguments = '{"to": "<EMAIL_1>", "key": "<PRIVATE_KEY_1>"}'
    for i in range(len(arguments) + 1):
        events = [
            chunk(
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "send", "arguments": arguments[:i]},
                        }
                    ],
                }
            ),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[i:]}}]}),
            chunk({}, finish="tool_calls"),
        ]
        _, calls, _ = read_stream(restore_stream(vault, b"".join(events), []))
        assert orjson.loads(calls[0]) == {"to": EMAIL, "key": PEM}, i


def completion_chunk(text: str, finish: str | None = None) -> bytes:
    payload = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1,
        "model": "gpt-3.5-turbo-instruct",
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def test_completions_stream_text_is_restored() -> None:
    _, vault = redact({"model": "m", "prompt": f"Reply to {EMAIL}"})
    answer = "Dear <EMAIL_1>, thanks."
    for i in range(len(answer) + 1):
        sse = completion_chunk(answer[:i]) + completion_chunk(answer[i:], finish="stop")
        out = restore_stream(vault, sse + b"data: [DONE]\n\n", [])
        events = [orjson.loads(e[6:]) for e in out.split(b"\n\n") if e and e != b"data: [DONE]"]
        assert "".join(e["choices"][0]["text"] for e in events) == f"Dear {EMAIL}, thanks.", i
        assert all(e["object"] == "text_completion" for e in events)


def test_completions_text_held_to_the_end_goes_out_as_text() -> None:
    _, vault = redact({"model": "m", "prompt": EMAIL})
    restorer = vault.stream_restorer()
    out = restorer.feed(completion_chunk("mail <EMAIL_")) + restorer.finish()
    events = [orjson.loads(e[6:]) for e in out.split(b"\n\n") if e]
    assert "".join(e["choices"][0]["text"] for e in events) == "mail <EMAIL_"


def test_legacy_function_call_deltas_are_restored() -> None:
    _, vault = redact(chat(EMAIL))
    arguments = '{"to": "<EMAIL_1>"}'
    for i in range(len(arguments) + 1):
        events = [
            chunk(
                {"role": "assistant", "function_call": {"name": "send", "arguments": arguments[:i]}}
            ),
            chunk({"function_call": {"arguments": arguments[i:]}}),
            chunk({}, finish="function_call"),
        ]
        out = restore_stream(vault, b"".join(events), [])
        got = ""
        for event in out.split(b"\n\n"):
            if event:
                parsed = ChatCompletionChunk.model_validate_json(event[6:])
                function_call = parsed.choices[0].delta.function_call
                got += (function_call.arguments or "") if function_call else ""
        assert orjson.loads(got) == {"to": EMAIL}, i


def test_unicode_forms_are_redacted_where_they_were_written() -> None:
    """The redactor reads the folded text the egress check reads; the placeholder replaces
    the characters the client wrote, and the original comes back as written."""
    written = [
        "4111\u00a01111\u202f1111 1111",
        "\uff14\uff11\uff11\uff11 1111 1111 1111",
        "ja\u200bne.doe@corp.io",
        "jane.doe\uff20corp.io",
    ]
    for value in written:
        redacted, vault = redact(chat(f"see {value} now"))
        content = redacted["messages"][0]["content"]
        assert content in ("see <PAYMENT_CARD_1> now", "see <EMAIL_1> now"), (value, content)
        assert vault.restore_text(content) == f"see {value} now"


def test_json_in_a_string_is_redacted_in_what_it_decodes_to() -> None:
    arguments = '{"to": "m\\u00fcller@b\\u00fccher.de", "cc": ["ann@corp.io"]}'
    call = {"id": "c", "type": "function", "function": {"name": "send", "arguments": arguments}}
    payload = {
        "model": "m",
        "messages": [{"role": "assistant", "content": None, "tool_calls": [call]}],
    }
    redacted, vault = redact(payload)
    sent = redacted["messages"][0]["tool_calls"][0]["function"]["arguments"]
    assert orjson.loads(sent) == {"to": "<EMAIL_1>", "cc": ["<EMAIL_2>"]}
    assert orjson.loads(vault.restore_text(sent, json_context=True)) == {
        "to": "müller@bücher.de",
        "cc": ["ann@corp.io"],
    }


def test_an_unchanged_stream_passes_byte_for_byte() -> None:
    _, vault = redact(chat(EMAIL))
    sse = content_stream(["Nothing ", "to restore."]) + b": keep-alive\n\n"
    assert restore_stream(vault, sse, [7, 40]) == sse


# --- property: restore(redact(x)) == x ---------------------------------------------------

_PII = st.sampled_from(
    [
        *(EMAIL, PHONE, CARD, PEM, "DE89 3704 0044 0532 0130 00", "536-22-1234"),
        *("müller@bücher.de", "sk-proj-Ab3dEf6hIj9kLmN0pQrStUvWx", "AKIAIOSFODNN7EXAMPLE"),
        "<EMAIL_1>",  # placeholder-shaped text the user wrote
    ]
)
_PROSE = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_PII, _PROSE), max_size=10), st.sampled_from([" ", "", "\n"]))
def test_restore_of_redact_gives_back_the_text(pieces: list[str], glue: str) -> None:
    text = glue.join(pieces)
    redacted, vault = redact(chat(text))
    sent = redacted["messages"][0]["content"]
    assert vault.restore_text(sent) == text
    for value in (EMAIL, CARD, PEM, "536-22-1234"):
        if value in text and f" {value} " in f" {text} ":
            assert value not in sent
    sse = content_stream([sent[: len(sent) // 2], sent[len(sent) // 2 :]])
    assert read_stream(restore_stream(vault, sse, [len(sse) // 3]))[0] == text
