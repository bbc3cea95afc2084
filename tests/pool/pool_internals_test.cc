// White-box checks of the pool's bookkeeping (pool/internal/inspect.h): the
// deadline list of timed tasks does not grow with tasks that finished, the
// producer tokens of submitting threads that ended are given back, and the
// accounting invariants hold once the pool is quiescent.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <stop_token>
#include <thread>
#include <utility>
#include <vector>

#include "pool/internal/inspect.h"
#include "pool/pool.h"
#include "pool/task.h"
#include "tests/pool/pool_test_util.h"
#include "tests/test_util.h"

namespace weave {
namespace {

using namespace std::chrono_literals;
using ::weave::internal::PoolInspector;
using ::weave::pool_testing::errc_of;
using ::weave::pool_testing::fixed;
using ::weave::testing::kHangGuard;

class PoolInternalsTest : public ::weave::testing::CleanShutdownTest {};

TEST_F(PoolInternalsTest, TimedTasksThatCompleteLeaveNoDeadlineListed) {
  Pool pool(fixed(2));
  const int tasks = 100'000 / ::weave::testing::kStressScale;
  std::size_t most_listed = 0;
  for (int i = 0; i < tasks; ++i) {
    RunOptions r;
    r.timeout = 1h;  // far beyond the test: each completes long before
    (void)pool.run([] { return 1; }, std::move(r));
    if (i % 1024 == 0) {
      ASSERT_TRUE(pool.drain_for(kHangGuard));
      most_listed = std::max(most_listed, PoolInspector::pending_deadlines(pool));
    }
  }
  ASSERT_TRUE(pool.drain_for(kHangGuard));
  EXPECT_EQ(most_listed, 0u) << "finished tasks stayed on the deadline list";
  EXPECT_EQ(PoolInspector::pending_deadlines(pool), 0u);
  EXPECT_EQ(pool.metrics().completed, static_cast<std::uint64_t>(tasks));
  EXPECT_EQ(PoolInspector::accounting_report(pool), "");
}

TEST_F(PoolInternalsTest, TimedTasksThatExpireLeaveNoDeadlineListed) {
  Pool pool(fixed(1));
  std::vector<TaskFuture<void>> futures;
  for (int i = 0; i < 200; ++i) {
    RunOptions r;
    r.timeout = std::chrono::microseconds(i % 3 == 0 ? 0 : 500);
    futures.push_back(pool.run(
        [](std::stop_token st) {
          while (!st.stop_requested()) std::this_thread::yield();
        },
        std::move(r)));
  }
  for (auto& f : futures) {
    ASSERT_TRUE(f.wait_for(kHangGuard));
    EXPECT_EQ(errc_of(f), TaskErrc::kTimedOut);
  }
  ASSERT_TRUE(pool.drain_for(kHangGuard));
  EXPECT_EQ(PoolInspector::pending_deadlines(pool), 0u);
  EXPECT_EQ(PoolInspector::accounting_report(pool), "");
}

TEST_F(PoolInternalsTest, SubmittingThreadsThatEndGiveTheirProducerTokensBack) {
  Pool pool(fixed(2));
  std::atomic<int> ran{0};
  // Short-lived submitting threads, a few at a time.
  for (int wave = 0; wave < 100; ++wave) {
    std::vector<std::thread> threads;
    for (int i = 0; i < 10; ++i) {
      threads.emplace_back([&] {
        TaskFuture<int> f = pool.run([&ran] { return ran.fetch_add(1) + 1; });
        ASSERT_TRUE(f.wait_for(kHangGuard));
      });
    }
    for (std::thread& t : threads) t.join();
    // A thread's thread_local destructors run before join() returns.
    EXPECT_EQ(PoolInspector::producer_tokens(pool), 0u) << "wave " << wave;
  }
  EXPECT_EQ(ran.load(), 1000);
  // This thread's token stays while it lives.
  TaskFuture<int> g = pool.run([] { return 7; });
  EXPECT_EQ(g.get(), 7);
  EXPECT_EQ(PoolInspector::producer_tokens(pool), 1u);
  ASSERT_TRUE(pool.drain_for(kHangGuard));
  EXPECT_EQ(PoolInspector::accounting_report(pool), "");
}

}  // namespace
}  // namespace weave
