"""Quality score in [0, 1] with reasons and metrics, and OpenAI-style tool schemas inferred from observed calls.

THE SCORE (documented here because users filter on it with --min-score):
  0 when the session has no user turn or no assistant turn (nothing to calibrate a chat model on); otherwise the
  mean of four components, times 0.8 when some tool-call arguments are broken JSON:
    turns       min(1, turns / 4)                       short exchanges say little about agent use
    tools       1 - error_rate / 2  with tool calls;    agent sessions with mostly failing tools are weaker
                0.7 without tool calls
    length      min(1, tokens / 256)                    tiny sessions are mostly boilerplate
    variety     distinct turn texts / turns             loops that repeat one message are low quality
  Every component below 1 adds a reason string, so a low score always says why.
METRICS: turns, tool_calls, tool_errors, tool_error_rate, tokens (rendered), chars, code_share (share of non-empty
  lines that look like code, a line heuristic below), non_latin_share (letters outside the Latin script among those
  and the ASCII letters, a cheap language signal).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from logminer.schema import BROKEN_TOOL_JSON, Session

CODE_LINE = re.compile(
    r"^(?:[ \t]{4,}\S|\s*(?:def |class |import |from \S+ import|return\b|if \(|for \(|#include|function |const |let "
    r"|var |public |private |fn |\$ |>>> |@@ |[-+]{3} )|.*[;{}]\s*$)",
    re.MULTILINE,
)
NON_EMPTY_LINE = re.compile(r"\S.*", re.MULTILINE)
NON_LATIN_LETTER = re.compile(r"[^\x00-\u024f\W\d_]")
ASCII_LETTERS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SAMPLE_CHARS = 65_536  # language/code shares are estimated on at most this many characters per session


@dataclass
class Score:
    """A session's score, the reasons it is below 1, and the metrics it was computed from."""

    value: float
    reasons: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)


def session_metrics(session: Session, tokens: int) -> dict[str, Any]:
    """Counts and shares that the score and the report use."""
    calls = sum(len(t.tool_calls) for t in session.turns)
    results = [t for t in session.turns if t.role == "tool"]
    errors = sum(t.is_error for t in results)
    text = "\n".join(t.text for t in session.turns)[:SAMPLE_CHARS]
    lines = len(NON_EMPTY_LINE.findall(text))
    return {
        "turns": len(session.turns),
        "tool_calls": calls,
        "tool_errors": errors,
        "tool_error_rate": errors / len(results) if results else 0.0,
        "tokens": tokens,
        "chars": sum(len(t.text) + len(t.reasoning) for t in session.turns),
        "code_share": len(CODE_LINE.findall(text)) / lines if lines else 0.0,
        "non_latin_share": non_latin_share(text),
    }


def non_latin_share(text: str) -> float:
    """Letters outside the Latin script / (those + ASCII letters); ASCII letters are counted with bytes.translate
    because a per-letter regex runs at ~11 MB/s."""
    if text.isascii():
        return 0.0
    non_latin = len(NON_LATIN_LETTER.findall(text))
    data = text.encode("utf-8")
    ascii_letters = len(data) - len(data.translate(None, ASCII_LETTERS))
    return non_latin / (non_latin + ascii_letters) if non_latin + ascii_letters else 0.0


def score_session(session: Session, tokens: int) -> Score:
    """The documented score (module docstring) of a cleaned session whose rendering has `tokens` tokens."""
    metrics = session_metrics(session, tokens)
    roles = {t.role for t in session.turns}
    reasons = [f"no {role} turn" for role in ("user", "assistant") if role not in roles]
    if reasons:
        return Score(0.0, reasons, metrics)
    turns = metrics["turns"]
    components = {
        "turns": min(1.0, turns / 4),
        "tools": 1 - metrics["tool_error_rate"] / 2 if metrics["tool_calls"] else 0.7,
        "length": min(1.0, tokens / 256),
        "variety": len({t.text for t in session.turns}) / turns,
    }
    explanations = {
        "turns": f"only {turns} turns",
        "tools": (f"tool error rate {metrics['tool_error_rate']:.2f}" if metrics["tool_calls"] else "no tool calls"),
        "length": f"only {tokens} tokens",
        "variety": "repeated turn texts",
    }
    reasons = [explanations[name] for name, value in components.items() if value < 1]
    value = sum(components.values()) / len(components)
    if BROKEN_TOOL_JSON in session.flags:
        value *= 0.8
        reasons.append("broken tool-call JSON")
    return Score(round(value, 6), reasons, metrics)


JSON_TYPES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"), (list, "array"),
              (dict, "object"), (type(None), "null"))


def json_type(value: Any) -> str:
    return next(name for kind, name in JSON_TYPES if isinstance(value, kind))


def _schema_of(values: list[Any]) -> dict[str, Any]:
    """A JSON schema that every value in `values` satisfies (types merged; arrays and objects recursed)."""
    types = sorted({json_type(v) for v in values})
    if types == ["integer", "number"]:
        types = ["number"]
    schema: dict[str, Any] = {"type": types[0] if len(types) == 1 else types}
    items = [item for v in values if isinstance(v, list) for item in v]
    if "array" in types and items:
        schema["items"] = _schema_of(items)
    objects = [v for v in values if isinstance(v, dict)]
    if "object" in types and objects:
        schema.update(_object_schema(objects))
    return schema


def _object_schema(objects: list[dict[str, Any]]) -> dict[str, Any]:
    keys = sorted({key for obj in objects for key in obj})
    return {
        "properties": {key: _schema_of([obj[key] for obj in objects if key in obj]) for key in keys},
        "required": [key for key in keys if all(key in obj for obj in objects)],
    }


def infer_tools(session: Session) -> list[dict[str, Any]]:
    """OpenAI-style tool definitions for every tool called in the session, from its calls' argument values."""
    observed: dict[str, list[dict[str, Any]]] = {}
    for turn in session.turns:
        for call in turn.tool_calls:
            arguments: Any = None
            if call.arguments_valid:
                try:
                    arguments = json.loads(call.arguments)
                except json.JSONDecodeError:
                    arguments = None
            observed.setdefault(call.name, [])
            if isinstance(arguments, dict):
                observed[call.name].append(arguments)
    return [
        {"type": "function", "function": {
            "name": name, "description": "",
            "parameters": {"type": "object", **(_object_schema(objects) if objects else {"properties": {}})},
        }}
        for name, objects in sorted(observed.items())
    ]
