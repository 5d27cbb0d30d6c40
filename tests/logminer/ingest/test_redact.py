"""Redaction: every planted secret kind becomes its placeholder; ids, hashes and digests survive."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from logminer.ingest.redact import redact_session, redact_text
from logminer.schema import Session, ToolCall, Turn

# Fake secrets built from pieces so that no scanner flags this file; each is (kind, secret text, context template)
AWS = "AKIA" + "QWERTYUIOPASDFGH"
PLANTED = [
    ("aws_access_key", AWS, "aws configure set aws_access_key_id {}"),
    ("openai_key", "sk-" + "proj-" + "Ab3" * 12, "using key {} for the call"),
    ("openai_key", "sk-" + "Zx9Qw" * 9, "key: {}"),
    ("anthropic_key", "sk-" + "ant-api03-" + "Kq7_" * 20 + "AA", "x-api-key {}"),
    ("github_token", "ghp_" + "a1B2c3D4e5" * 4, "push with {}"),
    ("github_token", "github_pat_" + "11AB" * 8 + "_" + "cd" * 20, "token {} here"),
    ("hf_token", "hf_" + "AbCdEfGhIj" * 4, "login {}"),
    ("slack_token", "xoxb-" + "1234567890-0987654321-" + "AbCd" * 6, "slack {}"),
    ("google_api_key", "AIza" + "Sy" + "B1c2D3e4F5g6H7i8J9k0L1m2N3o4P5q6R", "maps key {}"),
    ("jwt", "eyJhbGciOiJIUzI1NiJ9." + "eyJzdWIiOiIxMjM0NTY3ODkwIn0." + "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV", "jwt {}"),
    ("bearer_token", "Zm9vYmFyYmF6cXV4MTIzNDU2", "curl -H 'Authorization: Bearer {}' https://api"),
    ("password", "hunter2-db-pass", "DATABASE_URL=postgres://admin:{}@db.internal:5432/app"),
    ("url_token", "glpat" + "Xy12Zz34Ww56Vv78Uu90", "git remote add origin https://{}@gitlab.com/o/r.git"),
    ("env_secret", "s3cr3t-value-123", "export MY_SERVICE_TOKEN={}"),
    ("env_secret", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzzzzzzzzz", "AWS_SECRET_ACCESS_KEY={}"),
    ("password_assignment", "correct-horse-battery", 'password = "{}"'),
    ("email", "alice.smith@example.org", "contact {} today"),
]
PRIVATE_KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7Mhgw\n-----END RSA PRIVATE KEY-----"
SURVIVORS = [
    "123e4567-e89b-12d3-a456-426614174000",
    "9fceb02d0ae598e95dc970b74767f19372d61af8",
    "sha256:" + "3f" * 32,
    "sha512-" + "z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg==",
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAAB",  # base64, not key-shaped
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
]


@pytest.mark.parametrize(("kind", "value", "context"), PLANTED)
def test_each_planted_secret_becomes_its_placeholder(kind, value, context):
    counts: Counter[str] = Counter()
    out = redact_text(context.format(value), counts)
    assert value not in out
    assert counts[kind] >= 1, (out, counts)
    assert ("<EMAIL>" if kind == "email" else f"<SECRET:{kind}>") in out


def test_url_password_keeps_scheme_and_user():
    assert redact_text("mysql://root:pw1234@localhost/db") == "mysql://root:<SECRET:password>@localhost/db"


def test_private_key_block_and_home_paths():
    counts: Counter[str] = Counter()
    text = f"cat id_rsa\n{PRIVATE_KEY}\nin /Users/alice/proj and /home/bob/x and C:\\Users\\carol\\src, -Users-alice-proj"
    out = redact_text(text, counts)
    assert "MIIEow" not in out and "<SECRET:private_key>" in out
    assert out.endswith("in <HOME>/proj and <HOME>/x and <HOME>\\src, -<HOME>-proj")
    assert counts == Counter({"private_key": 1, "home_path": 3, "home_folder_name": 1})


@pytest.mark.parametrize("value", SURVIVORS)
def test_ids_hashes_and_digests_survive(value):
    text = f"commit {value} in package-lock integrity {value}"
    assert redact_text(text) == text


def test_prose_and_git_remotes_survive():
    text = ("The token count and the primary key matter; git@github.com:org/repo.git; export PATH=$HOME/bin; "
            "see https://example.com/home/index.html")
    assert redact_text(text) == text


def test_session_fields_redacted_and_arguments_stay_valid_json():
    key = PLANTED[1][1]
    session = Session(
        "s", "test", "/home/alice/logs/s.jsonl",
        turns=[
            Turn("user", f"use {key}"),
            Turn("assistant", "", reasoning=f"the key is {key}",
                 tool_calls=[ToolCall("bash", json.dumps({"cmd": f"export OPENAI_API_KEY={key}", "n": 1}), id="c")]),
            Turn("tool", "mail bob@example.com", tool_call_id="c", name="bash"),
        ],
        metadata={"cwd": "/Users/alice/x", "nested": [{"k": key}]},
        tools=[{"type": "function", "function": {"name": "bash", "description": f"uses {key}"}}],
    )
    counts: Counter[str] = Counter()
    redact_session(session, counts)
    dumped = json.dumps([session.turns[i].__dict__ for i in range(3)], default=lambda o: o.__dict__)
    dumped += json.dumps(session.metadata) + json.dumps(session.tools) + session.source_file
    assert key not in dumped and "alice" not in dumped and "bob@" not in dumped
    arguments = json.loads(session.turns[1].tool_calls[0].arguments)
    assert arguments == {"cmd": "export OPENAI_API_KEY=<SECRET:openai_key>", "n": 1}
    assert session.source_file == "<HOME>/logs/s.jsonl"
    assert counts["openai_key"] == 5 and counts["email"] == 1 and counts["home_path"] == 2


HEXISH = re.compile(
    r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b|\b[0-9a-f]{40}\b|\b[0-9a-f]{64}\b"
    r"|sha(?:256|512)[:-][A-Za-z0-9+/=]{20,}"
)


def test_every_uuid_and_sha_in_real_logs_survives(real_logs):
    checked = 0
    for path in sorted(p for p in real_logs.rglob("*") if p.is_file()):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        before = set(HEXISH.findall(text))
        after = set(HEXISH.findall(redact_text(text)))
        assert before <= after, (path, sorted(before - after)[:5])
        checked += len(before)
    assert checked > 1000
