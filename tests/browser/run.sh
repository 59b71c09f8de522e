#!/usr/bin/env bash
# Browser end-to-end test (run by .ci/run after ctest): installs Chromium and
# the node dependencies if missing, generates a tiny seeded CLIP, a folder
# of images and tiny VQA and caption models (a short training run on generated
# Sort-of-CLEVR), builds an index, asks the CLI (`mmkit vqa`, `mmkit caption`)
# what the page should show, starts `mmkit serve` on a free loopback port,
# runs e2e.mjs against it and stops the server.
#   tests/browser/run.sh [BUILD_DIR] [SCREENSHOT.png]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${1:-$root/build}"
shot="${2:-}"
mmkit="$build/mmkit"
[ -x "$mmkit" ] || { echo "browser test: $mmkit not built" >&2; exit 1; }

source "$root/tests/lib/node_serve_test.sh"
need=()
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
[ -x /usr/bin/chromium ] || need+=(chromium)
install_missing "browser test" ${need[@]+"${need[@]}"}
npm_ci_once "$here" playwright-core
make_work_dir browser

export MMKIT_PROGRESS=plain
"$mmkit" init-clip --preset tiny --seed 0 --out "$work/clip.safetensors" > /dev/null
"$mmkit" data shapes --n 60 --size 64 --out "$work/images" > /dev/null
# Tiny VQA and caption models on generated Sort-of-CLEVR: one short epoch on a few scenes for the
# test (answers and captions are noise; the test compares the page with the CLI); ~25 s each of
# training on 400 scenes when a screenshot is asked for, so the docs show words (still weak models).
if [ -n "$shot" ]; then
  scenes=400 vqa_args=(--epochs 4 --batch 16 --dim 32 --mlp-dim 64 --stem-dim 16)
  cap_args=(--epochs 10 --batch 32 --lr 3e-3 --dim 48 --heads 4 --mlp-dim 96 --dec-dim 48 --dec-heads 4 --dec-mlp-dim 96)
else
  scenes=8 vqa_args=(--epochs 1 --batch 4 --dim 16 --mlp-dim 32 --stem-dim 8)
  cap_args=(--epochs 1 --batch 8 --dim 32 --heads 2 --mlp-dim 64 --dec-dim 32 --dec-heads 2 --dec-mlp-dim 64)
fi
quiet() {  # runs "$@" with its output in models.log, shown if it fails
  "$@" >> "$work/models.log" 2>&1 || { echo "browser test: failed: $*" >&2; tail -20 "$work/models.log" >&2; exit 1; }
}
quiet "$mmkit" data sort-of-clevr --out "$work/soc" --train "$scenes" --test 2 --seed 3
quiet "$mmkit" train vqa --data "$work/soc" --out "$work/vqa" --heads 2 --fusion-layers 1 "${vqa_args[@]}"
quiet "$mmkit" data soc-captions --out "$work/capdata" --train "$scenes" --test 2 --seed 3
quiet "$mmkit" train caption --data "$work/capdata" --out "$work/cap" --depth 1 --dec-depth 1 --val-images 2 \
  "${cap_args[@]}"
# The uploaded image: a scene the first training question asks about, also in the index.
image="$work/images/train_00000.png"
cp "$work/soc/images/train_00000.png" "$image"
json_field() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s.split("\n")[0]);console.log(process.argv[1].split(".").reduce((o,k)=>o[k],j))})' "$1"; }
question="$(json_field question < "$work/soc/train.jsonl")"
# What the CLI says for the same image: the page must show the same.
answer="$("$mmkit" vqa --model "$work/vqa" --image "$image" --question "$question" --json | json_field answer)"
caption="$("$mmkit" caption --model "$work/cap" --beam 3 --json "$image" | json_field 0.caption)"
"$mmkit" index build --model "$work/clip.safetensors" --images "$work/images" --out "$work/index" > /dev/null
start_serve "browser test" --model "$work/clip.safetensors" --index "$work/index" --live-index "$work/live" \
  --vqa "$work/vqa" --caption "$work/cap" --host 127.0.0.1
args=(--url "http://127.0.0.1:$port" --image "$image" --question "$question" --expect-answer "$answer"
      --beam 3 --expect-caption "$caption")
[ -n "$shot" ] && args+=(--screenshot "$shot")
node "$here/e2e.mjs" "${args[@]}"
