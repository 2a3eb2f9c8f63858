#!/usr/bin/env bash
# Reproduce the int8 goal table: random DistilBERT artifacts in every format against random BERT-base,
# batch 1, 2 threads, one interleaved run, then gate the ratios with benchmarks/int8-goals.toml.
#   bash benchmarks/int8_goals.sh [OUT]      (uses .venv/bin/pocketbert; about 8 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
PB=${PB:-.venv/bin/pocketbert}
OUT=${1:-out/int8-goals}
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
"$PB" run random:distilbert-base-uncased -o "$OUT" --baseline random:bert-base-uncased --no-bench --force
"$PB" bench "$OUT" --baseline random:bert-base-uncased --seq 16,32,64,128,256 --threads 2 --repeats 20 \
  --check benchmarks/int8-goals.toml
