#!/bin/bash
# Training queue: each step resumes if interrupted (re-run this script).
cd /work/main && . .venv/bin/activate
W=../shared/weights/mobilenet_v2_1.0_224_imagenet_no_top.weights.h5
t() { name=$1; shift; [ -f runs/$name/config.json ] && { echo "skip $name"; return; }; echo "=== $name $(date)"; python -m training train --out runs/$name "$@" > runs/logs/$name.log 2>&1; echo "=== $name exit $? $(date)"; }
mkdir -p runs/logs
t mobilenetv2-binary --arch mobilenetv2 --splits runs/splits/binary.json --weights $W
t mobilenetv2-tumor-type --arch mobilenetv2 --splits runs/splits/tumor-type.json --weights $W
t baseline-binary --arch baseline --splits runs/splits/binary.json
t baseline-tumor-type --arch baseline --splits runs/splits/tumor-type.json
t cnn-binary --arch cnn --splits runs/splits/binary.json
t cnn-tumor-type --arch cnn --splits runs/splits/tumor-type.json
t mobilenetv2-cross-to-br35h --arch mobilenetv2 --splits runs/splits/cross-to-br35h.json --weights $W
t mobilenetv2-cross-to-btm --arch mobilenetv2 --splits runs/splits/cross-to-btm.json --weights $W
t cnn-cross-to-br35h --arch cnn --splits runs/splits/cross-to-br35h.json
