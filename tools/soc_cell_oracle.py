#!/usr/bin/python3
"""How well could exact reasoning do on Sort-of-CLEVR's closest / furthest questions if it only
knew which grid cell each object's centre falls in? Positions are snapped to the centre of their
cell (cells of Q pixels); the closest / furthest object from X is chosen on the snapped positions
(ties broken at random, seeded), and the answer counts as right when that object has the same
shape as the true one. Bounds what a model whose tokens are Q-px cells can reach without
sub-cell position information (docs/RESULTS.md, nn/hop_attention.h). Also prints two baselines
that need no relation at all: answering with X's own shape, and with the majority shape of the
other five objects (a model stuck at the latter has not learned the relation).

    /usr/bin/python3 tools/soc_cell_oracle.py /tmp/soc/scenes.jsonl [split]
"""
import json
import math
import random
import sys


def oracle(scenes, q, rng):
    right = {"closest": 0, "furthest": 0}
    n = 0
    for s in scenes:
        objs = s["objects"]
        true = [(o["x"], o["y"]) for o in objs]
        snap = [((o["x"] // q) * q + q / 2, (o["y"] // q) * q + q / 2) if q > 1 else (o["x"], o["y"]) for o in objs]
        for i in range(len(objs)):
            for kind in right:
                def pick(pos):
                    d = sorted((math.dist(pos[i], pos[j]), rng.random(), j) for j in range(len(objs)) if j != i)
                    return d[0][2] if kind == "closest" else d[-1][2]
                right[kind] += objs[pick(snap)]["shape"] == objs[pick(true)]["shape"]
            n += 1
    return {k: v / n for k, v in right.items()}


def baselines(scenes):
    right = {"closest": [0, 0], "furthest": [0, 0]}  # [X's own shape, majority of the others]
    n = 0
    for s in scenes:
        objs = s["objects"]
        for i in range(len(objs)):
            others = [objs[j]["shape"] for j in range(len(objs)) if j != i]
            majority = max(sorted(set(others)), key=others.count)  # 5 others: never a tie
            for kind in right:
                d = sorted((math.dist((objs[i]["x"], objs[i]["y"]), (objs[j]["x"], objs[j]["y"])), j)
                           for j in range(len(objs)) if j != i)
                answer = objs[d[0][1] if kind == "closest" else d[-1][1]]["shape"]
                right[kind][0] += answer == objs[i]["shape"]
                right[kind][1] += answer == majority
            n += 1
    return {k: (a / n, b / n) for k, (a, b) in right.items()}


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "/tmp/soc/scenes.jsonl"
    split = sys.argv[2] if len(sys.argv) > 2 else "test"
    scenes = [s for s in map(json.loads, open(path)) if s["split"] == split]
    print(f"{len(scenes)} {split} scenes; closest / furthest answered from the cell of each object's centre")
    for q in (1, 3, 5, 15):
        r = oracle(scenes, q, random.Random(0))
        print(f"  {q:2d}-px cells: closest {100 * r['closest']:.2f}%  furthest {100 * r['furthest']:.2f}%")
    b = baselines(scenes)
    for k, label in ((0, "X's own shape"), (1, "majority shape of the other five")):
        print(f"  baseline, {label}: closest {100 * b['closest'][k]:.2f}%  furthest {100 * b['furthest'][k]:.2f}%")


if __name__ == "__main__":
    main()
