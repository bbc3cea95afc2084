// The asymmetric barrier pair (atomics/internal/barrier.h): the store-buffer
// litmus test that a missing fence fails. Each round, the fast side stores x
// and reads y behind light_barrier(); the slow side stores y and reads x
// behind heavy_barrier(). Without barriers x86 lets both reads see 0 (each
// store still in its core's store buffer); with them at least one read must
// see the other side's store.
#include "atomics/internal/barrier.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <thread>

#include "atomics/internal/futex.h"  // cpu_relax
#include "tests/test_util.h"

namespace weave::internal {
namespace {

class AsymmetricBarrierTest : public testing::CleanShutdownTest {};

TEST_F(AsymmetricBarrierTest, ModeIsDecidedOnceAndStaysTheSame) {
  const bool first = asymmetric_barriers_available();
  for (int i = 0; i < 100; ++i) EXPECT_EQ(asymmetric_barriers_available(), first);
  light_barrier();
  heavy_barrier();
  EXPECT_EQ(asymmetric_barriers_available(), first);
}

TEST_F(AsymmetricBarrierTest, AtLeastOneSideSeesTheOthersStoreInEveryRound) {
  constexpr int kRounds = 50'000;
  // Each variable on lines of its own, so each store really sits in its
  // core's store buffer while the other core reads.
  alignas(128) std::atomic<int> x{0};
  alignas(128) std::atomic<int> y{0};
  alignas(128) std::atomic<int> fast_ready{-1};  // round the fast side is at
  alignas(128) std::atomic<int> slow_ready{-1};
  alignas(128) std::atomic<int> fast_read{-1};  // what it read, once done
  int both_zero = 0;

  // Two threads (the test's and one more): each announces the round and
  // waits for the other's announcement, so both run their store-then-load
  // at the same moment.
  auto wait_until = [](auto&& ready) {
    for (int i = 1; !ready(); ++i) {
      cpu_relax();
      if ((i & 4095) == 0) std::this_thread::yield();  // a shared core
    }
  };
  std::thread fast([&] {
    for (int r = 0; r < kRounds; ++r) {
      fast_ready.store(r, std::memory_order_release);
      wait_until([&] { return slow_ready.load(std::memory_order_acquire) == r; });
      x.store(1, std::memory_order_relaxed);
      light_barrier();
      const int r1 = y.load(std::memory_order_relaxed);
      fast_read.store(r1, std::memory_order_release);
      // The slow side resets x and y for the next round only after it took r1.
      wait_until([&] { return fast_read.load(std::memory_order_acquire) == -1; });
    }
  });
  for (int r = 0; r < kRounds; ++r) {
    slow_ready.store(r, std::memory_order_release);
    wait_until([&] { return fast_ready.load(std::memory_order_acquire) == r; });
    y.store(1, std::memory_order_relaxed);
    heavy_barrier();
    const int r2 = x.load(std::memory_order_relaxed);
    int r1 = -1;
    wait_until([&] { return (r1 = fast_read.load(std::memory_order_acquire)) != -1; });
    if (r1 == 0 && r2 == 0) ++both_zero;
    x.store(0, std::memory_order_relaxed);
    y.store(0, std::memory_order_relaxed);
    fast_read.store(-1, std::memory_order_release);
  }
  fast.join();
  EXPECT_EQ(both_zero, 0) << "rounds where neither side saw the other's store";
}

}  // namespace
}  // namespace weave::internal
