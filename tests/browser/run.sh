#!/usr/bin/env bash
# Browser end-to-end test (run by .ci/run after ctest): installs Chromium and
# the node dependencies if missing, generates a tiny seeded CLIP and a folder
# of images, builds an index, starts `mmkit serve` on a free loopback port,
# runs e2e.mjs against it and stops the server.
#   tests/browser/run.sh [BUILD_DIR] [SCREENSHOT.png]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${1:-$root/build}"
shot="${2:-}"
mmkit="$build/mmkit"
[ -x "$mmkit" ] || { echo "browser test: $mmkit not built" >&2; exit 1; }

need=()
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
[ -x /usr/bin/chromium ] || need+=(chromium)
if ((${#need[@]})); then
  echo "browser test: installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
if [ ! -d "$here/node_modules/playwright-core" ]; then
  (cd "$here" && npm ci --ignore-scripts --no-audit --no-fund)
fi

work="$(mktemp -d /tmp/mmkit_browser_XXXXXX)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

export MMKIT_PROGRESS=plain
"$mmkit" init-clip --preset tiny --seed 0 --out "$work/clip.safetensors" > /dev/null
"$mmkit" data shapes --n 60 --size 64 --out "$work/images" > /dev/null
"$mmkit" index build --model "$work/clip.safetensors" --images "$work/images" --out "$work/index" > /dev/null
"$mmkit" serve --model "$work/clip.safetensors" --index "$work/index" --host 127.0.0.1 --port 0 \
  --port-file "$work/port" > "$work/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 200); do
  [ -s "$work/port" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
  sleep 0.05
done
[ -s "$work/port" ] || { echo "browser test: server did not start" >&2; cat "$work/serve.log" >&2; exit 1; }
port="$(cat "$work/port")"
args=(--url "http://127.0.0.1:$port" --image "$work/images/shape_000017.png")
[ -n "$shot" ] && args+=(--screenshot "$shot")
node "$here/e2e.mjs" "${args[@]}"
