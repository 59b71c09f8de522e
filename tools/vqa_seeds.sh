#!/bin/sh
# Acceptance 1 and 2 of issue #21: the default VQA recipe on Sort-of-CLEVR, seeds 0, 1 and 2, each
# run alone under /usr/bin/time -v, then evaluated per question type on the 20,000 test questions.
# Writes OUT/seedN/{train.log,time.txt,eval.json} and OUT/seeds.md (one table per seed plus the
# wall clock and CPU time of each run). Run it on a quiet machine: wall clock is only meaningful
# when nothing else shares the cores.
#
#   tools/vqa_seeds.sh [OUT] [SEEDS]        # defaults: runs/vqa-seeds, "0 1 2"
set -eu
OUT=${1:-runs/vqa-seeds}
SEEDS=${2:-"0 1 2"}
MMKIT=${MMKIT:-build/mmkit}
mkdir -p "$OUT"
[ -f "$OUT/data/train.jsonl" ] || "$MMKIT" data sort-of-clevr --out "$OUT/data"   # the default data set
for s in $SEEDS; do
  d="$OUT/seed$s"
  mkdir -p "$d"
  # The default command, no tuning flags: only --seed differs between the runs.
  /usr/bin/time -v -o "$d/time.txt" "$MMKIT" train vqa --data "$OUT/data" --out "$d/run" --seed "$s" \
    > "$d/train.log" 2>&1
  "$MMKIT" eval vqa --model "$d/run" --data "$OUT/data" --json > "$d/eval.json"
done
/usr/bin/python3 - "$OUT" $SEEDS <<'PY'
import json, re, sys
out, seeds = sys.argv[1], sys.argv[2:]
types = ["shape", "horizontal", "vertical", "non-relational", "closest", "furthest", "count", "relational", "overall"]
lines = []
for s in seeds:
    e = json.load(open(f"{out}/seed{s}/eval.json"))
    t = open(f"{out}/seed{s}/time.txt").read()
    def field(name):
        m = re.search(re.escape(name) + r":\s*(.+)", t)
        return m.group(1).strip() if m else "?"
    user, system = float(field("User time (seconds)")), float(field("System time (seconds)"))
    row = {k: v["accuracy"] for k, v in e["per_type"].items()}
    row["non-relational"] = e["non_relational"]["accuracy"]
    row["relational"] = e["relational"]["accuracy"]
    row["overall"] = e["accuracy"]
    n = {k: v["questions"] for k, v in e["per_type"].items()}
    n["non-relational"], n["relational"], n["overall"] = e["non_relational"]["questions"], e["relational"]["questions"], e["questions"]
    ok = (row["relational"] >= 0.98 and row["non-relational"] >= 0.995
          and all(row.get(k, 0) >= 0.95 for k in ["shape", "horizontal", "vertical", "closest", "furthest", "count"]))
    last = json.load(open(f"{out}/seed{s}/run/history.json"))[-1]
    lines.append(f"### seed {s}: wall {field('Elapsed (wall clock) time (h:mm:ss or m:ss)')}, "
                 f"CPU {user + system:.0f} s (user {user:.0f} + system {system:.0f}), "
                 f"peak RSS {int(field('Maximum resident set size (kbytes)')) / 1024:.0f} MB; "
                 f"weights of epoch {last.get('selected_epoch', '?')} of {last['epoch']} (best validation "
                 f"accuracy); accuracy targets {'met' if ok else 'NOT met'}\n")
    lines.append("| question type | questions | accuracy |\n|---|---|---|")
    for k in types:
        lines.append(f"| {k} | {n.get(k, 0):,} | {100 * row.get(k, 0):.2f}% |")
    lines.append("")
open(f"{out}/seeds.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
