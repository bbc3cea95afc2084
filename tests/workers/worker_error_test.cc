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
#include <memory>
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

// The nested Worker of the tests below, held by the outer worker's thread
// until its exit handler lets it go (a handler capturing its own Worker
// would be a reference cycle).
thread_local std::unique_ptr<Worker> tl_inner;

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
    tl_inner = std::make_unique<Worker>([] { throw std::runtime_error("inner failed"); });
    Worker* inner = tl_inner.get();
    inner->on_error(
        [](const WorkerError& e) { (void)parent_port()->post_message("handled " + e.message); });
    inner->on_exit([](int code) {
      tl_inner.reset();  // destroying a Worker in its own exit handler is allowed
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

TEST_F(WorkerTest, OnUncaughtExceptionOnTheMainThreadTakesAnUnlistenedErrorInsteadOfStderr) {
  std::optional<WorkerError> taken;
  this_worker::on_uncaught_exception([&](std::exception_ptr e) {
    try {
      std::rethrow_exception(e);
    } catch (const UnhandledWorkerError& u) {
      taken = u.error();
    }
  });
  Worker w([] { throw std::logic_error("for the hook"); });
  std::optional<int> code;
  w.on_exit([&](int c) { code = c; });
  ::testing::internal::CaptureStderr();
  run_loop();
  const std::string err = ::testing::internal::GetCapturedStderr();
  this_worker::on_uncaught_exception(nullptr);
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ(taken->type_name, "std::logic_error");
  EXPECT_EQ(taken->message, "for the hook");
  EXPECT_EQ(err, "");
  EXPECT_EQ(code, 1);
}

// --- this_worker::on_uncaught_exception in a worker ------------------------------

TEST_F(WorkerTest, AnUncaughtExceptionHandlerThatReturnsKeepsTheWorkerGoingAfterItsEntryThrew) {
  Worker w([] {
    this_worker::on_uncaught_exception([](std::exception_ptr e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        (void)parent_port()->post_message(std::string("caught ") + x.what());
      }
    });
    set_timeout(std::chrono::milliseconds(0), [] { (void)parent_port()->post_message("later"); });
    throw std::runtime_error("entry failed");
  });
  EventLog log;
  log.attach(w);
  run_loop();
  EXPECT_EQ(log.events, (std::vector<std::string>{"online", "message \"caught entry failed\"",
                                                  "message \"later\"", "exit 0"}));
}

TEST_F(WorkerTest, AnUncaughtExceptionHandlerThatReturnsLetsTheLoopRunItsNextCallback) {
  Worker w([] {
    int failures = 0;
    this_worker::on_uncaught_exception([failures](std::exception_ptr) mutable {
      (void)parent_port()->post_message(std::int64_t{++failures});
    });
    parent_port()->on_message([](MessageEvent& e) {
      if (e.data == Value("stop")) return parent_port()->close();
      if (e.data == Value("bad")) throw std::runtime_error("bad message");
      (void)parent_port()->post_message(e.data);
    });
  });
  for (const char* m : {"a", "bad", "b", "bad", "stop"}) ASSERT_TRUE(w.post_message(m).ok());
  EventLog log;
  log.attach(w);
  run_loop();
  EXPECT_EQ(log.events, (std::vector<std::string>{"online", "message \"a\"", "message 1",
                                                  "message \"b\"", "message 2", "exit 0"}));
}

TEST_F(WorkerTest, AnUncaughtExceptionHandlerThatThrowsEndsTheWorkerWithCode7AndItsError) {
  Worker w([] {
    this_worker::on_uncaught_exception(
        [](std::exception_ptr) { throw std::domain_error("the handler failed too"); });
    throw std::runtime_error("first");
  });
  EventLog log;
  log.attach(w);
  run_loop();
  EXPECT_EQ(log.events,
            (std::vector<std::string>{"online", "error ERR_UNCAUGHT_EXCEPTION", "exit 7"}));
  ASSERT_TRUE(log.error.has_value());
  EXPECT_EQ(log.error->type_name, "std::domain_error");
  EXPECT_EQ(log.error->message, "the handler failed too");
}

TEST_F(WorkerTest, AnUncaughtExceptionHandlerThatExitsEndsTheWorkerWithItsCode) {
  Worker w([] {
    this_worker::on_uncaught_exception([](std::exception_ptr) { this_worker::exit(9); });
    throw std::runtime_error("first");
  });
  EventLog log;
  log.attach(w);
  run_loop();
  EXPECT_EQ(log.events, (std::vector<std::string>{"online", "exit 9"}));
}

TEST_F(WorkerTest, AnUncaughtExceptionHandlerSeesANestedWorkersUnlistenedErrorAndTheWorkerGoesOn) {
  Worker outer([] {
    this_worker::on_uncaught_exception([](std::exception_ptr e) {
      try {
        std::rethrow_exception(e);
      } catch (const UnhandledWorkerError& u) {
        (void)parent_port()->post_message("inner: " + u.error().message);
      }
    });
    tl_inner = std::make_unique<Worker>([] { throw std::runtime_error("inner failed"); });
    Worker* inner = tl_inner.get();
    inner->on_exit([](int code) {
      tl_inner.reset();  // destroying a Worker in its own exit handler is allowed
      (void)parent_port()->post_message(std::int64_t{code});
      parent_port()->close();
    });
  });
  EventLog log;
  log.attach(outer);
  run_loop();
  EXPECT_EQ(log.events, (std::vector<std::string>{"online", "message \"inner: inner failed\"",
                                                  "message 1", "exit 0"}));
}

TEST_F(WorkerTest, ArenaOutOfMemoryIsNeverOfferedToTheUncaughtExceptionHandler) {
  WorkerOptions options;
  options.resource_limits.max_arena_bytes = 4096;
  Worker w(
      [] {
        this_worker::on_uncaught_exception(
            [](std::exception_ptr) { (void)parent_port()->post_message("offered"); });
        (void)this_worker::arena()->allocate(1 << 20);
      },
      std::move(options));
  EventLog log;
  log.attach(w);
  run_loop();
  EXPECT_EQ(log.events,
            (std::vector<std::string>{"online", "error ERR_WORKER_OUT_OF_MEMORY", "exit 1"}));
}

// --- this_worker::set_exit_code ----------------------------------------------------

TEST_F(WorkerTest, SetExitCodeIsTheCodeOfANaturalEndAndOfExitWithoutACode) {
  Worker natural([] {
    EXPECT_EQ(this_worker::exit_code(), std::nullopt);
    this_worker::set_exit_code(5);
    (void)parent_port()->post_message(std::int64_t{*this_worker::exit_code()});
  });
  Worker bare_exit([] {
    this_worker::set_exit_code(6);
    this_worker::exit();
  });
  Worker explicit_exit([] {
    this_worker::set_exit_code(6);
    this_worker::exit(2);
  });
  Worker thrown([] {
    this_worker::set_exit_code(6);
    throw std::runtime_error("an uncaught exception still says 1");
  });
  thrown.on_error([](const WorkerError&) {});
  std::vector<std::string> seen;
  natural.on_message([&](MessageEvent& e) { seen.push_back("read " + e.data.to_string()); });
  natural.on_exit([&](int c) { seen.push_back("natural " + std::to_string(c)); });
  std::optional<int> bare, given, threw;
  bare_exit.on_exit([&](int c) { bare = c; });
  explicit_exit.on_exit([&](int c) { given = c; });
  thrown.on_exit([&](int c) { threw = c; });
  run_loop();
  EXPECT_EQ(seen, (std::vector<std::string>{"read 5", "natural 5"}));
  EXPECT_EQ(bare, 6);
  EXPECT_EQ(given, 2);
  EXPECT_EQ(threw, 1);
}

TEST_F(WorkerTest, TerminateEndsWithCode1WhateverExitCodeWasSet) {
  Worker w([] {
    this_worker::set_exit_code(4);
    parent_port()->on_message([](MessageEvent&) {});
    (void)parent_port()->post_message("ready");
  });
  std::optional<int> code;
  w.on_message([&](MessageEvent&) { (void)w.terminate(); });
  w.on_exit([&](int c) { code = c; });
  run_loop();
  EXPECT_EQ(code, 1);
}

TEST_F(WorkerTest, OutsideAWorkerSetExitCodeIsOnlyRecorded) {
  EXPECT_EQ(this_worker::exit_code(), std::nullopt);
  this_worker::set_exit_code(3);
  EXPECT_EQ(this_worker::exit_code(), 3);
}

}  // namespace
}  // namespace weave
