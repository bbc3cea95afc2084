// heavy_barrier() when membarrier fails after the asymmetric mode was chosen
// (D10): transient errors are retried; a failure that persists switches the
// process to fences on both sides, soundly. Its own test binary, because the
// switch lasts for the life of the process. The failures are injected with
// internal::fail_membarrier_for_testing.
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstdio>

#include "atomics/internal/barrier.h"
#include "tests/atomics/litmus.h"
#include "tests/test_util.h"

namespace weave::internal {
namespace {

class BarrierFallbackTest : public testing::CleanShutdownTest {
 protected:
  void TearDown() override {
    fail_membarrier_for_testing(0, 0);
    CleanShutdownTest::TearDown();
  }
};

// Runs first (gtest keeps the file's order): the mode is still asymmetric.
TEST_F(BarrierFallbackTest, TransientFailuresAreRetriedAndTheModeStaysAsymmetric) {
  if (!asymmetric_barriers_available()) GTEST_SKIP() << "no membarrier here: fences from the start";
  const BarrierStats before = barrier_stats_approx();
  fail_membarrier_for_testing(ENOMEM, 3);
  heavy_barrier();
  const BarrierStats after = barrier_stats_approx();
  EXPECT_EQ(after.failures - before.failures, 3u);
  EXPECT_EQ(after.retries - before.retries, 3u);
  EXPECT_EQ(after.mode, 1);
  EXPECT_TRUE(asymmetric_barriers_available());
  // The barrier still works as a pair.
  const auto c = testing::store_buffer_litmus(
      20'000 / testing::kStressScale, [] { light_barrier(); }, [] { heavy_barrier(); });
  EXPECT_EQ(c.both_zero, 0);
}

// The old code fenced only the heavy side here and left the light side a
// compiler barrier: the store-buffer outcome was allowed. Now both sides
// fence; and, the heavy side being fast now (a fence, no system call), the
// litmus harness really can see a missing fence on either side.
TEST_F(BarrierFallbackTest, PersistentFailureSwitchesBothSidesToFencesForGood) {
  if (!asymmetric_barriers_available()) GTEST_SKIP() << "no membarrier here: fences from the start";
  const BarrierStats before = barrier_stats_approx();
  fail_membarrier_for_testing(EPERM, -1);
  heavy_barrier();
  const BarrierStats after = barrier_stats_approx();
  EXPECT_EQ(after.mode, 2) << "the light side was left a compiler barrier";
  EXPECT_FALSE(asymmetric_barriers_available());
  EXPECT_EQ(after.retries, before.retries) << "EPERM is not transient";
#if defined(__x86_64__) || defined(__i386__)
  EXPECT_EQ(after.ipi_fallbacks - before.ipi_fallbacks, 1u)
      << "the switch was not made sound by a process-wide barrier";
#endif
  constexpr int kRounds = 50'000 / testing::kStressScale;
  const auto c = testing::store_buffer_litmus(
      kRounds, [] { light_barrier(); }, [] { heavy_barrier(); });
  EXPECT_EQ(c.both_zero, 0) << "rounds where neither side saw the other's store";
  // Later heavy barriers make no system call and need no second switch.
  const BarrierStats end = barrier_stats_approx();
  EXPECT_EQ(end.failures, after.failures);
  EXPECT_EQ(end.ipi_fallbacks, after.ipi_fallbacks);
  // For comparison (not asserted: it depends on the hardware and on both
  // threads running at once), the same harness without barriers.
  const auto none = testing::store_buffer_litmus(
      kRounds, [] { std::atomic_signal_fence(std::memory_order_seq_cst); },
      [] { std::atomic_signal_fence(std::memory_order_seq_cst); });
  std::printf("after the switch: %d both-zero rounds of %d; without barriers: %d\n", c.both_zero,
              kRounds, none.both_zero);
}

}  // namespace
}  // namespace weave::internal
