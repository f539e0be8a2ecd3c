#!/usr/bin/env bash
# Build llama-cpp-python from the sdist with runtime CPU dispatch, cache the wheel, install it.
#
#   localstack/build-llama.sh [VENV]        (VENV defaults to .venv)
#
# The wheel is cached under ${SIEVE_CACHE:-$HOME/.cache/sieve}/wheels/<version>-<hash of CMAKE_ARGS>/,
# so a second run (or a CI run with that folder cached) skips the ~10 minute build.
# Every x86 CPU variant of ggml is built (GGML_CPU_ALL_VARIANTS) and the best one is picked at
# load time, so the same wheel runs on AVX-512, AVX2-only and pre-AVX machines without SIGILL.
# processors/adapters/llama.py loads the variants (llama-cpp-python does not find them by itself).
set -euo pipefail

VENV="${1:-.venv}"
LLAMA_VERSION="${LLAMA_VERSION:-0.3.36}"
CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DCMAKE_INSTALL_BINDIR=llama_cpp/lib"
CACHE_ROOT="${SIEVE_CACHE:-$HOME/.cache/sieve}"
ARGS_HASH="$(printf '%s' "$CMAKE_ARGS" | sha256sum | cut -c1-12)"
WHEEL_DIR="$CACHE_ROOT/wheels/llama-cpp-python-$LLAMA_VERSION-$ARGS_HASH"
PIP="$VENV/bin/pip"
PY="$VENV/bin/python"

if [[ ! -x "$PY" ]]; then
  echo "build-llama: no python at $PY; create the venv first (python3 -m venv $VENV)" >&2
  exit 2
fi

shopt -s nullglob
wheels=("$WHEEL_DIR"/llama_cpp_python-"$LLAMA_VERSION"-*.whl)
if (( ${#wheels[@]} == 0 )); then
  echo "build-llama: building llama-cpp-python==$LLAMA_VERSION (CMAKE_ARGS hash $ARGS_HASH), about 10 min on 2 cores"
  mkdir -p "$WHEEL_DIR"
  tmp="$(mktemp -d "$WHEEL_DIR/.build.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  start=$SECONDS
  # --no-cache-dir: pip's own wheel cache does not key on CMAKE_ARGS.
  CMAKE_ARGS="$CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}" \
    "$PIP" wheel --no-cache-dir --no-deps --no-binary llama-cpp-python \
    -w "$tmp" "llama-cpp-python==$LLAMA_VERSION"
  built=("$tmp"/llama_cpp_python-"$LLAMA_VERSION"-*.whl)
  if (( ${#built[@]} != 1 )); then
    echo "build-llama: expected one wheel in $tmp, found ${#built[@]}" >&2
    exit 1
  fi
  mv "${built[0]}" "$WHEEL_DIR/"   # same filesystem: the cached wheel appears whole or not at all
  printf '%s\n' "$CMAKE_ARGS" > "$WHEEL_DIR/CMAKE_ARGS"
  echo "build-llama: built in $((SECONDS - start)) s"
  wheels=("$WHEEL_DIR"/llama_cpp_python-"$LLAMA_VERSION"-*.whl)
else
  echo "build-llama: using cached wheel ${wheels[0]}"
fi

# Runtime deps of llama-cpp-python (numpy, typing-extensions, diskcache, jinja2) come from PyPI.
"$PIP" install --force-reinstall --no-deps "${wheels[0]}"
"$PIP" install "numpy>=1.20.0" "typing-extensions>=4.5.0" "diskcache>=5.6.1" "jinja2>=2.11.3"
"$PY" -c "import llama_cpp, pathlib; lib = pathlib.Path(llama_cpp.__file__).parent / 'lib'; \
n = len(list(lib.glob('libggml-cpu-*.so'))); print(f'build-llama: llama_cpp {llama_cpp.__version__}, {n} CPU variants in {lib}'); \
raise SystemExit(0 if n else 1)"
