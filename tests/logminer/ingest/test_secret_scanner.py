"""kingfisher's provider rules as character spans (logminer.ingest.secret_scanner): one scan over a batch gives, per
text, spans that sit exactly on the planted keys, in character (not byte) offsets, never across two texts."""

from __future__ import annotations

from types import SimpleNamespace

from logminer.ingest.secret_scanner import _kind, _redacts, kingfisher_spans
from tests.logminer.ingest import planted_secrets
from tests.logminer.ingest.planted_secrets import SURVIVORS

# prefixed kinds that kingfisher's rules miss in prose (alone, without a keyword nearby): secret_rules catches them
# (tests/logminer/ingest/test_secret_rules.py)
LEFT_TO_OUR_RULES = {"aws_access_key", "discord_webhook", "mailgun", "telegram", "new_relic", "flyio"}
PLANTED = [p for p in planted_secrets.make_planted(seed=0) if p.prefixed and p.kind not in LEFT_TO_OUR_RULES]
PREFIX = "ünïcødé → "  # non-ASCII before the key: byte offsets differ from character offsets


def texts_of(prefix: str) -> list[str]:
    return [f"{prefix}I used {planted.value} for the call." for planted in PLANTED]


def test_one_batch_scan_puts_each_span_on_its_planted_key():
    assert len(PLANTED) >= 35
    texts = texts_of(PREFIX)
    spans = kingfisher_spans(texts)
    assert len(spans) == len(texts)
    for planted, text, found in zip(PLANTED, texts, spans):
        # the connection string's account name is kingfisher's hidden partner: only the key is the secret
        expected = planted.body if planted.kind == "azure_storage" else planted.value
        assert [text[start:end] for start, end, _, _ in found] == [expected], (planted.kind, found)
        assert all(placeholder is None for *_, placeholder in found)


def test_character_offsets_are_the_ascii_offsets_shifted_by_the_prefix():
    shift = len(PREFIX)
    plain = kingfisher_spans(texts_of(""))
    shifted = kingfisher_spans(texts_of(PREFIX))
    assert shifted == [[(start + shift, end + shift, kind, p) for start, end, kind, p in spans] for spans in plain]


def test_spans_stay_inside_their_text_and_cover_a_longer_key_whole():
    key = "ghp_" + "a1B2c3D4e5" * 4 + "Zz9"  # longer than today's 36 characters after ghp_
    texts = ["push " + key, "Zz9Zz9 follows in the next text", key, ""]
    spans = kingfisher_spans(texts)
    assert spans[0] == [(5, 5 + len(key), "github_pat", None)]
    assert spans[1] == [] and spans[3] == []
    assert spans[2] == [(0, len(key), "github_pat", None)]


def test_hidden_partners_only_where_they_are_secrets():
    key_id = "AKIA" + "QWERTYUIOPASDFGH"
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYq1w2e3r4t5"
    text = f"aws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n"
    found = {text[start:end]: kind for start, end, kind, _ in kingfisher_spans([text])[0]}
    assert found == {key_id: "aws_access_token", secret: "aws_secret_access_key"}
    hidden = SimpleNamespace(visible=False, rule_id="betterleaks.azure-storage-account-name")
    assert not _redacts(hidden)
    assert _redacts(SimpleNamespace(visible=False, rule_id="betterleaks.aws-secret-access-key"))
    assert _redacts(SimpleNamespace(visible=True, rule_id="betterleaks.azure-storage-account-name"))


def test_rule_ids_become_plain_kind_names():
    assert _kind("betterleaks.github-fine-grained-pat") == "github_fine_grained_pat"
    assert _kind("veles.secrets/npmjsaccesstoken") == "npmjsaccesstoken"
    assert _kind("kingfisher.slack.2") == "slack"
    assert _kind("kingfisher.aws.secret.1") == "aws_secret"


def test_ids_hashes_and_an_empty_batch_give_no_spans():
    assert kingfisher_spans([]) == []
    assert kingfisher_spans(list(SURVIVORS)) == [[] for _ in SURVIVORS]
