#!/usr/bin/env bash
# The main job on what the repository ships: a small Qwen2-VL-architecture checkpoint with
# deterministic RANDOM weights (glimpse init-random), the example picture, `glimpse run` with
# FastV, and `glimpse inspect` writing attention heatmaps. The answer is noise, because the
# weights are random; the point is the whole path (processor, vision tower, M-RoPE, pruning,
# generation, probes, heatmaps) running end to end. For real answers, point --model at a
# Qwen2-VL or Qwen2.5-VL checkpoint folder (see README.md).
#
#   scripts/demo.sh [OUT_DIR]     (default: out/demo; run scripts/setup.sh first)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
glimpse="$root/build/release/bin/glimpse"
out=${1:-"$root/out/demo"}
image="$root/examples/images/house.png"
mkdir -p "$out"

echo "== init-random: a Qwen2-VL-architecture checkpoint with random weights (seed 0)"
"$glimpse" init-random --config "$root/examples/configs/tiny-qwen2-vl.json" --out "$out/model" \
  --seed 0

echo "== run: the example picture with FastV (layer 2, half the visual tokens dropped)"
"$glimpse" run --model "$out/model" --image "$image" --prompt "What is in the picture?" \
  --pipeline '{"methods": [{"type": "fastv", "layer": 2, "ratio": 0.5}]}' \
  --max-new-tokens 8 --report "$out/report.json" --json
echo "   (one JSON line: answer, token ids, timings and the FastV report, also in $out/report.json)"

echo "== inspect: attention of the last prompt token to the picture, per layer and head"
"$glimpse" inspect --model "$out/model" --image "$image" --prompt "Where is the red ball?" \
  --out "$out/inspect"
echo "== done: heatmaps in $out/inspect (random weights: the maps show the machinery, not meaning)"
