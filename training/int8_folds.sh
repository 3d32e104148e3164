#!/usr/bin/env bash
# Issue 31: int8 checked on every held-out fold's own model before it may become the default.
# The shipped file's recipe fold by fold (round3.sh's v4 candidate, then RESULTS.md's v4n epoch with the
# cold-peak map term), each fold's model exported at the epoch and operating point the nested rule chose
# for it without it (runs/finetune-v4n/nested.json), then quantized by export.int8 on the fold's training
# part and compared on the source it never saw. Every step resumable: re-run after an interruption; a fold
# whose report exists is skipped. The reports (runs/int8-folds/FOLD.json) are small and committed, so
# folds may be done over several sessions; the weights and files are not (runs/.cache, ignored).
#   nohup training/int8_folds.sh [FOLD ...] > runs/logs/int8-folds.log 2>&1 &
# The front cache must exist first (round3.sh's `training front` step, ~25 min here).
set -euo pipefail
W=${WEIGHTS:-../shared/weights/mobilenet_v2_1.0_224_imagenet_no_top.weights.h5}
CAT=${CATALOGUE:-runs/splits/multisource-v4.json}
CACHE=${CACHE:-runs/.cache/front-v4}
WORK=${WORK:-runs/.cache/refold}
REPORTS=${REPORTS:-runs/int8-folds}
FOLDS=("$@")
[ ${#FOLDS[@]} -gt 0 ] || FOLDS=(radiopaedia sartaj lgg-t1-out br35h lgg-DU figshare lgg-HT lgg-CS lgg-t1c-out)
for F in "${FOLDS[@]}"; do
  [ -f "$REPORTS/$F.json" ] && { echo "[$F] reported already"; continue; }
  echo "[$F] $(date -u +%H:%M) v4 candidate (1 + 9 epochs, average of 6-10)"
  python -m training finetune --catalogue "$CAT" --front "$CACHE" --weights "$W" --out "$WORK/v4" \
    --epochs 10 --probe-epochs 1 --frozen-run none --swa --swa-from 6 --folds "$F"
  echo "[$F] $(date -u +%H:%M) v4n: one epoch with the cold-peak map term"
  python -m training finetune --catalogue "$CAT" --front "$CACHE" --weights "$W" --out "$WORK/v4n" \
    --epochs 1 --frozen-run none --init "$WORK/v4" swa --negative-peak 1.0 --folds "$F"
  echo "[$F] $(date -u +%H:%M) export and int8"
  python -m export fold "$WORK/v4n" --fold "$F" --choice runs/finetune-v4n/nested.json --out "$WORK/$F.onnx"
  python -m export int8 "$WORK/$F.onnx" --fold "$F" --catalogue "$CAT" --out "$WORK/$F-int8.onnx" \
    --report "$WORK/$F.json" || true  # a failed check is a figure too: its report is kept
  mkdir -p "$REPORTS"
  python - "$WORK" "$F" "$REPORTS" <<'EOF'
import json, sys
from pathlib import Path
work, fold, reports = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
figures = json.loads((work / f"{fold}.json").read_text())
# the retrained fold beside the committed one: the reproduction the figures rest on
mine = json.loads((work / "v4n" / fold / "metrics-1.json").read_text())["tumor_detection"]
committed = json.loads(Path(f"runs/finetune-v4n/{fold}/metrics-1.json").read_text())["tumor_detection"]
figures["reproduction"] = {"retrained": mine, "committed": committed}
(reports / f"{fold}.json").write_text(json.dumps(figures, indent=1))
EOF
  echo "[$F] $(date -u +%H:%M) reported"
done
python -m export int8-folds "$REPORTS" --catalogue "$CAT" || true  # the table, and whether int8 may become the default
