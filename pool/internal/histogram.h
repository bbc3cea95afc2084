// A log-linear histogram of durations in nanoseconds with one writer and any
// number of readers: 16 buckets per power of two (each figure read back is a
// bucket's upper bound, at most 1/16 above the value), exact below 32 ns,
// values above 2^42 ns (~73 min) counted in the last bucket. 5 KiB.
// Private to //pool.
//
// Threading: record() from one thread at a time (the owner); add_to() from
// any thread, concurrently with record(): each counter is a relaxed atomic,
// so a reader sees every bucket at some recent moment, not all at once.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "atomics/internal/counter.h"  // bump: one writer, no locked add

namespace weave::internal {

class Histogram {
 public:
  static constexpr int kSubBits = 4;
  static constexpr std::uint64_t kSub = std::uint64_t{1} << kSubBits;
  static constexpr int kMaxExp = 42;
  static constexpr std::size_t kBuckets = 2 * kSub + (kMaxExp - kSubBits) * kSub;

  // The merged counts of several histograms.
  struct Totals {
    std::array<std::uint64_t, kBuckets> counts{};
    std::uint64_t count = 0;
    std::uint64_t sum = 0;
    std::uint64_t min = std::numeric_limits<std::uint64_t>::max();
    std::uint64_t max = 0;

    // The upper bound of the bucket holding the q-quantile (0 < q <= 1),
    // never above max; 0 when empty.
    [[nodiscard]] std::uint64_t quantile(double q) const noexcept {
      if (count == 0) return 0;
      auto rank = static_cast<std::uint64_t>(q * static_cast<double>(count));
      if (rank == 0) rank = 1;
      std::uint64_t seen = 0;
      for (std::size_t i = 0; i < kBuckets; ++i) {
        seen += counts[i];
        if (seen >= rank) return std::min(upper_bound(i), max);
      }
      return max;
    }
  };

  // Owner thread only. Never blocks. Never allocates.
  void record(std::uint64_t ns) noexcept {
    bump(counts_[index(ns)], 1);
    bump(count_, 1);
    bump(sum_, ns);
    if (ns < min_.load(std::memory_order_relaxed)) min_.store(ns, std::memory_order_relaxed);
    if (ns > max_.load(std::memory_order_relaxed)) max_.store(ns, std::memory_order_relaxed);
  }

  // Adds this histogram's counts to `t`. Any thread. Never blocks.
  void add_to(Totals& t) const noexcept {
    for (std::size_t i = 0; i < kBuckets; ++i)
      t.counts[i] += counts_[i].load(std::memory_order_relaxed);
    t.count += count_.load(std::memory_order_relaxed);
    t.sum += sum_.load(std::memory_order_relaxed);
    t.min = std::min(t.min, min_.load(std::memory_order_relaxed));
    t.max = std::max(t.max, max_.load(std::memory_order_relaxed));
  }

  [[nodiscard]] static std::size_t index(std::uint64_t v) noexcept {
    if (v < 2 * kSub) return static_cast<std::size_t>(v);
    int e = std::bit_width(v) - 1;  // >= kSubBits + 1
    if (e > kMaxExp) return kBuckets - 1;
    const std::uint64_t sub = (v >> (e - kSubBits)) & (kSub - 1);
    return static_cast<std::size_t>(2 * kSub + static_cast<std::uint64_t>(e - kSubBits - 1) * kSub +
                                    sub);
  }
  [[nodiscard]] static std::uint64_t upper_bound(std::size_t i) noexcept {
    if (i < 2 * kSub) return i;
    const std::uint64_t k = i - 2 * kSub;
    const int e = static_cast<int>(k / kSub) + kSubBits + 1;
    const std::uint64_t sub = k % kSub;
    const std::uint64_t lower = (kSub + sub) << (e - kSubBits);
    return lower + (std::uint64_t{1} << (e - kSubBits)) - 1;
  }

 private:
  std::array<std::atomic<std::uint64_t>, kBuckets> counts_{};
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_{0};
  std::atomic<std::uint64_t> min_{std::numeric_limits<std::uint64_t>::max()};
  std::atomic<std::uint64_t> max_{0};
};

}  // namespace weave::internal
