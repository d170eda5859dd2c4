from __future__ import annotations

import pytest
from latechunk.chunking.segmentation import PARAGRAPH, SEGMENT, SOFT_LINE, WORD, cut_strengths, first_sentence


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Saffron risotto comes from Milan. It starts with a soffritto.", "Saffron risotto comes from Milan."),
        ("# Valdoria, the city of bridges\n\nValdoria sits on a river.", "# Valdoria, the city of bridges"),
        ("Menu\nEspresso\nFlat white", "Menu"),
        ("1. Grind the beans.\n2. Tamp them.", "1. Grind the beans."),
        ("Dr. Okafor dives. She counts fish.", "Dr. Okafor dives."),
        ("  no sentence end at all  ", "no sentence end at all"),
        ("我爱你。他也很好！", "我爱你。"),
    ],
)
def test_first_sentence(text, expected):
    assert first_sentence(text) == expected


def test_cut_strengths_rank_paragraphs_blocks_soft_wraps_and_words():
    text = "One two.\r\n\r\nA wrapped\nline here\n- item"
    cuts = cut_strengths(text)
    assert cuts[text.index("A wrapped")] == PARAGRAPH
    assert cuts[text.index("line here")] == SOFT_LINE
    assert cuts[text.index("- item")] == SEGMENT
    assert cuts[text.index("two")] == WORD
