// Pins down the calls a worker makes about itself (workers/this_worker.h)
// where they meet the process: this_worker::exit outside a worker ends the
// process as Node's process.exit does on the main thread — after asking
// every live worker to stop and waiting (bounded) until they have.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

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

}  // namespace
}  // namespace weave
