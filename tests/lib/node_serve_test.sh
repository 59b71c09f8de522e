# Shared by the Node.js end-to-end tests (tests/browser/run.sh, tests/openai/run.sh), which each
# install what they need, make a work folder, start `mmkit serve` on a free loopback port and
# drive it from node. Sourced, not run; the caller has `set -euo pipefail`.
#   install_missing LABEL PKG...   apt-get install the Debian packages listed (none: nothing)
#   npm_ci_once DIR MODULE         `npm ci` in DIR unless DIR/node_modules/MODULE is there
#   make_work_dir TAG              sets $work to a fresh /tmp/mmkit_TAG_XXXXXX, removed at exit
#                                  together with the server start_serve started
#   start_serve LABEL ARGS...      `$mmkit serve ARGS... --port 0 --port-file $work/port` in the
#                                  background (log $work/serve.log); sets $server_pid and $port,
#                                  fails with the log if the server exits or never writes its port

install_missing() {
  local label="$1"
  shift
  (($#)) || return 0
  echo "$label: installing $*"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@"
}

npm_ci_once() {
  [ -d "$1/node_modules/$2" ] || (cd "$1" && npm ci --ignore-scripts --no-audit --no-fund)
}

server_pid=""
work=""
node_serve_test_cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  [ -n "$work" ] && rm -rf "$work"
}

make_work_dir() {
  work="$(mktemp -d "/tmp/mmkit_$1_XXXXXX")"
  trap node_serve_test_cleanup EXIT
}

start_serve() {
  local label="$1"
  shift
  "$mmkit" serve "$@" --port 0 --port-file "$work/port" > "$work/serve.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 400); do  # 20 s
    [ -s "$work/port" ] && break
    kill -0 "$server_pid" 2>/dev/null || { echo "$label: the server exited" >&2; cat "$work/serve.log" >&2; exit 1; }
    sleep 0.05
  done
  [ -s "$work/port" ] || { echo "$label: server did not start" >&2; cat "$work/serve.log" >&2; exit 1; }
  port="$(cat "$work/port")"
}
