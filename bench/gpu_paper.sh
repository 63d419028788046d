#!/usr/bin/env bash
# The `paper` profile on one GPU: FER2013 folder -> manifest -> teachers, EADD student, adversarial
# fine-tuning -> bench/results/gpu_paper.json (per-run numbers, wall time, robust curves, latency).
#
#   bash bench/gpu_paper.sh [FER2013_DIR] [OUT_DIR]        (defaults: ../shared/data/fer2013, runs/gpu_paper)
#
# Installs nothing: run it in the environment of the README's install command. Budget: 10 minutes on
# one large GPU; GPU_PAPER_TIMEOUT (seconds, default 570) stops training with a checkpoint before
# that (rerun the script to resume), and GPU_PAPER_EPOCHS=T,S,A overrides the profile's epochs.
# The same script runs the ablation table on a GPU: GPU_PAPER_PROFILE (default paper),
# GPU_PAPER_MODES (default eadd) and GPU_PAPER_SEEDS (default 0; seeds after the first reuse the
# first seed's teachers), e.g. the `cpu` profile's ce/kd/eadd x 3 seeds:
#   GPU_PAPER_PROFILE=cpu GPU_PAPER_MODES=ce,kd,eadd GPU_PAPER_SEEDS=0,1,2 \
#   GPU_PAPER_RESULTS=bench/results/gpu_seeds.json bash bench/gpu_paper.sh
# tests/test_bench_gpu_paper.py runs it on CPU (GPU_PAPER_DEVICE=cpu, GPU_PAPER_EPOCHS=1,1,1, a tiny tree);
# GPU_PAPER_LIMIT=N keeps N images per class and split of a real tree.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/fer2013}
out=${2:-runs/gpu_paper}
device=${GPU_PAPER_DEVICE:-cuda}
results=${GPU_PAPER_RESULTS:-bench/results/gpu_paper.json}
mkdir -p "$out"
if [ ! -s "$out/raw.jsonl" ]; then
  python bench/make_manifest.py "$data" ${GPU_PAPER_LIMIT:+--limit "$GPU_PAPER_LIMIT"} > "$out/raw.jsonl"
fi
extra=()
[ -n "${GPU_PAPER_EPOCHS:-}" ] && extra+=(--epochs "$GPU_PAPER_EPOCHS")
[ -n "${GPU_PAPER_OVERRIDES:-}" ] && read -r -a more <<< "$GPU_PAPER_OVERRIDES" && extra+=("${more[@]}")
votes=()
[ -f "$data/../ferplus-val/votes.csv" ] && votes=(--votes "$data/../ferplus-val/votes.csv")
# training checkpoints on SIGTERM, so a timeout leaves a resumable run folder
timeout --signal TERM "${GPU_PAPER_TIMEOUT:-570}" \
  python bench/training_seeds.py --manifest "$out/raw.jsonl" --modes "${GPU_PAPER_MODES:-eadd}" \
    --seeds "${GPU_PAPER_SEEDS:-0}" --same-teachers --profile "${GPU_PAPER_PROFILE:-paper}" \
    --device "$device" --out "$out/runs" --results "$results" "${votes[@]}" --training-args "${extra[*]:-}"
echo "wrote $results"
