"""Our own secret and personal-data rules: only what kingfisher's maintained rule set misses, measured on the
planted corpus (tests/logminer/ingest/planted_secrets.py, numbers in benchmarks/redaction_recall.py):

- provider keys it reports only with a keyword or partner nearby, or only in one exact length: AWS access key ids
  alone (`AKIA…`), `sk-ant-` / `sk-` keys of other lengths (legacy OpenAI, DeepSeek, truncated Anthropic keys),
  GitHub tokens of other lengths than today's,
  `hf_` tokens with digits, Telegram bot tokens, Mailgun `key-`, New Relic `NRAK-`, Fly.io `fo1_`, Slack and
  Discord webhook URLs, private-key blocks cut off before their END line;
- context rules it has no generic form of: a value after a secret-named key in any case and quoting (`=`, `:`,
  YAML, JSON, headers such as `x-api-key:`, CLI flags such as `--token X` or `aws configure set NAME X`, URL query
  parameters), `Authorization:` / `Bearer` values, URL user-info (`scheme://user:pw@`, `redis://:pw@`, passwords
  with `/` in them);
- personal data: e-mail addresses and the user name in home folders (`/home/u`, `/Users/u`, `/mnt/c/Users/u`,
  `/var/home/u`, `C:\\Users\\u`, `~u/`, and Claude Code's `-Users-u-…` folder names).

Each rule starts with a literal (so `re` scans at memchr speed) and names the trigger substrings (lower case) of
which one must be in the text for it to run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
EMAIL_LOCAL_CHARS = WORD_CHARS | frozenset(".%+-")
TOKEN_END = r"(?![A-Za-z0-9_-])"
WORD_END = r"(?![A-Za-z0-9_])"  # `\b` would count a Unicode digit or letter after the key as part of it


@dataclass(frozen=True)
class Rule:
    """One shape: `pattern`'s group `secret` (or the whole match) is replaced by `placeholder` (default
    <SECRET:kind>); it runs only on texts containing one of `triggers` (lower case)."""

    kind: str
    pattern: re.Pattern[str]
    triggers: tuple[str, ...]
    word_start: bool = False  # the match must not continue a word on its left
    placeholder: str | None = None
    check: Any = None  # optional (text, match) -> bool: a last look at the value (placeholders, code)
    ignore_case: bool = False
    left: re.Pattern[str] | None = None  # an optional part before the literal start, matched backwards in Python


def _rule(kind: str, pattern: str, triggers: tuple[str, ...], ignore_case: bool = False, left: str | None = None,
          **options: Any) -> Rule:
    return Rule(kind, re.compile(pattern, re.IGNORECASE if ignore_case else 0), triggers, ignore_case=ignore_case,
                left=re.compile(f"(?:{left})$") if left else None, **options)


# --- values after secret-named keys -------------------------------------------------------------------------
# The key words, lower case; a name holds one (`DB_PASSWORD`, `x-api-key`, `aws_secret_access_key`) when no letter
# follows the word in it (`tokens`, `tokenizer`, `secretary` are not secret names).
SECRET_WORDS = ("password", "passwd", "pwd", "passphrase", "secret", "token", "api_key", "api-key", "apikey",
                "access_key", "access-key", "private_key", "private-key", "credential", "credentials", "auth_key",
                "signature", "session_key")
NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
LETTERS = frozenset("abcdefghijklmnopqrstuvwxyz")
# names that hold no secret although they contain a secret word: counts, types, paths, limits, ids
NOT_SECRET_NAME = re.compile(r"(?:id|ids|type|count|len|length|size|limit|usage|name|names|path|file|dir|url|uri|"
                             r"endpoint|used|budget|max|min|expires?|expiry|ttl|header|format|env|field|regex|"
                             r"pattern|prefix|kind|mode|provider|helper|manager|store|policy|scope|ref|arn)$",
                             re.IGNORECASE)
QUOTED = r"""(?:"(?P<dq>[^"\n\\]{4,})"|'(?P<sq>[^'\n\\]{4,})')"""
BARE = r"""(?P<bare>[^\s"'`,;<>&)(\]\[{}\\|]{6,})"""
AFTER_NAME = re.compile(rf"""(?P<sep>["']?[ \t]*(?::=|=>|==|=|:)[ \t]*|[ \t]+)(?:{QUOTED}|{BARE})""")
PLACEHOLDER_VALUE = re.compile(
    r"^(?:[$<{%*\[(@]|(?:none|null|nil|true|false|undefined|redacted|hidden|required|optional|string|example|"
    r"changeme|password|secret|token|xxx+|\.\.\.+|\*+)$)", re.IGNORECASE)
DOTTED_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+$")  # os.environ, self.token
IDENTIFIER = re.compile(r"^[A-Za-z_$]+(?:-[A-Za-z_]+)*$")
SET_CONTEXT = re.compile(r"(?:config(?:ure)?|secrets?|env)\s+set\s+$")


_WORDS_RX = "|".join(word.replace("_", "[_-]?").replace("-", "[_-]?") for word in SECRET_WORDS)
# Rust-regex (polars) pre-check over a whole batch: a secret word directly before `=`/`:`, in a `--flag`, or after
# `set` — prose that merely mentions tokens or passwords skips the Python walk of assignment_spans
ASSIGNMENT_MARKER = (rf"(?i)(?:{_WORDS_RX})[a-z0-9_.-]*[\"']?[ \t]*[:=]|--[a-z0-9_.-]*(?:{_WORDS_RX})"
                     rf"|set[ \t]+[a-z0-9_.-]*(?:{_WORDS_RX})")


def plausible_value(value: str, quoted: bool) -> bool:
    """A value that can be a secret: not a placeholder, reference, code expression, number or plain word."""
    if PLACEHOLDER_VALUE.match(value) or value.isdigit() or "<SECRET:" in value or "<HOME>" in value:
        return False
    if quoted:
        return not any(c.isspace() for c in value)
    # unquoted letters only (`csrfToken`, `restoredModel`, `FilterOrBool`) is code: an identifier, not a secret
    return not (DOTTED_NAME.match(value) or IDENTIFIER.match(value) or "://" in value)


def stated_secret(value: str) -> bool:
    """A string under a secret-named key is one unless it is empty or a placeholder (`null`, `${VAR}`, `***`)."""
    return bool(value.strip()) and not PLACEHOLDER_VALUE.match(value.strip()) and "<SECRET:" not in value


def secret_name(name: str) -> bool:
    """`name` (a variable, key, header or flag name) holds a secret word and is not a count, type, path, ..."""
    lowered = name.lower()
    for word in SECRET_WORDS:
        at = lowered.find(word)
        while at != -1:
            after = at + len(word)
            if (after == len(lowered) or lowered[after] not in LETTERS) and (
                    word != "pwd" or at == 0 or lowered[at - 1] not in LETTERS):
                return not NOT_SECRET_NAME.search(name.strip("_.-"))
            at = lowered.find(word, after)
    return False


def assignment_spans(text: str, lowered: str, words: set[str]) -> list[tuple[int, int, str, str | None]]:
    """Values after secret-named keys: each key word found by str.find (fast), its name widened to the name
    characters around it, then the separator and value matched right after the name."""
    spans = []
    seen = set()
    size = len(text)
    for word in words:
        at = lowered.find(word)
        while at != -1:
            left, right = at, at + len(word)
            while left > 0 and text[left - 1] in NAME_CHARS:
                left -= 1
            while right < size and text[right] in NAME_CHARS:
                right += 1
            at = lowered.find(word, right)
            if (left, right) in seen:
                continue
            seen.add((left, right))
            name = text[left:right]
            if not secret_name(name):
                continue
            match = AFTER_NAME.match(text, right)
            if match is None:
                continue
            if not match.group("sep").strip() and not name.startswith("-") and not SET_CONTEXT.search(
                    text, max(0, left - 24), left):
                continue  # `NAME VALUE` only as a CLI flag or `… set NAME VALUE`
            for group, quoted in (("dq", True), ("sq", True), ("bare", False)):
                value = match.group(group)
                if value is not None:
                    if plausible_value(value, quoted):
                        kind = "password" if "pass" in name.lower() or "pwd" in name.lower() else "secret_value"
                        spans.append((match.start(group), match.end(group), kind, None))
                    break
    return spans


# --- rules --------------------------------------------------------------------------------------------------
HOME_NAME = r"[^/\\\s\"'<>:*?|]+"
RULES: tuple[Rule, ...] = (
    _rule("private_key", r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
          r"(?:-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|\Z)", ("private key",)),
    _rule("aws_access_key", r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA)[A-Z2-7]{16}(?![A-Z0-9])",
          ("a3t", "akia", "asia", "abia", "acca", "agpa", "aida", "aroa", "aipa", "anpa", "anva"), word_start=True),
    _rule("anthropic_key", rf"sk-ant-[A-Za-z0-9_-]{{20,}}{TOKEN_END}", ("sk-ant-",), word_start=True),
    _rule("openai_key", rf"sk-(?:proj-|svcacct-|admin-|or-v1-)?[A-Za-z0-9_-]{{20,}}{TOKEN_END}", ("sk-",),
          word_start=True),
    _rule("github_token", rf"(?:gh[pousr]_[A-Za-z0-9]{{36,}}|github_pat_[A-Za-z0-9_]{{22,}}){WORD_END}",
          ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"), word_start=True),
    _rule("hf_token", rf"(?:hf_|api_org_)[A-Za-z0-9]{{30,}}{WORD_END}", ("hf_", "api_org_"), word_start=True),
    _rule("telegram_bot_token", r":AA[A-Za-z0-9_-]{33}(?![A-Za-z0-9_-])", (":aa",),
          check=lambda text, m: m.start() >= 8 and text[m.start() - 8:m.start()].isdigit()),
    _rule("mailgun_key", rf"key-[0-9a-f]{{32}}{WORD_END}", ("key-",), word_start=True),
    _rule("new_relic_key", rf"NRAK-[A-Z0-9]{{27}}{WORD_END}", ("nrak-",), word_start=True),
    _rule("flyio_token", rf"fo1_[A-Za-z0-9_-]{{30,}}{TOKEN_END}", ("fo1_",), word_start=True),
    _rule("webhook_url", r"(?:hooks\.slack\.com/services|discord(?:app)?\.com/api/webhooks)/(?P<secret>[^\s\"'<>`]+)",
          ("hooks.slack.com", "/api/webhooks")),
    _rule("bearer_token", r"bearer\s+(?P<secret>(?!<)[A-Za-z0-9._~+/-]{12,}=*)", ("bearer",), ignore_case=True,
          check=lambda text, m: any(c.isdigit() for c in m.group("secret"))),
    _rule("bearer_token", r"authorization[\"']?\s*[:=]\s*[\"']?(?:(?:token|basic|bearer)\s+)?"
          r"(?P<secret>(?!<)[A-Za-z0-9._~+/-]{12,}=*)", ("authorization",), ignore_case=True),
    _rule("password", r"://[^:/@\s\"'<>]*:(?!\d{1,5}(?:[/?#\s\"'<>]|$))(?P<secret>(?!<)[^\s\"'<>@]+)(?=@[^\s@])",
          ("://",)),
    _rule("url_token", r"://(?P<secret>(?!<)[A-Za-z0-9_-]{20,})(?=@)", ("://",)),
    _rule("home_path", rf"/(?:home|Users)/(?!<){HOME_NAME}", ("/home/", "/users/"), word_start=True,
          placeholder="<HOME>", left=r"/mnt/[A-Za-z]|/var|/export|/private|/System/Volumes/Data|/Volumes/[^/\n\"'<>]{1,64}",
          check=lambda text, m: text[m.start() - 1:m.start()] not in (".", "-")),
    _rule("home_path", rf":\\{{1,2}}Users\\{{1,2}}(?!<){HOME_NAME}", ("users\\",), placeholder="<HOME>",
          left="[A-Za-z]", check=lambda text, m: text[m.start() - 1:m.start()].isalpha()),
    # `~user/`; one letter is an Elixir sigil (`~r/regex/`)
    _rule("home_path", r"~(?P<secret>[a-z_][a-z0-9_.-]{1,31})(?=/)", ("~",), placeholder="<HOME>",
          check=lambda text, m: m.start() == 0 or text[m.start() - 1] in " \t\n\"'=:(`,;[{"),
    _rule("home_folder_name", r"-(?:Users|home)-[A-Za-z0-9._]+", ("-users-", "-home-"), word_start=True,
          placeholder="-<HOME>", left="-mnt-[a-z]|-var"),
)
EMAIL_DOMAIN = re.compile(r"@[A-Za-z][A-Za-z0-9-]*(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
NOT_EMAIL_LOCAL = ("git",)  # git@host:org/repo remotes are not personal
TRIGGERS = tuple(sorted({t for rule in RULES for t in rule.triggers} | set(SECRET_WORDS) | {"@"}))


def rule_spans(text: str, lowered: str, found: set[str]) -> list[tuple[int, int, str, str | None]]:
    """(start, end, kind, placeholder) of every match of the rules whose triggers are in `found` (`lowered`:
    text.lower(), the same length for the ASCII key words searched in it)."""
    spans = []
    for rule in RULES:
        if found.isdisjoint(rule.triggers):
            continue
        for match in rule.pattern.finditer(text):
            start = match.start()
            if rule.check is not None and not rule.check(text, match):
                continue
            if rule.left is not None:
                before = rule.left.search(text, max(0, start - 80), start)
                start = before.start() if before else start
            if rule.word_start and start > 0 and text[start - 1] in WORD_CHARS:
                continue
            if "secret" in rule.pattern.groupindex and match.group("secret") is not None:
                spans.append((match.start("secret"), match.end("secret"), rule.kind, rule.placeholder))
            else:
                spans.append((start, match.end(), rule.kind, rule.placeholder))
    words = found.intersection(SECRET_WORDS)
    if words:
        spans.extend(assignment_spans(text, lowered, words))
    if "@" in found:
        spans.extend(email_spans(text))
    return spans


def email_spans(text: str) -> list[tuple[int, int, str, str | None]]:
    # `@domain` is found by a literal-prefixed pattern; the local part is walked leftwards in Python (a pattern
    # that starts with a character class is ~20x slower in `re`)
    spans = []
    last = 0
    for match in EMAIL_DOMAIN.finditer(text):
        at = lo = match.start()
        while lo > last and text[lo - 1] in EMAIL_LOCAL_CHARS:
            lo -= 1
        if lo == at or text[lo:at] in NOT_EMAIL_LOCAL:
            continue
        spans.append((lo, match.end(), "email", "<EMAIL>"))
        last = match.end()
    return spans
