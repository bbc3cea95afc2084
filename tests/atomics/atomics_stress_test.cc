// weave::atomics under load: notify racing wait never loses a wake-up, and
// timeouts racing notifies keep the waiter list consistent.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "atomics/atomics.h"
#include "tests/test_util.h"

namespace weave {
namespace {

constexpr int kScale = ::weave::testing::kStressScale;

using atomics::WaitResult;

class AtomicsStressTest : public testing::CleanShutdownTest {};

// Blocks until view[i] != seen, by Atomics.wait; fails (instead of hanging)
// if a wake-up is lost for kHangGuard.
void wait_while_equal(const Int32View& v, std::size_t i, std::int32_t seen) {
  while (atomics::load(v, i) == seen) {
    ASSERT_NE(atomics::wait_for(v, i, seen, testing::kHangGuard), WaitResult::kTimedOut)
        << "lost wake-up: value still " << seen;
  }
}

// Two threads hand a turn back and forth; each waits for its turn with no
// spinning, so every round needs a notify that races the other's wait.
TEST_F(AtomicsStressTest, PingPongNeverLosesAWakeUp) {
  const int rounds = 100'000 / kScale;
  SharedArrayBuffer sab(4);
  Int32View turn(sab);
  testing::StartBarrier start(2);
  auto player = [&](std::int32_t me) {
    start.arrive_and_wait();
    for (int r = 0; r < rounds; ++r) {
      // Wait until turn == me: turn alternates 0, 1, 0, 1, ...
      for (std::int32_t t = atomics::load(turn, 0); t != me; t = atomics::load(turn, 0)) {
        ASSERT_NE(atomics::wait_for(turn, 0, t, testing::kHangGuard), WaitResult::kTimedOut)
            << "lost wake-up in round " << r;
      }
      atomics::store(turn, 0, 1 - me);
      atomics::notify(turn, 0);
    }
  };
  std::thread a(player, 0);
  std::thread b(player, 1);
  a.join();
  b.join();
  EXPECT_EQ(internal::waiter_count_approx(turn, 0), 0u);
}

class AtomicsBroadcastStressTest : public testing::CleanShutdownTest,
                                   public ::testing::WithParamInterface<int> {};

// Each round the main thread bumps a generation and notifies all; every
// waiter must see every generation and acknowledge it.
TEST_P(AtomicsBroadcastStressTest, EveryWaiterSeesEveryGeneration) {
  const int waiters = GetParam();
  const int rounds = 5'000 / kScale;
  SharedArrayBuffer sab(8);
  Int32View gen(sab, 0, 1);
  Int32View acks(sab, 4, 1);
  testing::StartBarrier start(waiters + 1);
  std::vector<std::thread> threads;
  for (int w = 0; w < waiters; ++w) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      for (std::int32_t g = 0; g < rounds; ++g) {
        wait_while_equal(gen, 0, g);
        EXPECT_EQ(atomics::load(gen, 0), g + 1);  // the main thread waits for our ack
        atomics::add(acks, 0, 1);
        atomics::notify(acks, 0);
      }
    });
  }
  start.arrive_and_wait();
  for (std::int32_t g = 0; g < rounds; ++g) {
    atomics::store(gen, 0, g + 1);
    atomics::notify(gen, 0);
    const std::int32_t want = (g + 1) * waiters;
    for (std::int32_t a = atomics::load(acks, 0); a != want; a = atomics::load(acks, 0)) {
      ASSERT_NE(atomics::wait_for(acks, 0, a, testing::kHangGuard), WaitResult::kTimedOut);
    }
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(atomics::load(acks, 0), rounds * waiters);
}
INSTANTIATE_TEST_SUITE_P(Waiters, AtomicsBroadcastStressTest, ::testing::Values(2, 4, 8));

// Waiters with tiny timeouts race a notifier waking one at a time: every
// wake-up notify reports is received by exactly one wait (kOk count == sum
// of notify's returns), and the list ends empty.
TEST_F(AtomicsStressTest, TimeoutsRacingNotifiesCountEveryWakeExactlyOnce) {
  constexpr int kWaiters = 4;
  const int waits_each = 20'000 / kScale;
  SharedArrayBuffer sab(4);
  Int32View v(sab);
  std::atomic<std::int64_t> oks{0};
  std::atomic<int> done{0};
  testing::StartBarrier start(kWaiters + 1);
  std::vector<std::thread> threads;
  for (int w = 0; w < kWaiters; ++w) {
    threads.emplace_back([&, w] {
      start.arrive_and_wait();
      std::int64_t mine = 0;
      for (int k = 0; k < waits_each; ++k) {
        const auto r = atomics::wait_for(v, 0, 0, std::chrono::microseconds((k + w) % 50));
        EXPECT_NE(r, WaitResult::kNotEqual);
        mine += (r == WaitResult::kOk);
      }
      oks.fetch_add(mine);
      done.fetch_add(1);
    });
  }
  start.arrive_and_wait();
  std::int64_t notified = 0;
  while (done.load() < kWaiters) notified += static_cast<std::int64_t>(atomics::notify(v, 0, 1));
  for (auto& th : threads) th.join();
  notified += static_cast<std::int64_t>(atomics::notify(v, 0));  // none left: adds 0
  EXPECT_EQ(oks.load(), notified);
  EXPECT_GT(notified, 0);
  EXPECT_EQ(internal::waiter_count_approx(v, 0), 0u);
}

// Many counters, many threads: adds on distinct and shared elements sum up.
TEST_F(AtomicsStressTest, MixedWidthAddsOnSharedElementsSumExactly) {
  constexpr int kThreads = 8;
  const int per_thread = 200'000 / kScale;
  SharedArrayBuffer sab(64);
  Int16View narrow(sab, 0, 4);
  Uint64View wide(sab, 32, 4);
  testing::StartBarrier start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int k = 0; k < per_thread; ++k) {
        atomics::add(narrow, t % 4, 1);
        atomics::sub(wide, t % 4, 1);
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int i = 0; i < 4; ++i) {
    const int adds = (kThreads / 4) * per_thread;
    EXPECT_EQ(atomics::load(narrow, i), static_cast<std::int16_t>(adds));  // wrapped
    EXPECT_EQ(atomics::load(wide, i), std::uint64_t{0} - static_cast<std::uint64_t>(adds));
  }
}

}  // namespace
}  // namespace weave
