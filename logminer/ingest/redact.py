"""Secrets and personal data → typed placeholders, in every text field of a Session, counted per kind.

Key shapes follow the public gitleaks rule set (facts only: provider prefixes and lengths). Only key-shaped text is
touched: UUIDs, git SHAs (40/64 hex), `sha256:` / `sha512-` digests, lockfile integrity hashes and other base64 blobs
have no provider prefix and no secret-named assignment in front of them, so they survive.

Written by hand because no maintained Python library covers these provider shapes plus e-mail and home-folder
anonymisation with counts (detect-secrets lacks Anthropic and Hugging Face, and only reports, never rewrites).
Speed: every rule has trigger substrings (its literal prefixes); one Aho-Corasick pass (polars `str.extract_many`)
finds which triggers a batch of texts contains, and only those texts run only those rules' regexes, each of which
starts with a literal so `re` scans at memchr speed.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import polars as pl

from logminer.schema import Session

# placeholders: values never re-match a rule (no `=`/`:` after them, `<` is excluded from secret values)
EMAIL = "<EMAIL>"
HOME = "<HOME>"


def secret(kind: str) -> str:
    return f"<SECRET:{kind}>"


TOKEN_END = r"(?![A-Za-z0-9_-])"
SECRET_VALUE = r"(?![$<{*%(\[])[^\s\"'`,;<>]{6,}"
WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
EMAIL_LOCAL_CHARS = WORD_CHARS | frozenset(".%+-")


@dataclass(frozen=True)
class Rule:
    """One secret shape: a pattern that starts with a literal (so `re` scans at memchr speed), the substrings of
    which one must be present for it to run, and how the match is replaced."""

    kind: str
    pattern: re.Pattern[str]
    triggers: tuple[str, ...]
    keep: str | None = None  # named group kept verbatim in front of the placeholder
    word_start: bool = False  # the match must not continue a word on its left (checked in Python, see above)
    placeholder: str | None = None  # default: <SECRET:kind>
    not_after: str = ""  # characters that must not directly precede the match (`<` of an earlier placeholder)
    drive_letter: bool = False  # a Windows path: the one letter before the match is replaced with it


def _rule(kind: str, pattern: str, triggers: tuple[str, ...], **options: Any) -> Rule:
    return Rule(kind, re.compile(pattern), triggers, **options)


# Order matters: private keys and provider prefixes first, then context rules (bearer, URL, assignments), whose
# values refuse to start with `<`, so an earlier placeholder is never counted twice.
RULES: tuple[Rule, ...] = (
    _rule("private_key", r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
          r"(?:-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|\Z)", ("PRIVATE KEY",)),
    _rule("aws_access_key", r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA)[A-Z2-7]{16}\b",
          ("A3T", "AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA"), word_start=True),
    _rule("anthropic_key", rf"sk-ant-[A-Za-z0-9_-]{{20,}}{TOKEN_END}", ("sk-ant-",), word_start=True),
    _rule("openai_key", rf"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{{20,}}{TOKEN_END}", ("sk-",), word_start=True),
    _rule("github_token", r"gh[pousr]_[A-Za-z0-9]{36,}\b", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), word_start=True),
    _rule("github_token", r"github_pat_[A-Za-z0-9_]{22,}\b", ("github_pat_",), word_start=True),
    *(_rule("hf_token", rf"{prefix}[A-Za-z0-9]{{30,}}\b", (prefix,), word_start=True) for prefix in ("hf_", "api_org_")),
    _rule("slack_token", r"xox[abposr]-[A-Za-z0-9-]{10,}|xapp-[0-9]-[A-Za-z0-9-]{10,}", ("xox", "xapp-"),
          word_start=True),
    _rule("google_api_key", rf"AIza[0-9A-Za-z_-]{{35}}{TOKEN_END}", ("AIza",), word_start=True),
    _rule("jwt", r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}={0,2}", ("eyJ",), word_start=True),
    *(_rule("bearer_token", rf"(?P<head>{word}\s+)(?!<)[A-Za-z0-9._~+/-]{{12,}}=*", (word,), keep="head")
      for word in ("earer", "EARER")),
    _rule("bearer_token", r"(?P<head>uthorization[\"']?\s*[:=]\s*[\"']?(?:(?:[Tt]oken|[Bb]asic)\s+)?)"
          r"(?!<)[A-Za-z0-9._~+/-]{12,}=*", ("uthorization",), keep="head"),
    _rule("password", r"(?P<head>://[^:/@\s\"'<>]+:)(?!<)[^@/\s\"'<>]+(?=@)", ("://",), keep="head"),
    _rule("url_token", r"(?P<head>://)(?!<)[A-Za-z0-9_-]{20,}(?=@)", ("://",), keep="head"),
    *(_rule("env_secret", rf"(?P<head>{word}[A-Z0-9_]*[\"']?\s*[=:]\s*[\"']?){SECRET_VALUE}", (word,),
            keep="head", not_after="<:") for word in ("KEY", "TOKEN", "SECRET", "PASSW", "CREDENTIAL")),
    *(_rule("password_assignment", rf"(?P<head>{name}[\"']?\s*[=:]\s*[\"']){SECRET_VALUE}", (trigger,), keep="head")
      for name, trigger in (("passw(?:or)?d", "passw"), ("api[_-]?key", "api"), ("access[_-]?token", "access"),
                            ("auth[_-]?token", "auth"), ("refresh[_-]?token", "refresh"),
                            ("secret[_-]?key", "secret"), ("client[_-]?secret", "client"))),
    _rule("home_path", r"/(?:home|Users)/(?!<)[^/\s\"'<>:\\]+", ("/home/", "/Users/"), placeholder=HOME,
          word_start=True, not_after=".-"),  # not a URL path such as example.com/home/index.html
    _rule("home_path", r":\\{1,2}Users\\{1,2}[^\\/\s\"'<>:]+", ("Users\\",), placeholder=HOME, drive_letter=True),
    _rule("home_folder_name", r"-(?:Users|home)-[A-Za-z0-9._]+", ("-Users-", "-home-"), word_start=True,
          placeholder="-" + HOME),
)
# `@domain` is found by a literal-prefixed pattern; the local part is walked leftwards in Python (a pattern that
# starts with a character class is ~20x slower in `re`).
EMAIL_DOMAIN = re.compile(r"@[A-Za-z][A-Za-z0-9-]*(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
NOT_EMAIL_LOCAL = ("git",)  # git@host:org/repo remotes are not personal
TRIGGERS = tuple(sorted({t for rule in RULES for t in rule.triggers} | {"@"}))
SMALL_TEXT = 2048  # shorter texts are gated in Python; longer ones (and batches) by polars' Aho-Corasick search


def _apply(rule: Rule, text: str, counts: Counter[str]) -> str:
    pieces: list[str] = []
    last = 0
    for match in rule.pattern.finditer(text):
        start = match.start()
        before = text[start - 1] if start > last else ""
        if before and ((rule.word_start and before in WORD_CHARS) or before in rule.not_after):
            continue
        if rule.drive_letter:
            if not before.isalpha():
                continue
            start -= 1
        counts[rule.kind] += 1
        head = match.group(rule.keep) if rule.keep else ""
        pieces += [text[last:start], head, rule.placeholder or secret(rule.kind)]
        last = match.end()
    return "".join(pieces) + text[last:] if pieces else text


def _redact_emails(text: str, counts: Counter[str]) -> str:
    pieces: list[str] = []
    last = 0
    for match in EMAIL_DOMAIN.finditer(text):
        at = lo = match.start()
        while lo > last and text[lo - 1] in EMAIL_LOCAL_CHARS:
            lo -= 1
        if lo == at or text[lo:at] in NOT_EMAIL_LOCAL:
            continue
        pieces += [text[last:lo], EMAIL]
        last = match.end()
        counts["email"] += 1
    return "".join(pieces) + text[last:] if pieces else text


def trigger_hits(texts: list[str]) -> list[set[str] | None]:
    """For each text, the trigger substrings it contains (None: none), found in one Aho-Corasick pass over all of
    them by polars (`str.extract_many`, Rust); ~10x faster than one `in` test per trigger in Python."""
    found = pl.Series(texts, dtype=pl.Utf8).str.extract_many(list(TRIGGERS), overlapping=True).to_list()
    return [set(hits) if hits else None for hits in found]


def _small_hits(text: str) -> set[str] | None:
    hits = {trigger for trigger in TRIGGERS if trigger in text}
    return hits or None


def _redact_found(text: str, found: set[str], counts: Counter[str]) -> str:
    """Run only the rules whose triggers occur in the original text (placeholders never trigger a later rule)."""
    for rule in RULES:
        if not found.isdisjoint(rule.triggers):
            text = _apply(rule, text, counts)
    if "@" in found:
        text = _redact_emails(text, counts)
    return text


def redact_text(text: str, counts: Counter[str] | None = None) -> str:
    """`text` with every secret and personal datum replaced; `counts` (if given) gains one per replacement."""
    if not text:
        return text
    found = _small_hits(text) if len(text) <= SMALL_TEXT else trigger_hits([text])[0]
    if found is None:
        return text
    return _redact_found(text, found, counts if counts is not None else Counter())


def redact_texts(texts: list[str], counts: Counter[str] | None = None) -> list[str]:
    """redact_text for many texts at once: one trigger search over all of them, regexes only where needed."""
    tally: Counter[str] = counts if counts is not None else Counter()
    hits = trigger_hits(texts) if texts else []
    return [text if found is None else _redact_found(text, found, tally) for text, found in zip(texts, hits)]


def redact_value(value: Any, counts: Counter[str]) -> Any:
    """Strings inside JSON-like values (dict keys included), structure kept."""
    if isinstance(value, str):
        return redact_text(value, counts)
    if isinstance(value, list):
        return [redact_value(item, counts) for item in value]
    if isinstance(value, dict):
        return {redact_text(str(k), counts): redact_value(v, counts) for k, v in value.items()}
    return value


def redact_arguments(arguments: str, valid: bool, counts: Counter[str]) -> str:
    """Tool-call arguments: valid JSON is redacted inside its string values and stays valid canonical JSON."""
    if not valid:
        return redact_text(arguments, counts)
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError:
        return redact_text(arguments, counts)
    return json.dumps(redact_value(value, counts), sort_keys=True, ensure_ascii=False)


def redact_session(session: Session, counts: Counter[str] | None = None) -> Session:
    """Redact every text field of `session` in place (turns, reasoning, tool calls, tools, metadata, paths, ids).

    All turn texts, reasoning and tool-call arguments go through one batched trigger search; tool-call arguments
    with a hit are redacted inside their JSON string values so they stay valid JSON.
    """
    tally: Counter[str] = counts if counts is not None else Counter()
    calls = [call for turn in session.turns for call in turn.tool_calls]
    texts = [t.text for t in session.turns] + [t.reasoning for t in session.turns] + [c.arguments for c in calls]
    hits = trigger_hits(texts) if sum(map(len, texts)) > SMALL_TEXT else [_small_hits(t) for t in texts]
    count = len(session.turns)
    for index, turn in enumerate(session.turns):
        if hits[index] is not None:
            turn.text = _redact_found(turn.text, hits[index], tally)
        if hits[count + index] is not None:
            turn.reasoning = _redact_found(turn.reasoning, hits[count + index], tally)
        if turn.name:
            turn.name = redact_text(turn.name, tally)
    for call, found in zip(calls, hits[2 * count:]):
        call.name = redact_text(call.name, tally)
        if found is not None:
            call.arguments = redact_arguments(call.arguments, call.arguments_valid, tally)
    session.source_file = redact_text(session.source_file, tally)
    session.session_id = redact_text(session.session_id, tally)
    if session.parent_session_id:
        session.parent_session_id = redact_text(session.parent_session_id, tally)
    if session.model:
        session.model = redact_text(session.model, tally)
    session.tools = redact_value(session.tools, tally)
    session.metadata = redact_value(session.metadata, tally)
    return session
