"""Clean a Session: pair tool calls with their results, drop what cannot be paired and empty turns, truncate.

Every change is counted in a `Counter` under one of the names in CHANGES, so the report can say what was done.
Pairing rules, in order:
  * a tool turn whose `tool_call_id` names an earlier, unanswered call answers that call;
  * a tool turn without an id answers the oldest unanswered call of the most recent assistant turn that made
    calls, by order; when that call has no id, both get the id `call_<turn>_<k>`;
  * a tool turn without an id when no call is waiting (aider's `> ` output, environment messages) is kept as a
    user turn starting "[tool output: NAME]" so that chat templates never see a result without a call;
  * any other tool turn answers nothing (unknown or already answered id): an orphan, dropped; a call that gets no
    result is dropped from its assistant turn (an assistant turn left with nothing in it is then an empty turn).
Broken tool-call JSON (arguments_valid False) is kept as text and the session carries the flag "broken_tool_json".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import replace

from logminer.schema import BROKEN_TOOL_JSON, Session, ToolCall, Turn

TRUNCATED = "truncated"
OUTPUT_MARKER = "[tool output: {name}]"
CHANGES = (
    "orphan_tool_result_dropped",
    "uncalled_tool_output_as_user",
    "unanswered_tool_call_dropped",
    "tool_result_paired_by_order",
    "empty_turn_dropped",
    "broken_tool_json_kept",
    "session_truncated",
    "turns_truncated",
)


def _is_empty(turn: Turn) -> bool:
    return not (turn.text.strip() or turn.reasoning.strip() or turn.tool_calls)


def pair_tool_calls(turns: list[Turn], counts: Counter[str]) -> list[Turn]:
    """Turns with every tool result linked to one earlier call; orphans and unanswered calls removed."""
    open_calls: dict[str, ToolCall] = {}  # id → call, unanswered so far
    recent: list[ToolCall] = []  # unanswered calls of the latest assistant turn with calls, in order
    answered: set[int] = set()  # id() of calls that got a result
    kept: list[Turn] = []
    for index, turn in enumerate(turns):
        if turn.role == "assistant" and turn.tool_calls:
            recent = list(turn.tool_calls)
            for call in turn.tool_calls:
                if call.id:
                    open_calls.setdefault(call.id, call)
        if turn.role != "tool":
            kept.append(turn)
            continue
        if turn.tool_call_id:
            call = open_calls.pop(turn.tool_call_id, None)
        else:
            call = next((c for c in recent if id(c) not in answered and (c.id is None or c.id in open_calls)), None)
            if call is not None:
                if call.id is None:
                    call.id = f"call_{index}_{recent.index(call)}"
                open_calls.pop(call.id, None)
                turn.tool_call_id = call.id
                counts["tool_result_paired_by_order"] += 1
        if call is None and not turn.tool_call_id and not any(id(c) not in answered for c in recent):
            # output with no call to answer (aider's `> ` lines, environment messages): kept as a user turn
            kept.append(Turn("user", f"{OUTPUT_MARKER.format(name=turn.name or 'tool')}\n{turn.text}",
                             timestamp=turn.timestamp))
            counts["uncalled_tool_output_as_user"] += 1
            continue
        if call is None:  # names a call that does not exist or was answered already
            counts["orphan_tool_result_dropped"] += 1
            continue
        answered.add(id(call))
        turn.name = turn.name or call.name
        kept.append(turn)
    for turn in kept:
        if turn.tool_calls:
            before = len(turn.tool_calls)
            turn.tool_calls = [c for c in turn.tool_calls if id(c) in answered]
            counts["unanswered_tool_call_dropped"] += before - len(turn.tool_calls)
    return kept


def clean_session(session: Session, counts: Counter[str] | None = None) -> Session:
    """Pair tool calls, drop empty turns, flag broken tool JSON; the session is changed in place and returned."""
    tally: Counter[str] = counts if counts is not None else Counter()
    turns = pair_tool_calls(session.turns, tally)
    kept = [t for t in turns if t.role == "tool" or not _is_empty(t)]
    tally["empty_turn_dropped"] += len(turns) - len(kept)
    session.turns = kept
    broken = sum(not c.arguments_valid for t in kept for c in t.tool_calls)
    if broken:
        tally["broken_tool_json_kept"] += broken
        if BROKEN_TOOL_JSON not in session.flags:
            session.flags.append(BROKEN_TOOL_JSON)
    return session


def boundaries(turns: list[Turn]) -> list[int]:
    """Prefix lengths n (1..len) at which every tool call in turns[:n] has its result in turns[:n]."""
    pending: set[str] = set()
    cuts: list[int] = []
    for index, turn in enumerate(turns):
        if turn.role == "tool" and turn.tool_call_id:
            pending.discard(turn.tool_call_id)
        pending.update(c.id or f"unpaired_{index}" for c in turn.tool_calls)
        if not pending:
            cuts.append(index + 1)
    return cuts


def truncate_to_tokens(
    session: Session, max_tokens: int, count_fn: Callable[[Session], int], counts: Counter[str] | None = None
) -> Session:
    """The longest prefix at a paired boundary whose rendered size (count_fn) is at most max_tokens.

    count_fn renders and counts a whole session (templates are not additive per turn), so the prefix is found by
    binary search over the boundaries: O(log turns) renders. No fitting prefix leaves the session with no turns.
    """
    tally: Counter[str] = counts if counts is not None else Counter()
    if count_fn(session) <= max_tokens:
        return session
    cuts = boundaries(session.turns)
    best, low, high = 0, 0, len(cuts) - 1
    while low <= high:
        middle = (low + high) // 2
        probe = _with_turns(session, session.turns[: cuts[middle]])
        if count_fn(probe) <= max_tokens:
            best, low = cuts[middle], middle + 1
        else:
            high = middle - 1
    tally["session_truncated"] += 1
    tally["turns_truncated"] += len(session.turns) - best
    session.turns = session.turns[:best]
    if TRUNCATED not in session.flags:
        session.flags.append(TRUNCATED)
    return session


def _with_turns(session: Session, turns: list[Turn]) -> Session:
    return replace(session, turns=turns)
