// The batch-building policy of a receiving end (channel/internal/batch_gate.h),
// driven by a clock of the test's own: when a take is held, for how long,
// and that a lone message is never held.
#include "channel/internal/batch_gate.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>

namespace weave::internal {
namespace {

constexpr std::uint32_t kBatch = 32;

// A gate driven by a clock that moves only when told and counts its reads.
class BatchGateTest : public ::testing::Test {
 protected:
  // The clock's reading, counted.
  std::int64_t now() {
    ++reads;
    return t;
  }
  // A take that found `n` of at most `batch` messages.
  void take(std::uint32_t n, std::uint32_t batch = kBatch) {
    gate.after_take(n, batch, [this] { return now(); });
  }
  // Whether the next take is held now.
  bool held() {
    return gate.holding([this] { return now(); });
  }

  BatchGate gate;
  std::int64_t t = 1'000'000;  // the clock
  int reads = 0;
};

TEST_F(BatchGateTest, ATakeAfterAnEmptyOneIsNeverHeld) {
  take(5);
  take(0);  // the stream paused: queue empty
  take(1);  // a lone message
  EXPECT_FALSE(held());
  EXPECT_EQ(reads, 0) << "no wait runs, so the clock is never read";
}

TEST_F(BatchGateTest, TwoShortTakesInARowHoldTheNextForTheFirstWait) {
  take(5);
  EXPECT_FALSE(held()) << "one take is not a stream yet";
  take(5);
  EXPECT_EQ(gate.wait(), BatchGate::kMinWait);
  t += BatchGate::kMinWait - 1;
  EXPECT_TRUE(held());
  t += 1;
  EXPECT_FALSE(held()) << "the wait is due";
  EXPECT_FALSE(held());
}

TEST_F(BatchGateTest, FullTakesAreNeverHeld) {
  for (int i = 0; i < 10; ++i) {
    take(kBatch);
    EXPECT_FALSE(held()) << "take " << i;
  }
}

// Each wait that gathers more while the take stays short doubles the next
// one, up to kMaxWait and never beyond.
TEST_F(BatchGateTest, TheWaitGrowsWhileItGathersMoreAndStopsAtTheMaximum) {
  constexpr std::uint32_t kLarge = 1'000'000;  // takes never fill
  std::uint32_t n = 1;
  take(n, kLarge);
  take(++n, kLarge);
  std::int64_t expected = BatchGate::kMinWait;
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(gate.wait(), expected) << "wait " << i;
    EXPECT_TRUE(held());
    t += gate.wait();
    EXPECT_FALSE(held());
    take(++n, kLarge);  // gathered more than last time
    expected = std::min(expected * 2, BatchGate::kMaxWait);
  }
  EXPECT_EQ(gate.wait(), BatchGate::kMaxWait);
}

TEST_F(BatchGateTest, AFullTakeHalvesTheWait) {
  take(2);
  take(3);  // wait kMinWait
  t += BatchGate::kMinWait;
  take(10);  // gathered more: doubled
  ASSERT_EQ(gate.wait(), 2 * BatchGate::kMinWait);
  t += gate.wait();
  take(kBatch);  // full
  EXPECT_EQ(gate.wait(), BatchGate::kMinWait);
  EXPECT_FALSE(held()) << "a full take is not held";
}

// The sender is slower than the wait (or waits for the receiver): holding
// gains nothing, so the gate stops, and the next short take tries again
// from the shortest wait — never more than that every other take.
TEST_F(BatchGateTest, AWaitThatGathersNoMoreDropsToZeroThenProbesFromTheMinimum) {
  take(3);
  take(3);
  ASSERT_TRUE(held());
  t += gate.wait();
  take(3);  // no more than before the wait
  EXPECT_EQ(gate.wait(), 0);
  EXPECT_FALSE(held());
  for (int i = 0; i < 10; ++i) {
    take(3);  // probes again
    EXPECT_EQ(gate.wait(), BatchGate::kMinWait) << "round " << i;
    ASSERT_TRUE(held());
    t += gate.wait();
    take(3);  // gained nothing again
    EXPECT_EQ(gate.wait(), 0) << "round " << i;
    EXPECT_FALSE(held());
  }
}

// A streak that ends (an empty take) leaves its level to the next one.
TEST_F(BatchGateTest, ANewStreakStartsFromTheLevelTheLastOneEndedWith) {
  take(2);
  take(3);
  t += gate.wait();
  take(5);  // doubled
  const std::int64_t level = gate.wait();
  ASSERT_EQ(level, 2 * BatchGate::kMinWait);
  t += level;
  take(0);  // the stream paused
  take(4);  // not held: first take of a streak
  EXPECT_FALSE(held());
  take(4);
  ASSERT_TRUE(held());
  t += level - 1;
  EXPECT_TRUE(held());
  t += 1;
  EXPECT_FALSE(held());
}

// The owner resets the gate when its loop arms the port, or the port loses
// its handler or its loop: a wait must not outlive the streak that began it.
TEST_F(BatchGateTest, ResetEndsARunningWaitAndTheStreak) {
  take(4);
  take(4);
  ASSERT_TRUE(held());
  gate.reset();
  EXPECT_FALSE(held());
  EXPECT_EQ(gate.wait(), 0);
  take(4);
  EXPECT_FALSE(held()) << "the first take after a reset starts a new streak";
}

// Whatever the takes, no take is ever held longer than kMaxWait by the
// clock, and a take right after an empty one is never held.
TEST_F(BatchGateTest, NoSequenceOfTakesHoldsLongerThanTheMaximum) {
  std::mt19937 rng(12345);
  std::uniform_int_distribution<std::uint32_t> size(0, kBatch);
  std::uniform_int_distribution<std::int64_t> step(0, 3 * BatchGate::kMaxWait);
  std::uint32_t previous = 1;
  for (int i = 0; i < 100'000; ++i) {
    const std::uint32_t n = size(rng);
    take(n);
    if (previous == 0) {
      ASSERT_FALSE(held()) << "take " << i << " came after an empty one";
    }
    const std::int64_t start = t;
    t = start + BatchGate::kMaxWait;
    ASSERT_FALSE(held()) << "take " << i << " held beyond kMaxWait";
    t = start + step(rng);
    previous = n;
  }
}

}  // namespace
}  // namespace weave::internal
