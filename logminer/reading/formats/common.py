"""Message mappings that several readers share: OpenAI chat messages, Anthropic content blocks, Responses API items.

Not a format (no NAME). JSON loading, record iteration, sniffing and stable ids live in `jsondoc`; this module turns
already-parsed messages into `Turn`s and `ToolCall`s.
"""

from __future__ import annotations

import json
from typing import Any

from logminer.reading.formats.jsondoc import loads
from logminer.schema import BROKEN_TOOL_JSON, ToolCall, Turn, canonical_arguments

NON_TEXT_DROPPED = "non_text_content_dropped"  # images, documents, audio: not calibration text
ROLE_ALIASES = {"developer": "system", "human": "user", "model": "assistant", "function": "tool"}


def normal_role(role: Any) -> str | None:
    """A schema role for a format's role name (developer → system, human → user, ...), or None when unknown."""
    if not isinstance(role, str):
        return None
    role = ROLE_ALIASES.get(role, role)
    return role if role in ("system", "user", "assistant", "tool") else None


def parts_text(content: Any, flags: set[str]) -> str:
    """Text of a string or of typed parts ({type: text|input_text|output_text, text|value}); other parts flagged."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = [content]
    texts = []
    for part in content if isinstance(content, list) else [content]:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict) and isinstance(part.get("text", part.get("value")), str):
            if part.get("type") in (None, "text", "input_text", "output_text", "refusal"):
                texts.append(part.get("text", part.get("value")))
        else:
            flags.add(NON_TEXT_DROPPED)
        if isinstance(part, dict) and part.get("type") in ("image", "image_url", "input_image", "input_file", "file"):
            flags.add(NON_TEXT_DROPPED)
    return "\n".join(texts)


def content_text(content: Any) -> str:
    """Message content as text: a string, or the text of a list of parts (images and unknown parts dropped).

    The lenient sibling of parts_text, for agent formats whose parts are not OpenAI-typed: any part with a string
    `text` counts, whatever its `type`; other scalars become their str(); nothing is flagged.
    """
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = [content]
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
        return "\n".join(texts)
    return str(content)


def make_tool_call(name: Any, arguments: Any, call_id: Any = None) -> ToolCall:
    """A ToolCall with canonical JSON arguments (broken JSON kept verbatim, marked invalid)."""
    text, valid = canonical_arguments(arguments if arguments is not None else {})
    return ToolCall(name=str(name or ""), arguments=text, id=str(call_id) if call_id else None, arguments_valid=valid)


def openai_tool_calls(raw_calls: Any) -> list[ToolCall]:
    """OpenAI `tool_calls` ([{id, type, function{name, arguments}}]) as ToolCalls."""
    calls = []
    for raw in raw_calls or []:
        if not isinstance(raw, dict):
            continue
        function = raw.get("function") if isinstance(raw.get("function"), dict) else raw
        calls.append(make_tool_call(function.get("name"), function.get("arguments"), raw.get("id")))
    return calls



def openai_message_turn(message: dict[str, Any], flags: set[str], timestamp: str | None = None) -> Turn | None:
    """One OpenAI / Hugging Face chat message as a Turn; None when the role is unknown.

    Handles string or typed-part content (parts `reasoning` → reasoning, `tool_call` → a tool call whose value is
    JSON `{name, arguments}`), `tool_calls` with arguments as JSON text or a dict, legacy `function_call`,
    `reasoning_content` / `reasoning` / `thinking` fields, and `tool_call_id` / `name` on tool messages.
    """
    role = normal_role(message.get("role"))
    if role is None:
        return None
    content = message.get("content")
    reasoning = [message[key] for key in ("reasoning_content", "reasoning", "thinking") if isinstance(message.get(key), str)]
    calls = openai_tool_calls(message.get("tool_calls"))
    if isinstance(message.get("function_call"), dict):
        calls += openai_tool_calls([message["function_call"]])
    if isinstance(content, list):
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind in ("reasoning", "thinking"):
                reasoning.append(str(part.get("value", part.get("text", part.get("thinking", "")))))
            elif kind == "tool_call":
                calls.append(_typed_part_call(part))
        content = [p for p in content if not (isinstance(p, dict) and p.get("type") in ("reasoning", "thinking", "tool_call"))]
    turn = Turn(role=role, text=parts_text(content, flags), reasoning="\n\n".join(r for r in reasoning if r),
                tool_calls=calls if role == "assistant" else [], timestamp=timestamp)
    if role == "tool":
        turn.tool_call_id = _optional_str(message.get("tool_call_id"))
        turn.name = _optional_str(message.get("name"))
    _flag_calls(turn, flags)
    return turn


def _typed_part_call(part: dict[str, Any]) -> ToolCall:
    """A typed `tool_call` part: value is JSON `{name, arguments}` (text or object)."""
    value = part.get("value", part.get("tool_call"))
    if isinstance(value, str):
        try:
            value = loads(value)
        except ValueError:
            return make_tool_call("", value)
    if not isinstance(value, dict):
        return make_tool_call("", json.dumps(value))
    return make_tool_call(value.get("name"), value.get("arguments", value.get("parameters")), value.get("id"))


def _optional_str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _flag_calls(turn: Turn, flags: set[str]) -> None:
    if any(not call.arguments_valid for call in turn.tool_calls):
        flags.add(BROKEN_TOOL_JSON)


def link_tool_results(turns: list[Turn]) -> None:
    """Give id-less calls ids and id-less tool turns the id of the next unanswered call, by position.

    For formats without call ids (ShareGPT, typed-part datasets): results follow their calls in order. Generated
    ids are `call_<n>`, numbered through the session, so they are deterministic.
    """
    counter = 0
    open_calls: list[ToolCall] = []
    for turn in turns:
        if turn.role == "assistant" and turn.tool_calls:
            for call in turn.tool_calls:
                if call.id is None:
                    counter += 1
                    call.id = f"call_{counter}"
            open_calls = list(turn.tool_calls)
        elif turn.role == "tool":
            if turn.tool_call_id is None and open_calls:
                call = open_calls.pop(0)
                turn.tool_call_id = call.id
                turn.name = turn.name or call.name
            elif turn.tool_call_id is not None:
                match = next((c for c in open_calls if c.id == turn.tool_call_id), None)
                if match is not None:
                    open_calls.remove(match)
                    turn.name = turn.name or match.name


def anthropic_turns(role: str, content: Any, flags: set[str], tool_names: dict[str, str],
                    timestamp: str | None = None) -> list[Turn]:
    """An Anthropic message as Turns: assistant blocks merge into one turn; `tool_result` blocks become tool turns.

    `thinking` → reasoning; `redacted_thinking` (opaque) is dropped; `tool_use` / `server_tool_use` → tool calls
    (ids recorded in `tool_names` so results can name their tool); text between tool results stays a user turn.
    """
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
    if not isinstance(blocks, list):
        blocks = []
    if role == "assistant":
        return [_assistant_turn(blocks, flags, tool_names, timestamp)]
    turns: list[Turn] = []
    texts: list[str] = []
    for block in blocks:
        if isinstance(block, dict) and block.get("type") == "tool_result":
            if texts:
                turns.append(Turn(role=role, text="\n\n".join(texts), timestamp=timestamp))
                texts = []
            turns.append(_tool_result_turn(block, flags, tool_names, timestamp))
        elif isinstance(block, dict) and block.get("type") == "text":
            texts.append(str(block.get("text") or ""))
        elif isinstance(block, str):
            texts.append(block)
        else:
            flags.add(NON_TEXT_DROPPED)
    if texts or not turns:
        turns.append(Turn(role=role, text="\n\n".join(texts), timestamp=timestamp))
    return turns


def _assistant_turn(blocks: list[Any], flags: set[str], tool_names: dict[str, str], timestamp: str | None) -> Turn:
    turn = Turn(role="assistant", timestamp=timestamp)
    texts, thoughts = [], []
    for block in blocks:
        kind = block.get("type") if isinstance(block, dict) else "text" if isinstance(block, str) else None
        if kind == "text":
            texts.append(block if isinstance(block, str) else str(block.get("text") or ""))
        elif kind == "thinking":
            thoughts.append(str(block.get("thinking") or ""))
        elif kind in ("tool_use", "server_tool_use"):
            call = make_tool_call(block.get("name"), block.get("input"), block.get("id"))
            turn.tool_calls.append(call)
            if call.id:
                tool_names[call.id] = call.name
        elif kind != "redacted_thinking":
            flags.add(NON_TEXT_DROPPED)
    turn.text = "\n\n".join(t for t in texts if t)
    turn.reasoning = "\n\n".join(t for t in thoughts if t)
    _flag_calls(turn, flags)
    return turn


def _tool_result_turn(block: dict[str, Any], flags: set[str], tool_names: dict[str, str], timestamp: str | None) -> Turn:
    call_id = _optional_str(block.get("tool_use_id"))
    return Turn(role="tool", text=parts_text(block.get("content"), flags), tool_call_id=call_id,
                name=tool_names.get(call_id or ""), is_error=bool(block.get("is_error")), timestamp=timestamp)


def session_flags(turns: list[Turn], flags: set[str]) -> list[str]:
    """The sorted session flags: those collected while mapping plus broken tool JSON found in the turns."""
    if any(not call.arguments_valid for turn in turns for call in turn.tool_calls):
        flags.add(BROKEN_TOOL_JSON)
    return sorted(flags)


def tool_definitions(tools: Any) -> list[dict[str, Any]]:
    """Tool definitions as OpenAI-style `{type: function, function: {name, description, parameters}}` dicts.

    Accepts a JSON string (ShareGPT, some datasets), nested OpenAI definitions (kept as they are), and flat ones
    (`{name, description, parameters}` of ShareGPT / the Responses API, or Anthropic's `input_schema`).
    """
    if isinstance(tools, str):
        try:
            tools = loads(tools)
        except ValueError:
            return []
    if isinstance(tools, dict):
        tools = [tools]
    definitions = []
    for tool in tools if isinstance(tools, list) else []:
        if isinstance(tool, dict) and isinstance(tool.get("function"), dict):
            definitions.append(tool)
        elif isinstance(tool, dict) and isinstance(tool.get("name"), str):
            parameters = tool.get("parameters", tool.get("input_schema", {}))
            function = {"name": tool["name"], "description": tool.get("description", ""), "parameters": parameters}
            definitions.append({"type": "function", "function": function})
    return definitions


class ResponsesTurns:
    """Builds Turns from OpenAI Responses API items, one item at a time (Codex feeds its rollout lines through it).

    `message` → a turn (developer → system); `function_call` / `custom_tool_call` / `local_shell_call` /
    `web_search_call` → tool calls on the current assistant turn; `*_output` items → tool turns; `reasoning` summary
    and content text → reasoning of the next assistant turn. `encrypted_content` is opaque and never read.
    """

    CALL_ITEMS = ("function_call", "custom_tool_call", "local_shell_call", "web_search_call", "tool_search_call")
    OUTPUT_ITEMS = ("function_call_output", "custom_tool_call_output", "local_shell_call_output",
                    "tool_search_output")
    IGNORED_ITEMS = ("compaction", "compaction_summary", "item_reference", "ghost_snapshot")

    def __init__(self) -> None:
        self.turns: list[Turn] = []
        self.flags: set[str] = set()
        self.tool_names: dict[str, str] = {}
        self._reasoning: list[str] = []

    def add(self, item: Any, timestamp: str | None = None) -> str | None:
        """Map one item; returns None when it was used or ignored by design, else why it is not understood."""
        if not isinstance(item, dict):
            return "item is not a JSON object"
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            return self._message(item, timestamp)
        if kind == "reasoning":
            self._reasoning += [str(p.get("text", "")) for key in ("summary", "content")
                                for p in item.get(key) or [] if isinstance(p, dict) and p.get("text")]
            return None
        if kind in self.CALL_ITEMS:
            self._assistant(timestamp, new=False).tool_calls.append(self._call(kind, item))
            _flag_calls(self.turns[-1], self.flags)
            return None
        if kind in self.OUTPUT_ITEMS:
            call_id = _optional_str(item.get("call_id"))
            self.turns.append(Turn(role="tool", text=_output_text(item.get("output"), self.flags),
                                   tool_call_id=call_id, name=self.tool_names.get(call_id or ""), timestamp=timestamp))
            return None
        if kind in self.IGNORED_ITEMS:
            return None
        return f"unknown Responses item type {kind!r}"

    def _message(self, item: dict[str, Any], timestamp: str | None) -> str | None:
        role = normal_role(item.get("role"))
        if role is None:
            return f"unknown message role {item.get('role')!r}"
        text = parts_text(item.get("content"), self.flags)
        if role == "assistant":
            turn = self._assistant(timestamp, new=True)
            turn.text = f"{turn.text}\n\n{text}" if turn.text else text
        else:
            self.turns.append(Turn(role=role, text=text, timestamp=timestamp))
        return None

    def _assistant(self, timestamp: str | None, *, new: bool) -> Turn:
        """The assistant turn to add to: the last one while it has no tool calls (text) or no later turn (calls)."""
        last = self.turns[-1] if self.turns else None
        if last is None or last.role != "assistant" or (new and last.tool_calls):
            last = Turn(role="assistant", timestamp=timestamp)
            self.turns.append(last)
        if self._reasoning:
            last.reasoning = "\n\n".join(([last.reasoning] if last.reasoning else []) + self._reasoning)
            self._reasoning = []
        return last

    def _call(self, kind: str, item: dict[str, Any]) -> ToolCall:
        call_id = item.get("call_id", item.get("id"))
        if kind == "custom_tool_call":  # free-form input (e.g. a patch): wrapped so templates get an object
            call = make_tool_call(item.get("name"), {"input": item.get("input", "")}, call_id)
        elif kind == "local_shell_call":
            call = make_tool_call("local_shell", item.get("action") or {}, call_id)
        elif kind in ("web_search_call", "tool_search_call"):
            call = make_tool_call(kind.removesuffix("_call"), item.get("action") or item.get("arguments") or {}, call_id)
        else:
            call = make_tool_call(item.get("name"), item.get("arguments"), call_id)
        if call.id:
            self.tool_names[call.id] = call.name
        return call


def _output_text(output: Any, flags: set[str]) -> str:
    """A tool output: a string, typed parts, or Codex's older {content, success} / {output, metadata} objects."""
    if isinstance(output, dict):
        for key in ("content", "output", "text"):
            if isinstance(output.get(key), str):
                return output[key]
        return json.dumps(output, sort_keys=True, ensure_ascii=False)
    return parts_text(output, flags)
