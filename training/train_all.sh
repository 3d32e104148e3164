#!/usr/bin/env bash
# Reproduce every published run: splits, then each (arch x task) training, in order of importance.
# Each step is skipped when its run already finished, and resumes from its last epoch when it
# was interrupted: re-run this script after any interruption. Progress: runs/logs/NAME.log.
#   nohup training/train_all.sh > runs/train_all.log 2>&1 &
set -u
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
W=${WEIGHTS:-../shared/weights/mobilenet_v2_1.0_224_imagenet_no_top.weights.h5}
mkdir -p runs/logs runs/splits

split() { out=runs/splits/$1.json; shift; [ -f "$out" ] || python -m training split "$@" --out "$out"; }
split binary $DATA/brain-tumor-mri $DATA/br35h --task binary
split tumor-type $DATA/brain-tumor-mri --task tumor-type
split cross-to-br35h $DATA/brain-tumor-mri $DATA/br35h --task binary --holdout br35h
split cross-to-btm $DATA/brain-tumor-mri $DATA/br35h --task binary --holdout brain-tumor-mri

train() {
  name=$1; shift
  [ -f runs/$name/config.json ] && { echo "done already: $name"; return; }
  echo "=== $name $(date -u +%FT%TZ)"
  python -m training train --out runs/$name "$@" > runs/logs/$name.log 2>&1
  echo "=== $name exit $? $(date -u +%FT%TZ)"
}
train mobilenetv2-binary --arch mobilenetv2 --splits runs/splits/binary.json --weights $W
train mobilenetv2-tumor-type --arch mobilenetv2 --splits runs/splits/tumor-type.json --weights $W
train baseline-binary --arch baseline --splits runs/splits/binary.json
train baseline-tumor-type --arch baseline --splits runs/splits/tumor-type.json
train cnn-binary --arch cnn --splits runs/splits/binary.json
train cnn-tumor-type --arch cnn --splits runs/splits/tumor-type.json
train mobilenetv2-cross-to-br35h --arch mobilenetv2 --splits runs/splits/cross-to-br35h.json --weights $W
train mobilenetv2-cross-to-btm --arch mobilenetv2 --splits runs/splits/cross-to-btm.json --weights $W
train cnn-cross-to-br35h --arch cnn --splits runs/splits/cross-to-br35h.json
