from __future__ import annotations

import pytest
from latechunk.validation.probes import ProbeFormatError, parse_probes


def test_form_lines_become_probes():
    text = "Who dives near reefs? => a/reef.txt, a/reef-copy.txt\n\n# a comment\n  Bread? =>b.txt  \r\n"
    assert parse_probes(text) == [
        {"query": "Who dives near reefs?", "expected_keys": ["a/reef.txt", "a/reef-copy.txt"]},
        {"query": "Bread?", "expected_keys": ["b.txt"]},
    ]


def test_automation_shapes_are_accepted():
    as_objects = [{"query": " q ", "expected_keys": ["k#1"]}, {"query": "r", "expected_keys": "k2"}]
    expected = [{"query": "q", "expected_keys": ["k#1"]}, {"query": "r", "expected_keys": ["k2"]}]
    assert parse_probes(as_objects) == expected
    assert parse_probes(["q => k"]) == [{"query": "q", "expected_keys": ["k"]}], "the old form's list of lines"
    assert parse_probes("") == parse_probes(None) == parse_probes([]) == []


@pytest.mark.parametrize(
    ("probes", "message"),
    [
        ("no arrow here", "probe line 1 'no arrow here' is malformed"),
        ("ok => k\n => k", "probe line 2 '=> k' is malformed"),
        ("question =>  , ", "probe line 1 'question =>  ,' is malformed"),
        ([{"query": "q"}], "probe 1 {'query': 'q'} is malformed"),
        ([{"query": "q", "expected_keys": [1]}], "is malformed"),
        (42, "probes must be text"),
    ],
)
def test_malformed_probes_are_refused_with_the_line(probes, message):
    with pytest.raises(ProbeFormatError, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse_probes(probes)
