// Pins down the calls a worker makes about itself (workers/this_worker.h)
// where they meet the process: this_worker::exit outside a worker ends the
// process as Node's process.exit does on the main thread — after asking
// every live worker to stop and waiting (bounded) until they have.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "channel/message_port.h"
#include "loop/event_loop.h"
#include "tests/test_util.h"
#include "tests/workers/worker_test_util.h"
#include "workers/worker.h"

namespace weave {
namespace {

using WorkerTest = ::weave::testing::WorkerTest;

// For the exit test's child: the worker still running at exit, if any.
Worker* g_worker_at_exit = nullptr;

void report_worker_at_exit() {
  if (!g_worker_at_exit) return;
  const std::optional<int> code = g_worker_at_exit->exit_code();
  std::fprintf(stderr,
               code ? "worker ended with %d before the process exited\n"
                    : "worker still running at exit%d\n",
               code.value_or(0));
}

// Runs in a death-test child: a worker that would listen forever, then exit(3)
// from the main thread. The atexit handler runs during std::exit, after the
// workers were ended (or not).
[[noreturn]] void exit_with_a_worker_running() {
  static Worker w([] { parent_port()->on_message([](MessageEvent&) {}); });
  g_worker_at_exit = &w;
  std::atexit(report_worker_at_exit);
  bool online = false;
  w.on_online([&] { online = true; });
  while (!online) (void)EventLoop::current().run(EventLoop::RunMode::kOnce);
  this_worker::exit(3);
}

TEST(ThisWorkerDeathTest, ExitOutsideAWorkerEndsTheLiveWorkersBeforeTheProcess) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(exit_with_a_worker_running(), ::testing::ExitedWithCode(3),
              "worker ended with 1 before the process exited");
}

// A worker that never returns to its loop but polls stop_requested(), and a
// nested worker inside another: exit() stops them all before the process.
[[noreturn]] void exit_with_busy_and_nested_workers() {
  static Worker busy([] {
    (void)parent_port()->post_message("busy");
    while (!this_worker::stop_requested()) std::this_thread::yield();
  });
  static Worker outer([] {
    static thread_local std::unique_ptr<Worker> inner;
    inner = std::make_unique<Worker>([] { parent_port()->on_message([](MessageEvent&) {}); });
    inner->on_online([] { (void)parent_port()->post_message("nested"); });
    parent_port()->on_message([](MessageEvent&) {});
  });
  g_worker_at_exit = &busy;
  static Worker* const outer_at_exit = &outer;
  std::atexit([] {
    report_worker_at_exit();
    const std::optional<int> code = outer_at_exit->exit_code();
    std::fprintf(stderr, code ? "outer ended with %d\n" : "outer still running%d\n",
                 code.value_or(0));
  });
  int ready = 0;
  busy.on_message([&](MessageEvent&) { ++ready; });
  outer.on_message([&](MessageEvent&) { ++ready; });
  while (ready < 2) (void)EventLoop::current().run(EventLoop::RunMode::kOnce);
  this_worker::exit(4);
}

TEST(ThisWorkerDeathTest, ExitOutsideAWorkerStopsBusyAndNestedWorkersToo) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(exit_with_busy_and_nested_workers(), ::testing::ExitedWithCode(4),
              "worker ended with 1 before the process exited\nouter ended with 1");
}

// A worker that checks nothing cannot be stopped: exit() still ends the
// process, after this_worker::kExitGrace.
std::atomic<bool> g_never{false};

[[noreturn]] void exit_with_a_stuck_worker() {
  // Not a static: its destructor would join the stuck thread at exit. Kept
  // reachable through g_worker_at_exit, so no leak either.
  auto* stuck = new Worker([] {
    (void)parent_port()->post_message("stuck");
    while (!g_never.load(std::memory_order_relaxed)) {
    }
  });
  g_worker_at_exit = stuck;
  std::atexit(report_worker_at_exit);
  bool ready = false;
  stuck->on_message([&](MessageEvent&) { ready = true; });
  while (!ready) (void)EventLoop::current().run(EventLoop::RunMode::kOnce);
  this_worker::exit(5);
}

TEST(ThisWorkerDeathTest, ExitOutsideAWorkerGivesUpOnAStuckWorkerAfterTheGrace) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(exit_with_a_stuck_worker(), ::testing::ExitedWithCode(5),
              "worker still running at exit");
}

}  // namespace
}  // namespace weave
