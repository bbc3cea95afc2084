// Helpers shared by the worker tests: a fixture that adds "the main thread's
// loop is left idle and no channel endpoint outlives the test" to the
// clean-shutdown check, an event recorder, and a way to know that a worker's
// thread is parked in its loop.
//
// Workers are started from the test's main thread, so their events run on
// the main thread's loop; that loop lives across tests, which is why the
// fixture proves that each test leaves it with nothing pending.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "channel/message_port.h"
#include "loop/event_loop.h"
#include "tests/test_util.h"
#include "workers/worker.h"

namespace weave::testing {

class WorkerTest : public CleanShutdownTest {
 protected:
  void SetUp() override {
    CleanShutdownTest::SetUp();
    ports_ = live_port_count_approx();
  }
  void TearDown() override {
    // Tasks of workers destroyed before their events ran are still queued:
    // they must run and do nothing. Bounded, so a stray keep-alive fails
    // here instead of hanging.
    EventLoop& loop = EventLoop::current();
    for (int i = 0; i < 1000 && loop.run(EventLoop::RunMode::kNoWait); ++i) {
    }
    EXPECT_FALSE(loop.alive()) << "something keeps the main thread's loop alive";
    EXPECT_EQ(live_port_count_approx(), ports_) << "a channel endpoint outlived the test";
    CleanShutdownTest::TearDown();
  }

 private:
  std::size_t ports_ = 0;
};

// Records a worker's events as text, in the order the parent saw them.
struct EventLog {
  std::vector<std::string> events;
  std::optional<int> exit_code;
  std::optional<WorkerError> error;
  std::optional<WorkerError> messageerror;
  std::thread::id handler_thread;
  bool handlers_on_one_thread = true;

  void attach(Worker& w) {
    w.on_online([this] { note("online"); });
    w.on_message([this](MessageEvent& e) { note("message " + e.data.to_string()); });
    w.on_messageerror([this](const WorkerError& e) {
      messageerror = e;
      note("messageerror " + e.code);
    });
    w.on_error([this](const WorkerError& e) {
      error = e;
      note("error " + e.code);
    });
    w.on_exit([this](int code) {
      exit_code = code;
      note("exit " + std::to_string(code));
    });
  }
  void note(std::string event) {
    if (events.empty()) handler_thread = std::this_thread::get_id();
    handlers_on_one_thread = handlers_on_one_thread && handler_thread == std::this_thread::get_id();
    events.push_back(std::move(event));
  }
};

// The int a message carries, or -1 when it carries something else.
inline std::int64_t int_of(const Value& v) {
  const std::int64_t* i = v.if_int();
  return i ? *i : -1;
}

}  // namespace weave::testing
