"""Our own secret and personal-data rules (logminer.ingest.secret_rules): each rule's documented shape gives exactly
the secret's span, the kinds kingfisher misses are caught, a rule runs only on its triggers, and ids, hashes, code
and prose give no span at all."""

from __future__ import annotations

import re

import pytest

from logminer.ingest.secret_rules import (
    ASSIGNMENT_MARKER,
    RULES,
    SECRET_WORDS,
    TRIGGERS,
    email_spans,
    plausible_value,
    rule_spans,
    secret_name,
    stated_secret,
)
from tests.logminer.ingest import planted_secrets
from tests.logminer.ingest.planted_secrets import SURVIVORS
from tests.logminer.ingest.test_secret_scanner import LEFT_TO_OUR_RULES

HOME, EMAIL = "<HOME>", "<EMAIL>"
AWS_ID = "AKIA" + "QWERTYUIOPASDFGH"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYq1w2e3r4t5"


def spans(text: str) -> list[tuple[str, str, str | None]]:
    """(matched text, kind, placeholder) of every span, with `found` as redact builds it: the triggers in the text."""
    lowered = text.lower()
    return [(text[start:end], kind, placeholder)
            for start, end, kind, placeholder in rule_spans(text, lowered, {t for t in TRIGGERS if t in lowered})]


# (text, the span's text, kind, placeholder): one row per shape the module's docstring promises
SHAPES = [
    (f"key id {AWS_ID} alone", AWS_ID, "aws_access_key", None),
    ("sk-" + "ant-" + "Ab3_" * 6 + " cut short", "sk-" + "ant-" + "Ab3_" * 6, "anthropic_key", None),
    ("legacy sk-" + "Zx9Qw" * 10, "sk-" + "Zx9Qw" * 10, "openai_key", None),
    ("push ghp_" + "a" * 36 + "1 now", "ghp_" + "a" * 36 + "1", "github_token", None),
    ("login hf_" + "Ab1" * 11, "hf_" + "Ab1" * 11, "hf_token", None),
    ("bot 123456789:AA" + "b" * 33, ":AA" + "b" * 33, "telegram_bot_token", None),
    ("mailgun key-" + "0f" * 16, "key-" + "0f" * 16, "mailgun_key", None),
    ("NRAK-" + "A1" * 13 + "B", "NRAK-" + "A1" * 13 + "B", "new_relic_key", None),
    ("fly fo1_" + "x_Y-9" * 6, "fo1_" + "x_Y-9" * 6, "flyio_token", None),
    ("https://hooks.slack.com/services/T000/B000/XXXX done", "T000/B000/XXXX", "webhook_url", None),
    ("https://discord.com/api/webhooks/123/abc-DEF", "123/abc-DEF", "webhook_url", None),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n-----END OPENSSH PRIVATE KEY----- after",
     "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n-----END OPENSSH PRIVATE KEY-----", "private_key", None),
    ("-----BEGIN PRIVATE KEY-----\nMIIEvQ", "-----BEGIN PRIVATE KEY-----\nMIIEvQ", "private_key", None),
    ("export MY_SERVICE_TOKEN=s3cr3t-value-123", "s3cr3t-value-123", "secret_value", None),
    ("password = 'correct-horse'", "correct-horse", "password", None),
    ('{"db_passwd": "hunter22sql"}', "hunter22sql", "password", None),
    ("db:\n  client_secret: 9f8e7d6c5b4a39281706\n", "9f8e7d6c5b4a39281706", "secret_value", None),
    ("curl -H 'x-api-key: abcDEF123456ghiJKL'", "abcDEF123456ghiJKL", "secret_value", None),
    ("deploy --token Abc123xyz789 --region eu", "Abc123xyz789", "secret_value", None),
    (f"aws configure set aws_secret_access_key {AWS_SECRET}", AWS_SECRET, "secret_value", None),
    ("GET /x?api_key=Zq8wX2c4V6b8N0m1&page=2", "Zq8wX2c4V6b8N0m1", "secret_value", None),
    ("curl -H 'Authorization: Bearer Zm9vYmFyYmF6cXV4MTIzNDU2'", "Zm9vYmFyYmF6cXV4MTIzNDU2", "bearer_token", None),
    ("Authorization: Basic dXNlcjpwYXNzd29yZDEyMw==", "dXNlcjpwYXNzd29yZDEyMw==", "bearer_token", None),
    ("mysql://root:pw1234@localhost/db", "pw1234", "password", None),
    ("redis://:s3cr3tpw@cache:6379/0", "s3cr3tpw", "password", None),
    ("postgres://app:first/half-second@db:5432/x", "first/half-second", "password", None),
    ("https://ghp1234567890abcdefghij@github.com/o/r", "ghp1234567890abcdefghij", "url_token", None),
    ("cd /home/alice/src", "/home/alice", "home_path", HOME),
    ("open /Users/alice/proj", "/Users/alice", "home_path", HOME),
    ("/mnt/c/Users/bob/x", "/mnt/c/Users/bob", "home_path", HOME),
    ("cd /var/home/bob/src", "/var/home/bob", "home_path", HOME),
    (r"C:\Users\carol\src", r"C:\Users\carol", "home_path", HOME),
    ("ls ~dave/notes", "dave", "home_path", HOME),
    ("~/.claude/projects/-Users-erin-proj/s.jsonl", "-Users-erin", "home_folder_name", "-" + HOME),
    ("contact alice.smith+tag@example.co.uk, now", "alice.smith+tag@example.co.uk", "email", EMAIL),
]


@pytest.mark.parametrize(("text", "secret", "kind", "placeholder"), SHAPES)
def test_each_rule_gives_the_exact_span_of_its_documented_shape(text, secret, kind, placeholder):
    assert (secret, kind, placeholder) in spans(text)


@pytest.mark.parametrize("planted", [p for p in planted_secrets.make_planted(seed=0) if p.kind in LEFT_TO_OUR_RULES],
                         ids=lambda p: p.kind)
def test_the_prefixed_kinds_kingfisher_misses_are_caught_in_prose(planted):
    text = f"I used {planted.value} for the call."
    assert any(planted.body in found for found, _, _ in spans(text)), spans(text)


NOT_SECRETS = [
    *SURVIVORS,
    "token_id = 123e4567-e89b-12d3-a456-426614174000",  # a secret word in a name that is an id
    "the token abcdef123456 is long",  # `NAME VALUE` only as a flag or after `set`
    "max_tokens=4096", "csrfToken = restoredModel", "tokenizer: gpt2", "secretary = Alice_Jones-1",
    "http://localhost:8080/x", "https://user@host", "~r/regex/", "bearer authentication", "xAKIAQWERTYUIOPASDFGH",
    "see https://example.com/home/index.html", "a.home/x", "password: null", 'api_key = "${API_KEY}"',
]


@pytest.mark.parametrize("text", NOT_SECRETS)
def test_ids_hashes_code_and_prose_give_no_span(text):
    assert spans(text) == []


def test_a_rule_runs_only_when_one_of_its_triggers_was_found():
    text = f"key id {AWS_ID} and mail alice@example.org"
    assert rule_spans(text, text.lower(), set()) == []
    assert [kind for *_, kind, _ in rule_spans(text, text.lower(), {"akia"})] == ["aws_access_key"]
    assert [kind for *_, kind, _ in rule_spans(text, text.lower(), {"@"})] == ["email"]
    for rule in RULES:
        assert rule.triggers and all(t == t.lower() and t in TRIGGERS for t in rule.triggers), rule.kind
    assert set(SECRET_WORDS) <= set(TRIGGERS) and "@" in TRIGGERS


@pytest.mark.parametrize(("name", "holds_secret"), [
    ("DB_PASSWORD", True), ("x-api-key", True), ("aws_secret_access_key", True), ("--token", True), ("PWD", True),
    ("GITHUB_TOKEN", True), ("session_key", True), ("client-credentials", True),
    ("tokens", False), ("tokenizer", False), ("secretary", False), ("max_tokens", False), ("token_count", False),
    ("OLDPWD", False), ("password_file", False), ("secret_name", False), ("token_type", False), ("user", False),
])
def test_secret_name(name, holds_secret):
    assert secret_name(name) is holds_secret


def test_plausible_and_stated_values():
    for value in ("null", "${VAR}", "<token>", "***", "12345678", "<SECRET:password>", "<HOME>/x"):
        assert not plausible_value(value, quoted=True) and not plausible_value(value, quoted=False)
    assert plausible_value("s3cr3t-value", quoted=False) and plausible_value("correct-horse", quoted=True)
    assert not plausible_value("two words", quoted=True)  # a quoted sentence is prose, not a key
    for code in ("os.environ", "self.token", "restoredModel", "https://example.com"):
        assert not plausible_value(code, quoted=False)
    assert stated_secret("x y z w") and not stated_secret("  ") and not stated_secret("null")


def test_assignment_marker_finds_key_value_pairs_not_prose():
    marker = re.compile(ASSIGNMENT_MARKER)
    for text in ("MY_TOKEN=abc", 'password: "x"', "deploy --api-key X", "aws configure set aws_secret_access_key X"):
        assert marker.search(text), text
    for text in ("The token count and the primary key matter", "we rotate passwords monthly"):
        assert not marker.search(text), text


def test_email_spans_walk_the_local_part_and_skip_git_remotes():
    text = "mail a.b+tag@example.co.uk or bob@mail.example.org; git@github.com:org/repo.git; @decorator.method"
    assert [text[start:end] for start, end, _, _ in email_spans(text)] == ["a.b+tag@example.co.uk",
                                                                           "bob@mail.example.org"]
    assert {(kind, placeholder) for *_, kind, placeholder in email_spans(text)} == {("email", EMAIL)}
