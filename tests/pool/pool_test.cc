// Pins down weave::Pool (pool/pool.h, pool/task.h): named tasks and what
// crosses to the worker (clones, transfers), callable tasks of every form,
// errors by kind, the bounded queue and each queue_full action, cancellation
// (before start, while running, by signal, by timeout, past cancel_grace),
// workers that die under a task, growth and idle retirement, deferred tasks,
// close / drain / destroy and the destructor, TaskFuture::then, metrics,
// tracing hooks and option validation.
//
// No test sleeps to synchronise: tasks and the test meet through gates and
// atomics; where the test must know that a thread is blocked it waits until
// that thread sleeps in the kernel; metrics and thread ends, which nothing
// signals, are observed with a bounded poll. No test asserts on timing.
// Every test builds its pools inside the test and ends by proving a clean
// shutdown: no thread, fd or port left, the main thread's loop idle
// (PoolTest).
#include "pool/pool.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <memory_resource>
#include <mutex>
#include <optional>
#include <ostream>
#include <set>
#include <span>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "channel/array_buffer.h"
#include "channel/message_port.h"
#include "channel/value.h"
#include "loop/event_loop.h"
#include "pool/task.h"
#include "tests/pool/pool_test_util.h"
#include "tests/test_util.h"
#include "tests/workers/worker_test_util.h"
#include "workers/worker.h"

namespace weave {

// Readable TaskErrc in gtest messages (found by ADL, so in namespace weave).
void PrintTo(TaskErrc e, std::ostream* os) {
  static constexpr const char* kNames[] = {"kThrew",     "kCancelled",  "kTimedOut",
                                           "kQueueFull", "kPoolClosed", "kWorkerDied",
                                           "kNotFound",  "kDataClone",  "kNotCompleted"};
  const auto i = static_cast<std::size_t>(e);
  if (i < std::size(kNames)) {
    *os << kNames[i];
  } else {
    *os << "TaskErrc(" << i << ")";
  }
}

namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using ::weave::testing::current_tid;
using ::weave::testing::eventually;
using ::weave::testing::kHangGuard;
using ::weave::testing::thread_state;
using ::weave::testing::wait_until_parked;

// CleanShutdownTest plus: the main thread's loop is left with nothing
// pending (TaskFuture::then runs there) and no channel endpoint outlives the
// test (every worker's parent port is closed) — what WorkerTest checks.
class PoolTest : public ::weave::testing::WorkerTest {};

// --- helpers ----------------------------------------------------------------------------

// The gate, the spin flag, fixed() and errc_of() are shared with the other pool tests.
using ::weave::pool_testing::fixed;
using ::weave::pool_testing::errc_of;
using ::weave::pool_testing::Gate;
using ::weave::pool_testing::SpinFlag;

// Runs a task that holds one worker slot of `pool` until `release` opens (or
// it is cancelled), and returns its future once the task runs.
TaskFuture<void> occupy(Pool& pool, const std::shared_ptr<Gate>& release) {
  auto started = std::make_shared<Gate>();
  TaskFuture<void> f = pool.run([started, release](std::stop_token stop) {
    started->open();
    (void)release->wait(stop);
  });
  EXPECT_TRUE(started->wait()) << "the occupying task never started";
  return f;
}

// Its Node-style code, or "" likewise.
template <class T>
std::string code_of(const TaskFuture<T>& f) {
  const TaskError* e = f.ready() ? f.error() : nullptr;
  return e ? e->code() : "";
}

std::int64_t address_of(const ArrayBuffer& b) {
  return static_cast<std::int64_t>(reinterpret_cast<std::uintptr_t>(b.data()));
}

std::int64_t int_of(const Value& v) {
  const std::int64_t* i = v.if_int();
  return i ? *i : -1;
}

// The "thread_id" pool_test_whoami reports, or -1.
std::int64_t thread_id_of(const Value& whoami) {
  const Value* id = whoami.find("thread_id");
  return id ? int_of(*id) : -1;
}

struct PoolTestFailure : std::logic_error {
  using std::logic_error::logic_error;
};

// What pool_test_make_buffers keeps of the buffers it returns: the worker's
// own handles stay alive, so the caller's copy can never reuse their memory,
// and the test can see that the moved one was detached there.
struct KeptBuffers {
  std::mutex mu;
  std::optional<ArrayBuffer> moved;
  std::optional<ArrayBuffer> copied;
};
KeptBuffers& kept_buffers() {
  static KeptBuffers k;
  return k;
}

// --- named tasks ---------------------------------------------------------------------

WEAVE_TASK(pool_test_square, ctx, args) {
  const std::int64_t* n = args.if_int();
  if (n == nullptr) throw std::invalid_argument("pool_test_square: args must be an int");
  return *n * *n;
}

WEAVE_TASK(pool_test_greet, ctx, args) {
  const std::string* who = args.if_string();
  if (who == nullptr) throw std::invalid_argument("pool_test_greet: args must be a string");
  return "hello, " + *who;
}

// {"label": s, "numbers": [ints]} -> {"label": s + "!", "sum": .., "count": ..}
WEAVE_TASK(pool_test_summarize, ctx, args) {
  std::int64_t sum = 0;
  std::int64_t count = 0;
  if (const Value* numbers = args.find("numbers"); numbers && numbers->if_array()) {
    for (const Value& v : *numbers->if_array()) {
      sum += int_of(v);
      ++count;
    }
  }
  const Value* label = args.find("label");
  return Object{{"label", (label && label->if_string() ? *label->if_string() : "?") + "!"},
                {"sum", sum},
                {"count", count}};
}

WEAVE_TASK(pool_test_whoami, ctx, args) {
  return Object{{"id", ctx.id()},
                {"name", std::string(ctx.name())},
                {"thread_id", thread_id()},
                {"main", is_main_thread()}};
}

// Reports where its buffer arrived and what it held, then scribbles on it.
WEAVE_TASK(pool_test_buffer_report, ctx, args) {
  ArrayBuffer* b = args.if_array_buffer();
  if (b == nullptr) throw std::invalid_argument("pool_test_buffer_report: args must be a buffer");
  Object report{{"address", address_of(*b)}, {"text", b->to_string()}};
  if (b->byte_length() > 0) b->data()[0] = std::byte{'X'};
  return report;
}

// Returns two buffers; lists only "moved" with ctx.transfer().
WEAVE_TASK(pool_test_make_buffers, ctx, args) {
  ArrayBuffer moved = ArrayBuffer::copy_of(std::string_view("moved bytes"));
  ArrayBuffer copied = ArrayBuffer::copy_of(std::string_view("copied bytes"));
  {
    std::lock_guard lock(kept_buffers().mu);
    kept_buffers().moved = moved;
    kept_buffers().copied = copied;
  }
  ctx.transfer(moved);
  return Object{{"moved", moved},
                {"copied", copied},
                {"moved_at", address_of(moved)},
                {"copied_at", address_of(copied)}};
}

// Returns a buffer that was detached: its result cannot be cloned.
WEAVE_TASK(pool_test_returns_detached, ctx, args) {
  ArrayBuffer gone = ArrayBuffer::copy_of(std::string_view("gone"));
  if (!structured_clone(Value(gone), std::span<ArrayBuffer>(&gone, 1)).ok()) {
    throw std::logic_error("pool_test_returns_detached: could not detach");
  }
  return Value(gone);
}

// Settles later, from a timer on its worker's loop, with its args.
WEAVE_TASK(pool_test_deferred_echo, ctx, args) {
  set_timeout(1ms, [done = ctx.defer(), echo = std::move(args)]() mutable {
    done.resolve(std::move(echo));
  });
  return "returned, not resolved";
}

TEST_F(PoolTest, NamedTaskGetsItsArgsClonedAndReturnsIntsStringsAndObjects) {
  Pool pool(fixed(2));
  TaskFuture<Value> square = pool.run("pool_test_square", 12);
  TaskFuture<Value> greet = pool.run("pool_test_greet", "weave");
  TaskFuture<Value> summary =
      pool.run("pool_test_summarize", Object{{"label", "total"}, {"numbers", Array{1, 2, 3, 4}}});
  EXPECT_EQ(square.get(), Value(144));
  EXPECT_EQ(greet.get(), Value("hello, weave"));
  EXPECT_EQ(summary.get(), Value(Object{{"label", "total!"}, {"sum", 10}, {"count", 4}}));
}

TEST_F(PoolTest, NamedTaskSeesItsIdAndNameAndRunsOnAWorker) {
  Pool pool(fixed(1));
  TaskFuture<Value> f = pool.run("pool_test_whoami");
  const std::uint64_t id = f.id();
  const Value seen = f.get();
  EXPECT_EQ(*seen.find("id"), Value(id)) << "TaskContext::id() is the future's id";
  EXPECT_EQ(*seen.find("name"), Value("pool_test_whoami"));
  EXPECT_GT(int_of(*seen.find("thread_id")), 0);
  EXPECT_EQ(*seen.find("main"), Value(false));
}

TEST_F(PoolTest, NamedTaskArgsAreACopyTheCallersBufferStaysItsOwn) {
  Pool pool(fixed(1));
  ArrayBuffer buf = ArrayBuffer::copy_of(std::string_view("abc"));
  TaskFuture<Value> f = pool.run("pool_test_buffer_report", Value(buf));
  const Value report = f.get();
  EXPECT_FALSE(buf.detached()) << "an unlisted buffer is cloned, not moved";
  EXPECT_EQ(*report.find("text"), Value("abc"));
  // The caller's buffer was alive all along, so a copy cannot share its address.
  EXPECT_NE(int_of(*report.find("address")), address_of(buf));
  EXPECT_EQ(buf.to_string(), "abc") << "the task wrote to its own copy";
}

TEST_F(PoolTest, TransferredArgBufferArrivesAtTheSameAddressAndIsDetachedAtTheCaller) {
  Pool pool(fixed(1));
  ArrayBuffer buf = ArrayBuffer::copy_of(std::string_view("payload"));
  const std::int64_t address = address_of(buf);
  RunOptions options;
  options.transfer.add(buf);
  TaskFuture<Value> f = pool.run("pool_test_buffer_report", Value(buf), std::move(options));
  EXPECT_TRUE(buf.detached()) << "a transferred buffer is detached once the task is accepted";
  const Value report = f.get();
  EXPECT_EQ(int_of(*report.find("address")), address);
  EXPECT_EQ(*report.find("text"), Value("payload"));
}

TEST_F(PoolTest, ResultBufferListedWithTransferArrivesAtTheSameAddressAnUnlistedOneIsACopy) {
  Pool pool(fixed(1));
  const Value result = pool.run("pool_test_make_buffers").get();
  const ArrayBuffer* moved = result.find("moved")->if_array_buffer();
  const ArrayBuffer* copied = result.find("copied")->if_array_buffer();
  ASSERT_NE(moved, nullptr);
  ASSERT_NE(copied, nullptr);
  EXPECT_EQ(address_of(*moved), int_of(*result.find("moved_at")));
  EXPECT_NE(address_of(*copied), int_of(*result.find("copied_at")));
  EXPECT_EQ(moved->to_string(), "moved bytes");
  EXPECT_EQ(copied->to_string(), "copied bytes");

  std::lock_guard lock(kept_buffers().mu);
  ASSERT_TRUE(kept_buffers().moved && kept_buffers().copied);
  EXPECT_TRUE(kept_buffers().moved->detached())
      << "the task's handle of a moved buffer is detached";
  EXPECT_FALSE(kept_buffers().copied->detached());
  EXPECT_FALSE(kept_buffers().copied->same_buffer(*copied));
  kept_buffers().moved.reset();
  kept_buffers().copied.reset();
}

TEST_F(PoolTest, UnknownTaskNameFailsAtOnceWithNotFound) {
  Pool pool(fixed(1));
  TaskFuture<Value> f = pool.run("pool_test_no_such_task", 1);
  ASSERT_TRUE(f.valid());
  EXPECT_TRUE(f.ready()) << "an unknown name is known at run()";
  EXPECT_EQ(errc_of(f), TaskErrc::kNotFound);
  EXPECT_EQ(code_of(f), "ERR_TASK_NOT_FOUND");
  EXPECT_THROW((void)f.get(), TaskError);
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.rejected, 1u);
  EXPECT_EQ(m.submitted, 0u) << "refused at run(), never accepted";
}

TEST_F(PoolTest, ArgsThatCannotBeSentFailAtOnceWithDataCloneAndNothingIsDetached) {
  Pool pool(fixed(1));
  ArrayBuffer gone = ArrayBuffer::copy_of(std::string_view("gone"));
  ASSERT_TRUE(structured_clone(Value(gone), std::span<ArrayBuffer>(&gone, 1)).ok());
  ASSERT_TRUE(gone.detached());

  {  // A detached buffer listed beside a live one.
    ArrayBuffer live = ArrayBuffer::copy_of(std::string_view("live"));
    RunOptions options;
    options.transfer.add(live).add(gone);
    TaskFuture<Value> f =
        pool.run("pool_test_square", Array{Value(live), Value(gone)}, std::move(options));
    EXPECT_TRUE(f.ready());
    EXPECT_EQ(errc_of(f), TaskErrc::kDataClone);
    EXPECT_EQ(code_of(f), "ERR_DATA_CLONE");
    EXPECT_FALSE(live.detached()) << "a refused transfer list must leave its buffers attached";
  }
  {  // A detached buffer in the args, not listed.
    TaskFuture<Value> f = pool.run("pool_test_square", Array{Value(gone)});
    EXPECT_TRUE(f.ready());
    EXPECT_EQ(errc_of(f), TaskErrc::kDataClone);
  }
  {  // A SharedArrayBuffer listed: shared, never transferred.
    const SharedArrayBuffer sab(8);
    ArrayBuffer live = ArrayBuffer::copy_of(std::string_view("beside"));
    RunOptions options;
    options.transfer.add(live).add(sab);
    TaskFuture<Value> f = pool.run("pool_test_square", Array{sab, live}, std::move(options));
    EXPECT_TRUE(f.ready());
    EXPECT_EQ(errc_of(f), TaskErrc::kDataClone);
    EXPECT_FALSE(live.detached());
  }
  {  // A port listed: it would outlive the task on a worker it does not own.
    MessageChannel side;
    RunOptions options;
    options.transfer.add(std::move(side.port2));
    TaskFuture<Value> f = pool.run("pool_test_square", 2, std::move(options));
    EXPECT_TRUE(f.ready());
    EXPECT_EQ(errc_of(f), TaskErrc::kDataClone);
  }
  // None of them reached a worker; the pool still works.
  EXPECT_EQ(pool.run("pool_test_square", 3).get(), Value(9));
  pool.drain();
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.completed, 1u);
  EXPECT_EQ(m.run_time.count, 1u) << "a refused task never ran";
}

TEST_F(PoolTest, ResultThatCannotBeClonedFailsTheTaskWithDataCloneAndTheWorkerLivesOn) {
  Pool pool(fixed(1));
  const std::int64_t before = thread_id_of(pool.run("pool_test_whoami").get());
  TaskFuture<Value> f = pool.run("pool_test_returns_detached");
  ASSERT_TRUE(f.wait_for(kHangGuard));
  EXPECT_EQ(errc_of(f), TaskErrc::kDataClone);
  EXPECT_EQ(code_of(f), "ERR_DATA_CLONE");
  const std::int64_t after = thread_id_of(pool.run("pool_test_whoami").get());
  EXPECT_EQ(after, before) << "the same worker runs the next task";
  pool.drain();
  EXPECT_EQ(pool.metrics().workers_replaced, 0u);
}

Value unused_task(TaskContext&, Value) { return {}; }

TEST_F(PoolTest, RegisterTaskKeepsTheFirstUnderANameAndRefusesAnEmptyName) {
  const TaskFunction original = find_task("pool_test_square");
  ASSERT_NE(original, nullptr) << "WEAVE_TASK registers at static initialisation";
  EXPECT_FALSE(register_task("pool_test_square", &unused_task));
  EXPECT_EQ(find_task("pool_test_square"), original);
  EXPECT_FALSE(register_task("", &unused_task));
  EXPECT_EQ(find_task("pool_test_never_registered"), nullptr);

  (void)register_task("pool_test_registered_at_run_time", &unused_task);
  EXPECT_EQ(find_task("pool_test_registered_at_run_time"), &unused_task);
  Pool pool(fixed(1));
  EXPECT_TRUE(pool.run("pool_test_registered_at_run_time").get().is_undefined());
}

// --- callable tasks ------------------------------------------------------------------

TEST_F(PoolTest, CallableTasksOfEveryFormReturnTheirResult) {
  Pool pool(fixed(2));
  TaskFuture<int> plain = pool.run([] { return 6 * 7; });
  TaskFuture<bool> with_token =
      pool.run([](std::stop_token st) { return st.stop_possible() && !st.stop_requested(); });
  TaskFuture<std::uint64_t> with_context = pool.run([](TaskContext& ctx) {
    return ctx.name().empty() && !ctx.stop_requested() ? ctx.id() : std::uint64_t{0};
  });
  std::atomic<int> side_effect{0};
  TaskFuture<void> nothing = pool.run([&side_effect] { side_effect.store(thread_id()); });
  TaskFuture<std::unique_ptr<std::string>> move_only =
      pool.run([] { return std::make_unique<std::string>("moved back"); });

  const std::uint64_t context_id = with_context.id();
  EXPECT_EQ(plain.get(), 42);
  EXPECT_TRUE(with_token.get()) << "the task's token can be stopped and is not stopped";
  EXPECT_EQ(with_context.get(), context_id);
  nothing.get();
  EXPECT_GT(side_effect.load(), 0) << "the void task ran on a worker";
  std::unique_ptr<std::string> s = move_only.get();
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(*s, "moved back");
}

TEST_F(PoolTest, CallableTaskRunsOnAWorkerNotOnTheCaller) {
  Pool pool(fixed(1));
  TaskFuture<std::pair<int, bool>> f =
      pool.run([] { return std::make_pair(thread_id(), is_main_thread()); });
  const auto [id, main] = f.get();
  EXPECT_GT(id, 0);
  EXPECT_FALSE(main);
}

TEST_F(PoolTest, DroppingAFutureDoesNotCancelItsTask) {
  Pool pool(fixed(1));
  auto ran = std::make_shared<std::atomic<bool>>(false);
  (void)pool.run([ran] { ran->store(true); });
  pool.drain();
  EXPECT_TRUE(ran->load());
  EXPECT_EQ(pool.metrics().completed, 1u);
  EXPECT_EQ(pool.metrics().cancelled, 0u);
}

TEST_F(PoolTest, QueuedTasksFromOneThreadRunInSubmissionOrder) {
  Pool pool(fixed(1));
  auto release = std::make_shared<Gate>();
  TaskFuture<void> occupant = occupy(pool, release);
  std::mutex mu;
  std::vector<int> order;
  std::vector<TaskFuture<void>> fs;
  for (int i = 0; i < 8; ++i) {
    fs.push_back(pool.run([&mu, &order, i] {
      std::lock_guard lock(mu);
      order.push_back(i);
    }));
  }
  release->open();
  pool.drain();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
}

TEST_F(PoolTest, WorkersAreNamedAfterThePoolAndGetTheWorkerData) {
  PoolOptions o = fixed(2);
  o.name = "squares";
  o.worker_data = Object{{"model", "m1"}, {"size", 3}};
  Pool pool(std::move(o));
  TaskFuture<std::string> name = pool.run([] { return std::string(worker_name()); });
  TaskFuture<Value> data = pool.run([] { return worker_data(); });
  EXPECT_THAT(name.get(), StartsWith("squares-"));
  EXPECT_EQ(data.get(), Value(Object{{"model", "m1"}, {"size", 3}}));
}

TEST_F(PoolTest, DefaultPoolHasOneWorkerPerHardwareThread) {
  const std::size_t hw = std::thread::hardware_concurrency();
  ASSERT_GT(hw, 0u);
  Pool pool;
  EXPECT_TRUE(eventually([&] { return pool.threads_approx() == hw; })) << pool.threads_approx();
  EXPECT_EQ(pool.run([] { return 1; }).get(), 1);
  EXPECT_FALSE(pool.closed());
}

// --- exceptions ----------------------------------------------------------------------

TEST_F(PoolTest, ThrowingTaskFailsOnlyThatTaskAndItsWorkerRunsTheNextOne) {
  Pool pool(fixed(1));
  std::atomic<int> thrower{0};
  TaskFuture<int> bad = pool.run([&thrower]() -> int {
    thrower.store(thread_id());
    throw PoolTestFailure("bad input: 7");
  });
  TaskFuture<int> good = pool.run([] { return thread_id(); });
  try {
    (void)bad.get();
    ADD_FAILURE() << "get() returned for a task that threw";
  } catch (const TaskError& e) {
    EXPECT_EQ(e.errc(), TaskErrc::kThrew);
    EXPECT_EQ(e.code(), "ERR_TASK_THREW");
    EXPECT_THAT(e.type_name(), HasSubstr("PoolTestFailure"));
    EXPECT_STREQ(e.what(), "bad input: 7");
    EXPECT_FALSE(e.cancelled());
  }
  EXPECT_EQ(good.get(), thrower.load()) << "the same worker runs the next task";

  TaskFuture<void> odd = pool.run([] { throw 42; });
  ASSERT_TRUE(odd.wait_for(kHangGuard));
  EXPECT_EQ(errc_of(odd), TaskErrc::kThrew);
  EXPECT_EQ(odd.error()->type_name(), "int");

  TaskFuture<Value> named = pool.run("pool_test_square", "not a number");
  ASSERT_TRUE(named.wait_for(kHangGuard));
  EXPECT_EQ(errc_of(named), TaskErrc::kThrew);
  EXPECT_EQ(named.error()->type_name(), "std::invalid_argument");
  EXPECT_STREQ(named.error()->what(), "pool_test_square: args must be an int");

  pool.drain();
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.failed, 3u);
  EXPECT_EQ(m.completed, 1u);
  EXPECT_EQ(m.workers_replaced, 0u);
  EXPECT_EQ(m.workers_started, 1u);
}

// --- backpressure ----------------------------------------------------------------------

TEST_F(PoolTest, RejectAtMaxQueueFailsTheNewTaskAtOnceWithQueueFull) {
  PoolOptions o = fixed(1);
  o.max_queue = 2;
  o.queue_full = QueueFullAction::kReject;
  Pool pool(std::move(o));
  auto release = std::make_shared<Gate>();
  TaskFuture<void> occupant = occupy(pool, release);
  TaskFuture<int> a = pool.run([] { return 1; });
  TaskFuture<int> b = pool.run([] { return 2; });
  EXPECT_FALSE(a.ready());
  EXPECT_FALSE(b.ready());

  auto ran = std::make_shared<std::atomic<bool>>(false);
  TaskFuture<int> c = pool.run([ran] {
    ran->store(true);
    return 3;
  });
  EXPECT_TRUE(c.ready()) << "a rejected task fails at run()";
  EXPECT_EQ(errc_of(c), TaskErrc::kQueueFull);
  EXPECT_EQ(code_of(c), "ERR_QUEUE_FULL");
  EXPECT_EQ(pool.queue_size_approx(), 2u);

  release->open();
  EXPECT_EQ(a.get(), 1);
  EXPECT_EQ(b.get(), 2);
  pool.drain();
  EXPECT_FALSE(ran->load());
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.rejected, 1u);
  EXPECT_EQ(m.completed, 3u);
  EXPECT_EQ(m.submitted, 3u) << "a rejected task was not accepted";
}

TEST_F(PoolTest, DropOldestAtMaxQueueEvictsTheOldestWaitingTaskAndQueuesTheNewOne) {
  PoolOptions o = fixed(1);
  o.max_queue = 2;
  o.queue_full = QueueFullAction::kDropOldest;
  Pool pool(std::move(o));
  auto release = std::make_shared<Gate>();
  TaskFuture<void> occupant = occupy(pool, release);
  auto oldest_ran = std::make_shared<std::atomic<bool>>(false);
  TaskFuture<int> a = pool.run([oldest_ran] {
    oldest_ran->store(true);
    return 1;
  });
  TaskFuture<int> b = pool.run([] { return 2; });
  TaskFuture<int> c = pool.run([] { return 3; });

  ASSERT_TRUE(a.wait_for(kHangGuard)) << "the oldest waiting task was not evicted";
  EXPECT_EQ(errc_of(a), TaskErrc::kQueueFull);
  EXPECT_EQ(code_of(a), "ERR_QUEUE_FULL");
  EXPECT_FALSE(c.ready()) << "the new task is queued";
  EXPECT_FALSE(occupant.ready());

  release->open();
  EXPECT_EQ(b.get(), 2);
  EXPECT_EQ(c.get(), 3);
  pool.drain();
  EXPECT_FALSE(oldest_ran->load()) << "an evicted task never runs";
  EXPECT_EQ(pool.metrics().rejected, 1u);
}

TEST_F(PoolTest, WaitAtMaxQueueBlocksRunUntilATaskLeavesTheQueue) {
  PoolOptions o = fixed(1);
  o.max_queue = 1;
  o.queue_full = QueueFullAction::kWait;
  Pool pool(std::move(o));

  // The occupant notes, as it finishes, whether the blocked run() had returned.
  auto c_returned = std::make_shared<std::atomic<bool>>(false);
  auto returned_before_room = std::make_shared<std::atomic<int>>(-1);
  auto started = std::make_shared<Gate>();
  auto release = std::make_shared<Gate>();
  TaskFuture<void> occupant =
      pool.run([started, release, c_returned, returned_before_room](std::stop_token st) {
        started->open();
        (void)release->wait(st);
        returned_before_room->store(c_returned->load() ? 1 : 0);
      });
  ASSERT_TRUE(started->wait());

  std::mutex mu;
  std::vector<std::string> order;
  auto record = [&mu, &order](std::string what) {
    return [&mu, &order, what] {
      std::lock_guard lock(mu);
      order.push_back(what);
    };
  };
  TaskFuture<void> a = pool.run(record("a"));  // fills the queue

  std::atomic<pid_t> submitter_tid{0};
  auto entered = std::make_shared<Gate>();
  auto leave = std::make_shared<Gate>();
  TaskFuture<void> c;
  std::thread submitter([&] {
    submitter_tid.store(current_tid());
    entered->open();
    c = pool.run(record("c"));
    c_returned->store(true);
    // Stays (asleep) so that a run() that did not block is seen parked here.
    (void)leave->wait();
  });
  EXPECT_TRUE(entered->wait());
  const bool parked = wait_until_parked(submitter_tid.load());
  EXPECT_TRUE(parked) << "the submitting thread never blocked";
  EXPECT_FALSE(c_returned->load()) << "run() returned although the queue was full";
  EXPECT_EQ(pool.queue_size_approx(), 1u);

  release->open();  // the occupant ends, "a" starts: room for "c"
  EXPECT_TRUE(eventually([&] { return c_returned->load(); })) << "run() never returned";
  leave->open();
  submitter.join();
  ASSERT_TRUE(c.valid());
  c.get();
  a.get();
  pool.drain();
  EXPECT_EQ(returned_before_room->load(), 0) << "run() must not return before there is room";
  EXPECT_EQ(order, (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(pool.metrics().rejected, 0u);
}

TEST_F(PoolTest, WaitAtMaxQueueGivesUpWithPoolClosedWhenThePoolCloses) {
  PoolOptions o = fixed(1);
  o.max_queue = 1;
  o.queue_full = QueueFullAction::kWait;
  Pool pool(std::move(o));
  auto release = std::make_shared<Gate>();
  TaskFuture<void> occupant = occupy(pool, release);
  TaskFuture<int> a = pool.run([] { return 1; });

  std::atomic<pid_t> submitter_tid{0};
  std::atomic<bool> returned{false};
  auto entered = std::make_shared<Gate>();
  auto ran = std::make_shared<std::atomic<bool>>(false);
  TaskFuture<int> c;
  std::thread submitter([&] {
    submitter_tid.store(current_tid());
    entered->open();
    c = pool.run([ran] {
      ran->store(true);
      return 3;
    });
    returned.store(true);
  });
  EXPECT_TRUE(entered->wait());
  EXPECT_TRUE(wait_until_parked(submitter_tid.load())) << "the submitting thread never blocked";
  EXPECT_FALSE(returned.load());

  pool.close();
  const bool gave_up = eventually([&] { return returned.load(); });
  EXPECT_TRUE(gave_up) << "run() kept waiting after close()";
  if (!gave_up) release->open();  // make room, so the thread can be joined
  submitter.join();
  EXPECT_EQ(errc_of(c), TaskErrc::kPoolClosed);

  release->open();
  EXPECT_EQ(a.get(), 1) << "close() lets queued tasks run";
  pool.drain();
  EXPECT_FALSE(ran->load());
}

// A QueueFullInfo with its own copy of the name.
struct SeenQueueFull {
  std::uint64_t task_id = 0;
  std::string task_name;
  std::size_t queue_size = 0;
  std::size_t max_queue = 0;
  std::thread::id thread;
};

TEST_F(PoolTest, OnQueueFullCallbackIsToldTheQueueAndItsAnswerReplacesTheOption) {
  // Option kDropOldest, callback answers kReject: the new task is refused.
  {
    std::vector<SeenQueueFull> seen;
    PoolOptions o = fixed(1);
    o.max_queue = 1;
    o.queue_full = QueueFullAction::kDropOldest;
    o.on_queue_full = [&seen](const QueueFullInfo& info) {
      seen.push_back({info.task_id, std::string(info.task_name), info.queue_size, info.max_queue,
                      std::this_thread::get_id()});
      return QueueFullAction::kReject;
    };
    Pool pool(std::move(o));
    auto release = std::make_shared<Gate>();
    TaskFuture<void> occupant = occupy(pool, release);
    TaskFuture<Value> a = pool.run("pool_test_square", 2);
    EXPECT_TRUE(seen.empty()) << "asked only when the queue is full";
    TaskFuture<Value> c = pool.run("pool_test_square", 3);
    EXPECT_TRUE(c.ready());
    EXPECT_EQ(errc_of(c), TaskErrc::kQueueFull);
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0].task_id, c.id());
    EXPECT_EQ(seen[0].task_name, "pool_test_square");
    EXPECT_EQ(seen[0].queue_size, 1u);
    EXPECT_EQ(seen[0].max_queue, 1u);
    EXPECT_EQ(seen[0].thread, std::this_thread::get_id()) << "asked on run()'s thread";
    release->open();
    EXPECT_EQ(a.get(), Value(4)) << "the oldest stays: the callback said kReject";
    pool.drain();
  }
  // Option kReject, callback answers kDropOldest: the oldest is evicted.
  {
    std::vector<SeenQueueFull> seen;
    PoolOptions o = fixed(1);
    o.max_queue = 1;
    o.queue_full = QueueFullAction::kReject;
    o.on_queue_full = [&seen](const QueueFullInfo& info) {
      seen.push_back({info.task_id, std::string(info.task_name), info.queue_size, info.max_queue,
                      std::this_thread::get_id()});
      return QueueFullAction::kDropOldest;
    };
    Pool pool(std::move(o));
    auto release = std::make_shared<Gate>();
    TaskFuture<void> occupant = occupy(pool, release);
    TaskFuture<int> a = pool.run([] { return 2; });
    TaskFuture<int> c = pool.run([] { return 3; });
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0].task_id, c.id());
    EXPECT_EQ(seen[0].task_name, "") << "a callable task has no name";
    EXPECT_EQ(seen[0].queue_size, 1u);
    ASSERT_TRUE(a.wait_for(kHangGuard));
    EXPECT_EQ(errc_of(a), TaskErrc::kQueueFull);
    release->open();
    EXPECT_EQ(c.get(), 3);
    pool.drain();
  }
}

// --- cancellation ------------------------------------------------------------------------

TEST_F(PoolTest, CancelBeforeStartSettlesAtOnceAndTheTaskNeverRuns) {
  Pool pool(fixed(1));
  auto release = std::make_shared<Gate>();
  TaskFuture<void> occupant = occupy(pool, release);
  auto ran = std::make_shared<std::atomic<bool>>(false);
  TaskFuture<int> f = pool.run([ran] {
    ran->store(true);
    return 1;
  });
  EXPECT_FALSE(f.ready());
  EXPECT_TRUE(f.cancel());
  EXPECT_TRUE(f.ready()) << "a queued task settles cancelled at cancel()";
  EXPECT_EQ(errc_of(f), TaskErrc::kCancelled);
  EXPECT_EQ(code_of(f), "ABORT_ERR");
  EXPECT_TRUE(f.error()->cancelled());
  EXPECT_FALSE(f.cancel()) << "already settled";
  EXPECT_EQ(pool.queue_size_approx(), 0u) << "it left the queue";

  release->open();
  pool.drain();
  EXPECT_FALSE(ran->load());
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.cancelled, 1u);
  EXPECT_EQ(m.completed, 1u);
  EXPECT_EQ(m.run_time.count, 1u) << "only the occupant ran";
}

TEST_F(PoolTest, StopRequestOnTheRunSignalCancelsAQueuedTask) {
  Pool pool(fixed(1));
  auto release = std::make_shared<Gate>();
  TaskFuture<void> occupant = occupy(pool, release);
  auto ran = std::make_shared<std::atomic<int>>(0);

  std::stop_source source;
  RunOptions options;
  options.signal = source.get_token();
  TaskFuture<int> f = pool.run([ran] { return ran->fetch_add(1) + 1; }, std::move(options));
  EXPECT_FALSE(f.ready());
  source.request_stop();
  EXPECT_TRUE(f.ready()) << "a queued task settles cancelled at the stop request";
  EXPECT_EQ(errc_of(f), TaskErrc::kCancelled);

  std::stop_source already;
  already.request_stop();
  RunOptions stopped;
  stopped.signal = already.get_token();
  TaskFuture<int> g = pool.run([ran] { return ran->fetch_add(1) + 1; }, std::move(stopped));
  ASSERT_TRUE(g.wait_for(kHangGuard));
  EXPECT_EQ(errc_of(g), TaskErrc::kCancelled) << "a signal stopped before run() cancels too";

  release->open();
  pool.drain();
  EXPECT_EQ(ran->load(), 0);
  EXPECT_EQ(pool.metrics().cancelled, 2u);
}

TEST_F(PoolTest, CancelWhileRunningRequestsTheStopTokenAndKeepsTheWorker) {
  PoolOptions o = fixed(1);
  o.cancel_grace = kHangGuard;  // the task returns when asked; never replace its worker here
  Pool pool(std::move(o));
  auto started = std::make_shared<Gate>();
  std::atomic<int> worker{0};
  std::atomic<bool> saw_stop{false};
  TaskFuture<int> f = pool.run([&worker, &saw_stop, started](TaskContext& ctx) {
    worker.store(thread_id());
    started->open();
    const auto deadline = Clock::now() + kHangGuard;
    while (!ctx.stop_requested() && Clock::now() < deadline) std::this_thread::yield();
    saw_stop.store(ctx.stop_requested());
    return 1;
  });
  ASSERT_TRUE(started->wait());
  EXPECT_FALSE(f.ready());
  EXPECT_TRUE(f.cancel());
  EXPECT_FALSE(f.cancel()) << "a cancellation is already under way";
  ASSERT_TRUE(f.wait_for(kHangGuard));
  EXPECT_EQ(errc_of(f), TaskErrc::kCancelled) << "cancelled, although the task returned a value";
  EXPECT_EQ(code_of(f), "ABORT_ERR");
  EXPECT_TRUE(saw_stop.load());

  EXPECT_EQ(pool.run([] { return thread_id(); }).get(), worker.load())
      << "the same worker runs the next task";
  pool.drain();
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.workers_replaced, 0u);
  EXPECT_EQ(m.abandoned_threads, 0u);
  EXPECT_EQ(m.cancelled, 1u);
  EXPECT_EQ(m.completed, 1u);
}

TEST_F(PoolTest, StopRequestOnTheRunSignalCancelsARunningTask) {
  PoolOptions o = fixed(1);
  o.cancel_grace = kHangGuard;
  Pool pool(std::move(o));
  auto started = std::make_shared<Gate>();
  auto never = std::make_shared<Gate>();
  std::stop_source source;
  RunOptions options;
  options.signal = source.get_token();
  TaskFuture<bool> f = pool.run(
      [started, never](std::stop_token st) {
        started->open();
        return never->wait(st);
      },
      std::move(options));
  ASSERT_TRUE(started->wait());
  source.request_stop();
  ASSERT_TRUE(f.wait_for(kHangGuard));
  EXPECT_EQ(errc_of(f), TaskErrc::kCancelled);
  pool.drain();
  EXPECT_EQ(pool.metrics().workers_replaced, 0u);
}

TEST_F(PoolTest, TimeoutOfARunningTaskRequestsItsStopAndFailsItWithTimedOut) {
  PoolOptions o = fixed(1);
  o.cancel_grace = kHangGuard;
  Pool pool(std::move(o));
  auto saw_stop = std::make_shared<std::atomic<bool>>(false);
  RunOptions options;
  options.timeout = 5ms;
  TaskFuture<int> f = pool.run(
      [saw_stop](std::stop_token st) {
        Gate never;
        (void)never.wait(st);  // returns when the timeout requests the stop
        saw_stop->store(st.stop_requested());
        return 1;
      },
      std::move(options));
  ASSERT_TRUE(f.wait_for(kHangGuard));
  EXPECT_EQ(errc_of(f), TaskErrc::kTimedOut);
  EXPECT_EQ(code_of(f), "ERR_TASK_TIMEOUT");
  EXPECT_TRUE(f.error()->cancelled()) << "a timeout is a cancellation by the clock";
  EXPECT_TRUE(saw_stop->load());

  // A timeout that does not pass leaves the result alone.
  RunOptions generous;
  generous.timeout = kHangGuard;
  EXPECT_EQ(pool.run([] { return 2; }, std::move(generous)).get(), 2);

  pool.drain();
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.timed_out, 1u);
  EXPECT_EQ(m.cancelled, 0u);
  EXPECT_EQ(m.completed, 1u);
  EXPECT_EQ(m.workers_replaced, 0u);
}

TEST_F(PoolTest, QueuedTaskWhoseTimeoutPassesNeverRuns) {
  Pool pool(fixed(1));
  auto release = std::make_shared<Gate>();
  TaskFuture<void> occupant = occupy(pool, release);
  auto ran = std::make_shared<std::atomic<bool>>(false);
  RunOptions options;
  options.timeout = 1ms;
  TaskFuture<int> f = pool.run(
      [ran] {
        ran->store(true);
        return 1;
      },
      std::move(options));
  ASSERT_TRUE(f.wait_for(kHangGuard));
  EXPECT_FALSE(occupant.ready()) << "it timed out while the only slot was held";
  EXPECT_EQ(errc_of(f), TaskErrc::kTimedOut);
  EXPECT_EQ(pool.queue_size_approx(), 0u);

  release->open();
  pool.drain();
  EXPECT_FALSE(ran->load());
  EXPECT_EQ(pool.metrics().timed_out, 1u);
}

TEST_F(PoolTest, TaskIgnoringItsStopTokenIsAbandonedAfterCancelGraceAndNoOtherTaskIsLost) {
  PoolOptions o = fixed(1);
  o.cancel_grace = 20ms;
  Pool pool(std::move(o));
  SpinFlag flag;
  auto started = std::make_shared<Gate>();
  auto returned = std::make_shared<std::atomic<bool>>(false);
  auto tid = std::make_shared<std::atomic<pid_t>>(0);
  TaskFuture<int> stuck = pool.run([released = flag.released, started, returned, tid] {
    tid->store(current_tid());
    started->open();
    while (!released->load(std::memory_order_acquire)) std::this_thread::yield();
    returned->store(true);
    return 1;
  });
  ASSERT_TRUE(started->wait());
  std::vector<TaskFuture<int>> others;
  for (int i = 0; i < 4; ++i) others.push_back(pool.run([i] { return i; }));

  EXPECT_TRUE(stuck.cancel());
  ASSERT_TRUE(stuck.wait_for(kHangGuard));
  EXPECT_EQ(errc_of(stuck), TaskErrc::kCancelled);
  EXPECT_FALSE(returned->load()) << "it settled while the task still ran";
  EXPECT_NE(thread_state(tid->load()), 0) << "the stuck thread is let go, not killed";

  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(others[i].wait_for(kHangGuard)) << "task " << i << " was lost";
    EXPECT_EQ(others[i].get(), i);
  }
  EXPECT_TRUE(eventually([&] {
    const PoolMetrics m = pool.metrics();
    return m.workers_replaced == 1 && m.abandoned_threads == 1 && m.threads == 1;
  }));
  PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.workers_replaced, 1u);
  EXPECT_EQ(m.abandoned_threads, 1u);
  EXPECT_EQ(m.threads, 1u) << "the pool keeps its size";
  EXPECT_EQ(m.cancelled, 1u);
  EXPECT_EQ(m.completed, 4u);

  flag.release();
  EXPECT_TRUE(eventually([&] { return pool.metrics().abandoned_threads == 0; }))
      << "the abandoned thread never ended";
  EXPECT_TRUE(eventually([&] { return thread_state(tid->load()) == 0; }));
  EXPECT_TRUE(returned->load());
  EXPECT_EQ(errc_of(stuck), TaskErrc::kCancelled) << "its late return changes nothing";
  EXPECT_EQ(pool.metrics().completed, 4u);
}

// --- workers that die under a task ---------------------------------------------------------

TEST_F(PoolTest, ArenaCapKillsTheWorkerMidTaskAndThePoolReplacesIt) {
  PoolOptions o = fixed(1);
  o.resource_limits.max_arena_bytes = std::size_t{1} << 20;
  Pool pool(std::move(o));
  const int first = pool.run([] { return thread_id(); }).get();
  TaskFuture<int> hog = pool.run([]() -> int {
    std::vector<void*> kept;  // never given back: the arena frees it with the worker
    for (;;) kept.push_back(this_worker::arena()->allocate(4096));
  });
  ASSERT_TRUE(hog.wait_for(kHangGuard));
  EXPECT_EQ(errc_of(hog), TaskErrc::kWorkerDied);
  EXPECT_EQ(code_of(hog), "ERR_WORKER_OUT_OF_MEMORY");
  ASSERT_NE(hog.error(), nullptr);
  EXPECT_THAT(hog.error()->type_name(), HasSubstr("ArenaOutOfMemory"));
  EXPECT_THAT(hog.error()->what(), HasSubstr("max_arena_bytes"));

  EXPECT_TRUE(eventually([&] {
    const PoolMetrics m = pool.metrics();
    return m.workers_replaced == 1 && m.threads == 1;
  }));
  const int next = pool.run([] { return thread_id(); }).get();
  EXPECT_GT(next, 0);
  EXPECT_NE(next, first) << "a new worker runs the next task";
  pool.drain();
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.workers_replaced, 1u);
  EXPECT_EQ(m.failed, 1u);
  EXPECT_EQ(m.completed, 2u);
}

TEST_F(PoolTest, ExitInsideATaskFailsItWithWorkerDiedAndThePoolKeepsItsSize) {
  Pool pool(fixed(2));
  TaskFuture<int> f = pool.run([]() -> int { this_worker::exit(3); });
  ASSERT_TRUE(f.wait_for(kHangGuard));
  EXPECT_EQ(errc_of(f), TaskErrc::kWorkerDied);
  EXPECT_EQ(code_of(f), "ERR_WORKER_EXITED");
  EXPECT_TRUE(eventually([&] {
    const PoolMetrics m = pool.metrics();
    return m.workers_replaced == 1 && m.threads == 2;
  }));
  // Both workers answer: two tasks that each wait for the other.
  auto both = std::make_shared<std::atomic<int>>(0);
  auto meet = [both] {
    both->fetch_add(1);
    const auto deadline = Clock::now() + kHangGuard;
    while (both->load() < 2 && Clock::now() < deadline) std::this_thread::yield();
    return both->load() >= 2;
  };
  TaskFuture<bool> x = pool.run(meet);
  TaskFuture<bool> y = pool.run(meet);
  EXPECT_TRUE(x.get());
  EXPECT_TRUE(y.get());
  pool.drain();
  EXPECT_EQ(pool.metrics().failed, 1u);
  EXPECT_EQ(pool.metrics().threads, 2u);
}

TEST_F(PoolTest, ExceptionEscapingACallbackOnTheWorkersLoopFailsItsDeferredTaskWithWorkerDied) {
  Pool pool(fixed(1));
  TaskFuture<Value> f = pool.run([](TaskContext& ctx) -> Value {
    set_timeout(1ms, [done = ctx.defer()] { throw std::out_of_range("late"); });
    return {};
  });
  ASSERT_TRUE(f.wait_for(kHangGuard));
  EXPECT_EQ(errc_of(f), TaskErrc::kWorkerDied);
  EXPECT_EQ(code_of(f), "ERR_UNCAUGHT_EXCEPTION");
  ASSERT_NE(f.error(), nullptr);
  EXPECT_EQ(f.error()->type_name(), "std::out_of_range");
  EXPECT_STREQ(f.error()->what(), "late");
  EXPECT_TRUE(eventually([&] {
    const PoolMetrics m = pool.metrics();
    return m.workers_replaced == 1 && m.threads == 1;
  }));
  EXPECT_EQ(pool.run([] { return 5; }).get(), 5);
}

// --- growth and idle retirement ----------------------------------------------------------------

TEST_F(PoolTest, PoolGrowsUnderLoadUpToMaxThreadsAndRetiresIdleWorkersDownToMinThreads) {
  PoolOptions o;
  o.min_threads = 1;
  o.max_threads = 3;
  o.idle_timeout = 20ms;
  Pool pool(std::move(o));
  EXPECT_TRUE(eventually([&] { return pool.threads_approx() == 1; }));

  // Samples the live worker count the whole time.
  std::atomic<bool> sampling{true};
  std::atomic<std::size_t> most{0};
  std::thread sampler([&] {
    while (sampling.load()) {
      const std::size_t n = pool.threads_approx();
      if (n > most.load()) most.store(n);
      std::this_thread::yield();
    }
  });

  // Three tasks that can only finish together: the pool must run them at once.
  auto release = std::make_shared<Gate>();
  auto running = std::make_shared<std::atomic<int>>(0);
  std::vector<TaskFuture<int>> busy;
  for (int i = 0; i < 3; ++i) {
    busy.push_back(pool.run([release, running](std::stop_token st) {
      running->fetch_add(1);
      (void)release->wait(st);
      return thread_id();
    }));
  }
  EXPECT_TRUE(eventually([&] { return running->load() == 3; }))
      << "the pool did not grow to run three tasks at once; running: " << running->load();
  // More load: it may not grow past max_threads.
  std::vector<TaskFuture<int>> more;
  for (int i = 0; i < 5; ++i) more.push_back(pool.run([] { return thread_id(); }));
  {
    const PoolMetrics m = pool.metrics();
    EXPECT_EQ(m.threads, 3u);
    EXPECT_EQ(m.running, 3u);
    EXPECT_EQ(m.queue_size, 5u);
  }
  release->open();
  std::set<int> workers;
  for (auto& f : busy) workers.insert(f.get());
  for (auto& f : more) (void)f.get();
  EXPECT_EQ(workers.size(), 3u) << "three different workers ran the three tasks";
  pool.drain();

  EXPECT_TRUE(eventually([&] { return pool.metrics().threads == 1; }))
      << "idle workers did not retire; threads: " << pool.metrics().threads;
  sampling.store(false);
  sampler.join();
  EXPECT_LE(most.load(), 3u) << "never more than max_threads";
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.threads, 1u) << "min_threads stay";
  EXPECT_EQ(m.workers_started, 3u);
  EXPECT_EQ(m.workers_retired, 2u);
  EXPECT_EQ(m.workers_replaced, 0u);
  EXPECT_EQ(pool.threads_approx(), 1u);
  // A retired pool still serves.
  EXPECT_EQ(pool.run([] { return 7; }).get(), 7);
}

TEST_F(PoolTest, PoolWithMinThreadsZeroStartsWorkersOnDemandAndRetiresThemAll) {
  PoolOptions o;
  o.min_threads = 0;
  o.max_threads = 2;
  o.idle_timeout = 10ms;
  Pool pool(std::move(o));
  EXPECT_EQ(pool.metrics().workers_started, 0u);
  EXPECT_EQ(pool.run([] { return 1; }).get(), 1);
  pool.drain();
  EXPECT_TRUE(eventually([&] { return pool.metrics().threads == 0; }));
  const PoolMetrics m = pool.metrics();
  EXPECT_GE(m.workers_started, 1u);
  EXPECT_EQ(m.workers_retired, m.workers_started);
  EXPECT_EQ(pool.run([] { return 2; }).get(), 2) << "a worker starts again on demand";
}

// --- deferred tasks -------------------------------------------------------------------------

TEST_F(PoolTest, DeferredTaskSettlesWithWhatItsCompletionResolvesNotWhatItReturned) {
  Pool pool(fixed(1));
  EXPECT_EQ(pool.run("pool_test_deferred_echo", "echo").get(), Value("echo"));
  TaskFuture<Value> callable = pool.run([](TaskContext& ctx) -> Value {
    set_timeout(1ms, [done = ctx.defer()]() mutable { done.resolve(Value(Array{1, 2})); });
    return Value("ignored");
  });
  EXPECT_EQ(callable.get(), Value(Array{1, 2}));
}

TEST_F(PoolTest, DeferredTaskCanMoveAResultBufferWithResolve) {
  Pool pool(fixed(1));
  TaskFuture<Value> f = pool.run([](TaskContext& ctx) -> Value {
    set_timeout(1ms, [done = ctx.defer()]() mutable {
      ArrayBuffer b = ArrayBuffer::copy_of(std::string_view("late bytes"));
      const std::int64_t at = address_of(b);
      done.resolve(Object{{"buffer", b}, {"at", at}}, {b});
    });
    return {};
  });
  const Value v = f.get();
  ASSERT_NE(v.find("buffer"), nullptr);
  const ArrayBuffer* b = v.find("buffer")->if_array_buffer();
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->to_string(), "late bytes");
  EXPECT_EQ(address_of(*b), int_of(*v.find("at")));
}

// Shared by the deferred tasks of one test.
struct InFlight {
  std::atomic<int> started{0};
  std::atomic<int> pending{0};  // started, not yet resolved
  std::atomic<int> max_pending{0};
  std::mutex mu;
  std::set<int> threads;
};

// On the worker's loop: resolves `done` with true once `want` tasks have
// started — so that all of them were pending at once — checking every
// millisecond; with false once `deadline` passes.
void resolve_once_started(const std::shared_ptr<InFlight>& s, int want,
                          const std::shared_ptr<TaskCompletion>& done, Clock::time_point deadline) {
  const bool all = s->started.load() >= want;
  if (all || Clock::now() > deadline) {
    s->pending.fetch_sub(1);
    done->resolve(Value(all));
    return;
  }
  set_timeout(1ms, [s, want, done, deadline] { resolve_once_started(s, want, done, deadline); });
}

TEST_F(PoolTest, ConcurrentTasksPerWorkerLetsThatManyDeferredTasksBeInFlightOnOneWorker) {
  constexpr int kSlots = 4;
  PoolOptions o = fixed(1);
  o.concurrent_tasks_per_worker = kSlots;
  Pool pool(std::move(o));
  auto s = std::make_shared<InFlight>();
  std::vector<TaskFuture<Value>> fs;
  for (int i = 0; i < kSlots + 1; ++i) {
    fs.push_back(pool.run([s](TaskContext& ctx) -> Value {
      {
        std::lock_guard lock(s->mu);
        s->threads.insert(thread_id());
      }
      const int now = s->pending.fetch_add(1) + 1;
      for (int m = s->max_pending.load();
           now > m && !s->max_pending.compare_exchange_weak(m, now);) {
      }
      s->started.fetch_add(1);
      auto done = std::make_shared<TaskCompletion>(ctx.defer());
      const auto deadline = Clock::now() + kHangGuard;
      set_timeout(1ms, [s, done, deadline] { resolve_once_started(s, kSlots, done, deadline); });
      return {};
    }));
  }
  for (int i = 0; i < kSlots + 1; ++i) {
    EXPECT_EQ(fs[i].get(), Value(true)) << "task " << i << " never saw " << kSlots << " in flight";
  }
  EXPECT_EQ(s->max_pending.load(), kSlots) << "exactly concurrent_tasks_per_worker at once";
  std::lock_guard lock(s->mu);
  EXPECT_EQ(s->threads.size(), 1u) << "all on the one worker";
}

TEST_F(PoolTest, DroppingAnUnsettledCompletionFailsTheTaskWithNotCompleted) {
  Pool pool(fixed(1));
  const int worker = pool.run([] { return thread_id(); }).get();
  TaskFuture<Value> later = pool.run([](TaskContext& ctx) -> Value {
    set_timeout(1ms, [done = ctx.defer()] {});  // runs, and is destroyed with `done` unsettled
    return {};
  });
  TaskFuture<Value> at_once = pool.run([](TaskContext& ctx) -> Value {
    (void)ctx.defer();
    return {};
  });
  ASSERT_TRUE(later.wait_for(kHangGuard));
  ASSERT_TRUE(at_once.wait_for(kHangGuard));
  EXPECT_EQ(errc_of(later), TaskErrc::kNotCompleted);
  EXPECT_EQ(code_of(later), "ERR_TASK_NOT_COMPLETED");
  EXPECT_EQ(errc_of(at_once), TaskErrc::kNotCompleted);
  EXPECT_EQ(pool.run([] { return thread_id(); }).get(), worker) << "the worker lives on";
  pool.drain();
  EXPECT_EQ(pool.metrics().workers_replaced, 0u);
}

TEST_F(PoolTest, RejectingACompletionFailsTheTaskAsIfItHadThrown) {
  Pool pool(fixed(1));
  TaskFuture<Value> f = pool.run([](TaskContext& ctx) -> Value {
    set_timeout(1ms, [done = ctx.defer()]() mutable {
      done.reject(std::make_exception_ptr(PoolTestFailure("later")));
    });
    return {};
  });
  ASSERT_TRUE(f.wait_for(kHangGuard));
  EXPECT_EQ(errc_of(f), TaskErrc::kThrew);
  ASSERT_NE(f.error(), nullptr);
  EXPECT_THAT(f.error()->type_name(), HasSubstr("PoolTestFailure"));
  EXPECT_STREQ(f.error()->what(), "later");
}

// --- close, drain, destroy -----------------------------------------------------------------------

TEST_F(PoolTest, CloseRefusesNewTasksAndLetsQueuedOnesComplete) {
  Pool pool(fixed(1));
  auto release = std::make_shared<Gate>();
  TaskFuture<void> occupant = occupy(pool, release);
  std::vector<TaskFuture<int>> queued;
  for (int i = 0; i < 3; ++i) queued.push_back(pool.run([i] { return i; }));

  EXPECT_FALSE(pool.closed());
  pool.close();
  pool.close();  // idempotent
  EXPECT_TRUE(pool.closed());
  TaskFuture<int> refused = pool.run([] { return 1; });
  TaskFuture<Value> refused_named = pool.run("pool_test_square", 2);
  EXPECT_TRUE(refused.ready());
  EXPECT_EQ(errc_of(refused), TaskErrc::kPoolClosed);
  EXPECT_EQ(code_of(refused), "ERR_POOL_CLOSED");
  EXPECT_EQ(errc_of(refused_named), TaskErrc::kPoolClosed);

  release->open();
  pool.drain();
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(queued[i].ready());
    EXPECT_EQ(queued[i].get(), i);
  }
  EXPECT_TRUE(occupant.ready());
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.completed, 4u);
  EXPECT_EQ(m.rejected, 2u);
}

TEST_F(PoolTest, DrainReturnsOnlyOnceEveryTaskHasSettled) {
  Pool pool(fixed(2));
  auto release = std::make_shared<Gate>();
  std::vector<TaskFuture<int>> fs;
  for (int i = 0; i < 6; ++i) {
    fs.push_back(pool.run([release, i](std::stop_token st) {
      (void)release->wait(st);
      return i;
    }));
  }
  // Opens the gate once the main thread sleeps in drain().
  const pid_t main_tid = current_tid();
  std::atomic<bool> drained{false};
  std::atomic<bool> drained_before_open{true};
  std::atomic<bool> parked{false};
  std::thread opener([&] {
    parked.store(wait_until_parked(main_tid));
    drained_before_open.store(drained.load());
    release->open();
  });
  pool.drain();
  drained.store(true);
  int settled = 0;
  for (auto& f : fs) settled += f.ready() ? 1 : 0;
  opener.join();
  EXPECT_EQ(settled, 6) << "drain() returned before every task settled";
  EXPECT_TRUE(parked.load());
  EXPECT_FALSE(drained_before_open.load());
  for (int i = 0; i < 6; ++i) EXPECT_EQ(fs[i].get(), i);
}

TEST_F(PoolTest, DrainForIsFalseWhileATaskRunsAndTrueOnceIdle) {
  Pool pool(fixed(1));
  auto release = std::make_shared<Gate>();
  TaskFuture<void> occupant = occupy(pool, release);
  TaskFuture<int> queued = pool.run([] { return 1; });
  EXPECT_FALSE(pool.drain_for(1ms)) << "the occupant cannot finish until released";
  release->open();
  EXPECT_TRUE(pool.drain_for(kHangGuard));
  EXPECT_TRUE(queued.ready());
  EXPECT_TRUE(occupant.ready());
  EXPECT_TRUE(pool.drain_for(0ms)) << "an idle pool is drained at once";
}

TEST_F(PoolTest, DestroyCancelsRunningAndQueuedTasksAndEveryFutureSettles) {
  constexpr int kRunning = 2;
  constexpr int kQueued = 5;
  PoolOptions o = fixed(kRunning);
  o.cancel_grace = kHangGuard;  // the running tasks return when asked
  Pool pool(std::move(o));
  auto executions = std::make_shared<std::vector<std::atomic<int>>>(kRunning + kQueued);
  auto never = std::make_shared<Gate>();
  std::vector<TaskFuture<int>> fs;
  std::vector<std::shared_ptr<Gate>> started;
  for (int i = 0; i < kRunning; ++i) {
    started.push_back(std::make_shared<Gate>());
    fs.push_back(pool.run([executions, never, go = started.back(), i](std::stop_token st) {
      (*executions)[i].fetch_add(1);
      go->open();
      (void)never->wait(st);
      return i;
    }));
  }
  for (auto& g : started) ASSERT_TRUE(g->wait());
  for (int i = kRunning; i < kRunning + kQueued; ++i) {
    fs.push_back(pool.run([executions, i] {
      (*executions)[i].fetch_add(1);
      return i;
    }));
  }

  pool.destroy();
  for (int i = 0; i < kRunning + kQueued; ++i) {
    EXPECT_TRUE(fs[i].ready()) << "task " << i << " had not settled when destroy() returned";
    ASSERT_TRUE(fs[i].wait_for(kHangGuard)) << "task " << i << " never settled";
    EXPECT_EQ(errc_of(fs[i]), TaskErrc::kCancelled) << "task " << i;
    EXPECT_EQ((*executions)[i].load(), i < kRunning ? 1 : 0) << "task " << i;
  }
  EXPECT_TRUE(pool.closed());
  pool.destroy();  // idempotent
  TaskFuture<int> after = pool.run([] { return 1; });
  EXPECT_EQ(errc_of(after), TaskErrc::kPoolClosed);
  EXPECT_EQ(pool.metrics().cancelled, static_cast<std::uint64_t>(kRunning + kQueued));
}

TEST_F(PoolTest, DestructorReturnsWhileATaskIgnoresItsStopToken) {
  SpinFlag flag;
  auto started = std::make_shared<Gate>();
  auto tid = std::make_shared<std::atomic<pid_t>>(0);
  TaskFuture<int> f;
  {
    PoolOptions o = fixed(1);
    o.cancel_grace = 10ms;
    Pool pool(std::move(o));
    f = pool.run([released = flag.released, started, tid] {
      tid->store(current_tid());
      started->open();
      while (!released->load(std::memory_order_acquire)) std::this_thread::yield();
      return 1;
    });
    ASSERT_TRUE(started->wait());
  }  // ~Pool returns although the task never looks at its token
  EXPECT_TRUE(f.ready()) << "the destructor returned with the task unsettled";
  ASSERT_TRUE(f.wait_for(kHangGuard));
  EXPECT_EQ(errc_of(f), TaskErrc::kCancelled);
  EXPECT_NE(thread_state(tid->load()), 0) << "the stuck thread was let go, still spinning";

  flag.release();
  EXPECT_TRUE(eventually([&] { return thread_state(tid->load()) == 0; }))
      << "the abandoned thread did not end once its task returned";
}

// --- TaskFuture::then -------------------------------------------------------------------------

TEST_F(PoolTest, ThenRunsOnTheCallingThreadsLoopWithTheSettledFuture) {
  Pool pool(fixed(1));
  std::optional<int> value;
  bool was_ready = false;
  std::thread::id ran_on;
  pool.run([] { return 6 * 7; }).then([&](TaskFuture<int> g) {
    ran_on = std::this_thread::get_id();
    was_ready = g.ready();
    value = g.get();
  });
  std::optional<TaskErrc> failed_with;
  std::string failure_message;
  pool.run([]() -> int { throw PoolTestFailure("then sees this"); }).then([&](TaskFuture<int> g) {
    failed_with = errc_of(g);
    try {
      (void)g.get();
    } catch (const TaskError& e) {
      failure_message = e.what();
    }
  });
  run_loop();  // kept alive until both continuations ran
  EXPECT_EQ(value, 42);
  EXPECT_TRUE(was_ready);
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  EXPECT_EQ(failed_with, TaskErrc::kThrew);
  EXPECT_EQ(failure_message, "then sees this");
}

TEST_F(PoolTest, ThenOnASettledFutureStillRunsOnTheLoopNotInline) {
  Pool pool(fixed(1));
  TaskFuture<int> f = pool.run([] { return 1; });
  f.wait();
  bool ran = false;
  std::move(f).then([&](TaskFuture<int> g) { ran = g.get() == 1; });
  EXPECT_FALSE(ran) << "then() ran its continuation inline";
  run_loop();
  EXPECT_TRUE(ran);
}

TEST_F(PoolTest, ThenFromAnotherThreadRunsOnThatThreadsLoop) {
  Pool pool(fixed(1));
  TaskFuture<int> f = pool.run([] { return 9; });
  std::thread::id other_id;
  std::thread::id ran_on;
  std::optional<int> value;
  std::thread other([&] {
    other_id = std::this_thread::get_id();
    std::move(f).then([&](TaskFuture<int> g) {
      ran_on = std::this_thread::get_id();
      value = g.get();
    });
    EventLoop::current().run();
  });
  other.join();
  EXPECT_EQ(value, 9);
  EXPECT_EQ(ran_on, other_id);
}

// --- metrics ------------------------------------------------------------------------------------

void expect_ordered(const DurationSummary& s, const char* what) {
  SCOPED_TRACE(what);
  EXPECT_LE(s.min, s.p50);
  EXPECT_LE(s.p50, s.p90);
  EXPECT_LE(s.p90, s.p99);
  EXPECT_LE(s.p99, s.max);
  EXPECT_LE(s.mean, s.max);
  EXPECT_GE(s.min, Clock::duration::zero());
}

TEST_F(PoolTest, MetricsCountEveryOutcomeExactlyAfterDrain) {
  Pool pool(fixed(1));
  auto release = std::make_shared<Gate>();
  TaskFuture<void> occupant = occupy(pool, release);
  std::vector<TaskFuture<int>> ok, throwing, cancelled;
  for (int i = 0; i < 6; ++i) ok.push_back(pool.run([i] { return i; }));
  for (int i = 0; i < 3; ++i) {
    throwing.push_back(pool.run([]() -> int { throw std::runtime_error("no"); }));
  }
  for (int i = 0; i < 2; ++i) cancelled.push_back(pool.run([] { return -1; }));
  RunOptions options;
  options.timeout = 1ms;
  TaskFuture<int> timed = pool.run([] { return -2; }, std::move(options));
  for (auto& c : cancelled) EXPECT_TRUE(c.cancel());
  ASSERT_TRUE(timed.wait_for(kHangGuard));
  {
    const PoolMetrics m = pool.metrics();
    EXPECT_EQ(m.submitted, 13u);
    EXPECT_EQ(m.running, 1u);
    EXPECT_EQ(m.queue_size, 9u);
    EXPECT_EQ(m.threads, 1u);
    EXPECT_EQ(m.cancelled, 2u);
    EXPECT_EQ(m.timed_out, 1u);
    EXPECT_EQ(pool.queue_size_approx(), 9u);
  }
  release->open();
  pool.drain();

  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.submitted, 13u);
  EXPECT_EQ(m.completed, 7u);
  EXPECT_EQ(m.failed, 3u);
  EXPECT_EQ(m.cancelled, 2u);
  EXPECT_EQ(m.timed_out, 1u);
  EXPECT_EQ(m.rejected, 0u);
  EXPECT_EQ(m.queue_size, 0u);
  EXPECT_EQ(m.running, 0u);
  EXPECT_EQ(m.workers_started, 1u);
  EXPECT_EQ(m.workers_retired, 0u);
  EXPECT_EQ(m.workers_replaced, 0u);
  EXPECT_EQ(m.abandoned_threads, 0u);
  // Ten tasks started: the occupant, six that returned, three that threw.
  EXPECT_EQ(m.run_time.count, 10u);
  EXPECT_EQ(m.wait_time.count, 10u);
  expect_ordered(m.run_time, "run_time");
  expect_ordered(m.wait_time, "wait_time");
  EXPECT_GT(m.run_time.max, Clock::duration::zero());
  EXPECT_GT(m.utilization, 0.0);
  EXPECT_LE(m.utilization, 1.0);
}

TEST_F(PoolTest, MetricsAreReadableFromAnyThreadWhileTasksRun) {
  Pool pool(fixed(2));
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> reads{0};
  std::thread reader([&] {
    std::uint64_t last_completed = 0;
    while (!done.load()) {
      const PoolMetrics m = pool.metrics();
      EXPECT_GE(m.completed, last_completed) << "counters only grow";
      last_completed = m.completed;
      EXPECT_GE(m.utilization, 0.0);
      EXPECT_LE(m.utilization, 1.0);
      EXPECT_LE(m.threads, 2u);
      reads.fetch_add(1);
      std::this_thread::yield();
    }
  });
  // The reader is reading before the tasks start, and while they run.
  while (reads.load() == 0) std::this_thread::yield();
  std::vector<TaskFuture<int>> fs;
  for (int i = 0; i < 200; ++i) fs.push_back(pool.run([i] { return i; }));
  for (int i = 0; i < 200; ++i) EXPECT_EQ(fs[i].get(), i);
  pool.drain();
  done.store(true);
  reader.join();
  EXPECT_GT(reads.load(), 0u);
  const PoolMetrics m = pool.metrics();
  EXPECT_EQ(m.completed, 200u);
  EXPECT_EQ(m.run_time.count, 200u);
  expect_ordered(m.run_time, "run_time");
  expect_ordered(m.wait_time, "wait_time");
}

// --- tracing hooks -------------------------------------------------------------------------------

struct HookRecord {
  std::string phase;
  std::uint64_t id = 0;
  std::string name;
  int event_thread_id = 0;  // TaskEvent::thread_id
  int hook_thread_id = 0;   // weave::thread_id() where the hook ran
  std::thread::id hook_thread;
  std::optional<TaskErrc> errc;
};

class HookLog {
 public:
  PoolHooks hooks() {
    PoolHooks h;
    h.on_queue = [this](const TaskEvent& e) { add("queue", e); };
    h.on_start = [this](const TaskEvent& e) { add("start", e); };
    h.on_finish = [this](const TaskEvent& e) { add("finish", e); };
    return h;
  }
  std::size_t size() {
    std::lock_guard lock(mu_);
    return records_.size();
  }
  std::vector<HookRecord> of(std::uint64_t id) {
    std::lock_guard lock(mu_);
    std::vector<HookRecord> out;
    for (const HookRecord& r : records_) {
      if (r.id == id) out.push_back(r);
    }
    return out;
  }
  static std::vector<std::string> phases(const std::vector<HookRecord>& rs) {
    std::vector<std::string> out;
    for (const HookRecord& r : rs) out.push_back(r.phase);
    return out;
  }

 private:
  void add(std::string phase, const TaskEvent& e) {
    HookRecord r{std::move(phase),
                 e.task_id,
                 std::string(e.task_name),
                 e.thread_id,
                 thread_id(),
                 std::this_thread::get_id(),
                 e.error ? std::optional(e.error->errc()) : std::nullopt};
    std::lock_guard lock(mu_);
    records_.push_back(std::move(r));
  }
  std::mutex mu_;
  std::vector<HookRecord> records_;
};

TEST_F(PoolTest, HooksSeeEveryTaskQueuedStartedAndFinishedOnceInThatOrder) {
  HookLog log;
  PoolOptions o = fixed(1);
  o.hooks = log.hooks();
  Pool pool(std::move(o));
  auto release = std::make_shared<Gate>();
  TaskFuture<void> occupant = occupy(pool, release);

  TaskFuture<Value> named = pool.run("pool_test_square", 5);
  {
    const std::vector<HookRecord> so_far = log.of(named.id());
    ASSERT_EQ(HookLog::phases(so_far), (std::vector<std::string>{"queue"}))
        << "on_queue runs before run() returns";
    EXPECT_EQ(so_far[0].hook_thread, std::this_thread::get_id()) << "on run()'s thread";
    EXPECT_EQ(so_far[0].name, "pool_test_square");
  }
  TaskFuture<int> thrower = pool.run([]() -> int { throw PoolTestFailure("hooked"); });
  TaskFuture<int> dropped = pool.run([] { return 0; });
  EXPECT_TRUE(dropped.cancel());
  release->open();
  EXPECT_EQ(named.get(), Value(25));
  EXPECT_THROW((void)thrower.get(), TaskError);
  pool.drain();

  constexpr std::size_t kExpected = 3 + 3 + 3 + 2;
  EXPECT_TRUE(eventually([&] { return log.size() >= kExpected; })) << log.size();
  EXPECT_EQ(log.size(), kExpected);

  const std::vector<std::string> ran{"queue", "start", "finish"};
  for (const std::uint64_t id : {occupant.id(), named.id(), thrower.id()}) {
    SCOPED_TRACE("task " + std::to_string(id));
    const std::vector<HookRecord> rs = log.of(id);
    ASSERT_EQ(HookLog::phases(rs), ran);
    EXPECT_EQ(rs[0].hook_thread, std::this_thread::get_id());
    EXPECT_GT(rs[1].event_thread_id, 0);
    EXPECT_EQ(rs[1].hook_thread_id, rs[1].event_thread_id) << "on_start runs on its worker";
    EXPECT_EQ(rs[2].event_thread_id, rs[1].event_thread_id);
  }
  const std::vector<HookRecord> n = log.of(named.id());
  EXPECT_EQ(n[1].name, "pool_test_square");
  EXPECT_EQ(n[2].name, "pool_test_square");
  EXPECT_FALSE(n[2].errc.has_value()) << "it succeeded";
  const std::vector<HookRecord> t = log.of(thrower.id());
  EXPECT_EQ(t[2].name, "");
  EXPECT_EQ(t[2].errc, TaskErrc::kThrew) << "on_finish carries the error";
  const std::vector<HookRecord> d = log.of(dropped.id());
  EXPECT_EQ(HookLog::phases(d), (std::vector<std::string>{"queue", "finish"}))
      << "a task cancelled in the queue never starts";
  if (d.size() == 2) {
    EXPECT_EQ(d[1].errc, TaskErrc::kCancelled);
  }
}

// --- option validation ------------------------------------------------------------------------

// The message of the invalid_argument that building a pool with `o` throws,
// or "" if it did not throw.
std::string rejection(PoolOptions o) {
  try {
    Pool pool(std::move(o));
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST_F(PoolTest, BadOptionsAreRejectedNamingTheOption) {
  PoolOptions no_threads;
  no_threads.max_threads = 0;
  EXPECT_THAT(rejection(no_threads), HasSubstr("max_threads"));

  PoolOptions too_many;
  too_many.max_threads = PoolOptions::kMaxThreads + 1;
  EXPECT_THAT(rejection(too_many), HasSubstr("max_threads"));

  PoolOptions min_above_max;
  min_above_max.min_threads = 3;
  min_above_max.max_threads = 2;
  EXPECT_THAT(rejection(min_above_max), HasSubstr("min_threads"));

  PoolOptions no_slots = fixed(1);
  no_slots.concurrent_tasks_per_worker = 0;
  EXPECT_THAT(rejection(no_slots), HasSubstr("concurrent_tasks_per_worker"));

  PoolOptions too_many_slots = fixed(1);
  too_many_slots.concurrent_tasks_per_worker = PoolOptions::kMaxConcurrentTasks + 1;
  EXPECT_THAT(rejection(too_many_slots), HasSubstr("concurrent_tasks_per_worker"));

  PoolOptions no_idle = fixed(1);
  no_idle.idle_timeout = Clock::duration::zero();
  EXPECT_THAT(rejection(no_idle), HasSubstr("idle_timeout"));

  PoolOptions short_idle = fixed(1);
  short_idle.idle_timeout = 500us;
  EXPECT_THAT(rejection(short_idle), HasSubstr("idle_timeout"));

  PoolOptions no_grace = fixed(1);
  no_grace.cancel_grace = Clock::duration::zero();
  EXPECT_THAT(rejection(no_grace), HasSubstr("cancel_grace"));

  PoolOptions long_name = fixed(1);
  long_name.name = std::string(WorkerOptions::kMaxNameBytes, 'n');
  EXPECT_THAT(rejection(long_name), HasSubstr("name"));

  // The Worker's own check, naming the pool's option, the field and the range.
  PoolOptions small_stack = fixed(1);
  small_stack.resource_limits.stack_size_bytes = 4096;
  EXPECT_THAT(rejection(small_stack),
              HasSubstr("weave::Pool: options.resource_limits.stack_size_bytes must be 0 (the "
                        "default) or between " +
                        std::to_string(ResourceLimits::kMinStackBytes)));
  PoolOptions huge_arena = fixed(1);
  huge_arena.resource_limits.max_arena_bytes = ResourceLimits::kMaxArenaBytes + 1;
  EXPECT_THAT(rejection(huge_arena),
              HasSubstr("weave::Pool: options.resource_limits.max_arena_bytes"));
}

}  // namespace
}  // namespace weave
