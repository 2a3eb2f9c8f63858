"""Write all-MiniLM-L6-v2 re-expressed as a DistilBERT-architecture checkpoint (real weights, offline).

.venv/bin/python benchmarks/minilm_as_distilbert.py out/minilm-distilbert
.venv/bin/pocketbert run out/minilm-distilbert -o out/distil-real --budget 'cosine>=0.997'
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from pocketbert.loading import load_model
from pocketbert.remap import bert_as_distilbert


def main(target: Path) -> None:
    loaded = load_model(None)  # the embedded all-MiniLM-L6-v2
    distil = bert_as_distilbert(loaded.model)
    enc = loaded.tokenizer(["A check that both architectures agree.", "Short"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        a = loaded.model(**{k: enc[k] for k in ("input_ids", "attention_mask")}).last_hidden_state
        b = distil(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
    valid = enc["attention_mask"].bool()
    print(f"max |BERT - DistilBERT| on real tokens: {(a - b)[valid].abs().max().item():.2e}")
    distil.save_pretrained(target)
    loaded.tokenizer.save_pretrained(target)
    print(f"wrote {target}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "out/minilm-distilbert"))
