"""The Python module's costs (issue #19, acceptance 3 and 4), run with Debian's Python:

    PYTHONPATH=build/python /usr/bin/python3 bench/python_bench.py [--preset vit-b-32|small|tiny] [--calls 10000]

1. overhead: ClipModel.encode_image on a preprocessed float32 [32, 3, R, R] array, timed from Python,
   against the engine's own time for the same call timed in C++ (ClipModel._engine_seconds: no Python
   between repeats), interleaved, min and median of several runs.
2. threads: two Python threads calling encode_text at the same time vs the same calls one after the
   other (one shared model; and one model per thread).
3. memory: RSS over --calls calls of encode_text + encode_image (a tiny model), after a warm-up.

Models are seeded random CLIPs made with `mmkit init-clip` (the build's `mmkit`); timings need a quiet
machine (say so next to numbers taken on a busy one).
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("MMKIT_BUILD_DIR", os.path.join(ROOT, "build"))
try:
    import mmkit
except ImportError:
    sys.path.insert(0, os.path.join(BUILD, "python"))
    import mmkit


def init_clip(tmp, preset, seed=0):
    out = os.path.join(tmp, f"{preset}_{seed}.safetensors")
    subprocess.check_call([os.path.join(BUILD, "mmkit"), "init-clip", "--preset", preset, "--seed", str(seed),
                           "--out", out], stdout=subprocess.DEVNULL)
    return out


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def overhead(model, batch, rounds):
    R = model.image_resolution
    px = np.random.default_rng(0).standard_normal((batch, 3, R, R)).astype(np.float32)
    model.encode_image(px)  # warm-up: weights paged in, buffers sized
    py, eng = [], []
    for _ in range(rounds):  # interleaved, so load changes hit both alike
        t0 = time.perf_counter()
        model.encode_image(px)
        py.append(time.perf_counter() - t0)
        eng += model._engine_seconds(px, 1)
    return py, eng


def threads(paths, n_calls, batch):
    texts = [f"a photo of object number {i}, seen from the left" for i in range(batch)]
    shared = mmkit.load(paths[0])
    own = [mmkit.load(paths[0]), mmkit.load(paths[1])]
    shared.encode_text(texts)
    for m in own:
        m.encode_text(texts)

    def work(model):
        for _ in range(n_calls):
            model.encode_text(texts)

    t0 = time.perf_counter()
    work(shared)
    work(shared)
    serial = time.perf_counter() - t0
    out = {"one after the other": serial}
    runs = (("two threads, one model", [shared, shared], 0), ("two threads, a model each", own, 0),
            ("two threads, a model each, 1 OpenMP thread per call", own, 1))
    for name, models, omp in runs:
        mmkit.set_num_threads(omp)
        ts = [threading.Thread(target=work, args=(m,)) for m in models]
        t0 = time.perf_counter()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        out[name] = time.perf_counter() - t0
    mmkit.set_num_threads(0)
    # Python work beside one compute thread: how many pure-Python loop steps run while it computes.
    counter = [0]
    done = threading.Event()
    t = threading.Thread(target=lambda: (work(shared), done.set()))
    t0 = time.perf_counter()
    t.start()
    while not done.is_set():
        counter[0] += 1
    t.join()
    out["python steps beside compute"] = (counter[0], time.perf_counter() - t0)
    return out


def memory(path, calls, image):
    model = mmkit.load(path)
    warm = max(calls // 10, 100)
    for _ in range(warm):
        model.encode_text(["a red circle left of a blue square"])
        model.encode_image(image)
    base = rss_kb()
    peak = base
    for i in range(calls):
        model.encode_text(["a red circle left of a blue square"])
        model.encode_image(image)
        if i % 500 == 0:
            peak = max(peak, rss_kb())
    end = rss_kb()
    return base, max(peak, end), end


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="vit-b-32", help="CLIP shapes for the overhead and thread runs")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--thread-calls", type=int, default=3)
    ap.add_argument("--calls", type=int, default=10000, help="calls of the memory run")
    a = ap.parse_args()
    print(f"mmkit {mmkit.__version__}, Python {sys.version.split()[0]}, {os.cpu_count()} cores, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, threads {mmkit.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        # Memory first, before the large models of the timing runs have grown the heap.
        tiny = init_clip(tmp, "tiny")
        img = np.random.default_rng(1).integers(0, 256, (96, 128, 3), dtype=np.uint8)
        base, peak, end = memory(tiny, a.calls, img)
        print(f"memory (tiny, {a.calls} x (encode_text + encode_image)): RSS after warm-up {base/1024:.1f} MiB, "
              f"peak {peak/1024:.1f} MiB, end {end/1024:.1f} MiB, growth {100*(end-base)/base:+.2f}%", flush=True)
        # The fixed cost of a call from Python (argument checks, GIL release, lock, result array), on
        # a tiny model at batch 1 where the engine's time is smallest: many interleaved calls, medians.
        tm = mmkit.load(tiny)
        py, eng = overhead(tm, 1, 2000)
        print(f"fixed cost (tiny, batch 1, 2000 rounds): from Python median {statistics.median(py)*1e6:.0f} us, "
              f"engine median {statistics.median(eng)*1e6:.0f} us, difference "
              f"{(statistics.median(py) - statistics.median(eng))*1e6:.0f} us per call", flush=True)
        del tm
        path = init_clip(tmp, a.preset)
        model = mmkit.load(path)
        py, eng = overhead(model, a.batch, a.rounds)
        r = statistics.median(py) / statistics.median(eng)
        print(f"overhead ({a.preset}, batch {a.batch}, {a.rounds} rounds): encode_image from Python "
              f"min {min(py)*1e3:.1f} ms median {statistics.median(py)*1e3:.1f} ms; engine min {min(eng)*1e3:.1f} ms "
              f"median {statistics.median(eng)*1e3:.1f} ms; ratio of medians {r:.4f} (min ratio {min(py)/min(eng):.4f})")
        del model
        paths = [path, init_clip(tmp, a.preset, 1)]
        t = threads(paths, a.thread_calls, a.batch)
        steps, secs = t.pop("python steps beside compute")
        print(f"threads ({a.preset}, encode_text batch {a.batch}, {a.thread_calls} calls per thread): " +
              ", ".join(f"{k} {v:.2f} s" for k, v in t.items()) +
              f"; a Python loop beside one computing thread ran {steps} steps in {secs:.2f} s")


if __name__ == "__main__":
    main()
