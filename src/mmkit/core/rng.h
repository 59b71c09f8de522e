// Small, fast, reproducible random numbers for init, dropout, shuffling and
// augmentation. Header-only so hot loops (dropout masks) inline it.
//
// Generator: SplitMix64 (Steele, Lea, Flood, "Fast splittable pseudorandom
// number generators", OOPSLA 2014) — one 64-bit add and a 3-round mix per
// draw, period 2^64, passes BigCrush. Its state is a plain counter, so a
// stream for (seed, epoch, sample) is derived by hashing those into the seed
// (see Rng::derive) instead of carrying generator state through checkpoints.
//
//   mmkit::Rng r(42);
//   float u = r.uniform();       // [0, 1)
//   float z = r.normal();        // N(0, 1)
//   int64_t k = r.randint(10);   // uniform in [0, 10)
#pragma once
#include <cmath>
#include <cstdint>

namespace mmkit {

// The SplitMix64 finaliser: a bijective 64-bit mix, also useful on its own to
// hash integers into well-spread seeds.
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

struct Rng {
  explicit Rng(uint64_t seed) : state(seed) {}

  // Independent-looking stream for a sub-task, e.g. Rng::derive(seed, epoch).
  // Mixing both words (not seed + k) keeps (s, k+1) and (s+1, k) unrelated.
  static Rng derive(uint64_t seed, uint64_t k) {
    return Rng(mix64(seed ^ mix64(k + 0x632BE59BD9B4E019ull)));
  }

  uint64_t next_u64() {
    state += 0x9E3779B97F4A7C15ull;  // 2^64 / golden ratio
    return mix64(state);
  }

  // Top 24 bits -> exactly representable float in [0, 1).
  float uniform() { return float(next_u64() >> 40) * (1.0f / 16777216.0f); }

  // Top 53 bits -> double in [0, 1).
  double uniform_double() { return double(next_u64() >> 11) * (1.0 / 9007199254740992.0); }

  // Box-Muller; the second value of each pair is cached. u1 is taken from
  // (0, 1] so log() never sees 0.
  float normal() {
    if (has_spare) {
      has_spare = false;
      return spare;
    }
    double u1 = 1.0 - uniform_double();
    double u2 = uniform_double();
    double r = std::sqrt(-2.0 * std::log(u1));
    double t = 6.283185307179586 * u2;
    spare = float(r * std::sin(t));
    has_spare = true;
    return float(r * std::cos(t));
  }

  // Uniform in [0, n), unbiased (Lemire, "Fast random integer generation in an
  // interval", 2019). n <= 0 returns 0.
  int64_t randint(int64_t n) {
    if (n <= 0) return 0;
    uint64_t range = uint64_t(n);
    unsigned __int128 m = (unsigned __int128)next_u64() * range;
    uint64_t low = uint64_t(m);
    if (low < range) {
      uint64_t threshold = (0 - range) % range;
      while (low < threshold) {
        m = (unsigned __int128)next_u64() * range;
        low = uint64_t(m);
      }
    }
    return int64_t(m >> 64);
  }

  bool bernoulli(float p) { return uniform() < p; }

  uint64_t state;
  float spare = 0.0f;
  bool has_spare = false;
};

}  // namespace mmkit
