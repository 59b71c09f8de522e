"""Acceptance 4 of issue #19: 10,000 calls in a loop leave RSS flat (within 5% after warm-up).

Each result is 8 x 64 floats (2 KiB), so results or their buffers kept alive by mistake would add
~20 MiB over the loop, well past 5% of this process's RSS."""
import numpy as np

import mmkit


def rss_kib():
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def test_rss_is_flat_over_10000_calls(clip_path):
    model = mmkit.load(clip_path)
    texts = [f"a photo of shape number {i}" for i in range(8)]
    image = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    for _ in range(500):  # warm-up: buffers grown, weights packed, allocator pools filled
        model.encode_text(texts)
        model.encode_image(image)
    base = rss_kib()
    total = np.zeros(64, np.float32)
    for i in range(10_000):
        e = model.encode_text(texts)
        total += e[0]
        if i % 10 == 0:
            total += model.encode_image(image)[0]
    end = rss_kib()
    assert np.isfinite(total).all()
    assert end <= base * 1.05, f"RSS grew from {base} KiB to {end} KiB over 10,000 calls"
