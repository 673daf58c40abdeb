#!/usr/bin/env bash
# A folder of wheels for `make gpu-check WHEELS=<folder>`: what the template needs beyond torch, torchvision,
# lightning and torchmetrics, for a GPU machine that has those but cannot reach a package index.
#   bash scripts/gpu_wheels.sh [folder]     (default: wheels/; run it where pip reaches PyPI or a mirror)
# Every package here is pure Python, so the wheels install on any Python 3 and platform; the check installs
# only those that the GPU machine lacks, into a folder of its own (its torch is never touched). About 3 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-wheels}"
mkdir -p "$out"
# Our pins (requirements.txt), then what they need that a GPU image may lack; PyYAML comes with lightning.
pinned=$(grep -E '^(hydra-core|hydra-colorlog|python-dotenv|rich|pytest)==' requirements.txt)
needed="omegaconf==2.3.1 antlr4-python3-runtime==4.9.3 colorlog==6.12.0 markdown-it-py==4.3.0 mdurl==0.1.2
  pygments==2.21.0 iniconfig==2.3.1 pluggy==1.7.0 packaging==26.4"
# `pip wheel` downloads a wheel where one exists and builds one from source otherwise (antlr4 ships none).
# shellcheck disable=SC2086
"${PYTHON:-python3}" -m pip wheel --quiet --no-deps --wheel-dir "$out" $pinned $needed
ls -1 "$out"
du -sh "$out"
