#!/usr/bin/env bash
# Every sequence (issue 28), every step resumable: re-run this script after an interruption.
# The v4 catalogue (lgg-t1 and radiopaedia added), its front cache, then every fold fine-tuned from a
# fresh head (1 epoch of linear probe, 9 of fine-tuning), each epoch scored on the fold's held-out part,
# and the average of epochs 6-10's weights scored as `swa` (the candidate the nested rule chooses).
#   nohup training/round3.sh > runs/logs/round3.log 2>&1 &
# CACHE (default runs/.cache/front-v4, ~4.5 GB) and OUT (default runs/finetune-v4) may point elsewhere.
set -euo pipefail
D=${DATA:-../shared/data}
W=${WEIGHTS:-../shared/weights/mobilenet_v2_1.0_224_imagenet_no_top.weights.h5}
CAT=${CATALOGUE:-runs/splits/multisource-v4.json}
CACHE=${CACHE:-runs/.cache/front-v4}
OUT=${OUT:-runs/finetune-v4}
[ -f "$CAT" ] || python -m training catalogue $D/brain-tumor-mri $D/br35h $D/lgg $D/lgg-t1 $D/figshare $D/radiopaedia --out "$CAT"
python -m training front --catalogue "$CAT" --weights "$W" --out "$CACHE"
python -m training finetune --catalogue "$CAT" --front "$CACHE" --weights "$W" --out "$OUT" \
  --epochs 10 --probe-epochs 1 --frozen-run none --swa --swa-from 6
