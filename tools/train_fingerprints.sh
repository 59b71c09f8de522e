#!/usr/bin/env bash
# Fixed short training runs of the four trainers (ViT, CLIP, VQA, captioner) and the
# sha256 of each model file, to show that a refactoring of the training code changes
# nothing a user sees. Each model is trained twice: once without interruption, and
# once killed (SIGKILL) after its first checkpoint and resumed; both must give the
# same file.
#
#   tools/train_fingerprints.sh [BUILD_DIR]          # prints "<sha256>  <model>" lines
#   tools/train_fingerprints.sh --check [BUILD_DIR]  # compares with tools/train_fingerprints.sha256
#
# The recorded sums were made on the project's machine kind (2 vCPU AMD Zen 5,
# Release build, --threads 2); oneDNN picks kernels by CPU, so another CPU may
# give other (equally valid) bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
check=0
if [ "${1:-}" = --check ]; then check=1; shift; fi
BUILD=${1:-build}
MMKIT=$PWD/$BUILD/mmkit
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

"$MMKIT" data sort-of-clevr --out "$W/soc" --train 64 --test 16 --seed 3 > /dev/null 2>&1
"$MMKIT" data soc-captions --out "$W/cap" --train 64 --test 16 --seed 3 > /dev/null 2>&1

# name | training command after `mmkit train` (without --out) | model file in the run directory
runs=(
  "vit|vit --data fashion-mnist --limit-train 512 --limit-test 128 --epochs 2 --batch 32 --dim 32 --depth 2 --heads 2 --mlp-dim 64 --patch 7 --checkpoint-every 5 --threads 2 --seed 11|model.safetensors"
  "clip|clip --data fashion-mnist --limit-train 512 --limit-test 128 --eval-images 64 --epochs 2 --batch 32 --checkpoint-every 5 --threads 2 --seed 11 --bpe-merges 200|model.safetensors"
  "vqa|vqa --data $W/soc --epochs 2 --batch 4 --checkpoint-every 5 --threads 2 --seed 11|model.safetensors"
  "caption|caption --data $W/cap --epochs 2 --batch 4 --dim 32 --depth 1 --dec-dim 32 --dec-depth 1 --mlp-dim 64 --dec-mlp-dim 64 --val-images 8 --checkpoint-every 5 --threads 2 --seed 11|model.safetensors"
)

out=$W/sums
: > "$out"
for r in "${runs[@]}"; do
  IFS='|' read -r name args file <<< "$r"
  # shellcheck disable=SC2086
  "$MMKIT" train $args --out "$W/$name" > "$W/$name.log" 2>&1 || { cat "$W/$name.log"; exit 1; }
  sum=$(sha256sum "$W/$name/$file" | cut -d' ' -f1)
  # The same run killed after its first checkpoint, then resumed.
  # shellcheck disable=SC2086
  "$MMKIT" train $args --out "$W/$name-k" > "$W/$name-k.log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null && [ ! -f "$W/$name-k/checkpoint.safetensors" ]; do sleep 0.05; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  # shellcheck disable=SC2086
  "$MMKIT" train $args --out "$W/$name-k" --resume > "$W/$name-k.log" 2>&1 || { cat "$W/$name-k.log"; exit 1; }
  sum_k=$(sha256sum "$W/$name-k/$file" | cut -d' ' -f1)
  if [ "$sum" != "$sum_k" ]; then
    echo "$name: killed and resumed run differs from the uninterrupted one ($sum_k vs $sum)" >&2
    exit 1
  fi
  echo "$sum  $name" | tee -a "$out"
done

if [ $check = 1 ]; then
  if diff -u tools/train_fingerprints.sha256 "$out"; then
    echo "all four model files are byte-identical to the recorded ones"
  else
    echo "model files differ from tools/train_fingerprints.sha256" >&2
    exit 1
  fi
fi
