#!/usr/bin/env bash
# Runs cmd/mnist once per line of a file of flag sets (one run a line, '#'
# lines skipped), each into OUT/<n>, and prints a Markdown table row per run:
# the command, validation and test accuracy of every feature set (test
# accuracy is shown, never used to choose), C, distinct kernels, the epoch
# curve when there is one, EM time and wall time.
#
#   scripts/rows.sh FLAGFILE OUT
#
# Every run adds -pixels=false -labels "" (nothing in the tables needs
# them) and trains on all 60 000 images; -validation keeps its default
# (the last 10 000 training images).
set -euo pipefail
cd "$(dirname "$0")/.."
file=$1 out=$2
mkdir -p "$out"
go build -o "$out/mnist" ./cmd/mnist
n=0
while IFS= read -r flags; do
  [[ -z "$flags" || "$flags" == \#* ]] && continue
  n=$((n+1))
  dir="$out/$n"
  start=$(date +%s)
  # shellcheck disable=SC2086
  eval "\"$out/mnist\" $flags -pixels=false -labels '' -quiet -out \"$dir\"" || { echo "| \`go run ./cmd/mnist $flags\` | failed |"; continue; }
  wall=$(( $(date +%s) - start ))
  scripts/row.py "$dir" "$flags" "$wall"
done < "$file"
