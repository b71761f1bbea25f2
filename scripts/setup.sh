#!/usr/bin/env bash
# Set up voiceagent on a fresh machine: system packages (apt), a virtual environment in .venv,
# and voiceagent with the offline embedded stack (Whisper, llama.cpp server + Qwen, Piper).
#   bash scripts/setup.sh            # everything (demo + tests)
#   bash scripts/setup.sh --light    # no offline models: cloud providers and the model-free tests only
set -euo pipefail
cd "$(dirname "$0")/.."
light=0
[ "${1:-}" = "--light" ] && light=1
PY=${PYTHON:-python3}

# chromium + chromium-driver: the softphone page's browser tests (headless, driven by Playwright
# with Debian's binary; no browser download). postgresql: the server the call-store tests run
# against (scripts/test_postgres.sh).
apt_pkgs=(espeak-ng asterisk-core-sounds-en-wav asterisk-core-sounds-en chromium chromium-driver
  postgresql)
missing=()
for p in "${apt_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> apt: installing ${missing[*]} (test speech clips, a fallback voice, a test browser, a test database)"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "==> note: apt packages ${missing[*]} are missing (run as root to install); tests that need them skip"
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $($PY --version)"
  $PY -m venv .venv
fi
.venv/bin/python -m pip install -q -U pip wheel setuptools
if [ $light = 1 ]; then
  echo "==> installing voiceagent (no offline models)"
  .venv/bin/python -m pip install -q -e '.[dev,eval]'
else
  if ! .venv/bin/python -c 'import llama_cpp' 2>/dev/null; then
    echo "==> installing voiceagent with the offline stack."
    echo "    llama-cpp-python compiles from source: about 5 minutes on 2 cores the first time (cached after)."
  fi
  CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}" \
    .venv/bin/python -m pip install -q -e '.[offline,dev,eval]'
fi
.venv/bin/python -m pip check >/dev/null || .venv/bin/python -m pip check
echo "==> ready: .venv/bin/voiceagent --help"
