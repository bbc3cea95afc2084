// Regression tests for the pool defects of the 2026-12-07 review (D1, D2,
// D4, D7, D8): each states the behaviour the fix guarantees, and each failed
// (or could fail, for the races) against the code before the fix. Every
// wait is bounded; no test sleeps to synchronise or asserts on speed
// (destroy()'s bound is a hang guard with seconds of slack).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/deadline.h"
#include "loop/event_loop.h"
#include "pool/pool.h"
#include "pool/task.h"
#include "tests/pool/pool_test_util.h"
#include "tests/test_util.h"
#include "tests/workers/worker_test_util.h"

namespace weave {
namespace {

using namespace std::chrono_literals;
using ::weave::pool_testing::errc_of;
using ::weave::pool_testing::fixed;
using ::weave::pool_testing::Gate;
using ::weave::pool_testing::SpinFlag;
using ::weave::testing::current_tid;
using ::weave::testing::eventually;
using ::weave::testing::kHangGuard;
using ::weave::testing::wait_until_parked;

class PoolRegressionTest : public ::weave::testing::WorkerTest {};

// --- D1: defer() then throw -------------------------------------------------------------

TEST_F(PoolRegressionTest, DeferThenThrowLeavesTheWorkerUsable) {
  Pool pool(fixed(1));
  auto dropped = std::make_shared<std::atomic<bool>>(false);
  TaskFuture<Value> f = pool.run([dropped](TaskContext& ctx) -> Value {
    // The completion outlives the throw: a later turn of the worker's loop
    // drops it (which reports kNotCompleted for a task already settled).
    EventLoop::current().post([c = ctx.defer(), dropped]() mutable {
      { TaskCompletion gone = std::move(c); }
      dropped->store(true, std::memory_order_release);
    });
    throw std::runtime_error("thrown after defer()");
  });
  ASSERT_TRUE(f.wait_for(kHangGuard));
  ASSERT_EQ(errc_of(f), TaskErrc::kThrew);
  ASSERT_TRUE(eventually([&] { return dropped->load(std::memory_order_acquire); }));
  // The one worker still takes tasks.
  TaskFuture<int> g = pool.run([] { return 42; });
  ASSERT_TRUE(g.wait_for(kHangGuard)) << "the worker is wedged";
  EXPECT_EQ(g.get(), 42);
  ASSERT_TRUE(pool.drain_for(kHangGuard));
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.queue_size, 0u);
  EXPECT_EQ(m.running, 0u);
  EXPECT_EQ(m.completed, 1u);
  EXPECT_EQ(m.failed, 1u);
}

TEST_F(PoolRegressionTest, DeferThenThrowWithTheCompletionDroppedDuringUnwindingKeepsTheWorker) {
  // The review's exact repro: the completion dies with the throw.
  Pool pool(fixed(1));
  TaskFuture<Value> f = pool.run([](TaskContext& ctx) -> Value {
    TaskCompletion c = ctx.defer();
    throw std::runtime_error("thrown after defer()");
  });
  ASSERT_TRUE(f.wait_for(kHangGuard));
  EXPECT_EQ(errc_of(f), TaskErrc::kThrew);
  for (int i = 0; i < 20; ++i) {
    TaskFuture<int> g = pool.run([i] { return i; });
    ASSERT_TRUE(g.wait_for(kHangGuard)) << "the worker is wedged after task " << i;
    EXPECT_EQ(g.get(), i);
  }
  EXPECT_TRUE(pool.drain_for(kHangGuard));
}

TEST_F(PoolRegressionTest, ADeferredTaskSettledInsideItsOwnBodyWithItsFutureDroppedIsClean) {
  // Found by the feature mixer: the completion, resolved or dropped inside
  // the task's body, released the last reference while invoke() was still
  // on the stack (a use-after-free under --config=asan).
  PoolOptions o = fixed(1);
  o.concurrent_tasks_per_worker = 2;
  Pool pool(std::move(o));
  for (int i = 0; i < 500; ++i) {
    (void)pool.run([](TaskContext& ctx) -> Value {
      TaskCompletion c = ctx.defer();
      c.resolve(Value(1));
      return Value();
    });
    (void)pool.run([](TaskContext& ctx) -> Value {
      { TaskCompletion dropped = ctx.defer(); }
      return Value();
    });
  }
  ASSERT_TRUE(pool.drain_for(kHangGuard));
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.completed, 500u);
  EXPECT_EQ(m.failed, 500u);  // kNotCompleted
}

// --- D2: signal cancel racing completion, futures dropped -----------------------------

// Tasks share one stop source per round, their futures dropped, while the
// stop request races their completion (the callback must never take a
// reference on a record whose count reached zero). Clean under asan/tsan.
void signal_cancel_races_completion(int tasks) {
  PoolOptions o = fixed(2);
  Pool pool(std::move(o));
  constexpr int kPerRound = 64;
  std::atomic<int> ran{0};
  for (int done = 0; done < tasks; done += kPerRound) {
    std::stop_source source;
    for (int i = 0; i < kPerRound; ++i) {
      RunOptions r;
      r.signal = source.get_token();
      (void)pool.run(
          [&ran](std::stop_token st) {
            ran.fetch_add(1, std::memory_order_relaxed);
            // Short, and returns early once asked: completion and the stop
            // request land together.
            for (int k = 0; k < 2000 && !st.stop_requested(); ++k) {
              std::atomic_signal_fence(std::memory_order_seq_cst);
            }
          },
          std::move(r));
    }
    source.request_stop();
  }
  ASSERT_TRUE(pool.drain_for(kHangGuard));
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.submitted,
            static_cast<std::uint64_t>((tasks + kPerRound - 1) / kPerRound * kPerRound));
  EXPECT_EQ(m.completed + m.cancelled, m.submitted);
  EXPECT_EQ(m.queue_size, 0u);
  EXPECT_EQ(m.running, 0u);
}

TEST_F(PoolRegressionTest, SignalCancelRacingCompletionWithDroppedFuturesIsClean) {
  signal_cancel_races_completion(20'000 / ::weave::testing::kStressScale);
}

// --- D4: a throwing on_queue_full -------------------------------------------------------

TEST_F(PoolRegressionTest, ThrowingOnQueueFullRejectsTheTaskAndLeavesNoPhantom) {
  PoolOptions o = fixed(1);
  o.max_queue = 0;
  std::atomic<int> asked{0};
  o.on_queue_full = [&asked](const QueueFullInfo&) -> QueueFullAction {
    asked.fetch_add(1);
    throw std::runtime_error("full");
  };
  Pool pool(std::move(o));
  auto release = std::make_shared<Gate>();
  auto started = std::make_shared<Gate>();
  TaskFuture<void> busy = pool.run([release, started](std::stop_token st) {
    started->open();
    (void)release->wait(st);
  });
  ASSERT_TRUE(started->wait());
  std::optional<TaskFuture<int>> f;
  EXPECT_NO_THROW(f.emplace(pool.run([] { return 1; }))) << "run() must not throw for a task";
  ASSERT_TRUE(f.has_value());
  ASSERT_TRUE(f->ready());
  EXPECT_EQ(errc_of(*f), TaskErrc::kQueueFull);
  EXPECT_EQ(asked.load(), 1);
  release->open();
  ASSERT_TRUE(busy.wait_for(kHangGuard));
  ASSERT_TRUE(pool.drain_for(kHangGuard)) << "a phantom task keeps drain() waiting";
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.submitted, 1u);
  EXPECT_EQ(m.completed, 1u);
  EXPECT_EQ(m.rejected, 1u);
  EXPECT_EQ(m.queue_size, 0u);
}

// --- D7: durations that mean "no limit" ------------------------------------------------

TEST_F(PoolRegressionTest, TimeoutOfForeverNeverTimesTheTaskOut) {
  Pool pool(fixed(2));
  auto release = std::make_shared<Gate>();
  auto started = std::make_shared<Gate>();
  RunOptions forever;
  forever.timeout = Clock::duration::max();
  TaskFuture<int> f = pool.run(
      [release, started](std::stop_token st) {
        started->open();
        return release->wait(st) ? 7 : -1;
      },
      std::move(forever));
  ASSERT_TRUE(started->wait());
  // A witness with a short timeout, submitted after: its timer is due after
  // any timer the first one got, so once it fired the first one would have.
  RunOptions brief;
  brief.timeout = 20ms;
  TaskFuture<void> witness =
      pool.run([](std::stop_token st) { (void)Gate().wait(st); }, std::move(brief));
  ASSERT_TRUE(witness.wait_for(kHangGuard));
  EXPECT_EQ(errc_of(witness), TaskErrc::kTimedOut);
  EXPECT_FALSE(f.ready()) << "a timeout of duration::max() fired";
  release->open();
  ASSERT_TRUE(f.wait_for(kHangGuard));
  EXPECT_EQ(f.get(), 7);

  RunOptions kforever;
  kforever.timeout = kForever;
  TaskFuture<int> g = pool.run([] { return 8; }, std::move(kforever));
  ASSERT_TRUE(g.wait_for(kHangGuard));
  EXPECT_EQ(g.get(), 8);
}

TEST_F(PoolRegressionTest, WaitForTheLongestDurationWaitsUntilTheTaskSettles) {
  Pool pool(fixed(1));
  auto release = std::make_shared<Gate>();
  TaskFuture<int> f =
      pool.run([release](std::stop_token st) { return release->wait(st) ? 5 : -1; });
  const pid_t me = current_tid();
  std::thread opener([&] {
    // Once this thread sleeps in wait_for, the task may end.
    (void)wait_until_parked(me);
    release->open();
  });
  const bool settled = f.wait_for(std::chrono::hours::max());
  release->open();
  opener.join();
  EXPECT_TRUE(settled) << "wait_for(hours::max()) returned before the task settled";
  ASSERT_TRUE(f.wait_for(kHangGuard));
  EXPECT_EQ(f.get(), 5);

  TaskFuture<int> g = pool.run([] { return 6; });
  EXPECT_TRUE(g.wait_for(std::chrono::seconds::max()));
  EXPECT_TRUE(g.wait_until(std::chrono::steady_clock::time_point::max()));
  EXPECT_EQ(g.get(), 6);
}

TEST_F(PoolRegressionTest, CancelGraceOfForeverNeverAbandonsTheWorker) {
  PoolOptions o = fixed(2);
  o.cancel_grace = kForever;
  Pool pool(std::move(o));
  SpinFlag stuck;
  auto started = std::make_shared<Gate>();
  TaskFuture<void> f = pool.run([flag = stuck.released, started] {
    started->open();
    while (!flag->load(std::memory_order_acquire)) std::this_thread::yield();
  });
  ASSERT_TRUE(started->wait());
  ASSERT_TRUE(f.cancel());
  // A witness: a timeout submitted after the cancel, due after any grace
  // timer the cancel armed.
  RunOptions brief;
  brief.timeout = 20ms;
  TaskFuture<void> witness =
      pool.run([](std::stop_token st) { (void)Gate().wait(st); }, std::move(brief));
  ASSERT_TRUE(witness.wait_for(kHangGuard));
  EXPECT_FALSE(f.ready()) << "a cancel_grace of kForever abandoned the task at once";
  EXPECT_EQ(pool.metrics().workers_replaced, 0u);
  stuck.release();
  ASSERT_TRUE(f.wait_for(kHangGuard));
  EXPECT_EQ(errc_of(f), TaskErrc::kCancelled);
  EXPECT_TRUE(pool.drain_for(kHangGuard));
}

TEST_F(PoolRegressionTest, IdleTimeoutOfForeverNeverRetires) {
  PoolOptions o;
  o.min_threads = 0;
  o.max_threads = 1;
  o.idle_timeout = kForever;
  Pool pool(std::move(o));
  TaskFuture<int> f = pool.run([] { return 1; });
  ASSERT_TRUE(f.wait_for(kHangGuard));
  EXPECT_EQ(f.get(), 1);
  EXPECT_EQ(pool.metrics().workers_retired, 0u);
  EXPECT_EQ(pool.threads_approx(), 1u);
}

TEST_F(PoolRegressionTest, DurationOptionsOutOfRangeAreRefusedNamingTheOption) {
  auto message_of = [](PoolOptions o) -> std::string {
    try {
      Pool p(std::move(o));
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  PoolOptions a;
  a.idle_timeout = 0ms;
  EXPECT_NE(message_of(std::move(a)).find("options.idle_timeout"), std::string::npos);
  PoolOptions b;
  b.cancel_grace = -5ms;
  EXPECT_NE(message_of(std::move(b)).find("options.cancel_grace"), std::string::npos);
}

// --- D8: destroy() racing run() --------------------------------------------------------

WEAVE_TASK(pool_regression_ignores_token, ctx, args) {
  // Spins until the flag its args name is set (the test's), ignoring the
  // stop token.
  const std::int64_t* addr = (*args.if_array())[0].if_int();
  auto* flag = reinterpret_cast<std::atomic<bool>*>(static_cast<std::uintptr_t>(*addr));
  while (!flag->load(std::memory_order_acquire)) std::this_thread::yield();
  return Value();
}

TEST_F(PoolRegressionTest, DestroyRacingRunOfASlowToCloneTaskReturnsWithinCancelGrace) {
  constexpr auto kGrace = 20ms;
  for (int round = 0; round < 8; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    SpinFlag stuck;
    std::optional<TaskFuture<Value>> late;
    {
      PoolOptions o = fixed(1);
      o.cancel_grace = kGrace;
      auto pool = std::make_unique<Pool>(std::move(o));
      // A task that returns on its token, running when destroy() starts.
      auto started = std::make_shared<Gate>();
      TaskFuture<void> polite = pool->run([started](std::stop_token st) {
        started->open();
        (void)Gate().wait(st);
      });
      ASSERT_TRUE(started->wait());
      // Args that take a while to clone (more each round, to sweep the race).
      Value args = Array{
          Value(static_cast<std::int64_t>(reinterpret_cast<std::uintptr_t>(stuck.released.get()))),
          Value(std::string(std::size_t{1} << (18 + round), 'x'))};
      ::weave::testing::StartBarrier go(2);
      std::thread submitter([&] {
        go.arrive_and_wait();
        late.emplace(pool->run("pool_regression_ignores_token", std::move(args)));
      });
      // If destroy() hangs on the stuck task, the flag lets it go after the
      // bound, so the test fails instead of hanging.
      std::atomic<bool> destroyed{false};
      std::thread watchdog([&] {
        const auto until = std::chrono::steady_clock::now() + kGrace + 5s;
        while (!destroyed.load() && std::chrono::steady_clock::now() < until) {
          std::this_thread::sleep_for(1ms);
        }
        stuck.release();
      });
      go.arrive_and_wait();
      const auto t0 = std::chrono::steady_clock::now();
      pool->destroy();
      const auto took = std::chrono::steady_clock::now() - t0;
      destroyed.store(true);
      watchdog.join();
      submitter.join();
      EXPECT_LT(took, kGrace + 5s) << "destroy() waited for a task that ignores its token";
      ASSERT_TRUE(polite.wait_for(kHangGuard));
      ASSERT_TRUE(late.has_value());
      ASSERT_TRUE(late->wait_for(kHangGuard));
      const std::optional<TaskErrc> e = errc_of(*late);
      EXPECT_TRUE(e == TaskErrc::kCancelled || e == TaskErrc::kPoolClosed)
          << "the late task settled with errc " << (e ? static_cast<int>(*e) : -1);
      stuck.release();
      pool.reset();
    }
    // An abandoned thread ends once released.
  }
}

// --- smaller items --------------------------------------------------------------------

bool throws_no_state(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::future_error& e) {
    return e.code() == std::future_errc::no_state;
  } catch (...) {
    return false;
  }
  return false;
}

TEST_F(PoolRegressionTest, AnEmptyFutureThrowsNoStateAndASecondGetThrowsToo) {
  TaskFuture<int> empty;
  EXPECT_FALSE(empty.valid());
  EXPECT_TRUE(throws_no_state([&] { (void)empty.id(); }));
  EXPECT_TRUE(throws_no_state([&] { (void)empty.ready(); }));
  EXPECT_TRUE(throws_no_state([&] { empty.wait(); }));
  EXPECT_TRUE(throws_no_state([&] { (void)empty.wait_for(1ms); }));
  EXPECT_TRUE(throws_no_state([&] { (void)empty.get(); }));
  EXPECT_EQ(empty.error(), nullptr);
  EXPECT_FALSE(empty.cancel());

  Pool pool(fixed(1));
  TaskFuture<std::string> f = pool.run([] { return std::string("once"); });
  EXPECT_EQ(f.get(), "once");
  EXPECT_TRUE(throws_no_state([&] { (void)f.get(); })) << "a second get() must not return a "
                                                          "moved-from value";
  EXPECT_TRUE(f.ready());
  TaskFuture<std::string> moved = std::move(f);
  EXPECT_FALSE(f.valid());  // NOLINT(bugprone-use-after-move): the point
  EXPECT_TRUE(throws_no_state([&] { (void)f.id(); }));
}

#ifndef NDEBUG
TEST(PoolNestedBlockingDeathTest, DrainOrGetFromATaskOfTheSamePoolIsADebugAssertion) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Pool pool(fixed(1));
        TaskFuture<void> f = pool.run([&pool] { pool.drain(); });
        (void)f.wait_for(kHangGuard);
      },
      "called from a task of this pool");
  EXPECT_DEATH(
      {
        Pool pool(fixed(2));
        auto inner = std::make_shared<TaskFuture<int>>();
        auto release = std::make_shared<Gate>();
        *inner = pool.run([release](std::stop_token st) { return release->wait(st) ? 1 : 0; });
        TaskFuture<int> outer = pool.run([inner] { return inner->get(); });
        (void)outer.wait_for(kHangGuard);
      },
      "waits on a task of its own pool");
}
#endif

}  // namespace
}  // namespace weave
