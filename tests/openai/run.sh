#!/usr/bin/env bash
# The official OpenAI client against `mmkit serve` (run by .ci/run; ~10 s on a built tree):
# installs the pinned npm `openai` if missing, makes a tiny seeded CLIP and two images, asks
# `mmkit embed --json` for their embeddings, starts `mmkit serve` with an API key over HTTPS
# (a certificate made here), and runs client.mjs, which must get the same embeddings.
#   tests/openai/run.sh [BUILD_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${1:-$root/build}"
mmkit="$build/mmkit"
[ -x "$mmkit" ] || { echo "openai client test: $mmkit not built" >&2; exit 1; }

source "$root/tests/lib/node_serve_test.sh"
need=()
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
command -v openssl >/dev/null || need+=(openssl)
install_missing "openai client test" ${need[@]+"${need[@]}"}
npm_ci_once "$here" openai
make_work_dir openai

export MMKIT_PROGRESS=plain
"$mmkit" init-clip --preset tiny --seed 0 --out "$work/clip.safetensors" > /dev/null
"$mmkit" data shapes --n 2 --size 64 --out "$work/images" > /dev/null
images=("$work"/images/*.png)
texts=("a photo of a red circle" "two blue squares" "a green triangle on white")
embed_args=()
for t in "${texts[@]}"; do embed_args+=(--text "$t"); done
for i in "${images[@]}"; do embed_args+=(--image "$i"); done
"$mmkit" embed --model "$work/clip.safetensors" "${embed_args[@]}" --json > "$work/embed.json"
# One text and one image, each a batch of one as in the server's answer to one such request (a
# GEMM's last bits depend on the batch it runs in).
"$mmkit" embed --model "$work/clip.safetensors" --text "${texts[0]}" --image "${images[0]}" --json > "$work/embed1.json"
printf '%s\n' "${texts[@]}" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.stringify(s.trim().split("\n"))))' > "$work/texts.json"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$work/key.pem" -out "$work/cert.pem" 2> /dev/null
key="sk-mmkit-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
printf '# the test key\n%s\n' "$key" > "$work/keys.txt"
start_serve "openai client test" --model "tiny=$work/clip.safetensors" --api-key-file "$work/keys.txt" \
  --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" --host 127.0.0.1
NODE_EXTRA_CA_CERTS="$work/cert.pem" node "$here/client.mjs" --url "https://127.0.0.1:$port/v1" --key "$key" \
  --model tiny --expect "$work/embed.json" --expect-one "$work/embed1.json" --texts "$work/texts.json" --image "${images[0]}" --image "${images[1]}"
if grep -q -- "$key" "$work/serve.log"; then echo "openai client test: the server log holds the key" >&2; exit 1; fi
