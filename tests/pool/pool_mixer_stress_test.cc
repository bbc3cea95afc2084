// The pool's features combined, at random, per task: deferred completion
// (resolved later, dropped, or followed by a throw), throwing, a timeout
// (short or long), a shared stop signal requested mid-batch, cancel(), and a
// future kept or dropped; plus destroy() racing run(), and timeouts at a
// high rate. Each test checks that every accepted task settled exactly once
// (the on_finish hook, by id), that every kept future is ready with an
// outcome its features allow, and the pool's accounting invariants at
// quiescence (internal::PoolInspector). Size large: the quick suite stays
// quick. A fixed seed per run, printed, so a failure can be replayed.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/deadline.h"
#include "loop/event_loop.h"
#include "pool/internal/inspect.h"
#include "pool/pool.h"
#include "pool/task.h"
#include "tests/pool/pool_test_util.h"
#include "tests/test_util.h"

namespace weave {
namespace {

using namespace std::chrono_literals;
using ::weave::internal::PoolInspector;
using ::weave::testing::eventually;
using ::weave::testing::kHangGuard;
using ::weave::testing::StartBarrier;

constexpr int kScale = ::weave::testing::kStressScale;

// How many times on_finish reported each task id.
class SettleCounter {
 public:
  explicit SettleCounter(std::size_t max_id) : counts_(max_id + 1) {}
  void attach(PoolOptions& o) {
    o.hooks.on_finish = [this](const TaskEvent& e) {
      if (e.task_id < counts_.size()) {
        counts_[e.task_id].fetch_add(1, std::memory_order_relaxed);
      } else {
        overflow_.fetch_add(1, std::memory_order_relaxed);
      }
    };
  }
  // Ids 1..n each exactly once (ids are per pool, from 1, one per run()).
  void expect_each_once(std::uint64_t n) {
    EXPECT_EQ(overflow_.load(), 0u);
    std::uint64_t never = 0, twice = 0;
    for (std::uint64_t id = 1; id <= n; ++id) {
      const int c = counts_[id].load(std::memory_order_relaxed);
      never += c == 0;
      twice += c > 1;
    }
    EXPECT_EQ(never, 0u) << "tasks that never settled";
    EXPECT_EQ(twice, 0u) << "tasks that settled more than once";
  }

 private:
  std::vector<std::atomic<int>> counts_;
  std::atomic<std::uint64_t> overflow_{0};
};

enum Kind : int {
  kReturn,          // returns 1
  kThrow,           // throws
  kDeferResolve,    // defer(), resolved by a timer 0-1 ms later
  kDeferDrop,       // defer(), the completion dropped at once (kNotCompleted)
  kDeferThenThrow,  // defer(), then throws; the completion reports later
  kSpin,            // spins until asked to stop, or a while
  kKinds
};

struct Plan {
  Kind kind;
  bool short_timeout;  // 0-2 ms
  bool long_timeout;   // 1 h (must never fire)
  bool signal;         // the batch's shared stop source
  bool cancel;         // cancel() right after run()
  bool cancel_won;     // ... and it returned true: the outcome is kCancelled
  bool keep;           // keep the future (else dropped)
};

Value run_kind(Kind kind, TaskContext& ctx) {
  switch (kind) {
    case kReturn:
      return 1;
    case kThrow:
      throw std::runtime_error("mixer: thrown");
    case kDeferResolve: {
      auto c = std::make_shared<TaskCompletion>(ctx.defer());
      EventLoop::current().set_timeout(std::chrono::microseconds(ctx.id() % 1000),
                                       [c] { c->resolve(Value(2)); });
      return Value();
    }
    case kDeferDrop: {
      TaskCompletion c = ctx.defer();
      return Value();
    }
    case kDeferThenThrow: {
      auto c = std::make_shared<TaskCompletion>(ctx.defer());
      EventLoop::current().post([c] { c->resolve(Value(3)); });
      throw std::runtime_error("mixer: thrown after defer()");
    }
    case kSpin:
    default:
      for (int i = 0; i < 20000 && !ctx.stop_requested(); ++i) {
        std::atomic_signal_fence(std::memory_order_seq_cst);
      }
      return 4;
  }
}

// The outcomes a task's features allow.
bool outcome_allowed(const Plan& p, const TaskFuture<Value>& f) {
  const TaskError* e = f.error();
  if (p.cancel_won) return e != nullptr && e->errc() == TaskErrc::kCancelled;
  if (e == nullptr) {
    return p.kind != kThrow && p.kind != kDeferDrop && p.kind != kDeferThenThrow;
  }
  switch (e->errc()) {
    case TaskErrc::kCancelled:
      return p.signal;
    case TaskErrc::kTimedOut:
      return p.short_timeout;
    case TaskErrc::kThrew:
      return p.kind == kThrow || p.kind == kDeferThenThrow;
    case TaskErrc::kNotCompleted:
      return p.kind == kDeferDrop;
    default:
      return false;
  }
}

struct MixerConfig {
  const char* name;
  std::size_t min_threads;
  std::size_t max_threads;
  std::size_t concurrency;
  std::size_t max_queue;
};

class PoolMixerStressTest : public ::weave::testing::CleanShutdownTest,
                            public ::testing::WithParamInterface<MixerConfig> {};

TEST_P(PoolMixerStressTest, EveryTaskSettlesOnceWithAnAllowedOutcomeAndTheAccountsBalance) {
  const MixerConfig cfg = GetParam();
  constexpr int kThreads = 2;
  const int per_thread = 20'000 / kScale;
  const std::uint64_t total = static_cast<std::uint64_t>(kThreads) * per_thread;
  const unsigned seed = std::random_device{}();
  std::printf("seed %u\n", seed);
  SettleCounter settles(total);
  PoolOptions o;
  o.min_threads = cfg.min_threads;
  o.max_threads = cfg.max_threads;
  o.concurrent_tasks_per_worker = cfg.concurrency;
  o.max_queue = cfg.max_queue;
  o.queue_full = QueueFullAction::kWait;
  o.idle_timeout = 5ms;  // retire and regrow while the mix runs
  o.cancel_grace = 2s;   // every task returns on its token: none is abandoned
  settles.attach(o);
  {
    Pool pool(std::move(o));
    StartBarrier go(kThreads);
    std::vector<std::thread> submitters;
    std::vector<std::vector<std::pair<Plan, TaskFuture<Value>>>> kept(kThreads);
    for (int t = 0; t < kThreads; ++t) {
      submitters.emplace_back([&, t] {
        std::mt19937 rng(seed + static_cast<unsigned>(t));
        auto chance = [&](int percent) { return static_cast<int>(rng() % 100) < percent; };
        go.arrive_and_wait();
        std::optional<std::stop_source> batch;
        for (int i = 0; i < per_thread; ++i) {
          if (i % 32 == 0) {
            if (batch) batch->request_stop();  // races the batch's completions
            batch.emplace();
          }
          Plan p{static_cast<Kind>(rng() % kKinds), false, false, false, false, false, chance(70)};
          const int timeout = static_cast<int>(rng() % 10);
          p.short_timeout = timeout == 0;
          p.long_timeout = timeout == 1;
          p.signal = chance(20);
          p.cancel = chance(10);
          RunOptions r;
          if (p.short_timeout) r.timeout = std::chrono::microseconds(rng() % 2000);
          if (p.long_timeout) r.timeout = 1h;
          if (p.signal) r.signal = batch->get_token();
          TaskFuture<Value> f = pool.run(
              [kind = p.kind](TaskContext& ctx) { return run_kind(kind, ctx); }, std::move(r));
          if (p.cancel) p.cancel_won = f.cancel();
          if (p.keep) kept[t].emplace_back(p, std::move(f));
        }
        if (batch) batch->request_stop();
      });
    }
    for (std::thread& th : submitters) th.join();
    ASSERT_TRUE(pool.drain_for(kHangGuard)) << "the pool did not become idle";
    std::uint64_t bad = 0;
    for (auto& list : kept) {
      for (auto& [plan, f] : list) {
        EXPECT_TRUE(f.ready());
        if (f.ready() && !outcome_allowed(plan, f)) {
          if (++bad <= 5) {
            ADD_FAILURE() << "kind " << plan.kind << " cancel " << plan.cancel << " signal "
                          << plan.signal << " short " << plan.short_timeout << " long "
                          << plan.long_timeout << ": "
                          << (f.error() ? f.error()->code() : std::string("ok"));
          }
        }
      }
    }
    EXPECT_EQ(bad, 0u);
    settles.expect_each_once(total);
    const PoolMetrics m = pool.metrics();
    EXPECT_EQ(m.submitted, total);
    EXPECT_EQ(m.completed + m.failed + m.cancelled + m.timed_out, total);
    EXPECT_EQ(m.queue_size, 0u);
    EXPECT_EQ(m.running, 0u);
    EXPECT_EQ(PoolInspector::accounting_report(pool), "");
  }
}

INSTANTIATE_TEST_SUITE_P(Configs, PoolMixerStressTest,
                         ::testing::Values(MixerConfig{"fixed2", 2, 2, 1, PoolOptions::kUnbounded},
                                           MixerConfig{"growing", 1, 3, 2, 64}),
                         [](const ::testing::TestParamInfo<MixerConfig>& i) {
                           return std::string(i.param.name);
                         });

// --- destroy() racing run() -------------------------------------------------------------

class PoolDestroyRaceStressTest : public ::weave::testing::CleanShutdownTest {};

TEST_F(PoolDestroyRaceStressTest, DestroyRacingRunsSettlesEveryFutureWithinTheGrace) {
  const int rounds = 200 / kScale;
  for (int round = 0; round < rounds; ++round) {
    PoolOptions o = pool_testing::fixed(2);
    o.cancel_grace = 20ms;
    auto pool = std::make_unique<Pool>(std::move(o));
    pool_testing::SpinFlag stuck;
    StartBarrier go(3);
    std::vector<TaskFuture<Value>> futures[2];
    std::vector<std::thread> submitters;
    for (int t = 0; t < 2; ++t) {
      submitters.emplace_back([&, t] {
        go.arrive_and_wait();
        for (int i = 0; i < 200; ++i) {
          const Kind kind = static_cast<Kind>((i + round) % kKinds);
          RunOptions r;
          if (i % 7 == 0) r.timeout = 1ms;
          if (i == 50 && t == 0) {
            // One task that ignores its token: destroy() must let it go.
            futures[t].push_back(pool->run(
                [flag = stuck.released] {
                  while (!flag->load(std::memory_order_acquire)) std::this_thread::yield();
                  return Value(5);
                },
                std::move(r)));
            continue;
          }
          futures[t].push_back(
              pool->run([kind](TaskContext& ctx) { return run_kind(kind, ctx); }, std::move(r)));
        }
      });
    }
    go.arrive_and_wait();
    const auto t0 = std::chrono::steady_clock::now();
    pool->destroy();
    const auto took = std::chrono::steady_clock::now() - t0;
    for (std::thread& th : submitters) th.join();
    // A hang guard with seconds of slack, not a speed assertion.
    EXPECT_LT(took, 20ms + 5s) << "round " << round;
    for (auto& list : futures) {
      for (auto& f : list) ASSERT_TRUE(f.wait_for(kHangGuard)) << "round " << round;
    }
    stuck.release();
    pool.reset();  // the let-go thread ends once released
  }
}

// --- one stop signal shared by many fire-and-forget tasks (D2) --------------------------

class PoolSignalStressTest : public ::weave::testing::CleanShutdownTest {};

TEST_F(PoolSignalStressTest, OneSharedSignalRequestedWhileTasksCompleteWithDroppedFuturesIsClean) {
  const int tasks = 100'000 / kScale;
  Pool pool(pool_testing::fixed(2));
  std::stop_source shared;
  std::atomic<int> submitted{0};
  std::thread stopper([&] {
    // Mid-way through, from another thread: the stop callbacks race the
    // completions (and the last releases) of the running tasks.
    while (submitted.load(std::memory_order_acquire) < tasks / 2) std::this_thread::yield();
    shared.request_stop();
  });
  for (int i = 0; i < tasks; ++i) {
    RunOptions r;
    r.signal = shared.get_token();
    (void)pool.run(
        [](std::stop_token st) {
          for (int k = 0; k < 200 && !st.stop_requested(); ++k) {
            std::atomic_signal_fence(std::memory_order_seq_cst);
          }
        },
        std::move(r));
    submitted.store(i + 1, std::memory_order_release);
  }
  stopper.join();
  ASSERT_TRUE(pool.drain_for(kHangGuard));
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.completed + m.cancelled, static_cast<std::uint64_t>(tasks));
  EXPECT_EQ(PoolInspector::accounting_report(pool), "");
}

TEST_F(PoolSignalStressTest, ASignalPerBatchRequestedAsTheBatchCompletesIsClean) {
  const int tasks = 100'000 / kScale;
  Pool pool(pool_testing::fixed(2));
  for (int done = 0; done < tasks; done += 64) {
    std::stop_source batch;
    for (int i = 0; i < 64; ++i) {
      RunOptions r;
      r.signal = batch.get_token();
      (void)pool.run(
          [](std::stop_token st) {
            for (int k = 0; k < 2000 && !st.stop_requested(); ++k) {
              std::atomic_signal_fence(std::memory_order_seq_cst);
            }
          },
          std::move(r));
    }
    batch.request_stop();
  }
  ASSERT_TRUE(pool.drain_for(kHangGuard));
  EXPECT_EQ(PoolInspector::accounting_report(pool), "");
}

// --- timeouts at a high rate --------------------------------------------------------------

class PoolTimeoutStressTest : public ::weave::testing::CleanShutdownTest {};

TEST_F(PoolTimeoutStressTest, ManyTimedTasksSettleOnceAndLeaveNoDeadlineBehind) {
  const int tasks = 100'000 / kScale;
  SettleCounter settles(static_cast<std::size_t>(tasks));
  PoolOptions o = pool_testing::fixed(2);
  settles.attach(o);
  Pool pool(std::move(o));
  for (int i = 0; i < tasks; ++i) {
    RunOptions r;
    // Most are long and complete first; some expire, queued or running.
    r.timeout = i % 16 == 0 ? std::chrono::microseconds(i % 500) : std::chrono::hours(1);
    (void)pool.run(
        [](std::stop_token st) {
          for (int k = 0; k < 50 && !st.stop_requested(); ++k) {
            std::atomic_signal_fence(std::memory_order_seq_cst);
          }
        },
        std::move(r));
  }
  ASSERT_TRUE(pool.drain_for(kHangGuard));
  settles.expect_each_once(static_cast<std::uint64_t>(tasks));
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.completed + m.timed_out, static_cast<std::uint64_t>(tasks));
  EXPECT_EQ(PoolInspector::accounting_report(pool), "");
}

}  // namespace
}  // namespace weave
