#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang + ASan + UBSan and runs each for N seconds
# (default 60), one process per core at a time, nice'd. Fails if any target crashes, leaks, hangs (> 30 s on one
# input), exceeds 2 GB RSS, or lets an exception other than mmkit::Error escape.
#   scripts/fuzz.sh [seconds]                 all targets
#   FUZZ_TARGETS="image config" scripts/fuzz.sh 600
# Grown corpora stay in build-fuzz/corpus/<target> (fuzz/corpus/<target> holds the committed seeds),
# logs in build-fuzz/logs/, crashing inputs in build-fuzz/artifacts/ (reproduce:
# build-fuzz/fuzz/fuzz_<target> <file>).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-60}"
TARGETS="${FUZZ_TARGETS:-safetensors config image tokenizer jsonl http_request}"

PACKAGES=(clang libclang-rt-14-dev libomp-dev)  # clang 14, its libFuzzer/sanitizer runtimes, OpenMP
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "fuzz: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

GEN=()
[ -f build-fuzz/CMakeCache.txt ] || ! command -v ninja > /dev/null || GEN=(-G Ninja)
CC=clang CXX=clang++ cmake "${GEN[@]}" -S . -B build-fuzz -DMMKIT_FUZZ=ON -DMMKIT_BUILD_TESTS=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build build-fuzz --target fuzz_all -j"$(nproc)"

mkdir -p build-fuzz/logs build-fuzz/artifacts
# One libFuzzer process per core (FUZZ_JOBS, default nproc), each target in its own process: the
# targets are independent, so on CI's two cores this halves the stage's wall time for the same
# seconds of fuzzing per target.
JOBS="${FUZZ_JOBS:-$(nproc)}"

run_target() {  # run_target T: fuzzes T, writes build-fuzz/logs/T.log and T.rc
  local t="$1" bin="build-fuzz/fuzz/fuzz_$1" corpus="build-fuzz/corpus/$1" max_len=4096 rc
  mkdir -p "$corpus"
  [ "$t" = image ] && max_len=65536
  [ "$t" = http_request ] && max_len=16384  # multipart bodies with a small image
  set +e
  nice -n 10 "$bin" "$corpus" "fuzz/corpus/$t" -max_total_time="$SECONDS_PER_TARGET" -timeout=30 \
    -rss_limit_mb=2048 -max_len="$max_len" -print_final_stats=1 \
    -artifact_prefix="build-fuzz/artifacts/$t-" > "build-fuzz/logs/$t.log" 2>&1
  rc=$?
  set -e
  echo "$rc" > "build-fuzz/logs/$t.rc"
}

running=0
for t in $TARGETS; do
  echo "fuzz: $t for ${SECONDS_PER_TARGET}s (log build-fuzz/logs/$t.log)"
  rm -f "build-fuzz/logs/$t.rc"
  run_target "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then wait -n || true; running=$((running - 1)); fi
done
wait || true

failed=()
for t in $TARGETS; do
  log="build-fuzz/logs/$t.log"
  rc=$(cat "build-fuzz/logs/$t.rc" 2>/dev/null || echo "missing")
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  corp=$(grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' "$log" | tail -1 || true)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
  echo "fuzz: $t exit=$rc execs=${execs:-?} ${cov:-} ${corp:-}"
  if [ "$rc" != 0 ]; then
    failed+=("$t")
    grep -E "ERROR|SUMMARY|runtime error|invariant|uncaught|Test unit written" "$log" | head -20 || true
  fi
done
total=$(echo $TARGETS | wc -w)
echo "fuzz: $((total - ${#failed[@]})) passed, ${#failed[@]} failed"
if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]} (inputs in build-fuzz/artifacts/)"
  exit 1
fi
