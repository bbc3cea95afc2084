// Stress for weave::Worker (workers/worker.h): many workers started and
// ended, one after another and all at once, leave no thread, fd or port
// behind (WorkerTest), and no byte (LeakSanitizer, under --config=asan).
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "channel/message_port.h"
#include "loop/event_loop.h"
#include "tests/test_util.h"
#include "tests/workers/worker_test_util.h"
#include "workers/worker.h"

namespace weave {
namespace {

using ::weave::testing::int_of;
using ::weave::testing::StartBarrier;
using WorkerStressTest = ::weave::testing::WorkerTest;

TEST_F(WorkerStressTest, AThousandWorkersOneAfterAnotherEachReportAndExitCleanly) {
  constexpr int kWorkers = 1000;
  std::int64_t id_sum = 0;
  std::int64_t expected_sum = 0;
  int exits = 0;
  for (int i = 0; i < kWorkers; ++i) {
    WorkerOptions options;
    options.worker_data = i;
    Worker w(
        [] {
          (void)parent_port()->post_message(thread_id());
          // Something in the arena, released when the worker ends.
          (void)this_worker::arena()->allocate(128);
        },
        std::move(options));
    expected_sum += w.thread_id();
    w.on_message([&](MessageEvent& e) { id_sum += int_of(e.data); });
    w.on_exit([&](int code) { exits += code == 0; });
    run_loop();
  }
  EXPECT_EQ(exits, kWorkers);
  EXPECT_EQ(id_sum, expected_sum) << "every worker reported its own id exactly once";
}

TEST_F(WorkerStressTest, TwoHundredWorkersAtOnceAllRunTogetherAndExitCleanly) {
  constexpr int kWorkers = 200;
  // Every worker waits here until all are up: they really run at once.
  StartBarrier all_up(kWorkers);
  std::vector<Worker> workers;
  workers.reserve(kWorkers);
  std::int64_t id_sum = 0;
  std::int64_t expected_sum = 0;
  int exits = 0;
  int onlines = 0;
  for (int i = 0; i < kWorkers; ++i) {
    workers.emplace_back([&all_up] {
      all_up.arrive_and_wait();
      (void)parent_port()->post_message(thread_id());
    });
    Worker& w = workers.back();
    expected_sum += w.thread_id();
    w.on_online([&] { ++onlines; });
    w.on_message([&](MessageEvent& e) { id_sum += int_of(e.data); });
    w.on_exit([&](int code) { exits += code == 0; });
  }
  run_loop();
  EXPECT_EQ(onlines, kWorkers);
  EXPECT_EQ(exits, kWorkers);
  EXPECT_EQ(id_sum, expected_sum);
}

TEST_F(WorkerStressTest, TwoHundredRunningWorkersTerminatedAtOnceAllExitWithCode1) {
  constexpr int kWorkers = 200;
  std::vector<Worker> workers;
  workers.reserve(kWorkers);
  int exits = 0;
  int listening = 0;
  for (int i = 0; i < kWorkers; ++i) {
    workers.emplace_back([] {
      parent_port()->on_message([](MessageEvent&) {});
      (void)parent_port()->post_message("listening");
    });
    workers.back().on_exit([&](int code) { exits += code == 1; });
    workers.back().on_message([&](MessageEvent&) {
      if (++listening == kWorkers) {
        for (Worker& w : workers) (void)w.terminate();
      }
    });
  }
  run_loop();
  EXPECT_EQ(exits, kWorkers);
}

}  // namespace
}  // namespace weave
