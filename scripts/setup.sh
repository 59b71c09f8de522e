#!/usr/bin/env bash
# Installs what is missing (Debian 12 packages only) and builds mmkit (Release)
# into build/. Safe to re-run: apt-get and cmake skip what is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake pkg-config ninja-build
  libdnnl-dev libopenblas-openmp-dev      # GEMM backends (oneDNN is the default)
  libpng-dev libjpeg-dev zlib1g-dev       # image decode/encode, gzip IDX files
  nlohmann-json3-dev libcli11-dev         # JSON, command line
  libcpp-httplib-dev libfaiss-dev         # mmkit serve (HTTP), image search index
  libgtest-dev curl                       # tests (curl: the README test runs its curl lines)
  libopenmpi-dev openmpi-bin              # data-parallel training (mpirun -np N mmkit train ...)
  dataset-fashion-mnist                   # the main job's data set
  libsentencepiece-dev                    # SigLIP's SentencePiece tokenizer
  pybind11-dev python3-dev python3-numpy  # the Python module (python/, `import mmkit`)
  python3-pytest python3-pil              # its tests (PIL images as inputs)
  python3-venv python3-pip python3-setuptools python3-wheel  # `pip install --no-build-isolation .` (README)
)
# MMKIT_BENCH=1 scripts/setup.sh: also what bench/clip_bench's peers need (PyTorch, Node.js + npm for
# ONNX Runtime, GNU time for peak RSS); onnxruntime-node comes from npm (ships its linux-x64 binding,
# so --ignore-scripts is enough).
if [ "${MMKIT_BENCH:-0}" = 1 ]; then
  PACKAGES+=(python3-torch python3-numpy python3-pil nodejs npm time)
fi
# MMKIT_FIXTURES=1 scripts/setup.sh: what the fixture generators in tools/fixtures/ need
# (gen_siglip_fixture.py trains a SentencePiece model and edits it as transformers does).
if [ "${MMKIT_FIXTURES:-0}" = 1 ]; then
  PACKAGES+=(python3-torch python3-numpy python3-pil python3-sentencepiece python3-protobuf)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ "${MMKIT_BENCH:-0}" = 1 ] && [ ! -d bench/ort/node_modules/onnxruntime-node ]; then
  (cd bench/ort && npm ci --ignore-scripts --no-audit --no-fund)
fi

# Ninja on a new build folder: it compiles a layer's objects while the layers below still link (the
# Makefile generator waits target by target), which keeps both cores busy. An existing build/ keeps
# the generator it was made with (CMake refuses to switch).
GEN=()
[ -f build/CMakeCache.txt ] || ! command -v ninja > /dev/null || GEN=(-G Ninja)
cmake "${GEN[@]}" -S . -B build -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build -j"$(nproc)"
