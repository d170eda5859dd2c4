from __future__ import annotations

import pytest
from latechunk.chunking.config import ChunkingConfig
from latechunk.chunking.spans import annotate_spans
from transformers import AutoTokenizer

ADVERSARIAL_TEXTS = {
    "plain": "Sarah Johnson works in Berlin. She is a biologist! Is it true? Yes.",
    "crlf": "First line.\r\nSecond line!\r\n\r\nThird paragraph here.\r\n",
    "unicode": "Café naïve résumé — “quoted.” Straße… Ünïcödé façade.",
    "emoji": "I love it 😀. Family 👨‍👩‍👧 emoji! Flags 🇩🇪 too.",
    "cjk": "我爱你。他也很好！北京是中国的首都？中文没有空格",
    "rtl": "שלום עולם. مرحبا بالعالم! mixed עברית and English.",
    "no_punctuation": "a text without any sentence punctuation at all just words and more words",
    "whitespace": "   \t leading and trailing whitespace.   Second sentence.  \n\n ",
    "decimals": "Pi is 3.14 and e is 2.71. Version 1.2.3 shipped.",
    "quotes": 'He said "stop." Then he left. (Really.) Fine.',
}
CONFIGS = {
    "sentences": ChunkingConfig("sentences"),
    "sentences_x2": ChunkingConfig("sentences", sentences_per_chunk=2),
    "fixed": ChunkingConfig("fixed", chunk_size=5),
    "fixed_overlap": ChunkingConfig("fixed", chunk_size=6, overlap=2),
}


@pytest.fixture(scope="module", params=["tiny_tokenizer_dir", "minilm_dir"])
def tokenizer(request):
    return AutoTokenizer.from_pretrained(request.getfixturevalue(request.param))


def paragraph_spans(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    while True:
        end = text.find("\n\n", start)
        spans.append((start, len(text) if end < 0 else end))
        if end < 0:
            return spans
        start = end + 2


@pytest.mark.parametrize("config_name", CONFIGS)
@pytest.mark.parametrize("text_name", ADVERSARIAL_TEXTS)
def test_character_spans_slice_the_original_text(tokenizer, text_name, config_name):
    text, config = ADVERSARIAL_TEXTS[text_name], CONFIGS[config_name]
    doc = annotate_spans(text, tokenizer, config)
    assert doc.spans, "every non-blank text yields at least one chunk"
    for chunk in doc.spans:
        assert text[chunk.char_start : chunk.char_end] == chunk.text
        assert chunk.text.strip(), "a chunk never consists of whitespace only"
        assert 0 <= chunk.token_start < chunk.token_end <= len(doc.input_ids)
    assert [chunk.chunk_id for chunk in doc.spans] == list(range(len(doc.spans)))


@pytest.mark.parametrize("config_name", ["sentences", "sentences_x2", "fixed"])
@pytest.mark.parametrize("text_name", ADVERSARIAL_TEXTS)
def test_chunks_tile_the_whole_token_sequence_including_special_tokens(tokenizer, text_name, config_name):
    doc = annotate_spans(ADVERSARIAL_TEXTS[text_name], tokenizer, CONFIGS[config_name])
    assert doc.spans[0].token_start == 0
    assert doc.spans[-1].token_end == len(doc.input_ids)
    for previous, following in zip(doc.spans, doc.spans[1:], strict=False):
        assert previous.token_end == following.token_start


def test_first_chunk_pools_cls_and_last_chunk_pools_sep(tokenizer):
    doc = annotate_spans("One sentence. Another one. A third.", tokenizer, ChunkingConfig())
    assert doc.input_ids[0] == tokenizer.cls_token_id and doc.input_ids[-1] == tokenizer.sep_token_id
    first, middle, last = doc.spans
    assert (first.token_start, last.token_end) == (0, len(doc.input_ids))
    assert tokenizer.cls_token_id not in doc.input_ids[middle.token_start : middle.token_end]
    assert doc.input_ids[first.token_start + 1 : first.token_end] == tokenizer(
        "One sentence.", add_special_tokens=False
    )["input_ids"]


def test_sentence_boundaries(tokenizer):
    doc = annotate_spans(ADVERSARIAL_TEXTS["decimals"], tokenizer, ChunkingConfig())
    assert [chunk.text for chunk in doc.spans] == ["Pi is 3.14 and e is 2.71.", "Version 1.2.3 shipped."]
    doc = annotate_spans(ADVERSARIAL_TEXTS["quotes"], tokenizer, ChunkingConfig())
    assert [chunk.text for chunk in doc.spans] == ['He said "stop."', "Then he left.", "(Really.)", "Fine."]
    doc = annotate_spans(ADVERSARIAL_TEXTS["cjk"], tokenizer, ChunkingConfig())
    assert [chunk.text for chunk in doc.spans] == ["我爱你。", "他也很好！", "北京是中国的首都？", "中文没有空格"]


def test_abbreviations_and_initials_do_not_end_sentences(tokenizer):
    text = "Dr. Amara Okafor met J. R. Smith, e.g. at sea. She dives. Prof. Lee agrees."
    doc = annotate_spans(text, tokenizer, ChunkingConfig())
    assert [chunk.text for chunk in doc.spans] == [
        "Dr. Amara Okafor met J. R. Smith, e.g. at sea.",
        "She dives.",
        "Prof. Lee agrees.",
    ]


def test_sentences_per_chunk_groups_sentences(tokenizer):
    text = "A b. C d! E f? G h."
    doc = annotate_spans(text, tokenizer, ChunkingConfig(sentences_per_chunk=3))
    assert [chunk.text for chunk in doc.spans] == ["A b. C d! E f?", "G h."]


def test_text_without_punctuation_is_one_chunk(tokenizer):
    text = ADVERSARIAL_TEXTS["no_punctuation"]
    (chunk,) = annotate_spans(text, tokenizer, ChunkingConfig()).spans
    assert chunk.text == text


@pytest.mark.parametrize("text", ["", "   \r\n\t  "])
def test_blank_text_has_no_chunks(tokenizer, text):
    doc = annotate_spans(text, tokenizer, ChunkingConfig())
    assert doc.spans == []
    assert doc.input_ids == [tokenizer.cls_token_id, tokenizer.sep_token_id]


def test_fixed_chunks_have_the_configured_size_and_overlap(tokenizer):
    text = " ".join(["the city of berlin is the capital"] * 6)
    doc = annotate_spans(text, tokenizer, ChunkingConfig("fixed", chunk_size=8, overlap=3))
    n_content = len(doc.input_ids) - 2
    content = [(max(c.token_start, 1), min(c.token_end, n_content + 1)) for c in doc.spans]
    assert all(end - start == 8 for start, end in content[:-1])
    assert all(prev[1] - nxt[0] == 3 for prev, nxt in zip(content, content[1:], strict=False))
    assert content[-1][1] == n_content + 1
    assert content[-1][1] > content[-2][1], "no trailing chunk lies entirely inside the previous one"


def test_caller_spans_keep_their_ids_when_a_span_is_empty(tokenizer):
    text = "First paragraph here.\n\n   \n\nThird paragraph.\n\nFourth one."
    spans = paragraph_spans(text)
    spans.insert(1, (len("First paragraph here."), len("First paragraph here.")))  # an empty span
    doc = annotate_spans(text, tokenizer, ChunkingConfig("spans"), char_spans=spans)
    assert [chunk.chunk_id for chunk in doc.spans] == [0, 3, 4]
    assert [chunk.text for chunk in doc.spans] == ["First paragraph here.", "Third paragraph.", "Fourth one."]
    assert doc.spans[0].token_start == 0 and doc.spans[-1].token_end == len(doc.input_ids)
    for previous, following in zip(doc.spans, doc.spans[1:], strict=False):
        assert previous.token_end == following.token_start


@pytest.mark.parametrize("text_name", ADVERSARIAL_TEXTS)
def test_caller_spans_on_adversarial_texts(tokenizer, text_name):
    text = ADVERSARIAL_TEXTS[text_name]
    doc = annotate_spans(text, tokenizer, ChunkingConfig("spans"), char_spans=paragraph_spans(text))
    for chunk in doc.spans:
        assert text[chunk.char_start : chunk.char_end] == chunk.text
        assert chunk.token_start < chunk.token_end


def test_whole_document_is_tokenized_without_truncation(tokenizer):
    text = "The city is big. " * 300
    doc = annotate_spans(text, tokenizer, ChunkingConfig())
    assert len(doc.input_ids) > 512 and len(doc.spans) == 300
    assert doc.spans[-1].token_end == len(doc.input_ids)


@pytest.mark.parametrize(
    "config, message",
    [
        (ChunkingConfig("paragraphs"), "unknown chunking strategy"),
        (ChunkingConfig("fixed", chunk_size=0), "chunk_size"),
        (ChunkingConfig("fixed", chunk_size=4, overlap=4), "overlap"),
        (ChunkingConfig("fixed", overlap=-1), "overlap"),
        (ChunkingConfig(sentences_per_chunk=0), "sentences_per_chunk"),
    ],
)
def test_invalid_configs_are_rejected(config, message):
    with pytest.raises(ValueError, match=message):
        config.validate()


def test_char_spans_are_validated(tokenizer):
    with pytest.raises(ValueError, match="exactly when"):
        annotate_spans("a b", tokenizer, ChunkingConfig(), char_spans=[(0, 1)])
    with pytest.raises(ValueError, match="exactly when"):
        annotate_spans("a b", tokenizer, ChunkingConfig("spans"))
    with pytest.raises(ValueError, match="outside"):
        annotate_spans("a b", tokenizer, ChunkingConfig("spans"), char_spans=[(0, 9)])
    with pytest.raises(ValueError, match="overlap"):
        annotate_spans("a b c", tokenizer, ChunkingConfig("spans"), char_spans=[(0, 3), (2, 5)])


def test_config_as_dict_round_trips():
    config = ChunkingConfig("fixed", chunk_size=128, overlap=16)
    assert config.as_dict() == {
        "strategy": "fixed", "chunk_size": 128, "overlap": 16, "sentences_per_chunk": 1, "max_chunk_tokens": 512
    }
    assert ChunkingConfig(**config.as_dict()) == config


def test_caller_spans_are_widened_only_over_the_special_tokens(tokenizer):
    text = "Intro sentence. The middle part. Outro sentence."
    middle = (text.index("The middle"), text.index(" Outro"))
    doc = annotate_spans(text, tokenizer, ChunkingConfig("spans"), char_spans=[middle])
    (chunk,) = doc.spans
    assert tokenizer.decode(doc.input_ids[chunk.token_start : chunk.token_end]) == "the middle part."
    first, last = annotate_spans(
        text, tokenizer, ChunkingConfig("spans"), char_spans=[(0, middle[0]), (middle[1], len(text))]
    ).spans
    assert (first.token_start, last.token_end) == (0, len(doc.input_ids)), "[CLS] and [SEP] join the edge chunks"
