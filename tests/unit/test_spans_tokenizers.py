"""Sentence chunking across tokenizer families: WordPiece (MiniLM), SentencePiece-style Unigram with Metaspace,
byte-level BPE with RoBERTa post-processing, with a [CLS] $A [SEP] template (ModernBERT) and with no special
tokens (GPT). All but MiniLM are trained here, offline, with the `tokenizers` library.

Boundaries come from the text, so every family gives the same number of chunks on the same text."""

from __future__ import annotations

import pytest
from latechunk.chunking.config import ChunkingConfig
from latechunk.chunking.spans import annotate_documents, annotate_spans
from latechunk.sources.documents import extract_text
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

HTML = (
    "<html><head><title>Menu</title></head><body><h1>Café menu</h1><ul><li>Espresso</li><li>Flat white</li>"
    "<li>Green tea</li></ul><p>Open daily. Closed on holidays.</p></body></html>"
)
TEXTS = {  # text, expected number of sentence chunks (one segment per chunk)
    "prose": ("Sarah Johnson works in Berlin. She is a biologist! Is it true? Yes.", 4),
    "markdown_list": ("# Shopping\n\n- apples and pears\n- bread\n- milk\n\n1. first step\n2. second step\n", 6),
    "html": (extract_text("menu.html", HTML.encode())[0][0].text, 6),
    "cjk": ("我爱你。他也很好！北京是中国的首都？中文没有空格", 4),
    "rtl": ("שלום עולם. مرحبا بالعالم! هل أنت بخير؟ نعم. mixed עברית and English.", 5),
    "emoji": ("I love it 😀. Family 👨‍👩‍👧 emoji! Flags 🇩🇪 too.", 3),
    "crlf": ("First line.\r\nSecond line!\r\n\r\nThird paragraph here.\r\n", 3),
    "soft_wrap": ("This sentence is wrapped\nacross two lines. Then\n\nA new paragraph.", 3),
    "abbreviations": ("Dr. Amara Okafor met J. R. Smith, e.g. at sea. Pi is 3.14 and e is 2.71.", 2),
}
LONG_LIST = "".join(f"- item number {i} of the list\n" for i in range(200))
LONG_PROSE = " ".join(["the city of berlin is the capital of germany"] * 60)
TRAINING_TEXT = [text for text, _ in TEXTS.values()] + [LONG_LIST, LONG_PROSE]
CAP = 16


def _trained(model, trainer, pre_tokenizer, decoder, normalizer=None) -> Tokenizer:
    tokenizer = Tokenizer(model)
    if normalizer is not None:
        tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoder
    tokenizer.train_from_iterator(TRAINING_TEXT * 3, trainer)
    return tokenizer


def metaspace_unigram() -> PreTrainedTokenizerFast:
    """XLM-R / e5 style: NFKC, Metaspace ("▁" marks word starts), <s> $A </s>."""
    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    trainer = trainers.UnigramTrainer(vocab_size=300, special_tokens=specials, unk_token="<unk>")
    normalizer = normalizers.NFKC()
    tokenizer = _trained(models.Unigram(), trainer, pre_tokenizers.Metaspace(), decoders.Metaspace(), normalizer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 1), ("</s>", 2)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )


def byte_level_bpe(post_processing: str) -> PreTrainedTokenizerFast:
    specials = ["<pad>", "<s>", "</s>"]
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=post_processing == "roberta")
    tokenizer = _trained(models.BPE(), trainer, pre_tokenizer, decoders.ByteLevel())
    if post_processing == "roberta":
        tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 1), trim_offsets=True)
    elif post_processing == "template":
        tokenizer.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>", special_tokens=[("<s>", 1), ("</s>", 2)]
        )
    else:
        tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


@pytest.fixture(scope="module", params=["wordpiece", "metaspace_unigram", "bpe_roberta", "bpe_template", "bpe_gpt"])
def tokenizer(request, minilm_dir):
    if request.param == "wordpiece":
        return AutoTokenizer.from_pretrained(minilm_dir)
    if request.param == "metaspace_unigram":
        return metaspace_unigram()
    return byte_level_bpe(request.param.removeprefix("bpe_"))


def assert_well_formed(text: str, tokenizer, doc, cap: int) -> None:
    """Exact slices, nothing whitespace-only, no overlap, every non-whitespace character covered, token spans
    tiling the whole sequence, and at most `cap` content tokens per chunk."""
    special = tokenizer(text, return_special_tokens_mask=True, truncation=False)["special_tokens_mask"]
    covered = set()
    previous_end = 0
    for chunk in doc.spans:
        assert chunk.text == text[chunk.char_start : chunk.char_end]
        assert chunk.text.strip(), f"whitespace-only chunk {chunk}"
        assert chunk.char_start >= previous_end, f"chunk {chunk.chunk_id} overlaps the one before"
        previous_end = chunk.char_end
        covered.update(range(chunk.char_start, chunk.char_end))
        assert sum(1 for flag in special[chunk.token_start : chunk.token_end] if not flag) <= cap
    uncovered = [(i, char) for i, char in enumerate(text) if not char.isspace() and i not in covered]
    assert not uncovered, f"characters in no chunk: {uncovered[:5]}"
    assert doc.spans[0].token_start == 0 and doc.spans[-1].token_end == len(doc.input_ids)
    for previous, following in zip(doc.spans, doc.spans[1:], strict=False):
        assert previous.token_end == following.token_start


@pytest.mark.parametrize("name", TEXTS)
def test_sentence_chunks_are_the_same_for_every_tokenizer_family(tokenizer, name):
    text, expected = TEXTS[name]
    doc = annotate_spans(text, tokenizer, ChunkingConfig())
    assert len(doc.spans) == expected, [chunk.text for chunk in doc.spans]
    assert_well_formed(text, tokenizer, doc, cap=512)


def test_cjk_full_stops_end_sentences_without_overlap(tokenizer):
    doc = annotate_spans(TEXTS["cjk"][0], tokenizer, ChunkingConfig())
    assert [chunk.text for chunk in doc.spans] == ["我爱你。", "他也很好！", "北京是中国的首都？", "中文没有空格"]


def test_paragraph_breaks_end_chunks_of_several_sentences(tokenizer):
    text = "One. Two.\n\nThree. Four. Five.\r\n\r\nSix."
    doc = annotate_spans(text, tokenizer, ChunkingConfig(sentences_per_chunk=5))
    assert [chunk.text for chunk in doc.spans] == ["One. Two.", "Three. Four. Five.", "Six."]


def test_a_long_list_is_cut_at_its_items(tokenizer):
    doc = annotate_spans(LONG_LIST, tokenizer, ChunkingConfig(sentences_per_chunk=3, max_chunk_tokens=64))
    assert_well_formed(LONG_LIST, tokenizer, doc, cap=64)
    assert all(chunk.text.startswith("- item") for chunk in doc.spans), "cuts fall between items"
    assert sum(chunk.text.count("\n- item") + 1 for chunk in doc.spans) == 200
    assert len(doc.spans) >= 200 // 3


@pytest.mark.parametrize("name", [*TEXTS, "long_prose", "long_list"])
def test_no_chunk_exceeds_the_cap(tokenizer, name):
    text = {"long_prose": LONG_PROSE, "long_list": LONG_LIST}.get(name) or TEXTS[name][0]
    doc = annotate_spans(text, tokenizer, ChunkingConfig(sentences_per_chunk=4, max_chunk_tokens=CAP))
    assert_well_formed(text, tokenizer, doc, cap=CAP)
    if name == "long_prose":
        assert len(doc.spans) > 1 and all(chunk.text[-1].isalpha() for chunk in doc.spans), "cuts between words"


@pytest.mark.parametrize("name", [*TEXTS, "long_prose"])
def test_fixed_chunks_cover_every_character_of_their_tokens(tokenizer, name):
    """Fixed chunks end at their last token's last character: a token that carries the space before its word
    (Metaspace, byte-level BPE) once lost that word's last character from the chunk and from every chunk."""
    text = LONG_PROSE if name == "long_prose" else TEXTS[name][0]
    doc = annotate_spans(text, tokenizer, ChunkingConfig(strategy="fixed", chunk_size=5))
    assert_well_formed(text, tokenizer, doc, cap=5)
    assert all(chunk.text == chunk.text.strip() for chunk in doc.spans)


def test_annotating_many_documents_at_once_equals_one_at_a_time(tokenizer):
    texts = [text for text, _ in TEXTS.values()] + [LONG_LIST, "", "   "]
    for config in (ChunkingConfig(max_chunk_tokens=CAP), ChunkingConfig(strategy="fixed", chunk_size=7, overlap=3)):
        one_by_one = [annotate_spans(text, tokenizer, config) for text in texts]
        assert annotate_documents(texts, tokenizer, config) == one_by_one
