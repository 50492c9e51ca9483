#!/usr/bin/env python3
"""Prints the Markdown table row of one cmd/mnist run: the command, the
validation accuracy of every feature set (with C when it was chosen), the
epoch curve, the test accuracy of every feature set (shown, never used to
choose), distinct kernels per layer, EM time and wall time.

    scripts/row.py DIR FLAGS [WALL_SECONDS]
"""
import json
import sys

d, flags = sys.argv[1], sys.argv[2]
m = json.load(open(d + "/metrics.json"))
wall = int(sys.argv[3]) if len(sys.argv) > 3 else round(m["wall_seconds"])
ev = m["evaluations"]
val = ", ".join("%s %.2f %%" % (e["pooling"], 100 * e["validation_accuracy"]) + (" (C = %g)" % e["c"] if e.get("c_grid") else "") for e in ev)
test = ", ".join("%s %.2f %%" % (e["pooling"], 100 * e["test_accuracy"]) for e in ev)
distinct = ", ".join(str(l["distinct_kernels"]) for l in m["layers"])
em = sum(l["train_seconds"] for l in m["layers"])
curve = " → ".join("%.2f" % (100 * p["validation_accuracy"]) for p in m.get("epochs", []))
print("| `go run ./cmd/mnist %s` | %s | %s | %s | %s | %.0f s | %d s |" % (flags, val, curve, test, distinct, em, wall))
