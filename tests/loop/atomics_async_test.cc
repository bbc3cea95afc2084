// atomics::wait_async (loop/atomics_async.h): Node's Atomics.waitAsync — the
// outcome arrives on the calling thread's loop, which is never blocked.
#include "loop/atomics_async.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "atomics/atomics.h"
#include "atomics/shared_array_buffer.h"
#include "atomics/shared_view.h"
#include "loop/event_loop.h"
#include "tests/atomics/waiters.h"
#include "tests/test_util.h"

namespace weave {
namespace {

using atomics::WaitResult;
using namespace std::chrono_literals;

class WaitAsyncTest : public testing::CleanShutdownTest {};

using testing::wait_for_waiters;

TEST_F(WaitAsyncTest, ADifferentValueIsAnImmediateNotEqualAndTheCallbackNeverRuns) {
  SharedArrayBuffer sab(8);
  Int32View v(sab);
  atomics::store(v, 0, 5);
  bool called = false;
  auto r = atomics::wait_async(v, 0, 0, std::nullopt, [&](WaitResult) { called = true; });
  EXPECT_FALSE(r.async);
  EXPECT_EQ(r.value, WaitResult::kNotEqual);
  EXPECT_FALSE(r.wait.pending());
  EXPECT_FALSE(EventLoop::current().run());  // nothing keeps the loop alive
  EXPECT_FALSE(called);
  EXPECT_EQ(internal::waiter_count_approx(v, 0), 0u);
}

TEST_F(WaitAsyncTest, AZeroTimeoutOnAnEqualValueIsAnImmediateTimedOut) {
  SharedArrayBuffer sab(8);
  Int32View v(sab);
  bool called = false;
  auto r = atomics::wait_async(v, 0, 0, 0ms, [&](WaitResult) { called = true; });
  EXPECT_FALSE(r.async);
  EXPECT_EQ(r.value, WaitResult::kTimedOut);
  EXPECT_FALSE(EventLoop::current().run());
  EXPECT_FALSE(called);
  EXPECT_EQ(atomics::notify(v, 0), 0u);
}

TEST_F(WaitAsyncTest, ANotifyResolvesItOnTheLoopWhichKeptRunningMeanwhile) {
  SharedArrayBuffer sab(8);
  Int32View v(sab);
  EventLoop& loop = EventLoop::current();
  std::optional<WaitResult> result;
  std::thread::id callback_thread;
  auto r = atomics::wait_async(v, 0, 0, std::nullopt, [&](WaitResult w) {
    result = w;
    callback_thread = std::this_thread::get_id();
  });
  ASSERT_TRUE(r.async);
  EXPECT_TRUE(r.wait.pending());
  EXPECT_EQ(internal::waiter_count_approx(v, 0), 1u);
  // The loop is not blocked: its own callbacks keep running while the wait
  // is pending; the last of them lets another thread notify.
  int ticks = 0;
  std::size_t woken = 0;
  std::thread notifier;
  Timer interval = loop.set_interval(0ms, [&] {
    if (++ticks == 3) {
      notifier = std::thread([&] {
        atomics::store(v, 0, 1);
        woken = atomics::notify(v, 0);
      });
    }
    if (result) interval.cancel();
  });
  loop.run();  // kept alive by the pending wait until its callback ran
  notifier.join();
  EXPECT_GE(ticks, 3);
  EXPECT_EQ(woken, 1u);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(*result, WaitResult::kOk);
  EXPECT_EQ(callback_thread, std::this_thread::get_id());
  EXPECT_FALSE(r.wait.pending());
}

TEST_F(WaitAsyncTest, ItTimesOutOnTheLoopAndLeavesTheWaiterList) {
  SharedArrayBuffer sab(8);
  Int32View v(sab);
  std::optional<WaitResult> result;
  const auto start = std::chrono::steady_clock::now();
  auto r = atomics::wait_async(v, 0, 0, 5ms, [&](WaitResult w) { result = w; });
  ASSERT_TRUE(r.async);
  EventLoop::current().run();
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(*result, WaitResult::kTimedOut);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 5ms);
  EXPECT_EQ(internal::waiter_count_approx(v, 0), 0u);
  EXPECT_EQ(atomics::notify(v, 0), 0u);
}

TEST_F(WaitAsyncTest, CancelWithdrawsItAndNoLongerKeepsTheLoopAlive) {
  SharedArrayBuffer sab(8);
  Int32View v(sab);
  bool called = false;
  auto r = atomics::wait_async(v, 0, 0, std::nullopt, [&](WaitResult) { called = true; });
  ASSERT_TRUE(r.async);
  EXPECT_TRUE(r.wait.cancel());
  EXPECT_FALSE(r.wait.pending());
  EXPECT_FALSE(r.wait.cancel());  // twice: nothing left to withdraw
  EXPECT_EQ(atomics::notify(v, 0), 0u);
  EXPECT_FALSE(EventLoop::current().run());
  EXPECT_FALSE(called);
}

TEST_F(WaitAsyncTest, AsyncAndBlockingWaitersShareOneFifoList) {
  SharedArrayBuffer sab(8);
  Int32View v(sab);
  std::optional<WaitResult> async_result;
  auto r = atomics::wait_async(v, 0, 0, std::nullopt, [&](WaitResult w) { async_result = w; });
  ASSERT_TRUE(r.async);
  WaitResult blocking = WaitResult::kNotEqual;
  std::thread blocker([&] { blocking = atomics::wait(v, 0, 0); });
  ASSERT_TRUE(wait_for_waiters(v, 0, 2));
  // notify(1) wakes the oldest: the asynchronous one, which came first.
  EXPECT_EQ(atomics::notify(v, 0, 1), 1u);
  EXPECT_EQ(internal::waiter_count_approx(v, 0), 1u);
  EventLoop::current().run();
  ASSERT_TRUE(async_result.has_value());
  EXPECT_EQ(*async_result, WaitResult::kOk);
  EXPECT_EQ(atomics::notify(v, 0, 1), 1u);
  blocker.join();
  EXPECT_EQ(blocking, WaitResult::kOk);
}

// D11: a pending wait with no timeout used to hold itself (a self-reference
// broken only by a notify or a timeout): its thread's loop ended and the node
// and the callback's captures leaked until some thread notified that address,
// perhaps never. Now the loop withdraws it when it ends and destroys the
// callback unrun, on its own thread; a later notify finds no one.
TEST_F(WaitAsyncTest, APendingWaitIsWithdrawnAndItsCallbackDestroyedUnrunWhenTheLoopEnds) {
  SharedArrayBuffer sab(8);
  Int32View v(sab);
  auto token = std::make_shared<int>(0);
  std::atomic<bool> called{false};
  atomics::AsyncWait kept;
  std::thread t([&] {
    auto r =
        atomics::wait_async(v, 0, 0, std::nullopt, [token, &called](WaitResult) { called = true; });
    ASSERT_TRUE(r.async);
    kept = r.wait;  // a handle that outlives the loop
    EXPECT_EQ(token.use_count(), 2);
    // The thread ends without running its loop: the wait is still pending.
  });
  t.join();
  EXPECT_EQ(token.use_count(), 1) << "the ended loop's wait kept its callback's captures";
  EXPECT_EQ(internal::waiter_count_approx(v, 0), 0u) << "the ended loop's wait is still listed";
  EXPECT_EQ(atomics::notify(v, 0), 0u);
  EXPECT_FALSE(called.load());
  EXPECT_FALSE(kept.pending());
  EXPECT_FALSE(kept.cancel());
}

// The same with a timeout, and with a notify that took the node just before
// the loop ended (its completion never runs: the loop has ended).
TEST_F(WaitAsyncTest, AWaitNotifiedOrTimedButNotRunWhenTheLoopEndsIsDroppedUnrun) {
  SharedArrayBuffer sab(8);
  Int32View v(sab);
  auto token = std::make_shared<int>(0);
  std::atomic<int> called{0};
  std::thread t([&] {
    auto a = atomics::wait_async(v, 0, 0, 1h, [token, &called](WaitResult) { ++called; });
    auto b = atomics::wait_async(v, 0, 0, std::nullopt, [token, &called](WaitResult) { ++called; });
    ASSERT_TRUE(a.async);
    ASSERT_TRUE(b.async);
    EXPECT_EQ(atomics::notify(v, 0, 1), 1u);  // takes `a`: its dispatch is queued
    EXPECT_EQ(token.use_count(), 3);
  });
  t.join();
  EXPECT_EQ(token.use_count(), 1);
  EXPECT_EQ(called.load(), 0);
  EXPECT_EQ(internal::waiter_count_approx(v, 0), 0u);
}

// A notify from another thread completes the wait through the loop's ready
// list: many waits, many notifiers, each callback exactly once.
TEST_F(WaitAsyncTest, ManyWaitsNotifiedFromAnotherThreadEachCompleteOnce) {
  constexpr int kWaits = 200;
  SharedArrayBuffer sab(8 * kWaits);
  Int32View v(sab);
  std::vector<int> results(kWaits, 0);
  for (int i = 0; i < kWaits; ++i) {
    auto r = atomics::wait_async(v, static_cast<std::size_t>(i), 0,
                                 i % 2 ? std::optional<Clock::duration>(1h) : std::nullopt,
                                 [&results, i](WaitResult w) {
                                   results[static_cast<std::size_t>(i)] += w == WaitResult::kOk;
                                 });
    ASSERT_TRUE(r.async);
  }
  std::thread notifier([&] {
    for (int i = 0; i < kWaits; ++i) {
      while (atomics::notify(v, static_cast<std::size_t>(i)) == 0) std::this_thread::yield();
    }
  });
  EventLoop::current().run();
  notifier.join();
  for (int i = 0; i < kWaits; ++i) EXPECT_EQ(results[static_cast<std::size_t>(i)], 1) << i;
}

}  // namespace
}  // namespace weave
