// Stress for weave::Pool (pool/pool.h): many tiny tasks from two submitting
// threads across worker counts, cancel storms racing with starts, and
// destroy() racing submissions and cancels. Each test checks a closed-form
// invariant: every task settles exactly once, every result is its own, and
// the pool's counters add up to what was submitted. Each ends by proving a
// clean shutdown (no thread or fd left; no byte under --config=asan).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "pool/pool.h"
#include "pool/task.h"
#include "tests/test_util.h"

namespace weave {
namespace {

constexpr int kScale = ::weave::testing::kStressScale;

using namespace std::chrono_literals;
using ::weave::testing::eventually;
using ::weave::testing::kHangGuard;
using ::weave::testing::StartBarrier;

// The ids on_finish reported, to prove each task settled exactly once.
class FinishLog {
 public:
  void attach(PoolOptions& o) {
    o.hooks.on_finish = [this](const TaskEvent& e) {
      std::lock_guard lock(mu_);
      ids_.push_back(e.task_id);
    };
  }
  std::size_t size() {
    std::lock_guard lock(mu_);
    return ids_.size();
  }
  // Sorted.
  std::vector<std::uint64_t> ids() {
    std::lock_guard lock(mu_);
    std::vector<std::uint64_t> out = ids_;
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  std::mutex mu_;
  std::vector<std::uint64_t> ids_;
};

// Waits until on_finish reported as many tasks as there are futures, then
// checks they are exactly the futures' tasks (each once).
template <class Futures>
void expect_each_finished_once(FinishLog& log, const Futures& futures) {
  std::vector<std::uint64_t> expected;
  expected.reserve(futures.size());
  for (const auto& f : futures) expected.push_back(f.id());
  std::sort(expected.begin(), expected.end());
  EXPECT_TRUE(eventually([&] { return log.size() >= expected.size(); }))
      << log.size() << " of " << expected.size() << " finished";
  const std::vector<std::uint64_t> seen = log.ids();
  EXPECT_EQ(seen.size(), expected.size());
  EXPECT_TRUE(std::adjacent_find(seen.begin(), seen.end()) == seen.end())
      << "on_finish reported a task twice";
  EXPECT_TRUE(seen == expected) << "on_finish did not report exactly the submitted tasks";
}

// --- many tiny tasks -----------------------------------------------------------------------

class PoolThroughputStressTest : public ::weave::testing::CleanShutdownTest,
                                 public ::testing::WithParamInterface<std::size_t> {};

TEST_P(PoolThroughputStressTest, TinyTasksFromTwoThreadsEachRunOnceAndReturnTheirOwnResult) {
  const int tasks = 100'000 / kScale;
  const std::size_t threads = GetParam();
  std::vector<std::atomic<int>> runs(tasks);
  std::vector<TaskFuture<std::int64_t>> futures(tasks);
  FinishLog finished;
  PoolOptions o;
  o.min_threads = threads;
  o.max_threads = threads;
  finished.attach(o);
  {
    Pool pool(std::move(o));
    StartBarrier start(2);
    auto submit = [&](int first) {
      start.arrive_and_wait();
      for (int i = first; i < tasks; i += 2) {
        futures[i] = pool.run([&runs, i] {
          runs[i].fetch_add(1, std::memory_order_relaxed);
          return std::int64_t{i} * 3 + 1;
        });
      }
    };
    std::thread a(submit, 0);
    std::thread b(submit, 1);
    a.join();
    b.join();

    int wrong = 0;
    int unsettled = 0;
    for (int i = 0; i < tasks; ++i) {
      if (!futures[i].wait_for(kHangGuard)) {
        ++unsettled;
        continue;
      }
      if (futures[i].error() != nullptr || futures[i].get() != std::int64_t{i} * 3 + 1) ++wrong;
    }
    EXPECT_EQ(unsettled, 0);
    EXPECT_EQ(wrong, 0) << "a task failed or returned another task's result";
    pool.drain();

    int not_once = 0;
    for (int i = 0; i < tasks; ++i) not_once += runs[i].load() != 1;
    EXPECT_EQ(not_once, 0) << "a task body ran zero times or twice";
    expect_each_finished_once(finished, futures);

    const PoolMetrics m = pool.metrics();
    EXPECT_EQ(m.submitted, static_cast<std::uint64_t>(tasks));
    EXPECT_EQ(m.completed, static_cast<std::uint64_t>(tasks));
    EXPECT_EQ(m.failed + m.cancelled + m.timed_out + m.rejected, 0u);
    EXPECT_EQ(m.run_time.count, static_cast<std::uint64_t>(tasks));
    EXPECT_EQ(m.wait_time.count, static_cast<std::uint64_t>(tasks));
    EXPECT_EQ(m.workers_started, threads);
    EXPECT_EQ(m.threads, threads);
    EXPECT_EQ(m.workers_replaced, 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(Threads, PoolThroughputStressTest, ::testing::Values(1, 2, 4),
                         [](const ::testing::TestParamInfo<std::size_t>& info) {
                           return "threads_" + std::to_string(info.param);
                         });

// --- cancel storms ----------------------------------------------------------------------------

using PoolCancelStressTest = ::weave::testing::CleanShutdownTest;

// Tasks are cancelled as they are submitted, so cancels race with starts,
// with running tasks and with completions: a third by two threads calling
// cancel() at once, a third by a stop request on their run signal, a third
// left alone. Each task settles once; cancel() wins at most once per task,
// and exactly when the task ends cancelled; the counts add up.
TEST_F(PoolCancelStressTest, CancelStormRacingStartsSettlesEveryTaskExactlyOnce) {
  const int tasks = 20'000 / kScale;
  std::vector<std::atomic<int>> runs(tasks);
  std::vector<std::atomic<int>> cancel_wins(tasks);
  std::vector<std::stop_source> signals(tasks);
  std::vector<TaskFuture<std::int64_t>> futures(tasks);
  std::atomic<int> published{0};
  FinishLog finished;
  PoolOptions o;
  o.min_threads = 2;
  o.max_threads = 2;
  o.cancel_grace = kHangGuard;  // the tasks return when asked; no worker is replaced
  finished.attach(o);
  {
    Pool pool(std::move(o));
    StartBarrier start(3);
    std::thread submitter([&] {
      start.arrive_and_wait();
      for (int i = 0; i < tasks; ++i) {
        RunOptions options;
        if (i % 3 == 1) options.signal = signals[i].get_token();
        futures[i] = pool.run(
            [&runs, i](std::stop_token st) {
              runs[i].fetch_add(1, std::memory_order_relaxed);
              // A little work, polling the token: some are cancelled mid-run.
              for (int k = 0; k < (i % 8) * 64 && !st.stop_requested(); ++k) {
                std::atomic_signal_fence(std::memory_order_seq_cst);
              }
              return std::int64_t{i};
            },
            std::move(options));
        published.store(i + 1, std::memory_order_release);
      }
    });
    auto canceller = [&](bool also_signals) {
      start.arrive_and_wait();
      for (int i = 0; i < tasks; ++i) {
        while (published.load(std::memory_order_acquire) <= i) std::this_thread::yield();
        if (i % 3 == 2) {
          if (futures[i].cancel()) cancel_wins[i].fetch_add(1);
        } else if (i % 3 == 1 && also_signals) {
          signals[i].request_stop();
        }
      }
    };
    std::thread c1(canceller, true);
    std::thread c2(canceller, false);
    submitter.join();
    c1.join();
    c2.join();

    int completed = 0;
    int cancelled = 0;
    int unsettled = 0;
    int bad = 0;
    std::uint64_t started = 0;
    for (int i = 0; i < tasks; ++i) {
      if (!futures[i].wait_for(kHangGuard)) {
        ++unsettled;
        continue;
      }
      const int r = runs[i].load();
      started += static_cast<std::uint64_t>(r);
      if (const TaskError* e = futures[i].error()) {
        ++cancelled;
        if (e->errc() != TaskErrc::kCancelled) ++bad;
        if (r > 1) ++bad;
        if (i % 3 == 0) ++bad;  // nobody cancelled it
        if (i % 3 == 2 && cancel_wins[i].load() != 1) ++bad;
      } else {
        ++completed;
        if (r != 1 || futures[i].get() != i) ++bad;
        if (cancel_wins[i].load() != 0) ++bad;  // a winning cancel() must end it cancelled
      }
    }
    EXPECT_EQ(unsettled, 0);
    EXPECT_EQ(bad, 0) << "a task's outcome disagrees with its runs or its cancel() result";
    EXPECT_EQ(completed + cancelled, tasks);
    pool.drain();
    expect_each_finished_once(finished, futures);

    const PoolMetrics m = pool.metrics();
    EXPECT_EQ(m.submitted, static_cast<std::uint64_t>(tasks));
    EXPECT_EQ(m.completed, static_cast<std::uint64_t>(completed));
    EXPECT_EQ(m.cancelled, static_cast<std::uint64_t>(cancelled));
    EXPECT_EQ(m.completed + m.cancelled, m.submitted);
    EXPECT_EQ(m.failed + m.timed_out + m.rejected, 0u);
    EXPECT_EQ(m.run_time.count, started) << "every task that started, and only those";
    EXPECT_EQ(m.workers_replaced, 0u);
    std::printf("[ storm    ] %d completed, %d cancelled, %llu started\n", completed, cancelled,
                static_cast<unsigned long long>(started));
  }
}

// destroy() while two threads submit and a third cancels: every future
// settles (none hangs), none runs twice, and completed + cancelled + refused
// add up to what was submitted.
TEST_F(PoolCancelStressTest, DestroyRacingSubmitsAndCancelsSettlesEveryFuture) {
  const int per_thread = 10'000 / kScale;
  const int tasks = 2 * per_thread;
  std::vector<std::atomic<int>> runs(tasks);
  std::vector<TaskFuture<std::int64_t>> futures(tasks);
  std::vector<std::atomic<bool>> published(tasks);
  std::atomic<int> submitted_total{0};
  PoolOptions o;
  o.min_threads = 2;
  o.max_threads = 2;
  o.cancel_grace = kHangGuard;
  Pool pool(std::move(o));
  StartBarrier start(4);
  auto submit = [&](int first) {
    start.arrive_and_wait();
    for (int i = first; i < tasks; i += 2) {
      futures[i] = pool.run([&runs, i](std::stop_token st) {
        runs[i].fetch_add(1, std::memory_order_relaxed);
        for (int k = 0; k < (i % 4) * 64 && !st.stop_requested(); ++k) {
          std::atomic_signal_fence(std::memory_order_seq_cst);
        }
        return std::int64_t{i};
      });
      published[i].store(true, std::memory_order_release);
      submitted_total.fetch_add(1, std::memory_order_release);
    }
  };
  std::thread a(submit, 0);
  std::thread b(submit, 1);
  std::thread canceller([&] {
    start.arrive_and_wait();
    for (int i = 0; i < tasks; i += 5) {
      while (!published[i].load(std::memory_order_acquire)) std::this_thread::yield();
      (void)futures[i].cancel();
    }
  });
  start.arrive_and_wait();
  while (submitted_total.load(std::memory_order_acquire) < tasks / 2) std::this_thread::yield();
  pool.destroy();
  a.join();
  b.join();
  canceller.join();

  int completed = 0;
  int cancelled = 0;
  int refused = 0;
  int unsettled = 0;
  int bad = 0;
  for (int i = 0; i < tasks; ++i) {
    if (!futures[i].wait_for(kHangGuard)) {
      ++unsettled;
      continue;
    }
    const int r = runs[i].load();
    if (const TaskError* e = futures[i].error()) {
      if (e->errc() == TaskErrc::kCancelled) {
        ++cancelled;
        if (r > 1) ++bad;
      } else if (e->errc() == TaskErrc::kPoolClosed) {
        ++refused;
        if (r != 0) ++bad;  // refused at run(): never ran
      } else {
        ++bad;
      }
    } else {
      ++completed;
      if (r != 1 || futures[i].get() != i) ++bad;
    }
  }
  EXPECT_EQ(unsettled, 0);
  EXPECT_EQ(bad, 0);
  EXPECT_EQ(completed + cancelled + refused, tasks);
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.submitted, static_cast<std::uint64_t>(tasks - refused));
  EXPECT_EQ(m.completed, static_cast<std::uint64_t>(completed));
  EXPECT_EQ(m.cancelled, static_cast<std::uint64_t>(cancelled));
  EXPECT_EQ(m.rejected, static_cast<std::uint64_t>(refused));
}

}  // namespace
}  // namespace weave
