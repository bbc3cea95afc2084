// Pins down weave::Worker (workers/worker.h): its events and their order,
// errors from user code, exit codes, terminate() wherever the worker waits,
// the arena and its cap, worker data (copy and transfer), named entries,
// option validation, environment variables and data, thread identity,
// ref/unref, nested workers, counters, typed messages and destruction.
//
// The parent of every worker is the test's main thread, whose loop runs the
// events (run_loop()). Every test ends by proving a clean shutdown: workers
// joined, no thread, fd or port left, the main loop idle (WorkerTest).
// No test sleeps to synchronise: workers and the parent meet through
// messages, and where a test needs a worker parked in its loop it waits until
// the worker's thread sleeps in the kernel.
#include "workers/worker.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <memory_resource>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "atomics/atomics.h"
#include "atomics/shared_array_buffer.h"
#include "atomics/shared_view.h"
#include "channel/array_buffer.h"
#include "channel/message_port.h"
#include "channel/value.h"
#include "loop/event_loop.h"
#include "tests/atomics/waiters.h"
#include "tests/test_util.h"
#include "tests/workers/worker_test_util.h"

extern char** environ;  // NOLINT: POSIX

// A codec type that carries a buffer, posted to a worker with a transfer list.
struct Block {
  std::int64_t id = 0;
  weave::ArrayBuffer bytes;
};
WEAVE_CODEC(Block, id, bytes);

namespace weave {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::weave::testing::EventLog;
using ::weave::testing::int_of;
using ::weave::testing::StartBarrier;
using ::weave::testing::wait_until_parked;
using WorkerTest = ::weave::testing::WorkerTest;

// A worker body that answers each message with the same value, and closes
// its port (so it ends with code 0) when it receives "stop".
void echo_until_stop() {
  parent_port()->on_message([](MessageEvent& e) {
    if (e.data == Value("stop")) return parent_port()->close();
    (void)parent_port()->post_message(e.data);
  });
}

// A worker body that waits in its loop for messages until it is terminated.
void listen_forever() {
  parent_port()->on_message([](MessageEvent&) {});
}

std::vector<std::string> numbered_messages(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back("message " + std::to_string(i));
  return out;
}

// --- events and their order ------------------------------------------------------

TEST_F(WorkerTest, EventsArriveOnlineThenEveryMessageInPostOrderThenExit) {
  constexpr int kMessages = 1000;
  Worker w([] {
    for (int i = 0; i < kMessages; ++i) (void)parent_port()->post_message(i);
  });
  EventLog log;
  log.attach(w);
  run_loop();  // a referenced worker keeps it running until its exit event

  std::vector<std::string> expected{"online"};
  for (auto& m : numbered_messages(kMessages)) expected.push_back(m);
  expected.push_back("exit 0");
  EXPECT_EQ(log.events, expected);
  EXPECT_TRUE(log.handlers_on_one_thread);
  EXPECT_EQ(log.handler_thread, std::this_thread::get_id()) << "handlers must run on the parent";
  EXPECT_EQ(w.exit_code(), 0);
  EXPECT_FALSE(w.running());
}

TEST_F(WorkerTest, MessagesPostedRightBeforeExitAreDeliveredBeforeTheExitEvent) {
  constexpr int kMessages = 500;
  Worker w([] {
    for (int i = 0; i < kMessages; ++i) (void)parent_port()->post_message(i);
    this_worker::exit(4);
  });
  EventLog log;
  log.attach(w);
  run_loop();

  std::vector<std::string> expected{"online"};
  for (auto& m : numbered_messages(kMessages)) expected.push_back(m);
  expected.push_back("exit 4");
  EXPECT_EQ(log.events, expected);
}

TEST_F(WorkerTest, MessagesPostedBeforeTheWorkerListensWaitForIt) {
  Worker w(echo_until_stop);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(w.post_message(i).ok());
  ASSERT_TRUE(w.post_message("stop").ok());
  EventLog log;
  log.attach(w);
  run_loop();

  std::vector<std::string> expected{"online"};
  for (auto& m : numbered_messages(10)) expected.push_back(m);
  expected.push_back("exit 0");
  EXPECT_EQ(log.events, expected);
}

TEST_F(WorkerTest, PostToAnEndedWorkerReturnsClosed) {
  Worker w([] {});
  std::optional<int> code;
  w.on_exit([&](int c) { code = c; });
  run_loop();
  ASSERT_EQ(code, 0);
  Status s = w.post_message(1);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), ErrorCode::kClosed);
}

// --- errors from user code ----------------------------------------------------------

TEST_F(WorkerTest, ExceptionEscapingTheEntryIsAnErrorEventAfterItsMessagesThenExitCode1) {
  Worker w([] {
    for (int i = 0; i < 3; ++i) (void)parent_port()->post_message(i);
    throw std::runtime_error("boom");
  });
  EventLog log;
  log.attach(w);
  run_loop();

  EXPECT_EQ(log.events, (std::vector<std::string>{"online", "message 0", "message 1", "message 2",
                                                  "error ERR_UNCAUGHT_EXCEPTION", "exit 1"}));
  ASSERT_TRUE(log.error.has_value());
  EXPECT_EQ(log.error->type_name, "std::runtime_error");
  EXPECT_EQ(log.error->message, "boom");
  EXPECT_EQ(w.exit_code(), 1);
}

struct CustomFailure : std::logic_error {
  using std::logic_error::logic_error;
};

TEST_F(WorkerTest, ExceptionEscapingAMessageHandlerIsAnErrorEventThenExitCode1) {
  Worker w([] {
    parent_port()->on_message([](MessageEvent& e) {
      (void)parent_port()->post_message("before");
      throw CustomFailure("bad input: " + e.data.to_string());
    });
  });
  ASSERT_TRUE(w.post_message(7).ok());
  EventLog log;
  log.attach(w);
  run_loop();

  EXPECT_EQ(log.events, (std::vector<std::string>{"online", "message \"before\"",
                                                  "error ERR_UNCAUGHT_EXCEPTION", "exit 1"}));
  ASSERT_TRUE(log.error.has_value());
  EXPECT_THAT(log.error->type_name, HasSubstr("CustomFailure"));
  EXPECT_EQ(log.error->message, "bad input: 7");
}

TEST_F(WorkerTest, NonStandardExceptionIsReportedWithItsTypeName) {
  Worker w([] { throw 42; });
  EventLog log;
  log.attach(w);
  run_loop();
  ASSERT_TRUE(log.error.has_value());
  EXPECT_EQ(log.error->code, "ERR_UNCAUGHT_EXCEPTION");
  EXPECT_EQ(log.error->type_name, "int");
  EXPECT_EQ(log.exit_code, 1);
}

TEST_F(WorkerTest, ExceptionInATimerCallbackIsAnErrorEvent) {
  Worker w([] { set_timeout(0ms, [] { throw std::out_of_range("late"); }); });
  EventLog log;
  log.attach(w);
  run_loop();
  ASSERT_TRUE(log.error.has_value());
  EXPECT_EQ(log.error->type_name, "std::out_of_range");
  EXPECT_EQ(log.error->message, "late");
  EXPECT_EQ(log.exit_code, 1);
}

TEST_F(WorkerTest, ExceptionInAParentHandlerLeavesRunAndTheEventsResumeOnTheNextRun) {
  Worker w([] {
    for (int i = 0; i < 3; ++i) (void)parent_port()->post_message(i);
  });
  std::vector<std::int64_t> seen;
  std::optional<int> code;
  w.on_message([&](MessageEvent& e) {
    seen.push_back(int_of(e.data));
    if (int_of(e.data) == 1) throw std::runtime_error("parent handler failed");
  });
  w.on_exit([&](int c) { code = c; });
  EXPECT_THROW(run_loop(), std::runtime_error);
  run_loop();
  EXPECT_EQ(seen, (std::vector<std::int64_t>{0, 1, 2}));
  EXPECT_EQ(code, 0);
}

// --- exit codes ----------------------------------------------------------------------

TEST_F(WorkerTest, ReturningWithNothingLeftInTheLoopExitsWithCode0) {
  Worker w([] { set_timeout(1ms, [] {}); });
  EventLog log;
  log.attach(w);
  run_loop();
  EXPECT_EQ(log.events, (std::vector<std::string>{"online", "exit 0"}));
}

TEST_F(WorkerTest, ExitFromTheEntryEndsTheWorkerWithThatCode) {
  bool unwound = false;
  Worker w([&unwound] {
    struct Flag {
      bool* set;
      ~Flag() { *set = true; }
    } flag{&unwound};
    this_worker::exit(7);
  });
  EventLog log;
  log.attach(w);
  run_loop();
  EXPECT_EQ(log.events, (std::vector<std::string>{"online", "exit 7"}));
  EXPECT_TRUE(unwound) << "exit() must unwind the worker's stack";
}

TEST_F(WorkerTest, ExitFromAMessageHandlerEndsTheWorkerWithThatCode) {
  Worker w([] {
    parent_port()->on_message(
        [](MessageEvent& e) { this_worker::exit(static_cast<int>(int_of(e.data))); });
  });
  ASSERT_TRUE(w.post_message(3).ok());
  EventLog log;
  log.attach(w);
  run_loop();
  EXPECT_EQ(log.events, (std::vector<std::string>{"online", "exit 3"}));
}

TEST_F(WorkerTest, ExitSwallowedByACatchAllStillEndsTheWorkerWithItsCode) {
  Worker w([] {
    try {
      this_worker::exit(5);
    } catch (...) {
      // Swallowed: the worker must still end with 5, not go on listening.
    }
    listen_forever();
  });
  EventLog log;
  log.attach(w);
  run_loop();
  EXPECT_EQ(log.exit_code, 5);
}

TEST_F(WorkerTest, ExitSwallowedInAHandlerStopsTheLoopAtItsNextTurn) {
  Worker w([] {
    parent_port()->on_message([](MessageEvent&) {
      try {
        this_worker::exit(6);
      } catch (...) {
      }
    });
  });
  ASSERT_TRUE(w.post_message(1).ok());
  EventLog log;
  log.attach(w);
  run_loop();
  EXPECT_EQ(log.exit_code, 6);
}

// --- terminate -----------------------------------------------------------------------

TEST_F(WorkerTest, TerminateWakesAWorkerWaitingForMessagesAndItExitsWithCode1) {
  Worker w([] {
    listen_forever();
    // From inside the loop: from here on its only place to sleep is the park.
    set_immediate([] { (void)parent_port()->post_message(weave::testing::current_tid()); });
  });
  std::optional<std::future<std::optional<int>>> terminated;
  EventLog log;
  log.attach(w);
  w.on_message([&](MessageEvent& e) {
    ASSERT_TRUE(wait_until_parked(static_cast<pid_t>(int_of(e.data))));
    terminated = w.terminate();
  });
  run_loop();
  EXPECT_EQ(log.exit_code, 1);
  ASSERT_TRUE(terminated.has_value());
  EXPECT_EQ(terminated->get(), 1);
}

TEST_F(WorkerTest, TerminateWakesAWorkerWaitingOnALongTimer) {
  Worker w([] {
    set_timeout(24h, [] { (void)parent_port()->post_message("the timer fired"); });
    set_immediate([] { (void)parent_port()->post_message(weave::testing::current_tid()); });
  });
  EventLog log;
  log.attach(w);
  w.on_message([&](MessageEvent& e) {
    ASSERT_TRUE(e.data.is_int()) << e.data.to_string();
    ASSERT_TRUE(wait_until_parked(static_cast<pid_t>(int_of(e.data))));
    (void)w.terminate();
  });
  run_loop();
  EXPECT_EQ(log.exit_code, 1);
}

TEST_F(WorkerTest, TerminateWakesAWorkerBlockedInAtomicsWaitAndItExitsWithCode1) {
  SharedArrayBuffer sab(sizeof(std::int32_t));
  Int32View flag(sab);
  std::atomic<bool> returned_normally{false};
  Worker w([flag, &returned_normally] {
    (void)parent_port()->post_message("waiting");
    // Nobody ever notifies: only terminate() can end this.
    (void)atomics::wait(flag, 0, 0);
    returned_normally.store(true);
  });
  EventLog log;
  log.attach(w);
  w.on_message([&](MessageEvent&) {
    // Terminate once the worker really is in the wait, not before it.
    ASSERT_TRUE(weave::testing::wait_for_waiters(flag, 0, 1)) << "the worker never waited";
    (void)w.terminate();
  });
  run_loop();
  EXPECT_EQ(log.exit_code, 1);
  EXPECT_FALSE(log.error.has_value()) << "an interrupted wait is a termination, not an error";
  EXPECT_FALSE(returned_normally.load());
  EXPECT_EQ(internal::waiter_count_approx(flag, 0), 0u);
}

TEST_F(WorkerTest, TerminateEndsACooperativeBusyLoopThatPollsStopRequested) {
  std::atomic<std::uint64_t> spins{0};
  Worker w([&spins] {
    (void)parent_port()->post_message("spinning");
    while (!this_worker::stop_requested()) spins.fetch_add(1, std::memory_order_relaxed);
    EXPECT_TRUE(this_worker::stop_token().stop_requested());
  });
  EventLog log;
  log.attach(w);
  std::optional<std::future<std::optional<int>>> terminated;
  w.on_message([&](MessageEvent&) { terminated = w.terminate(); });
  run_loop();
  EXPECT_EQ(log.exit_code, 1);
  ASSERT_TRUE(terminated.has_value());
  EXPECT_EQ(terminated->get(), 1);
}

TEST_F(WorkerTest, TerminateRightAfterConstructionEndsWithCode1) {
  Worker w(listen_forever);
  EXPECT_EQ(w.terminate().get(), 1);
  std::optional<int> code;
  w.on_exit([&](int c) { code = c; });
  run_loop();
  EXPECT_EQ(code, 1);
}

TEST_F(WorkerTest, TerminateOfAnExitedWorkerReportsThatItHadExited) {
  Worker w([] {});
  std::optional<int> code;
  w.on_exit([&](int c) { code = c; });
  run_loop();
  ASSERT_EQ(code, 0);
  EXPECT_EQ(w.terminate().get(), std::nullopt);
  EXPECT_EQ(w.exit_code(), 0) << "terminate() after the fact must not change the exit code";
}

TEST_F(WorkerTest, TerminateFutureIsReadyWithoutTheParentLoopRunning) {
  Worker w(listen_forever);
  std::future<std::optional<int>> f = w.terminate();
  EXPECT_EQ(f.get(), 1);  // get() on the parent thread, its loop not running
  EXPECT_EQ(w.exit_code(), 1);
}

// --- destruction ----------------------------------------------------------------------

TEST_F(WorkerTest, DestroyingARunningWorkerTerminatesAndJoinsIt) {
  std::optional<int> code;
  {
    Worker w(listen_forever);
    w.on_exit([&](int c) { code = c; });
    ASSERT_TRUE(w.post_message(1).ok());
  }  // the fixture checks that its thread is gone
  EXPECT_FALSE(code.has_value()) << "no handler runs after the Worker is gone";
}

TEST_F(WorkerTest, DestroyingAWorkerInsideItsOwnMessageHandlerIsSafe) {
  auto w = std::make_unique<Worker>([] {
    (void)parent_port()->post_message("hello");
    listen_forever();
  });
  int messages = 0;
  w->on_message([&](MessageEvent&) {
    ++messages;
    w.reset();
  });
  run_loop();  // returns once the Worker (and its keep-alive) is gone
  EXPECT_EQ(messages, 1);
  EXPECT_EQ(w, nullptr);
}

TEST_F(WorkerTest, AMessageHandlerThatReplacesItselfRunsToItsEndAndTheNewOneTakesOver) {
  Worker w([] {
    for (int i = 0; i < 3; ++i) (void)parent_port()->post_message(i);
  });
  std::vector<std::string> seen;
  w.on_message([&](MessageEvent& e) {
    std::string captured = "first:" + std::to_string(int_of(e.data));  // state of the old handler
    w.on_message(
        [&](MessageEvent& e2) { seen.push_back("second:" + std::to_string(int_of(e2.data))); });
    seen.push_back(captured);  // the old handler still runs after being replaced
  });
  run_loop();
  EXPECT_EQ(seen, (std::vector<std::string>{"first:0", "second:1", "second:2"}));
}

TEST_F(WorkerTest, MoveAssigningOverARunningWorkerEndsTheOldOne) {
  Worker a(listen_forever);
  Worker b([] { (void)parent_port()->post_message("b"); });
  const int b_id = b.thread_id();
  a = std::move(b);
  EXPECT_EQ(a.thread_id(), b_id);
  EventLog log;
  log.attach(a);
  run_loop();
  EXPECT_EQ(log.exit_code, 0);
}

// --- arena ------------------------------------------------------------------------------

TEST_F(WorkerTest, ArenaStatsGrowWhenTheEntryAllocatesFromIt) {
  constexpr std::size_t kInts = 10000;
  Worker w([] {
    const ArenaStats before = this_worker::arena_stats();
    Object report;
    {
      std::pmr::vector<std::int64_t> v(this_worker::arena());
      v.resize(kInts);
      const ArenaStats during = this_worker::arena_stats();
      report.set("before", before.bytes_in_use);
      report.set("during", during.bytes_in_use);
      report.set("reserved", during.bytes_reserved);
    }
    const ArenaStats after = this_worker::arena_stats();
    report.set("after", after.bytes_in_use);
    report.set("peak", after.peak_bytes_in_use);
    (void)parent_port()->post_message(Value(std::move(report)));
  });
  Value report;
  w.on_message([&](MessageEvent& e) { report = e.data; });
  run_loop();

  const std::int64_t bytes = kInts * sizeof(std::int64_t);
  EXPECT_GE(int_of(*report.find("during")) - int_of(*report.find("before")), bytes);
  EXPECT_GE(int_of(*report.find("reserved")), int_of(*report.find("during")));
  EXPECT_EQ(int_of(*report.find("after")), int_of(*report.find("before")));
  EXPECT_GE(int_of(*report.find("peak")), bytes);
  EXPECT_GE(w.stats().arena_peak_bytes, static_cast<std::size_t>(bytes))
      << "the parent reads the same counters";
}

TEST_F(WorkerTest, ArenaCapEndsThatWorkerWithOutOfMemoryWhileASiblingKeepsAnswering) {
  constexpr std::size_t kCap = 1 << 20;
  Worker sibling(echo_until_stop);
  WorkerOptions hog_options;
  hog_options.resource_limits.max_arena_bytes = kCap;
  Worker hog(
      [] {
        std::vector<void*> kept;  // never given back: the arena frees it at exit
        for (;;) kept.push_back(this_worker::arena()->allocate(4096));
      },
      std::move(hog_options));

  EventLog hog_log;
  hog_log.attach(hog);
  int pongs = 0;
  int pongs_after_hog_exit = 0;
  std::optional<int> sibling_code;
  sibling.on_message([&](MessageEvent&) {
    ++pongs;
    if (hog_log.exit_code) ++pongs_after_hog_exit;
    // Keep the sibling busy while the hog lives, then prove it still answers.
    (void)sibling.post_message(pongs_after_hog_exit < 3 ? Value("ping") : Value("stop"));
  });
  sibling.on_exit([&](int c) { sibling_code = c; });
  ASSERT_TRUE(sibling.post_message("ping").ok());
  run_loop();

  ASSERT_TRUE(hog_log.error.has_value());
  EXPECT_EQ(hog_log.error->code, "ERR_WORKER_OUT_OF_MEMORY");
  EXPECT_THAT(hog_log.error->type_name, HasSubstr("ArenaOutOfMemory"));
  EXPECT_THAT(hog_log.error->message, HasSubstr("max_arena_bytes"));
  EXPECT_EQ(hog_log.events.back(), "exit 1");
  EXPECT_EQ(pongs_after_hog_exit, 3);
  EXPECT_EQ(sibling_code, 0);
  const WorkerStats s = hog.stats();
  EXPECT_LE(s.arena_peak_bytes, kCap);
  EXPECT_GT(s.arena_peak_bytes, kCap - 4096);
  EXPECT_EQ(s.arena_bytes, 0u) << "the arena is released when the worker ends";
}

TEST_F(WorkerTest, WhatTheWorkersLoopStillHeldIsDestroyedBeforeTheArenaAndTheExitEvent) {
  std::atomic<bool> destroyed{false};
  Worker w([&destroyed] {
    struct Held {
      Held(std::atomic<bool>* flag, std::pmr::memory_resource* arena)
          : destroyed(flag), data(1000, 7, arena) {}
      ~Held() {
        // Runs while the worker tears its loop down: its arena memory must
        // still be valid (ASan would see a use after free otherwise).
        if (data.back() == 7) destroyed->store(true, std::memory_order_relaxed);
      }
      std::atomic<bool>* destroyed;
      std::pmr::vector<int> data;
    };
    auto held = std::make_shared<Held>(&destroyed, this_worker::arena());
    // Unreferenced: the worker ends at once, with this still in its loop.
    set_timeout(24h, [held] {}).unref();
  });
  bool destroyed_before_exit = false;
  w.on_exit([&](int) { destroyed_before_exit = destroyed.load(std::memory_order_relaxed); });
  run_loop();
  EXPECT_TRUE(destroyed_before_exit);
  EXPECT_EQ(w.exit_code(), 0);
  EXPECT_EQ(w.stats().arena_bytes, 0u);
}

TEST_F(WorkerTest, OutsideAWorkerTheArenaIsNewDeleteAndItsStatsAreZero) {
  EXPECT_EQ(this_worker::arena(), std::pmr::new_delete_resource());
  EXPECT_EQ(this_worker::arena_stats().bytes_in_use, 0u);
  EXPECT_FALSE(this_worker::stop_requested());
  EXPECT_FALSE(this_worker::stop_token().stop_possible());
}

// --- worker data ----------------------------------------------------------------------

TEST_F(WorkerTest, WorkerDataIsACloneTheParentsLaterChangesDoNotReachIt) {
  ArrayBuffer buf = ArrayBuffer::copy_of("abc");
  Object data{{"name", "job"}, {"buf", buf}};
  WorkerOptions options;
  options.worker_data = Value(data);
  Worker w([] { (void)parent_port()->post_message(worker_data()); }, std::move(options));
  // After construction: must not reach the worker's copy.
  std::memcpy(buf.data(), "xyz", 3);
  Value seen;
  w.on_message([&](MessageEvent& e) { seen = e.data; });
  run_loop();

  EXPECT_FALSE(buf.detached());
  ASSERT_TRUE(seen.find("buf") && seen.find("buf")->if_array_buffer());
  EXPECT_EQ(seen.find("buf")->if_array_buffer()->to_string(), "abc");
  EXPECT_EQ(*seen.find("name"), Value("job"));
}

TEST_F(WorkerTest, TransferredBufferArrivesAsTheSameMemoryAndIsDetachedInTheParent) {
  ArrayBuffer buf = ArrayBuffer::copy_of("payload");
  const auto address = reinterpret_cast<std::uintptr_t>(buf.data());
  WorkerOptions options;
  options.worker_data = Value(buf);
  options.transfer_list.add(buf);
  Worker w(
      [] {
        const ArrayBuffer* b = worker_data().if_array_buffer();
        (void)parent_port()->post_message(Object{
            {"address", static_cast<std::int64_t>(reinterpret_cast<std::uintptr_t>(b->data()))},
            {"text", b->to_string()}});
      },
      std::move(options));
  EXPECT_TRUE(buf.detached()) << "a transferred buffer is detached at construction";
  Value seen;
  w.on_message([&](MessageEvent& e) { seen = e.data; });
  run_loop();
  EXPECT_EQ(static_cast<std::uintptr_t>(int_of(*seen.find("address"))), address);
  EXPECT_EQ(*seen.find("text"), Value("payload"));
}

// The region shared by three workers, each given it as worker_data:
// each adds to its own slot, adds kAdds times to a shared total, then counts
// itself in and waits (Atomics.wait/notify) until all three have; then every
// worker reads every slot. Exact totals, no sleeps.
TEST_F(WorkerTest, SharedArrayBufferInWorkerDataIsOneRegionEveryWorkerSeesTheOthersWritesIn) {
  constexpr int kWorkers = 3;
  constexpr std::int32_t kAdds = 10'000;
  // Int32 elements: slots 0..2, then the arrival counter, then the total.
  constexpr std::size_t kArrived = kWorkers;
  constexpr std::size_t kTotal = kWorkers + 1;
  const SharedArrayBuffer region((kWorkers + 2) * sizeof(std::int32_t));
  const Int32View view(region);
  {
    std::vector<Worker> workers;
    std::vector<Value> reports(kWorkers);
    for (int i = 0; i < kWorkers; ++i) {
      WorkerOptions options;
      options.worker_data = Object{{"region", region}, {"slot", i}};
      workers.emplace_back(
          [] {
            const SharedArrayBuffer* memory =
                worker_data().find("region")->if_shared_array_buffer();
            const auto slot = static_cast<std::size_t>(*worker_data().find("slot")->if_int());
            const Int32View v(*memory);
            atomics::add(v, slot, static_cast<std::int32_t>(100 * (slot + 1)));
            for (std::int32_t k = 0; k < kAdds; ++k) atomics::add(v, kTotal, 1);
            if (atomics::add(v, kArrived, 1) + 1 == kWorkers) {
              atomics::notify(v, kArrived);
            } else {
              // wait() re-checks the value atomically with notify: no lost wake-up.
              for (std::int32_t n = atomics::load(v, kArrived); n < kWorkers;
                   n = atomics::load(v, kArrived)) {
                (void)atomics::wait(v, kArrived, n);
              }
            }
            Array seen;
            for (std::size_t s = 0; s <= kTotal; ++s) seen.push_back(atomics::load(v, s));
            (void)parent_port()->post_message(Object{
                {"address",
                 static_cast<std::int64_t>(reinterpret_cast<std::uintptr_t>(memory->data()))},
                {"seen", std::move(seen)}});
          },
          std::move(options));
      workers.back().on_message([&reports, i](MessageEvent& e) { reports[i] = e.data; });
    }
    run_loop();  // until all three exit

    const Value expected = Array{100, 200, 300, kWorkers, kWorkers * kAdds};
    for (int i = 0; i < kWorkers; ++i) {
      SCOPED_TRACE("worker " + std::to_string(i));
      ASSERT_TRUE(reports[i].is_object()) << reports[i].to_string();
      EXPECT_EQ(static_cast<std::uintptr_t>(int_of(*reports[i].find("address"))),
                reinterpret_cast<std::uintptr_t>(region.data()))
          << "the worker's worker_data held a copy, not the region";
      EXPECT_EQ(*reports[i].find("seen"), expected);
    }
  }
  // The parent sees every worker's writes too.
  EXPECT_EQ(atomics::load(view, 0), 100);
  EXPECT_EQ(atomics::load(view, 1), 200);
  EXPECT_EQ(atomics::load(view, 2), 300);
  EXPECT_EQ(atomics::load(view, kArrived), kWorkers);
  EXPECT_EQ(atomics::load(view, kTotal), kWorkers * kAdds);
  EXPECT_EQ(region.use_count_approx(), 2) << "region and view; the workers released theirs";
}

TEST_F(WorkerTest, PortsInTheTransferListArriveInWorkerDataPorts) {
  MessageChannel side;
  WorkerOptions options;
  options.transfer_list.add(std::move(side.port2));
  Worker w(
      [] {
        ASSERT_EQ(worker_data_ports().size(), 1u);
        MessagePort port = std::move(worker_data_ports()[0]);
        (void)port.post_message("over the side channel");
      },
      std::move(options));
  std::optional<int> code;
  w.on_exit([&](int c) { code = c; });
  run_loop();
  ASSERT_EQ(code, 0);
  auto got = receive_message_on_port(side.port1);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->data, Value("over the side channel"));
}

// --- named entries -----------------------------------------------------------------------

WEAVE_WORKER_ENTRY(weave_test_named_echo) { echo_until_stop(); }

TEST_F(WorkerTest, NamedEntryRunsTheFunctionRegisteredUnderThatName) {
  Worker w("weave_test_named_echo");
  ASSERT_TRUE(w.post_message("hi").ok());
  ASSERT_TRUE(w.post_message("stop").ok());
  EventLog log;
  log.attach(w);
  run_loop();
  EXPECT_EQ(log.events, (std::vector<std::string>{"online", "message \"hi\"", "exit 0"}));
}

TEST_F(WorkerTest, UnknownEntryNameIsRejectedNamingIt) {
  try {
    Worker w("weave_test_no_such_entry");
    FAIL() << "an unknown entry name was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("weave_test_no_such_entry"));
  }
}

// --- option validation ----------------------------------------------------------------------

// The message of the invalid_argument that constructing a worker with
// `options` throws, or "" if it did not throw.
std::string rejection(
    WorkerOptions options, Worker::Entry entry = [] {}) {
  try {
    Worker w(std::move(entry), std::move(options));
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST_F(WorkerTest, OptionValidationErrorsNameTheOptionAndItsRange) {
  WorkerOptions small_stack;
  small_stack.resource_limits.stack_size_bytes = 4096;
  EXPECT_THAT(rejection(std::move(small_stack)), HasSubstr("stack_size_bytes must be 0"));
  WorkerOptions huge_stack;
  huge_stack.resource_limits.stack_size_bytes = std::size_t{2} << 30;
  EXPECT_THAT(rejection(std::move(huge_stack)), HasSubstr("stack_size_bytes"));
  WorkerOptions huge_arena;
  huge_arena.resource_limits.max_arena_bytes = std::size_t{1} << 50;
  EXPECT_THAT(rejection(std::move(huge_arena)), HasSubstr("max_arena_bytes"));
  WorkerOptions long_name;
  long_name.name = std::string(300, 'n');
  EXPECT_THAT(rejection(std::move(long_name)), HasSubstr("options.name is 300 bytes; at most 256"));
  WorkerOptions nul_name;
  nul_name.name = std::string("a\0b", 3);
  EXPECT_THAT(rejection(std::move(nul_name)), HasSubstr("options.name must not contain a NUL"));
  EXPECT_THAT(rejection(WorkerOptions{}, Worker::Entry()), HasSubstr("entry is empty"));
}

TEST_F(WorkerTest, ResourceLimitsValidateNamesTheCallersOptionTheFieldAndItsRange) {
  ResourceLimits small_stack;
  small_stack.stack_size_bytes = 4096;
  try {
    small_stack.validate("weave::Pool: options.resource_limits");
    FAIL() << "a 4 KiB stack was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(),
                 "weave::Pool: options.resource_limits.stack_size_bytes must be 0 (the default) "
                 "or between 65536 and 1073741824; got 4096");
  }
  ResourceLimits huge_arena;
  huge_arena.max_arena_bytes = ResourceLimits::kMaxArenaBytes + 1;
  EXPECT_THROW(huge_arena.validate("limits"), std::invalid_argument);
  EXPECT_NO_THROW(ResourceLimits{}.validate("limits"));
  ResourceLimits edges;
  edges.stack_size_bytes = ResourceLimits::kMinStackBytes;
  edges.max_arena_bytes = ResourceLimits::kMaxArenaBytes;
  EXPECT_NO_THROW(edges.validate("limits"));
}

TEST_F(WorkerTest, WorkerDataThatCannotBeSentIsRejectedAndNothingIsDetached) {
  ArrayBuffer gone = ArrayBuffer::copy_of("gone");
  ASSERT_TRUE(structured_clone(Value(gone), std::span<ArrayBuffer>(&gone, 1)).ok());
  ASSERT_TRUE(gone.detached());
  WorkerOptions detached_data;
  detached_data.worker_data = Value(gone);
  const std::string detached_error = rejection(std::move(detached_data));
  EXPECT_THAT(detached_error, HasSubstr("options.worker_data"));
  EXPECT_THAT(detached_error, HasSubstr("DataCloneError"));

  ArrayBuffer twice = ArrayBuffer::copy_of("twice");
  WorkerOptions twice_listed;
  twice_listed.worker_data = Value(twice);
  twice_listed.transfer_list.add(twice).add(twice);
  EXPECT_THAT(rejection(std::move(twice_listed)), HasSubstr("options.transfer_list"));
  EXPECT_FALSE(twice.detached()) << "a refused transfer list must leave its buffers attached";

  const SharedArrayBuffer sab(8);
  ArrayBuffer beside = ArrayBuffer::copy_of("beside");
  WorkerOptions sab_listed;
  sab_listed.worker_data = Array{sab, beside};
  sab_listed.transfer_list.add(beside).add(sab);
  const std::string sab_error = rejection(std::move(sab_listed));
  EXPECT_THAT(sab_error, HasSubstr("DataCloneError"));
  EXPECT_THAT(sab_error, HasSubstr("SharedArrayBuffer"));
  EXPECT_THAT(sab_error, HasSubstr("not transferable"));
  EXPECT_FALSE(beside.detached()) << "a refused transfer list must leave its buffers attached";
}

// The size of the calling thread's stack.
std::int64_t own_stack_size() {
  pthread_attr_t attr;
  std::size_t size = 0;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    pthread_attr_getstacksize(&attr, &size);
    pthread_attr_destroy(&attr);
  }
  return static_cast<std::int64_t>(size);
}

TEST_F(WorkerTest, StackSizeOptionSetsTheThreadsStack) {
  constexpr std::size_t kStack = 256 * 1024 + 100;  // rounded up to whole pages
  WorkerOptions options;
  options.resource_limits.stack_size_bytes = kStack;
  auto report = [] { (void)parent_port()->post_message(own_stack_size()); };
  Worker small(report, std::move(options));
  Worker standard(report);
  std::int64_t small_size = 0;
  std::int64_t standard_size = 0;
  small.on_message([&](MessageEvent& e) { small_size = int_of(e.data); });
  standard.on_message([&](MessageEvent& e) { standard_size = int_of(e.data); });
  run_loop();
  const auto page = static_cast<std::int64_t>(sysconf(_SC_PAGESIZE));
  // At least what was asked (sanitizers add their own share on top), and
  // less than a worker gets by default.
  EXPECT_GE(small_size, (static_cast<std::int64_t>(kStack) + page - 1) / page * page);
  EXPECT_LT(small_size, standard_size);
}

// --- environment variables and data -------------------------------------------------------

TEST_F(WorkerTest, MainThreadEnvIsASnapshotOfEnviron) {
  int checked = 0;
  for (char** e = environ; e && *e; ++e) {
    std::string entry(*e);
    const std::size_t eq = entry.find('=');
    if (eq == std::string::npos) continue;
    EXPECT_EQ(env().get(entry.substr(0, eq)), entry.substr(eq + 1));
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

TEST_F(WorkerTest, EnvCopyIsTheParentsAtConstructionAndChangesStayOnTheirSide) {
  env().set("WEAVE_TEST_ENV_COPY", "parent");
  Worker w([] {
    parent_port()->on_message([](MessageEvent&) {
      (void)parent_port()->post_message(env().get("WEAVE_TEST_ENV_COPY").value_or("<unset>"));
      env().set("WEAVE_TEST_ENV_COPY", "worker");
      parent_port()->close();
    });
  });
  env().set("WEAVE_TEST_ENV_COPY", "parent, later");  // after construction: not seen
  ASSERT_TRUE(w.post_message("go").ok());
  Value seen;
  w.on_message([&](MessageEvent& e) { seen = e.data; });
  run_loop();
  EXPECT_EQ(seen, Value("parent"));
  EXPECT_EQ(env().get("WEAVE_TEST_ENV_COPY"), "parent, later");
  EXPECT_TRUE(env().unset("WEAVE_TEST_ENV_COPY"));
}

TEST_F(WorkerTest, EnvShareIsOneObjectForTheParentAndTheWorker) {
  env().set("WEAVE_TEST_ENV_SHARE", "parent");
  WorkerOptions options;
  options.env = EnvMode::kShare;
  Worker w(
      [] {
        parent_port()->on_message([](MessageEvent&) {
          (void)parent_port()->post_message(env().get("WEAVE_TEST_ENV_SHARE").value_or("<unset>"));
          env().set("WEAVE_TEST_ENV_SHARE", "worker");
          parent_port()->close();
        });
      },
      std::move(options));
  env().set("WEAVE_TEST_ENV_SHARE", "parent, later");
  ASSERT_TRUE(w.post_message("go").ok());
  Value seen;
  w.on_message([&](MessageEvent& e) { seen = e.data; });
  run_loop();
  EXPECT_EQ(seen, Value("parent, later"));
  EXPECT_EQ(env().get("WEAVE_TEST_ENV_SHARE"), "worker");
  EXPECT_TRUE(env().unset("WEAVE_TEST_ENV_SHARE"));
}

TEST_F(WorkerTest, EnvironmentDataIsClonedIntoWorkersStartedAfterwards) {
  ASSERT_TRUE(set_environment_data("weave.test", Object{{"n", 1}}).ok());
  Worker w([] {
    Array seen;
    seen.push_back(get_environment_data("weave.test").value_or(Value("<none>")));
    // The worker's own set: its copy, not the parent's.
    (void)set_environment_data("weave.test", 2);
    seen.push_back(get_environment_data("weave.test").value_or(Value("<none>")));
    (void)parent_port()->post_message(Value(std::move(seen)));
  });
  ASSERT_TRUE(set_environment_data("weave.test", Object{{"n", 99}}).ok());  // after: not seen
  Value seen;
  w.on_message([&](MessageEvent& e) { seen = e.data; });
  run_loop();
  EXPECT_EQ(seen, Value(Array{Value(Object{{"n", 1}}), Value(2)}));
  EXPECT_EQ(get_environment_data("weave.test"), Value(Object{{"n", 99}}));

  ASSERT_TRUE(set_environment_data("weave.test", kUndefined).ok());
  EXPECT_EQ(get_environment_data("weave.test"), std::nullopt) << "undefined removes the key";
}

TEST_F(WorkerTest, EnvironmentDataThatCannotBeClonedIsRefused) {
  ArrayBuffer gone = ArrayBuffer::copy_of("gone");
  ASSERT_TRUE(structured_clone(Value(gone), std::span<ArrayBuffer>(&gone, 1)).ok());
  Status s = set_environment_data("weave.test.gone", Value(gone));
  EXPECT_EQ(s.code(), ErrorCode::kDataCloneError);
  EXPECT_EQ(get_environment_data("weave.test.gone"), std::nullopt);
}

// --- identity -----------------------------------------------------------------------------

TEST_F(WorkerTest, MainThreadAnswersAsTheMainThread) {
  EXPECT_EQ(thread_id(), 0);
  EXPECT_TRUE(is_main_thread());
  EXPECT_EQ(worker_name(), "");
  EXPECT_EQ(parent_port(), nullptr);
  EXPECT_TRUE(worker_data().is_undefined());
  EXPECT_TRUE(worker_data_ports().empty());
}

TEST_F(WorkerTest, ThreadIdsAreUniqueAndIncreasingAndWorkersKnowTheirOwn) {
  auto report = [] {
    std::ifstream comm("/proc/thread-self/comm");
    std::string thread_name;
    std::getline(comm, thread_name);
    (void)parent_port()->post_message(Object{{"id", thread_id()},
                                             {"main", is_main_thread()},
                                             {"name", std::string(worker_name())},
                                             {"thread_name", thread_name}});
  };
  WorkerOptions named;
  named.name = "a-rather-long-worker-name";
  Worker first(report, std::move(named));
  Worker second(report);
  EXPECT_GT(first.thread_id(), 0);
  EXPECT_GT(second.thread_id(), first.thread_id());
  EXPECT_EQ(first.name(), "a-rather-long-worker-name");
  Value a, b;
  first.on_message([&](MessageEvent& e) { a = e.data; });
  second.on_message([&](MessageEvent& e) { b = e.data; });
  run_loop();

  EXPECT_EQ(int_of(*a.find("id")), first.thread_id());
  EXPECT_EQ(*a.find("main"), Value(false));
  EXPECT_EQ(*a.find("name"), Value("a-rather-long-worker-name"));
  EXPECT_EQ(*a.find("thread_name"), Value("a-rather-long-w")) << "15 bytes kept";
  EXPECT_EQ(int_of(*b.find("id")), second.thread_id());
  EXPECT_EQ(*b.find("name"), Value(""));
  EXPECT_EQ(*b.find("thread_name"), Value("worker-" + std::to_string(second.thread_id())));
}

// --- ref / unref -----------------------------------------------------------------------------

TEST_F(WorkerTest, UnrefdWorkerDoesNotKeepTheParentLoopAlive) {
  Worker w(listen_forever);
  EXPECT_TRUE(w.has_ref());
  w.unref();
  EXPECT_FALSE(w.has_ref());
  run_loop();  // returns although the worker still runs
  EXPECT_TRUE(w.running());
  EXPECT_EQ(w.terminate().get(), 1);
  std::optional<int> code;
  w.on_exit([&](int c) { code = c; });
  run_loop();  // the exit event still comes, on the next run
  EXPECT_EQ(code, 1);
}

TEST_F(WorkerTest, RefFalseOptionIsUnrefFromTheStartAndRefRestoresIt) {
  WorkerOptions options;
  options.ref = false;
  Worker w([] { parent_port()->on_message([](MessageEvent&) { parent_port()->close(); }); },
           std::move(options));
  EXPECT_FALSE(w.has_ref());
  run_loop();
  EXPECT_TRUE(w.running());
  w.ref();
  EXPECT_TRUE(w.has_ref());
  std::optional<int> code;
  w.on_exit([&](int c) { code = c; });
  ASSERT_TRUE(w.post_message("end").ok());
  run_loop();  // kept alive by the worker until its exit event
  EXPECT_EQ(code, 0);
  EXPECT_FALSE(w.has_ref());
}

TEST_F(WorkerTest, HasRefIsTrueInsideTheExitHandlerAndFalseAfterIt) {
  Worker w([] {});
  std::optional<bool> inside;
  w.on_exit([&](int) { inside = w.has_ref(); });
  run_loop();
  EXPECT_EQ(inside, true) << "Node: worker.hasRef() is true in the 'exit' listener";
  EXPECT_FALSE(w.has_ref());
}

TEST_F(WorkerTest, AnUnrefdWorkersHasRefStaysFalseInsideTheExitHandler) {
  Worker w([] {});
  w.unref();
  std::optional<bool> inside;
  w.on_exit([&](int) { inside = w.has_ref(); });
  EXPECT_TRUE(testing::eventually([&] { return !w.running(); }));
  run_loop();
  EXPECT_EQ(inside, false);
}

// --- nested workers ------------------------------------------------------------------------

TEST_F(WorkerTest, AWorkerStartsANestedWorkerAndRelaysItsMessage) {
  Worker outer([] {
    Worker inner([] {
      parent_port()->on_message([](MessageEvent& e) {
        (void)parent_port()->post_message(
            Object{{"echo", e.data}, {"inner_id", thread_id()}, {"inner_main", is_main_thread()}});
        parent_port()->close();
      });
    });
    const int outer_id = thread_id();
    int inner_exit = -1;
    inner.on_message([&](MessageEvent& e) {
      EXPECT_EQ(thread_id(), outer_id)
          << "the nested worker's events run on its parent, the worker";
      Object relayed = *e.data.if_object();
      relayed.set("outer_id", outer_id);
      (void)parent_port()->post_message(Value(std::move(relayed)));
    });
    inner.on_exit([&](int c) { inner_exit = c; });
    (void)inner.post_message("relay me");
    EventLoop::current().run();  // until the nested worker's exit event
    (void)parent_port()->post_message(Object{{"inner_exit", inner_exit}});
  });
  std::vector<Value> seen;
  std::optional<int> code;
  outer.on_message([&](MessageEvent& e) { seen.push_back(e.data); });
  outer.on_exit([&](int c) { code = c; });
  run_loop();

  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(*seen[0].find("echo"), Value("relay me"));
  EXPECT_EQ(int_of(*seen[0].find("outer_id")), outer.thread_id());
  EXPECT_GT(int_of(*seen[0].find("inner_id")), outer.thread_id());
  EXPECT_EQ(*seen[0].find("inner_main"), Value(false));
  EXPECT_EQ(int_of(*seen[1].find("inner_exit")), 0);
  EXPECT_EQ(code, 0);
}

TEST_F(WorkerTest, TerminatingAWorkerEndsTheNestedWorkerItOwns) {
  Worker outer([] {
    auto inner = std::make_shared<Worker>(listen_forever);
    // Held by the outer worker's loop until that loop is torn down.
    parent_port()->on_message([inner](MessageEvent&) {});
    (void)parent_port()->post_message("inner started");
  });
  EventLog log;
  log.attach(outer);
  outer.on_message([&](MessageEvent&) { (void)outer.terminate(); });
  run_loop();
  EXPECT_EQ(log.exit_code, 1);  // and the fixture checks that both threads are gone
}

// --- counters ---------------------------------------------------------------------------

TEST_F(WorkerTest, StatsAndUtilizationAreReadableFromAnyThreadWhileTheWorkerRuns) {
  constexpr int kRoundTrips = 200;
  Worker w(echo_until_stop);
  std::atomic<bool> done{false};
  StartBarrier start(2);
  std::uint64_t reads = 0;
  std::thread reader([&] {
    start.arrive_and_wait();
    std::uint64_t last_turns = 0;
    while (!done.load(std::memory_order_acquire)) {
      const WorkerStats s = w.stats();
      const LoopUtilization u = w.event_loop_utilization();
      EXPECT_GE(s.loop_turns, last_turns) << "turns only grow";
      last_turns = s.loop_turns;
      EXPECT_GE(u.utilization, 0.0);
      EXPECT_LE(u.utilization, 1.0);
      ++reads;
    }
  });
  start.arrive_and_wait();

  int replies = 0;
  w.on_message([&](MessageEvent& e) {
    ++replies;
    const WorkerStats s = w.stats();  // from the parent, mid-run
    EXPECT_EQ(s.messages_out, static_cast<std::uint64_t>(replies));
    EXPECT_EQ(s.messages_in, static_cast<std::uint64_t>(replies));
    EXPECT_TRUE(w.running());
    (void)w.post_message(replies < kRoundTrips ? Value(int_of(e.data) + 1) : Value("stop"));
  });
  ASSERT_TRUE(w.post_message(0).ok());
  run_loop();
  done.store(true, std::memory_order_release);
  reader.join();

  const WorkerStats s = w.stats();
  EXPECT_EQ(s.messages_in, static_cast<std::uint64_t>(kRoundTrips + 1));
  EXPECT_EQ(s.messages_out, static_cast<std::uint64_t>(kRoundTrips));
  EXPECT_GT(s.loop_turns, 0u);
  const LoopUtilization u = w.event_loop_utilization();
  EXPECT_GT(u.active.count(), 0);
  EXPECT_GE(u.utilization, 0.0);
  EXPECT_LE(u.utilization, 1.0);
  const LoopUtilization again = w.event_loop_utilization();
  EXPECT_EQ(again.active, u.active) << "utilization stops counting when the worker ends";
  EXPECT_EQ(again.idle, u.idle);
  EXPECT_GT(reads, 0u);
}

// --- typed messages ------------------------------------------------------------------------

TEST_F(WorkerTest, TypedOnMessageDecodesAndAMessageThatDoesNotDecodeIsAMessageerror) {
  Worker w([] {
    (void)parent_port()->post_message(1);
    (void)parent_port()->post_message("two");
    (void)parent_port()->post_message(3);
  });
  EventLog log;
  log.attach(w);
  w.on_message<std::int64_t>([&](std::int64_t n) { log.note("int " + std::to_string(n)); });
  run_loop();
  EXPECT_EQ(log.events,
            (std::vector<std::string>{"online", "int 1", "messageerror ERR_WORKER_MESSAGE_DECODE",
                                      "int 3", "exit 0"}));
  ASSERT_TRUE(log.messageerror.has_value());
  EXPECT_EQ(log.messageerror->type_name, "TypeError");
  EXPECT_FALSE(log.messageerror->message.empty());
  EXPECT_EQ(w.stats().messages_out, 3u);
}

TEST_F(WorkerTest, CodecTypeWithATransferListReachesTheWorkerAsTheSameMemory) {
  Block block{5, ArrayBuffer::copy_of(std::string_view("abc"))};
  const auto address = reinterpret_cast<std::uintptr_t>(block.bytes.data());
  Worker w([] {
    parent_port()->on_message([](MessageEvent& e) {
      // Replies with the address its buffer arrived at, plus the id.
      Result<Block> b = e.get<Block>();
      (void)parent_port()->post_message(
          b.ok() ? Value(static_cast<std::int64_t>(
                       reinterpret_cast<std::uintptr_t>(b->bytes.data()) + b->id))
                 : Value(-1));
      parent_port()->close();
    });
  });
  std::int64_t reply = 0;
  w.on_message([&](MessageEvent& e) { reply = int_of(e.data); });
  ASSERT_TRUE(w.post_message(block, Transfer().add(block.bytes)).ok());
  EXPECT_TRUE(block.bytes.detached());
  run_loop();
  EXPECT_EQ(reply, static_cast<std::int64_t>(address + 5));  // same address, id intact
}

}  // namespace
}  // namespace weave
