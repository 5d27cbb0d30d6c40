"""Decoded views (logminer.ingest.secret_views): each view shows what an encoding hides, and every span of a view maps
back to the span of the original text that holds it."""

from __future__ import annotations

import base64
import json
import re
import urllib.parse

from hypothesis import given, settings
from hypothesis import strategies as st

from logminer.ingest.secret_views import (
    BASE64_RUN,
    MARKERS,
    base64_views,
    delimited_view,
    joined_views,
    json_views,
    name_tail_views,
    url_view,
    views_of,
)

KEY = "sk-" + "ant-api03-" + "Qz9x" * 23 + "k" + "AA"  # built from pieces so no scanner flags this file


def source_of(text: str, view, needle: str) -> str:
    """The original text behind the first `needle` in `view`."""
    at = view.text.index(needle)
    start, end = view.source_span(at, at + len(needle))
    return text[start:end]


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(max_codepoint=0xFFFF, blacklist_categories=("Cs",)), max_size=40), st.data())
def test_json_view_maps_every_span_back_to_its_escaped_source(value, data):
    text = json.dumps(value)
    views = json_views(text)
    if "\\" not in text:
        assert views == []
        return
    view = views[0]
    assert view.text == '"' + value + '"' and (view.start, view.end) == (0, len(text))
    a = data.draw(st.integers(0, len(value)))
    b = data.draw(st.integers(a, len(value)))
    start, end = view.source_span(a + 1, b + 1)
    assert text[start:end] == json.dumps(value[a:b])[1:-1]


def test_json_inside_a_json_string_maps_through_both_views():
    text = json.dumps({"result": json.dumps({"out": "ok\n" + KEY})})
    first, second = json_views(text)
    assert second.parent is first and "ok\n" + KEY in second.text
    assert source_of(text, second, KEY) == KEY
    assert source_of(text, second, "ok\n") == "ok\\\\n"  # the newline escaped twice: `\\n`
    assert source_of(text, first, "\\n" + KEY) == "\\\\n" + KEY


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(max_codepoint=0x7F, blacklist_characters="?&#"), max_size=40), st.data())
def test_url_view_maps_every_span_back_to_its_percent_encoding(value, data):
    text = urllib.parse.quote(value, safe="")
    view = url_view(text)
    if text == value:
        assert view is None
        return
    assert view.text == value
    a = data.draw(st.integers(0, len(value)))
    b = data.draw(st.integers(a, len(value)))
    start, end = view.source_span(a, b)
    assert text[start:end] == urllib.parse.quote(value[a:b], safe="")


def test_url_view_puts_one_parameter_per_line_and_leaves_non_ascii_escapes():
    text = "cb?token%3D" + KEY + "%26x=1#top"
    view = url_view(text)
    assert view.text == "cb\ntoken=" + KEY + "\nx=1\ntop"
    assert source_of(text, view, "token=" + KEY) == "token%3D" + KEY
    assert url_view("caf%C3%A9") is None and url_view("plain text") is None


def test_joined_view_rejoins_a_key_wrapped_across_lines():
    text = "key:\n" + KEY[:60] + "\n" + KEY[60:] + "\nnext line"
    [view] = [view for view in joined_views(text) if KEY in view.text]
    assert "\n" not in view.text
    assert source_of(text, view, KEY) == KEY[:60] + "\n" + KEY[60:]
    continued = "echo " + KEY[:50] + "\\\n    " + KEY[50:]
    [view] = joined_views(continued)
    assert view.text == "echo " + KEY
    assert source_of(continued, view, KEY) == KEY[:50] + "\\\n    " + KEY[50:]
    assert joined_views("a sentence that ends somewhere\nand goes on") == []  # a lower-case word is no key's half


def env_blob(key: str) -> str:
    return base64.b64encode(b"# .env\nDEBUG=1\nAPI_KEY=" + key.encode() + b"\n").decode()


def test_base64_view_of_an_env_blob_stands_for_the_whole_blob():
    blob = env_blob(KEY)
    text = f"echo {blob} | base64 -d; again {blob}"
    blobs = re.findall(BASE64_RUN, text)
    assert blobs == [blob, blob]
    views = base64_views(text, blobs)
    assert len(views) == 2 and all(view.whole and "API_KEY=" + KEY in view.text for view in views)
    first, second = (text[slice(*view.source_span(0, 3))] for view in views)
    assert first == second == blob
    assert [view.start for view in views] == [text.index(blob), text.rindex(blob)]


def test_base64_views_skip_digests_binary_and_prose():
    digest = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    binary = base64.b64encode(bytes(range(256))).decode()
    prose = base64.b64encode(b"just some words without any assignment in them at all").decode()
    for text in (digest, binary, prose):
        assert base64_views(text, re.findall(BASE64_RUN, text)) == []


def test_name_tail_view_is_the_key_glued_to_a_file_name():
    text = "saved /tmp/backup_" + KEY + ".json"
    [view] = name_tail_views(text)
    assert view.text == KEY and text[slice(*view.source_span(0, len(KEY)))] == KEY
    assert name_tail_views("my_variable_name_that_is_long_enough") == []


def test_delimited_view_keeps_length_and_offsets():
    text = "see hvs.AbC123/path, then (x). End."
    view = delimited_view(text)
    assert view.text == "see hvs.AbC123 path  then  x   End " and view.kingfisher_only
    assert len(view.text) == len(text) and view.source_span(4, 14) == (4, 14)
    assert delimited_view("plain words only") is None


def test_views_of_builds_the_views_each_marker_calls_for():
    texts = {
        "json": '{"out": "ok\\n' + KEY + '"}',
        "url": "cb?token%3D" + KEY,
        "joined": KEY[:60] + "\n" + KEY[60:],
        "tail": "/tmp/backup_" + KEY + ".json",
    }
    for marker, text in texts.items():
        markers = [name for name, pattern in MARKERS.items() if re.search(pattern, text)]
        assert marker in markers, (marker, markers)
        views = views_of(text, markers, re.findall(BASE64_RUN, text))
        assert any(KEY in view.text and source_of(text, view, KEY).replace("\n", "") == KEY for view in views), marker
    assert [name for name, pattern in MARKERS.items() if re.search(pattern, "plain words only")] == []
    assert views_of("plain words only", [], []) == []
