#!/usr/bin/env bash
# One-step setup on a fresh Debian/Ubuntu machine: the espeak-ng system package and chromium with
# its chromedriver (the playground's browser tests drive them), then this project with its test
# and Japanese extras into the current Python (>= 3.11; a virtual environment is best), every
# Python package at the version constraints.txt locks.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if ! command -v espeak-ng >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq espeak-ng chromium chromium-driver >/dev/null
fi

PYTHON="${PYTHON:-python3}"
"$PYTHON" -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev,ja]"
# A binary mismatch (e.g. a torchaudio built for another torch) must stop the setup, not the first request.
"$PYTHON" -c 'import torch, torchaudio, av, ray.serve, phonemizer' \
  || { echo "setup: the installed packages do not load together (see above)" >&2; exit 1; }
echo "zonos-serve is set up: espeak-ng $(espeak-ng --version | awk '{print $4}'), $("$PYTHON" -c 'import torch, torchaudio; print("torch", torch.__version__, "torchaudio", torchaudio.__version__)')"
