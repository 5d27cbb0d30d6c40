"""Render a Session as the model will see it: its tokenizer's chat template, or the plain fallback below.

With a tokenizer, turns become Hugging Face / OpenAI chat messages (assistant `tool_calls` as
`[{"id", "type": "function", "function": {"name", "arguments"}}]` with `arguments` a dict when it is a JSON object,
tool results as `{"role": "tool", "content", "tool_call_id", "name"}`) and go through
`tokenizer.apply_chat_template(messages, tools=session.tools, tokenize=False)`.

Templates that reject roles (Gemma: no `system` or `tool` role, strict user/assistant alternation) are retried once
with an adaptation, documented here so users know what the model saw:
  * the system text is folded into the first user turn (`system text + "\n\n" + user text`);
  * a tool result becomes a user turn `"[tool result: NAME]\n" + text` (consecutive ones are joined);
  * assistant tool calls become text lines `<tool_call>{"name": ..., "arguments": ...}</tool_call>`;
  * consecutive turns of the same role are joined with a blank line.
If the adapted messages still fail, RenderError carries both reasons.

A tokenizer without a chat template (e.g. the Gemma 3 270M GGUF, whose metadata lacks `tokenizer.chat_template`) gets
one from `attach_chat_template`: an explicit `--chat-template NAME|FILE`, else the bundled template of the family whose
turn markers are in its vocabulary (logminer/chat_templates.py). Without any template, and with no tokenizer at all,
sessions use the PLAIN FALLBACK TEMPLATE:

    <|tools|>                       only when the session has tool definitions
    {one JSON tool definition per line, keys sorted}
    <|system|>                      one block per turn, in order: <|ROLE|> line, then the body
    {text}
    <|user|>
    {text}
    <|assistant|>
    <think>{reasoning}</think>      only with include_reasoning=True and non-empty reasoning
    {text}
    <tool_call>{"name": NAME, "arguments": ARGS}</tool_call>   one line per call; ARGS as stored
    <|tool|> NAME                   the tool's name when known
    {result text}

Every block ends with a newline. Reasoning is dropped unless include_reasoning=True.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from logminer.schema import Session, ToolCall, Turn

ROLE_ERROR_HINTS = ("role", "alternate", "system", "tool", "conversation roles")
BYTES_PER_TOKEN = 4  # estimate used when no tokenizer is given


class RenderError(Exception):
    """A session that a chat template cannot render; the message says which and why, `detail` only why."""

    def __init__(self, message: str, detail: str | None = None):
        super().__init__(message)
        self.detail = detail or message


def load_tokenizer(path: str | os.PathLike, chat_template: str | None = None) -> Any:
    """Load a tokenizer from a folder, a tokenizer.json file or a GGUF file (heavy import kept inside), with a chat
    template attached when it has none (see attach_chat_template)."""
    tokenizer = _load_tokenizer_files(str(path))
    attach_chat_template(tokenizer, chat_template)
    return tokenizer


def _load_tokenizer_files(path: str) -> Any:
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if not os.path.exists(path):
        raise RenderError(f"{path}: no such tokenizer folder or file")
    try:
        if os.path.isdir(path):
            return AutoTokenizer.from_pretrained(path)
        folder, name = os.path.split(os.path.abspath(path))
        if name.endswith(".gguf"):
            return AutoTokenizer.from_pretrained(folder, gguf_file=name)
        if os.path.exists(os.path.join(folder, "tokenizer_config.json")):
            return AutoTokenizer.from_pretrained(folder)
        return PreTrainedTokenizerFast(tokenizer_file=path)
    except Exception as error:  # transformers raises many types for unreadable tokenizers
        raise RenderError(f"{path}: cannot load tokenizer: {error}") from error


def _arguments_value(call: ToolCall) -> Any:
    """Arguments as a dict when they are a JSON object (what HF templates expect), else the stored text."""
    if call.arguments_valid:
        try:
            value = json.loads(call.arguments)
        except json.JSONDecodeError:
            return call.arguments
        if isinstance(value, dict):
            return value
    return call.arguments


def _call_line(call: ToolCall) -> str:
    return f'<tool_call>{{"name": {json.dumps(call.name, ensure_ascii=False)}, "arguments": {call.arguments}}}</tool_call>'


def to_messages(session: Session, *, include_reasoning: bool = False) -> list[dict[str, Any]]:
    """The session as chat-template messages in the OpenAI / Hugging Face tool-call form."""
    messages: list[dict[str, Any]] = []
    for turn in session.turns:
        message: dict[str, Any] = {"role": turn.role, "content": turn.text}
        if turn.role == "assistant":
            if include_reasoning and turn.reasoning:
                message["reasoning_content"] = turn.reasoning
            if turn.tool_calls:
                message["tool_calls"] = [
                    {"id": c.id or f"call_{i}", "type": "function",
                     "function": {"name": c.name, "arguments": _arguments_value(c)}}
                    for i, c in enumerate(turn.tool_calls)
                ]
        elif turn.role == "tool":
            message["tool_call_id"] = turn.tool_call_id or ""
            message["name"] = turn.name or ""
        messages.append(message)
    return messages


def _calls_text(message: dict[str, Any]) -> str:
    """An assistant message's text with its tool calls appended as <tool_call> lines (the plain format's)."""
    calls = [ToolCall(c["function"]["name"], json.dumps(c["function"]["arguments"], ensure_ascii=False)
                      if not isinstance(c["function"]["arguments"], str) else c["function"]["arguments"])
             for c in message["tool_calls"]]
    text = message.get("content") or ""
    return "\n".join([text] * bool(text) + [_call_line(c) for c in calls])


def inline_tool_calls(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages whose assistant tool calls are part of their text, for templates that never render `tool_calls`."""
    return [{key: value for key, value in m.items() if key != "tool_calls"} | {"content": _calls_text(m)}
            if m["role"] == "assistant" and m.get("tool_calls") else m for m in messages]


def adapt_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages for templates with only user/assistant roles (see the module docstring for the rules)."""
    adapted: list[dict[str, Any]] = []
    system_parts: list[str] = []
    for message in messages:
        role, text = message["role"], message.get("content") or ""
        if role == "system":
            system_parts.append(text)
            continue
        if role == "tool":
            role, text = "user", f"[tool result: {message.get('name') or 'tool'}]\n{text}"
        elif role == "assistant" and message.get("tool_calls"):
            text = _calls_text(message)
        if role == "user" and system_parts:
            text = "\n\n".join(system_parts + [text])
            system_parts = []
        if adapted and adapted[-1]["role"] == role:
            adapted[-1]["content"] += "\n\n" + text
        else:
            adapted.append({"role": role, "content": text})
    if system_parts:  # a session with no user turn: the system text opens the conversation as the user
        adapted.insert(0, {"role": "user", "content": "\n\n".join(system_parts)})
    return adapted


def render_plain(session: Session, *, include_reasoning: bool = False) -> str:
    """The documented plain fallback template (module docstring)."""
    parts: list[str] = []
    if session.tools:
        parts.append("<|tools|>\n" + "\n".join(json.dumps(t, sort_keys=True, ensure_ascii=False)
                                              for t in session.tools) + "\n")
    for turn in session.turns:
        parts.append(_plain_turn(turn, include_reasoning))
    return "".join(parts)


def _plain_turn(turn: Turn, include_reasoning: bool) -> str:
    header = f"<|tool|> {turn.name}" if turn.role == "tool" and turn.name else f"<|{turn.role}|>"
    body: list[str] = []
    if include_reasoning and turn.reasoning:
        body.append(f"<think>{turn.reasoning}</think>")
    if turn.text:
        body.append(turn.text)
    body.extend(_call_line(c) for c in turn.tool_calls)
    return header + "\n" + "\n".join(body) + "\n"


def attach_chat_template(tokenizer: Any, chat_template: str | None = None) -> str | None:
    """Give a template-less tokenizer a template: `chat_template` (a bundled name or a Jinja file), else the bundled
    family whose turn markers its vocabulary holds (see chat_templates). Returns the name used, None if none."""
    from logminer.rendering.templates import TEMPLATES_BY_NAME, template_for_vocabulary

    if chat_template is not None:
        if chat_template in TEMPLATES_BY_NAME:
            tokenizer.chat_template = TEMPLATES_BY_NAME[chat_template]
            return chat_template
        try:
            with open(chat_template, encoding="utf-8") as handle:
                tokenizer.chat_template = handle.read()
        except OSError as error:
            known = ", ".join(sorted(TEMPLATES_BY_NAME))
            raise RenderError(f"{chat_template}: neither a bundled template ({known}) nor a readable file") from error
        return chat_template
    if has_chat_template(tokenizer):
        return None
    found = template_for_vocabulary(tokenizer)
    if found is None:
        return None
    tokenizer.chat_template = found[1]
    return found[0]


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render_session(session: Session, tokenizer: Any = None, *, include_reasoning: bool = False) -> str:
    """The text the model sees for this session: its chat template when it has one, else the plain fallback."""
    if tokenizer is None or not has_chat_template(tokenizer):
        return render_plain(session, include_reasoning=include_reasoning)
    messages = to_messages(session, include_reasoning=include_reasoning)
    if include_reasoning and "reasoning_content" not in str(tokenizer.chat_template):
        for message, turn in zip(messages, session.turns):
            if message.get("reasoning_content"):
                message["content"] = f"<think>{turn.reasoning}</think>\n{turn.text}"
    if "tool_calls" not in str(tokenizer.chat_template):  # a template that cannot show calls (bundled ones) would
        messages = inline_tool_calls(messages)  # drop them from the text the model is calibrated on
    tools = session.tools or None
    where = f"{session.source_file} session {session.session_id}"
    try:
        return _apply(tokenizer, messages, tools)
    except Exception as first:  # jinja TemplateError / raise_exception from the template
        if not any(hint in str(first).lower() for hint in ROLE_ERROR_HINTS):
            raise RenderError(f"{where}: {first}", str(first)) from first
        try:
            return _apply(tokenizer, adapt_messages(messages), tools)
        except Exception as second:
            detail = (f"template rejected the messages ({first}); "
                      f"after folding system/tool roles into user turns: {second}")
            raise RenderError(f"{where}: {detail}", detail) from second


def _apply(tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
    text = tokenizer.apply_chat_template(messages, tools=tools, tokenize=False)
    if not isinstance(text, str):
        raise RenderError(f"chat template returned {type(text).__name__}, not text")
    return text


def _backend(tokenizer: Any) -> Any:
    """The `tokenizers.Tokenizer` behind a transformers tokenizer (or the object itself)."""
    if hasattr(tokenizer, "encode_batch"):
        return tokenizer
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise RenderError(f"{type(tokenizer).__name__} has no `tokenizers` backend for batched counting")
    return backend


def count_tokens(texts: Sequence[str], tokenizer: Any = None) -> list[int]:
    """Token counts, batched through `tokenizers.Tokenizer.encode_batch` (no special tokens: the template has them).

    With no tokenizer, an estimate: ceil(UTF-8 bytes / 4), the usual rule of thumb for BPE vocabularies on English
    text and code (a regex word count runs at ~12 MB/s, too slow for the ingest target).
    """
    if tokenizer is None:
        return [(len(text.encode("utf-8")) + BYTES_PER_TOKEN - 1) // BYTES_PER_TOKEN for text in texts]
    encodings = _backend(tokenizer).encode_batch(list(texts), add_special_tokens=False)
    return [len(encoding.ids) for encoding in encodings]
