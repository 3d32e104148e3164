#!/usr/bin/env bash
# Generalisation round 2 (issue 24), every step resumable: re-run this script after an interruption.
# Progress: runs/logs/round2.log. Order: the candidate first (fine-tuning + every view family, 5
# epochs, each scored on the held-out folds), then the ablation arms (views with a frozen backbone;
# fine-tuning on images as read), 3 epochs each.
set -euo pipefail
W=${WEIGHTS:-../shared/weights/mobilenet_v2_1.0_224_imagenet_no_top.weights.h5}
while pgrep -f "python -m training (front|finetune)" >/dev/null; do sleep 30; done  # a run already going
python -m training front --weights "$W"
python -m training finetune --weights "$W" --out runs/finetune --epochs 5
python -m training finetune --weights "$W" --out runs/finetune-frozen --freeze
python -m training finetune --weights "$W" --out runs/finetune-plain --families "as read"
