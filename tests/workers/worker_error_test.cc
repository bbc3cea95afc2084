// Pins down where a worker's errors go (workers/worker.h, "Errors"): an
// `error` event nobody listens to is, as in Node, an uncaught exception of
// the thread that owns the Worker — a worker owning it ends with that error
// (exit code 1, its own parent sees the inner error); a thread that is not a
// worker reports it on stderr, since the library never ends the process.
// Also this_worker::on_uncaught_exception, the hook that sees an exception
// before it becomes the `error` event (Node's process.on('uncaughtException')),
// and this_worker::set_exit_code (Node's process.exitCode).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "channel/message_port.h"
#include "channel/value.h"
#include "loop/event_loop.h"
#include "tests/test_util.h"
#include "tests/workers/worker_test_util.h"
#include "workers/worker.h"

namespace weave {
namespace {

using ::testing::HasSubstr;
using ::weave::testing::EventLog;
using ::weave::testing::int_of;
using WorkerTest = ::weave::testing::WorkerTest;

// --- an error event nobody listens to --------------------------------------------

TEST_F(WorkerTest, ANestedWorkersUnhandledErrorEndsItsParentWorkerWithThatErrorAndCode1) {
  Worker outer([] {
    // No on_error: the inner error becomes the outer worker's uncaught exception.
    auto inner = std::make_shared<Worker>([] { throw std::runtime_error("inner failed"); });
    // Reached only if the error did not end this worker (the event came
    // first): the parent then ends this worker, and the test fails.
    inner->on_exit([](int) { (void)parent_port()->post_message("inner exited"); });
    parent_port()->on_message([inner](MessageEvent&) {});  // keeps the outer worker up
  });
  EventLog log;
  log.attach(outer);
  outer.on_message([&](MessageEvent& e) {
    log.note("message " + e.data.to_string());
    (void)outer.terminate();
  });
  run_loop();
  EXPECT_EQ(log.events,
            (std::vector<std::string>{"online", "error ERR_UNCAUGHT_EXCEPTION", "exit 1"}));
  ASSERT_TRUE(log.error.has_value());
  EXPECT_EQ(log.error->type_name, "std::runtime_error");
  EXPECT_EQ(log.error->message, "inner failed");
  EXPECT_EQ(outer.exit_code(), 1);
}

TEST_F(WorkerTest, ANestedWorkersHandledErrorLeavesItsParentWorkerRunning) {
  Worker outer([] {
    auto inner = std::make_shared<Worker>([] { throw std::runtime_error("inner failed"); });
    inner->on_error(
        [](const WorkerError& e) { (void)parent_port()->post_message("handled " + e.message); });
    inner->on_exit([inner](int code) {
      (void)parent_port()->post_message(std::int64_t{code});
      parent_port()->close();  // the outer worker ends normally
    });
  });
  EventLog log;
  log.attach(outer);
  run_loop();
  EXPECT_EQ(log.events, (std::vector<std::string>{"online", "message \"handled inner failed\"",
                                                  "message 1", "exit 0"}));
}

TEST_F(WorkerTest, AnUnhandledErrorOnTheMainThreadIsReportedOnStderrAndTheExitEventFollows) {
  Worker w([] { throw std::runtime_error("nobody listens"); });
  std::optional<int> code;
  w.on_exit([&](int c) { code = c; });
  ::testing::internal::CaptureStderr();
  run_loop();  // does not throw: the library never ends the process
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(code, 1);
  EXPECT_THAT(err, HasSubstr("nobody listens"));
  EXPECT_THAT(err, HasSubstr("std::runtime_error"));
  EXPECT_THAT(err, HasSubstr("worker " + std::to_string(w.thread_id())));
}

}  // namespace
}  // namespace weave
