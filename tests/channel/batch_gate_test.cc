// The batch-building policy of a receiving end (channel/internal/batch_gate.h),
// driven by a clock of the test's own: when a take is held, for how long,
// and that a lone message is never held.
#include "channel/internal/batch_gate.h"

#include <cstdint>
#include <random>

#include <gtest/gtest.h>

namespace weave::internal {
namespace {

constexpr std::uint32_t kBatch = 32;

// A clock that moves only when told, and counts its reads.
struct FakeClock {
  std::int64_t t = 1'000'000;
  int reads = 0;
  auto fn() {
    return [this] {
      ++reads;
      return t;
    };
  }
};

TEST(BatchGateTest, ATakeAfterAnEmptyOneIsNeverHeld) {
  FakeClock clock;
  BatchGate gate;
  gate.after_take(5, kBatch, clock.fn());
  gate.after_take(0, kBatch, clock.fn());  // the stream paused: queue empty
  gate.after_take(1, kBatch, clock.fn());  // a lone message
  EXPECT_FALSE(gate.holding(clock.fn()));
  EXPECT_EQ(clock.reads, 0) << "no wait runs, so the clock is never read";
}

TEST(BatchGateTest, TwoShortTakesInARowHoldTheNextForTheFirstWait) {
  FakeClock clock;
  BatchGate gate;
  gate.after_take(5, kBatch, clock.fn());
  EXPECT_FALSE(gate.holding(clock.fn())) << "one take is not a stream yet";
  gate.after_take(5, kBatch, clock.fn());
  EXPECT_EQ(gate.wait(), BatchGate::kMinWait);
  clock.t += BatchGate::kMinWait - 1;
  EXPECT_TRUE(gate.holding(clock.fn()));
  clock.t += 1;
  EXPECT_FALSE(gate.holding(clock.fn())) << "the wait is due";
  EXPECT_FALSE(gate.holding(clock.fn()));
}

TEST(BatchGateTest, FullTakesAreNeverHeld) {
  FakeClock clock;
  BatchGate gate;
  for (int i = 0; i < 10; ++i) {
    gate.after_take(kBatch, kBatch, clock.fn());
    EXPECT_FALSE(gate.holding(clock.fn())) << "take " << i;
  }
}

// Each wait that gathers more while the take stays short doubles the next
// one, up to kMaxWait and never beyond.
TEST(BatchGateTest, TheWaitGrowsWhileItGathersMoreAndStopsAtTheMaximum) {
  FakeClock clock;
  BatchGate gate;
  constexpr std::uint32_t kLarge = 1'000'000;  // takes never fill
  std::uint32_t n = 1;
  gate.after_take(n, kLarge, clock.fn());
  gate.after_take(++n, kLarge, clock.fn());
  std::int64_t expected = BatchGate::kMinWait;
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(gate.wait(), expected) << "wait " << i;
    EXPECT_TRUE(gate.holding(clock.fn()));
    clock.t += gate.wait();
    EXPECT_FALSE(gate.holding(clock.fn()));
    gate.after_take(++n, kLarge, clock.fn());  // gathered more than last time
    expected = std::min(expected * 2, BatchGate::kMaxWait);
  }
  EXPECT_EQ(gate.wait(), BatchGate::kMaxWait);
}

TEST(BatchGateTest, AFullTakeHalvesTheWait) {
  FakeClock clock;
  BatchGate gate;
  gate.after_take(2, kBatch, clock.fn());
  gate.after_take(3, kBatch, clock.fn());  // wait kMinWait
  clock.t += BatchGate::kMinWait;
  gate.after_take(10, kBatch, clock.fn());  // gathered more: doubled
  ASSERT_EQ(gate.wait(), 2 * BatchGate::kMinWait);
  clock.t += gate.wait();
  gate.after_take(kBatch, kBatch, clock.fn());  // full
  EXPECT_EQ(gate.wait(), BatchGate::kMinWait);
  EXPECT_FALSE(gate.holding(clock.fn())) << "a full take is not held";
}

// The sender is slower than the wait (or waits for the receiver): holding
// gains nothing, so the gate stops, and the next short take tries again
// from the shortest wait — never more than that every other take.
TEST(BatchGateTest, AWaitThatGathersNoMoreDropsToZeroThenProbesFromTheMinimum) {
  FakeClock clock;
  BatchGate gate;
  gate.after_take(3, kBatch, clock.fn());
  gate.after_take(3, kBatch, clock.fn());
  ASSERT_TRUE(gate.holding(clock.fn()));
  clock.t += gate.wait();
  gate.after_take(3, kBatch, clock.fn());  // no more than before the wait
  EXPECT_EQ(gate.wait(), 0);
  EXPECT_FALSE(gate.holding(clock.fn()));
  for (int i = 0; i < 10; ++i) {
    gate.after_take(3, kBatch, clock.fn());  // probes again
    EXPECT_EQ(gate.wait(), BatchGate::kMinWait) << "round " << i;
    ASSERT_TRUE(gate.holding(clock.fn()));
    clock.t += gate.wait();
    gate.after_take(3, kBatch, clock.fn());  // gained nothing again
    EXPECT_EQ(gate.wait(), 0) << "round " << i;
    EXPECT_FALSE(gate.holding(clock.fn()));
  }
}

// A streak that ends (an empty take) leaves its level to the next one.
TEST(BatchGateTest, ANewStreakStartsFromTheLevelTheLastOneEndedWith) {
  FakeClock clock;
  BatchGate gate;
  gate.after_take(2, kBatch, clock.fn());
  gate.after_take(3, kBatch, clock.fn());
  clock.t += gate.wait();
  gate.after_take(5, kBatch, clock.fn());  // doubled
  const std::int64_t level = gate.wait();
  ASSERT_EQ(level, 2 * BatchGate::kMinWait);
  clock.t += level;
  gate.after_take(0, kBatch, clock.fn());  // the stream paused
  gate.after_take(4, kBatch, clock.fn());  // not held: first take of a streak
  EXPECT_FALSE(gate.holding(clock.fn()));
  gate.after_take(4, kBatch, clock.fn());
  ASSERT_TRUE(gate.holding(clock.fn()));
  clock.t += level - 1;
  EXPECT_TRUE(gate.holding(clock.fn()));
  clock.t += 1;
  EXPECT_FALSE(gate.holding(clock.fn()));
}

// The owner resets the gate when its loop arms the port, or the port loses
// its handler or its loop: a wait must not outlive the streak that began it.
TEST(BatchGateTest, ResetEndsARunningWaitAndTheStreak) {
  FakeClock clock;
  BatchGate gate;
  gate.after_take(4, kBatch, clock.fn());
  gate.after_take(4, kBatch, clock.fn());
  ASSERT_TRUE(gate.holding(clock.fn()));
  gate.reset();
  EXPECT_FALSE(gate.holding(clock.fn()));
  EXPECT_EQ(gate.wait(), 0);
  gate.after_take(4, kBatch, clock.fn());
  EXPECT_FALSE(gate.holding(clock.fn())) << "the first take after a reset starts a new streak";
}

// Whatever the takes, no take is ever held longer than kMaxWait by the
// clock, and a take right after an empty one is never held.
TEST(BatchGateTest, NoSequenceOfTakesHoldsLongerThanTheMaximum) {
  std::mt19937 rng(12345);
  std::uniform_int_distribution<std::uint32_t> size(0, kBatch);
  std::uniform_int_distribution<std::int64_t> step(0, 3 * BatchGate::kMaxWait);
  FakeClock clock;
  BatchGate gate;
  std::uint32_t previous = 1;
  for (int i = 0; i < 100'000; ++i) {
    const std::uint32_t n = size(rng);
    gate.after_take(n, kBatch, clock.fn());
    if (previous == 0) {
      ASSERT_FALSE(gate.holding(clock.fn())) << "take " << i << " came after an empty one";
    }
    const std::int64_t start = clock.t;
    clock.t = start + BatchGate::kMaxWait;
    ASSERT_FALSE(gate.holding(clock.fn())) << "take " << i << " held beyond kMaxWait";
    clock.t = start + step(rng);
    previous = n;
  }
}

}  // namespace
}  // namespace weave::internal
