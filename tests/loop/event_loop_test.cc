// Tests for weave::EventLoop (loop/event_loop.h): timers, intervals,
// immediates, ref/unref, posts and KeepAlives from other threads, stop(), the
// run modes, exceptions leaving callbacks, and the internal LoopSource hook.
//
// Every test that runs a loop does so on a fresh std::thread (each thread owns
// its own EventLoop; the main thread's would persist across tests) and joins
// it, and every test uses CleanShutdownTest, so it ends by proving that no
// thread or fd was left behind.
//
// No test sleeps to synchronise. Threads meet through Flags, StartBarrier,
// the loop itself and joins. Where a test needs to know that a loop is parked
// (rather than spinning), it waits until the loop's thread is asleep in the
// kernel: the only place a loop thread can sleep once it has signalled that
// it is inside run() is the loop's futex park. Time is only ever checked as a
// lower bound (a timer never fires early), plus a 10 s hang guard.
#include "loop/event_loop.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "loop/internal/sources.h"
#include "tests/test_util.h"

namespace weave {
namespace {

using namespace std::chrono_literals;
using RunMode = EventLoop::RunMode;
using ::weave::testing::CleanShutdownTest;
using ::weave::testing::current_tid;
using ::weave::testing::kHangGuard;
using ::weave::testing::StartBarrier;
using ::weave::testing::thread_state;
using ::weave::testing::wait_until_parked;

// Only a bug makes a wait reach this.

class EventLoopTest : public CleanShutdownTest {};

// Runs `body` on a fresh thread, which gets its own EventLoop, and joins it.
template <class F>
void on_fresh_thread(F&& body) {
  std::thread t(std::forward<F>(body));
  t.join();
}

// A one-shot signal between threads: everything written before set() is
// visible after wait() (release/acquire).
class Flag {
 public:
  void set() {
    v_.store(true, std::memory_order_release);
    v_.notify_all();
  }
  [[nodiscard]] bool is_set() const { return v_.load(std::memory_order_acquire); }
  void wait() const {
    while (!is_set()) v_.wait(false, std::memory_order_acquire);
  }

 private:
  std::atomic<bool> v_{false};
};

// A LoopSource for tests: counts dispatches (on the loop's thread) and runs an
// optional hook from dispatch.
class TestSource : public internal::LoopSource {
 public:
  using Hook = void (*)(TestSource&, EventLoop&);
  explicit TestSource(Hook hook = nullptr) : hook_(hook) {}
  void dispatch(EventLoop& loop) override {
    ++dispatches;
    if (hook_ != nullptr) hook_(*this, loop);
  }
  void on_loop_destroyed() noexcept override { loop_destroyed = true; }

  int dispatches = 0;
  bool loop_destroyed = false;
  std::vector<int>* log = nullptr;  // dispatch order, when the hook records it
  int name = 0;
  std::atomic<int> items{0};  // written by a producer before it schedules
  int seen = 0;               // items seen by the last dispatch
  int plain_item = 0;         // plain (non-atomic) state for the ordering test

 private:
  Hook hook_;
};

// --- Running with nothing to do -------------------------------------------------

TEST_F(EventLoopTest, RunReturnsFalseAtOnceWhenNothingIsReferenced) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    EXPECT_FALSE(loop.alive());
    EXPECT_FALSE(loop.run());
    EXPECT_FALSE(loop.run(RunMode::kOnce));
    EXPECT_FALSE(loop.run(RunMode::kNoWait));
    EXPECT_EQ(loop.idle_time(), Clock::duration::zero()) << "run() parked with nothing to wait for";
  });
}

TEST_F(EventLoopTest, CurrentIsOneLoopPerThread) {
  EventLoop* first = nullptr;
  LoopHandle first_handle;
  on_fresh_thread([&] {
    first = &EventLoop::current();
    EXPECT_EQ(first, &EventLoop::current());
    first_handle = first->handle();
    EXPECT_TRUE(first_handle.valid());
    EXPECT_TRUE(first_handle.is_current());
    EXPECT_TRUE(first_handle == EventLoop::current().handle());
    std::thread([&] {
      EXPECT_FALSE(first_handle.is_current());
      EXPECT_FALSE(first_handle == EventLoop::current().handle());
    }).join();
  });
  EXPECT_FALSE(first_handle.is_current());
}

// --- Timeouts -------------------------------------------------------------------

TEST_F(EventLoopTest, SetTimeoutFiresOnceAndNotBeforeItsDelay) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    constexpr auto kDelay = 20ms;
    int fired = 0;
    Clock::time_point fired_at{};
    const auto start = Clock::now();
    loop.set_timeout(kDelay, [&] {
      ++fired;
      fired_at = Clock::now();
    });
    EXPECT_TRUE(loop.alive());
    EXPECT_FALSE(loop.run());
    EXPECT_EQ(fired, 1);
    EXPECT_GE(fired_at - start, kDelay) << "the timeout fired early";
    EXPECT_GT(loop.idle_time(), Clock::duration::zero()) << "the wait was not spent parked";
    EXPECT_FALSE(loop.run());
    EXPECT_EQ(fired, 1) << "a timeout fired twice";
  });
}

TEST_F(EventLoopTest, TimersFireInDeadlineOrderNotCreationOrder) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    // Deadlines are placed on a grid relative to one base time, so a pause
    // between two set_timeout calls cannot reorder them; each rank is the
    // timer's place in deadline order, created in a shuffled order.
    constexpr auto kGap = 25ms;
    const int ranks[] = {3, 0, 4, 1, 2};
    std::vector<int> fired;
    std::vector<Clock::time_point> due(5);
    const auto base = Clock::now() + kGap;
    for (int rank : ranks) {
      due[rank] = base + rank * kGap;
      loop.set_timeout(due[rank] - Clock::now(), [&fired, &due, rank] {
        EXPECT_GE(Clock::now(), due[rank]) << "timer " << rank << " fired early";
        fired.push_back(rank);
      });
    }
    EXPECT_FALSE(loop.run());
    EXPECT_EQ(fired, (std::vector<int>{0, 1, 2, 3, 4}));
  });
}

TEST_F(EventLoopTest, TimersWithEqualDelaysFireInCreationOrder) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    constexpr int kTimers = 200;
    for (auto delay : {Clock::duration(0ms), Clock::duration(2ms)}) {
      std::vector<int> fired;
      for (int i = 0; i < kTimers; ++i)
        loop.set_timeout(delay, [&fired, i] { fired.push_back(i); });
      EXPECT_FALSE(loop.run());
      std::vector<int> expected(kTimers);
      for (int i = 0; i < kTimers; ++i) expected[i] = i;
      EXPECT_EQ(fired, expected) << "delay " << delay.count();
    }
  });
}

TEST_F(EventLoopTest, NegativeDelayCountsAsZero) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    int fired = 0;
    loop.set_timeout(-1h, [&] { ++fired; });
    EXPECT_FALSE(loop.run());
    EXPECT_EQ(fired, 1);
    EXPECT_EQ(loop.idle_time(), Clock::duration::zero()) << "waited for a timer already due";
  });
}

TEST_F(EventLoopTest, CancelledTimeoutNeverFiresAndTheLoopExitsWithoutWaiting) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    bool fired = false;
    Timer t = loop.set_timeout(10min, [&] { fired = true; });
    EXPECT_TRUE(t.active());
    EXPECT_TRUE(loop.alive());
    t.cancel();
    EXPECT_FALSE(t.active());
    EXPECT_FALSE(loop.alive());
    EXPECT_FALSE(loop.run());
    EXPECT_FALSE(fired);
    EXPECT_EQ(loop.idle_time(), Clock::duration::zero()) << "waited for a cancelled timer";
    t.cancel();  // twice: nothing
    EXPECT_FALSE(loop.run());
    EXPECT_FALSE(fired);
  });
}

TEST_F(EventLoopTest, CancelFromInsideAnotherTimersCallbackSkipsATimerAlreadyDue) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    std::vector<char> fired;
    Timer b;
    // Equal delays fire in creation order, so `a` deterministically runs
    // while `b` is already due in the same phase.
    loop.set_timeout(0ms, [&] {
      fired.push_back('a');
      EXPECT_TRUE(b.active());
      b.cancel();
      EXPECT_FALSE(b.active());
    });
    b = loop.set_timeout(0ms, [&] { fired.push_back('b'); });
    loop.set_timeout(0ms, [&] { fired.push_back('c'); });
    EXPECT_FALSE(loop.run());
    EXPECT_EQ(fired, (std::vector<char>{'a', 'c'}));
  });
}

TEST_F(EventLoopTest, CancelFromInsideAnotherTimersCallbackReleasesTheLoop) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    bool late_fired = false;
    Timer late = loop.set_timeout(10min, [&] { late_fired = true; });
    loop.set_timeout(0ms, [&] { late.cancel(); });
    EXPECT_FALSE(loop.run());
    EXPECT_FALSE(late_fired);
    EXPECT_FALSE(late.active());
    EXPECT_EQ(loop.idle_time(), Clock::duration::zero()) << "waited for a cancelled timer";
  });
}

// --- Intervals ------------------------------------------------------------------

TEST_F(EventLoopTest, IntervalRepeatsUntilItCancelsItselfFromItsOwnCallback) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    constexpr int kRuns = 5;
    constexpr auto kPeriod = 2ms;
    std::vector<Clock::time_point> at;
    Timer iv;
    const auto start = Clock::now();
    iv = loop.set_interval(kPeriod, [&] {
      at.push_back(Clock::now());
      EXPECT_TRUE(iv.active()) << "an interval is active while its callback runs";
      if (at.size() == kRuns) {
        iv.cancel();
        EXPECT_FALSE(iv.active());
      }
    });
    EXPECT_FALSE(loop.run());
    ASSERT_EQ(at.size(), static_cast<std::size_t>(kRuns));
    EXPECT_FALSE(iv.active());
    EXPECT_GE(at[0] - start, kPeriod) << "first run came early";
    for (std::size_t k = 1; k < at.size(); ++k) {
      EXPECT_GE(at[k] - at[k - 1], kPeriod) << "run " << k << " came early";
    }
  });
}

TEST_F(EventLoopTest, IntervalCancelledFromAnotherTimerStopsRepeating) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    int runs = 0;
    Timer iv = loop.set_interval(1ms, [&] { ++runs; });
    Timer stopper;
    // A second interval cancels the first on its third run, then itself.
    int stopper_runs = 0;
    stopper = loop.set_interval(1ms, [&] {
      if (++stopper_runs == 3) {
        iv.cancel();
        stopper.cancel();
      }
    });
    EXPECT_FALSE(loop.run());
    // run() returned, so the cancelled interval no longer holds the loop.
    EXPECT_GE(runs, 1);
    EXPECT_EQ(stopper_runs, 3);
    EXPECT_FALSE(iv.active());
    EXPECT_FALSE(stopper.active());
  });
}

TEST_F(EventLoopTest, ZeroPeriodIntervalRunsAtMostOncePerTurn) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    int runs = 0;
    Timer iv = loop.set_interval(0ms, [&] { ++runs; });
    for (int turn = 1; turn <= 3; ++turn) {
      EXPECT_TRUE(loop.run(RunMode::kNoWait));  // returns: does not spin on the interval
      EXPECT_EQ(runs, turn);
    }
    iv.cancel();
    EXPECT_FALSE(loop.run());
    EXPECT_EQ(runs, 3);
  });
}

// --- Immediates -----------------------------------------------------------------

TEST_F(EventLoopTest, ImmediatesQueuedBeforeATurnAllRunInThatTurnInOrder) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    std::vector<int> ran;
    for (int i = 0; i < 5; ++i) loop.set_immediate([&ran, i] { ran.push_back(i); });
    EXPECT_TRUE(loop.alive());
    EXPECT_FALSE(loop.run(RunMode::kNoWait));
    EXPECT_EQ(ran, (std::vector<int>{0, 1, 2, 3, 4}));
  });
}

TEST_F(EventLoopTest, ImmediateQueuedDuringTheImmediatePhaseRunsNextTurn) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    std::vector<char> ran;
    loop.set_immediate([&] {
      ran.push_back('a');
      loop.set_immediate([&] { ran.push_back('c'); });
    });
    loop.set_immediate([&] { ran.push_back('b'); });
    EXPECT_TRUE(loop.run(RunMode::kNoWait));
    EXPECT_EQ(ran, (std::vector<char>{'a', 'b'}));
    EXPECT_FALSE(loop.run(RunMode::kNoWait));
    EXPECT_EQ(ran, (std::vector<char>{'a', 'b', 'c'}));
  });
}

TEST_F(EventLoopTest, ImmediateRunsWithoutWaitingForAPendingTimer) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    bool immediate_ran = false;
    bool timer_fired = false;
    Timer t = loop.set_timeout(10min, [&] { timer_fired = true; });
    loop.set_immediate([&] { immediate_ran = true; });
    EXPECT_TRUE(loop.run(RunMode::kNoWait));
    EXPECT_TRUE(immediate_ran);
    EXPECT_FALSE(timer_fired);
    t.cancel();
    EXPECT_FALSE(loop.run());
    EXPECT_FALSE(timer_fired);
  });
}

TEST_F(EventLoopTest, ClearedImmediateNeverRuns) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    std::vector<char> ran;
    Timer a = loop.set_immediate([&] { ran.push_back('a'); });
    Timer c;
    loop.set_immediate([&] {
      ran.push_back('b');
      c.cancel();  // clears one queued later in the same batch
    });
    c = loop.set_immediate([&] { ran.push_back('c'); });
    loop.set_immediate([&] { ran.push_back('d'); });
    a.cancel();
    EXPECT_FALSE(a.active());
    EXPECT_FALSE(loop.run());
    EXPECT_EQ(ran, (std::vector<char>{'b', 'd'}));
    EXPECT_FALSE(c.active());
  });
}

// Contract: alive() is "True while something referenced is pending", and an
// unref'd timer/immediate does not keep the loop alive.
TEST_F(EventLoopTest, CancelledImmediateLeavesTheLoopNotAlive) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    bool ran = false;
    Timer i = loop.set_immediate([&] { ran = true; });
    i.cancel();
    EXPECT_FALSE(loop.alive()) << "a cancelled immediate still counts as pending work";
    EXPECT_FALSE(loop.run());
    EXPECT_FALSE(ran);
  });
}

TEST_F(EventLoopTest, UnrefdImmediateDoesNotKeepTheLoopAlive) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    Timer queued_for_next_turn;
    loop.set_immediate([&] { queued_for_next_turn = loop.set_immediate([] {}).unref(); });
    // After this turn only the unref'd immediate is left: nothing referenced.
    EXPECT_FALSE(loop.run(RunMode::kNoWait))
        << "run() reported referenced work while only an unref'd immediate was queued";
    EXPECT_FALSE(queued_for_next_turn.has_ref());
    EXPECT_FALSE(loop.alive()) << "an unref'd immediate keeps the loop alive";
    queued_for_next_turn.cancel();
  });
}

// --- ref / unref, active / has_ref ------------------------------------------------

TEST_F(EventLoopTest, UnrefdTimerDoesNotKeepTheLoopAliveAndNeverFires) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    bool fired = false;
    Timer t = loop.set_timeout(10min, [&] { fired = true; }).unref();
    EXPECT_FALSE(t.has_ref());
    EXPECT_TRUE(t.active());
    EXPECT_FALSE(loop.alive());
    EXPECT_FALSE(loop.run());
    EXPECT_FALSE(fired);
    EXPECT_EQ(loop.idle_time(), Clock::duration::zero()) << "waited for an unref'd timer";
    EXPECT_TRUE(t.active()) << "unref must not cancel";
    t.cancel();
  });
}

TEST_F(EventLoopTest, RefAgainKeepsTheLoopAliveUntilTheTimerFires) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    constexpr auto kDelay = 10ms;
    bool fired = false;
    const auto start = Clock::now();
    Timer t = loop.set_timeout(kDelay, [&] { fired = true; }).unref();
    EXPECT_FALSE(loop.alive());
    t.ref();
    EXPECT_TRUE(t.has_ref());
    EXPECT_TRUE(loop.alive());
    EXPECT_FALSE(loop.run());
    EXPECT_TRUE(fired);
    EXPECT_GE(Clock::now() - start, kDelay);
  });
}

TEST_F(EventLoopTest, UnrefdTimerStillFiresWhileSomethingElseKeepsTheLoopAlive) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    std::vector<char> fired;
    int interval_runs = 0;
    Timer iv = loop.set_interval(1ms, [&] { ++interval_runs; }).unref();
    loop.set_timeout(0ms, [&] { fired.push_back('u'); }).unref();
    loop.set_timeout(20ms, [&] { fired.push_back('r'); });
    EXPECT_FALSE(loop.run());
    EXPECT_EQ(fired, (std::vector<char>{'u', 'r'}));
    // The unref'd interval (due at 1 ms, before the ref'd 20 ms timeout) ran,
    // and did not keep the loop alive once the ref'd timeout was gone.
    EXPECT_GE(interval_runs, 1);
    EXPECT_TRUE(iv.active());
    iv.cancel();
  });
}

TEST_F(EventLoopTest, TimerActiveAndHasRefFollowItsLifecycle) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    Timer none;
    EXPECT_FALSE(none.active());
    EXPECT_FALSE(none.has_ref());
    none.cancel();  // a default Timer names nothing: all no-ops
    none.unref().ref();
    EXPECT_FALSE(none.has_ref());

    Timer t;
    t = loop.set_timeout(0ms, [&] {
      EXPECT_FALSE(t.active()) << "a timeout is done once it fires";
      EXPECT_FALSE(t.has_ref());
    });
    EXPECT_NE(t.id(), 0u);
    EXPECT_TRUE(t.active());
    EXPECT_TRUE(t.has_ref());
    t.unref();
    EXPECT_TRUE(t.active());
    EXPECT_FALSE(t.has_ref());
    t.ref();
    EXPECT_TRUE(t.has_ref());
    Timer copy = t;  // copies name the same timer
    EXPECT_EQ(copy.id(), t.id());
    copy.unref();
    EXPECT_FALSE(t.has_ref());
    copy.ref();

    Timer imm;
    imm = loop.set_immediate([&] { EXPECT_FALSE(imm.active()); });
    EXPECT_TRUE(imm.active());
    EXPECT_NE(imm.id(), t.id());

    EXPECT_FALSE(loop.run());
    EXPECT_FALSE(t.active());
    EXPECT_FALSE(t.has_ref());
    EXPECT_FALSE(copy.active());
    EXPECT_FALSE(imm.active());
  });
}

TEST_F(EventLoopTest, CancellingOrUnrefingTwiceOrAfterFiringCountsOnce) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    Timer keep = loop.set_timeout(10min, [] {});
    Timer a = loop.set_timeout(10min, [] {});
    a.unref().unref();
    EXPECT_TRUE(loop.alive()) << "a second unref released another timer's reference";
    a.ref().ref().unref();
    a.cancel();
    a.cancel();
    EXPECT_TRUE(loop.alive()) << "a second cancel released another timer's reference";

    bool fired = false;
    Timer done = loop.set_timeout(0ms, [&] { fired = true; });
    EXPECT_TRUE(loop.run(RunMode::kNoWait));
    ASSERT_TRUE(fired);
    done.cancel();
    done.unref();
    done.ref();
    EXPECT_TRUE(loop.alive()) << "cancel/unref after firing released another timer's reference";
    EXPECT_FALSE(done.has_ref());

    keep.cancel();
    EXPECT_FALSE(loop.alive());
    EXPECT_FALSE(loop.run());
  });
}

// --- Posting from other threads ---------------------------------------------------

TEST_F(EventLoopTest, PostFromAnotherThreadRunsOnTheLoopThreadInFifoOrder) {
  static constexpr int kPosts = 1000;
  std::vector<int> payload(kPosts, 0);  // plain memory: post() orders it
  std::vector<int> seen;                // loop thread only
  int off_thread = 0;                   // loop thread only
  KeepAlive ka;                         // loop thread only
  LoopHandle handle;
  std::thread::id loop_id;
  Flag published;
  std::thread loop_thread([&] {
    EventLoop& loop = EventLoop::current();
    ka = loop.handle().keep_alive();
    handle = loop.handle();
    loop_id = std::this_thread::get_id();
    published.set();
    EXPECT_FALSE(loop.run());
  });
  std::thread poster([&] {
    published.wait();
    EXPECT_FALSE(handle.is_current());
    for (int i = 0; i < kPosts; ++i) {
      payload[i] = 7 * i;  // written before post(): visible to the task
      EXPECT_TRUE(handle.post([&payload, &seen, &off_thread, &ka, &loop_id, i] {
        if (std::this_thread::get_id() != loop_id) ++off_thread;
        seen.push_back(payload[i]);
        if (seen.size() == kPosts) ka.reset();
      }));
    }
  });
  poster.join();
  loop_thread.join();
  std::vector<int> expected(kPosts);
  for (int i = 0; i < kPosts; ++i) expected[i] = 7 * i;
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(off_thread, 0);
}

// State shared by a fan-in run; everything but `refused` is touched only on
// the loop's thread (tasks) or after the joins.
struct FanIn {
  int producers = 0;
  int per_producer = 0;
  std::int64_t total = 0;
  std::int64_t ran = 0;
  std::int64_t sum = 0;
  std::int64_t out_of_order = 0;
  std::int64_t off_thread = 0;
  std::vector<int> next;  // per producer: the index its next task must carry
  std::thread::id loop_id;
  KeepAlive ka;
  std::atomic<int> refused{0};

  void on_task(int p, int j) {
    if (std::this_thread::get_id() != loop_id) ++off_thread;
    if (next[p] != j) ++out_of_order;
    next[p] = j + 1;
    sum += std::int64_t{p} * per_producer + j;
    if (++ran == total) ka.reset();
  }
};

// `producers` threads post `per_producer` tasks each to one loop, starting
// together; checks that every task ran exactly once, on the loop's thread,
// in FIFO order per producer.
void run_fan_in(int producers, int per_producer) {
  FanIn s;
  s.producers = producers;
  s.per_producer = per_producer;
  s.total = std::int64_t{producers} * per_producer;
  s.next.assign(producers, 0);
  LoopHandle handle;
  Flag published;
  std::thread loop_thread([&] {
    EventLoop& loop = EventLoop::current();
    s.ka = loop.handle().keep_alive();  // until the last task ran
    s.loop_id = std::this_thread::get_id();
    handle = loop.handle();
    published.set();
    EXPECT_FALSE(loop.run());
  });
  published.wait();
  StartBarrier barrier(producers);
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([&s, &handle, &barrier, p] {
      barrier.arrive_and_wait();
      FanIn* state = &s;
      for (int j = 0; j < state->per_producer; ++j) {
        if (!handle.post([state, p, j] { state->on_task(p, j); })) {
          state->refused.fetch_add(1, std::memory_order_relaxed);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  loop_thread.join();
  EXPECT_EQ(s.refused.load(), 0);
  EXPECT_EQ(s.ran, s.total);
  EXPECT_EQ(s.sum, s.total * (s.total - 1) / 2);
  EXPECT_EQ(s.out_of_order, 0) << "tasks from one thread ran out of order";
  EXPECT_EQ(s.off_thread, 0) << "a task ran off the loop's thread";
  for (int p = 0; p < producers; ++p) EXPECT_EQ(s.next[p], per_producer) << "producer " << p;
}

class PostFanInTest : public CleanShutdownTest, public ::testing::WithParamInterface<int> {};

TEST_P(PostFanInTest, PostsFromManyThreadsEachRunExactlyOnceInPerThreadOrder) {
  run_fan_in(GetParam(), 5000);
}

INSTANTIATE_TEST_SUITE_P(Threads, PostFanInTest, ::testing::Values(1, 2, 4, 8));

TEST_F(EventLoopTest, StressFourThreadsPostingAHundredThousandTasksEachAllRunOnce) {
  run_fan_in(4, 100000);
}

// Header: "A post from another thread wakes it only if it is actually parked,
// so a busy loop pays no system call per message."
TEST_F(EventLoopTest, PostsToABusyLoopMakeNoWakeUpSystemCall) {
  static constexpr int kPosts = 1000;
  LoopHandle handle;
  std::atomic<internal::LoopCore*> core{nullptr};
  Flag busy, posted;
  int ran = 0;  // loop thread only
  std::thread loop_thread([&] {
    EventLoop& loop = EventLoop::current();
    handle = loop.handle();
    core = &internal::LoopSources::core(loop);  // alive while `handle` is
    EXPECT_TRUE(loop.post([&] {
      busy.set();
      posted.wait();  // busy in a callback: the loop is not parked meanwhile
    }));
    EXPECT_FALSE(loop.run());
    EXPECT_EQ(ran, kPosts);
  });
  busy.wait();
  const auto wakes_before = core.load()->futex_wakes_approx();
  for (int i = 0; i < kPosts; ++i) EXPECT_TRUE(handle.post([&ran] { ++ran; }));
  EXPECT_EQ(core.load()->futex_wakes_approx(), wakes_before)
      << "posting to a loop that is not parked made a wake-up system call";
  posted.set();
  loop_thread.join();
}

TEST_F(EventLoopTest, PostToALoopWhoseThreadHasExitedReturnsFalseAndDestroysTheTask) {
  LoopHandle handle;
  on_fresh_thread([&] { handle = EventLoop::current().handle(); });
  ASSERT_TRUE(handle.valid());
  auto token = std::make_shared<int>(0);
  std::atomic<bool> ran{false};
  EXPECT_FALSE(handle.post([token, &ran] { ran = true; }));
  EXPECT_EQ(token.use_count(), 1) << "the refused task was not destroyed";
  EXPECT_FALSE(ran.load());
  // The other cross-thread entry points stay safe on a dead loop.
  handle.stop();
  KeepAlive ka = handle.keep_alive();
  ka.reset();
  EXPECT_FALSE(ka.holds());
}

TEST_F(EventLoopTest, DefaultLoopHandleRefusesPostsAndIsHarmless) {
  LoopHandle none;
  EXPECT_FALSE(none.valid());
  EXPECT_FALSE(none.is_current());
  auto token = std::make_shared<int>(0);
  EXPECT_FALSE(none.post([token] {}));
  EXPECT_EQ(token.use_count(), 1);
  none.stop();
  EXPECT_FALSE(none.keep_alive().holds());
}

// D13: ~EventLoop used to run the tasks still queued, that is, user code
// during thread exit (after main() returned, for the main thread). The loop has
// ended: they are destroyed unrun, on that thread, as a post() after the end
// is refused and destroyed.
TEST_F(EventLoopTest, PostAcceptedBeforeTheLoopThreadExitsIsDestroyedUnrunOnThatThread) {
  LoopHandle handle;
  std::thread::id loop_id;
  Flag published, posted;
  std::atomic<int> ran{0};
  std::atomic<bool> destroyed_on_loop_thread{false};
  // Tells, when the task (and so its capture) is destroyed, on which thread.
  struct Witness {
    std::thread::id* loop_id;
    std::atomic<bool>* on_loop_thread;
    bool armed = true;
    Witness(std::thread::id* id, std::atomic<bool>* flag) : loop_id(id), on_loop_thread(flag) {}
    Witness(Witness&& o) noexcept
        : loop_id(o.loop_id), on_loop_thread(o.on_loop_thread), armed(o.armed) {
      o.armed = false;
    }
    ~Witness() {
      if (armed) *on_loop_thread = std::this_thread::get_id() == *loop_id;
    }
  };
  auto token = std::make_shared<int>(0);
  std::thread loop_thread([&] {
    handle = EventLoop::current().handle();
    loop_id = std::this_thread::get_id();
    published.set();
    posted.wait();
    // Exits without ever calling run().
  });
  published.wait();
  EXPECT_TRUE(handle.post(
      [&ran, token, w = Witness(&loop_id, &destroyed_on_loop_thread)] { ran.fetch_add(1); }));
  EXPECT_EQ(token.use_count(), 2);
  posted.set();
  loop_thread.join();
  EXPECT_EQ(ran.load(), 0) << "a task ran during thread exit";
  EXPECT_EQ(token.use_count(), 1) << "the task left unrun was not destroyed";
  EXPECT_TRUE(destroyed_on_loop_thread.load());
  EXPECT_FALSE(handle.post([] {}));
}

// A task destroyed at the end may post again (from a capture's destructor):
// refused, and destroyed too; nothing runs, nothing hangs.
TEST_F(EventLoopTest, TaskDestroyedAtTheEndThatPostsAgainIsRefused) {
  LoopHandle handle;
  Flag published, posted;
  std::atomic<int> ran{0};
  std::atomic<int> refused{0};
  struct PostsOnDestroy {
    LoopHandle* handle;
    std::atomic<int>* ran;
    std::atomic<int>* refused;
    bool armed = true;
    PostsOnDestroy(LoopHandle* h, std::atomic<int>* r, std::atomic<int>* f)
        : handle(h), ran(r), refused(f) {}
    PostsOnDestroy(PostsOnDestroy&& o) noexcept
        : handle(o.handle), ran(o.ran), refused(o.refused), armed(o.armed) {
      o.armed = false;
    }
    ~PostsOnDestroy() {
      if (armed && !handle->post([r = ran] { r->fetch_add(1); })) refused->fetch_add(1);
    }
  };
  std::thread loop_thread([&] {
    handle = EventLoop::current().handle();
    published.set();
    posted.wait();
  });
  published.wait();
  EXPECT_TRUE(
      handle.post([&ran, p = PostsOnDestroy(&handle, &ran, &refused)] { ran.fetch_add(1); }));
  posted.set();
  loop_thread.join();
  EXPECT_EQ(ran.load(), 0);
  EXPECT_EQ(refused.load(), 1);
}

TEST_F(EventLoopTest, PostedTaskKeepsTheLoopAliveUntilItRan) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    std::vector<int> ran;
    EXPECT_TRUE(loop.post([&] {
      ran.push_back(1);
      EXPECT_TRUE(loop.post([&] { ran.push_back(2); }));  // a task posted by a task
    }));
    EXPECT_TRUE(loop.alive());
    EXPECT_FALSE(loop.run());
    EXPECT_EQ(ran, (std::vector<int>{1, 2}));
  });
}

TEST_F(EventLoopTest, TaskThatRepostsItselfDoesNotStarveTimers) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    bool timer_fired = false;
    int reposts = 0;
    struct Repost {
      EventLoop* loop;
      bool* stop;
      int* count;
      void operator()() const {
        ++*count;
        if (!*stop) {
          EXPECT_TRUE(loop->post(Repost{*this}));
        }
      }
    };
    loop.set_timeout(1ms, [&] { timer_fired = true; });
    EXPECT_TRUE(loop.post(Repost{&loop, &timer_fired, &reposts}));
    EXPECT_FALSE(loop.run());  // would never return if tasks starved the timer
    EXPECT_TRUE(timer_fired);
    EXPECT_GE(reposts, 1);
  });
}

// --- KeepAlive ----------------------------------------------------------------------

TEST_F(EventLoopTest, KeepAliveFromAnotherThreadKeepsRunParkedUntilTheLastReset) {
  LoopHandle handle;
  pid_t tid = 0;
  Flag published, kept, running;
  std::atomic<bool> returned{false};
  std::thread loop_thread([&] {
    EventLoop& loop = EventLoop::current();
    handle = loop.handle();
    tid = current_tid();
    published.set();
    kept.wait();  // the other thread holds its KeepAlives before run() starts
    const auto idle_before = loop.idle_time();
    loop.set_immediate([&] { running.set(); });
    const bool more = loop.run();
    returned.store(true);
    EXPECT_FALSE(more);
    EXPECT_GT(loop.idle_time(), idle_before) << "the kept-alive loop never parked";
  });
  published.wait();
  KeepAlive first = handle.keep_alive();
  KeepAlive second = handle.keep_alive();
  EXPECT_TRUE(first.holds());
  kept.set();
  running.wait();
  EXPECT_TRUE(wait_until_parked(tid))
      << "a kept-alive loop with nothing to do spins instead of parking";

  first.reset();
  EXPECT_FALSE(first.holds());
  // Not the last reset: the loop must still be inside run(). A task proves it
  // (if run() had returned, the task would only run when the thread exits).
  std::atomic<bool> ran_inside_run{false};
  Flag task_ran;
  EXPECT_TRUE(handle.post([&] {
    ran_inside_run = !returned.load();
    task_ran.set();
  }));
  task_ran.wait();
  EXPECT_TRUE(ran_inside_run.load()) << "run() returned while a KeepAlive was still held";
  EXPECT_TRUE(wait_until_parked(tid)) << "the loop did not park again after the task";

  second.reset();  // the last reset wakes the loop, which then runs dry
  loop_thread.join();
  EXPECT_TRUE(returned.load());
}

TEST_F(EventLoopTest, KeepAliveMovesItsReferenceAndReleasesItOnce) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    KeepAlive a = loop.handle().keep_alive();
    EXPECT_TRUE(loop.alive());
    KeepAlive b = std::move(a);
    EXPECT_FALSE(a.holds());  // NOLINT(bugprone-use-after-move): moved-from state is specified
    EXPECT_TRUE(b.holds());
    a.reset();  // empty: must not release b's reference
    EXPECT_TRUE(loop.alive());

    KeepAlive c = loop.handle().keep_alive();
    c = std::move(b);  // releases c's own reference, takes b's
    EXPECT_TRUE(c.holds());
    EXPECT_TRUE(loop.alive());
    c = KeepAlive();
    EXPECT_FALSE(c.holds());
    EXPECT_FALSE(loop.alive()) << "a KeepAlive reference leaked through a move";
    {
      KeepAlive scoped = loop.handle().keep_alive();
      EXPECT_TRUE(loop.alive());
    }
    EXPECT_FALSE(loop.alive()) << "~KeepAlive did not release";
    EXPECT_FALSE(loop.run());
  });
}

TEST_F(EventLoopTest, ParkedLoopWakesForACrossThreadPost) {
  LoopHandle handle;
  pid_t tid = 0;
  Flag running;
  KeepAlive ka;  // loop thread only
  std::thread::id loop_id;
  bool task_on_loop_thread = false;  // loop thread only
  std::thread loop_thread([&] {
    EventLoop& loop = EventLoop::current();
    ka = loop.handle().keep_alive();  // the loop's only reason to live
    handle = loop.handle();
    tid = current_tid();
    loop_id = std::this_thread::get_id();
    loop.set_immediate([&] { running.set(); });
    EXPECT_FALSE(loop.run());  // returns only once the posted task released `ka`
    EXPECT_TRUE(task_on_loop_thread);
    EXPECT_FALSE(ka.holds());
  });
  running.wait();
  EXPECT_TRUE(wait_until_parked(tid));
  EXPECT_TRUE(handle.post([&] {
    task_on_loop_thread = std::this_thread::get_id() == loop_id;
    ka.reset();
  }));
  loop_thread.join();
}

// --- stop() -----------------------------------------------------------------------

TEST_F(EventLoopTest, StopFromAnotherThreadMakesRunReturnTrueWhileWorkRemains) {
  LoopHandle handle;
  pid_t tid = 0;
  Flag running;
  std::thread loop_thread([&] {
    EventLoop& loop = EventLoop::current();
    KeepAlive ka = loop.handle().keep_alive();
    handle = loop.handle();
    tid = current_tid();
    loop.set_immediate([&] { running.set(); });
    EXPECT_TRUE(loop.run()) << "stop() must make run() report the work that remains";
    EXPECT_TRUE(loop.alive());
    ka.reset();
    EXPECT_FALSE(loop.run()) << "a stop request leaked into the next run()";
  });
  running.wait();
  EXPECT_TRUE(wait_until_parked(tid));  // stop() must also wake a parked loop
  handle.stop();
  loop_thread.join();
}

TEST_F(EventLoopTest, StopInsideATimerReturnsBeforeTheNextDueTimer) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    std::vector<char> fired;
    loop.set_timeout(0ms, [&] {
      fired.push_back('a');
      loop.stop();
    });
    loop.set_timeout(0ms, [&] { fired.push_back('b'); });
    EXPECT_TRUE(loop.run());
    EXPECT_EQ(fired, (std::vector<char>{'a'}));
    EXPECT_FALSE(loop.run());
    EXPECT_EQ(fired, (std::vector<char>{'a', 'b'}));
  });
}

TEST_F(EventLoopTest, StopInsideAnImmediateReturnsBeforeTheNextImmediate) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    std::vector<char> ran;
    loop.set_immediate([&] {
      ran.push_back('a');
      loop.stop();
    });
    loop.set_immediate([&] { ran.push_back('b'); });
    loop.set_immediate([&] { ran.push_back('c'); });
    EXPECT_TRUE(loop.run());
    EXPECT_EQ(ran, (std::vector<char>{'a'}));
    EXPECT_FALSE(loop.run());
    EXPECT_EQ(ran, (std::vector<char>{'a', 'b', 'c'}));
  });
}

TEST_F(EventLoopTest, StopInsideAnIntervalLeavesItArmed) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    int runs = 0;
    Timer iv;
    iv = loop.set_interval(1ms, [&] {
      ++runs;
      if (runs == 2) iv.cancel();
      loop.stop();
    });
    EXPECT_TRUE(loop.run());
    EXPECT_EQ(runs, 1);
    EXPECT_TRUE(iv.active());
    EXPECT_FALSE(loop.run());
    EXPECT_EQ(runs, 2);
  });
}

// Contract: EventLoop::stop() "Makes run() return after the current callback".
TEST_F(EventLoopTest, StopInsideAPostedTaskReturnsBeforeTheNextTask) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    std::vector<char> ran;
    EXPECT_TRUE(loop.post([&] {
      ran.push_back('a');
      loop.stop();
    }));
    EXPECT_TRUE(loop.post([&] { ran.push_back('b'); }));
    EXPECT_TRUE(loop.run()) << "run() ran the loop dry instead of stopping with a task pending";
    EXPECT_EQ(ran, (std::vector<char>{'a'})) << "a task ran after stop() in an earlier task";
    EXPECT_FALSE(loop.run());
    EXPECT_EQ(ran, (std::vector<char>{'a', 'b'}));
  });
}

// Contract: LoopHandle::stop() "Makes run() return after the current callback.
// Any thread." Here the stop request is known to have been made while task `a`
// runs (a waits for it), so `b` must not run in that run().
TEST_F(EventLoopTest, StopFromAnotherThreadTakesEffectAfterTheCurrentCallback) {
  LoopHandle handle;
  Flag a_running, stop_requested;
  bool b_ran = false;  // loop thread only
  std::thread loop_thread([&] {
    EventLoop& loop = EventLoop::current();
    handle = loop.handle();
    EXPECT_TRUE(loop.post([&] {
      a_running.set();
      stop_requested.wait();
    }));
    EXPECT_TRUE(loop.post([&] { b_ran = true; }));
    const bool more = loop.run();
    EXPECT_FALSE(b_ran) << "a task queued behind the current callback ran after stop()";
    EXPECT_TRUE(more);
    EXPECT_FALSE(loop.run());
    EXPECT_TRUE(b_ran);
  });
  a_running.wait();
  handle.stop();
  stop_requested.set();
  loop_thread.join();
}

// --- Run modes ----------------------------------------------------------------------

TEST_F(EventLoopTest, RunNoWaitRunsOneTurnAndNeverParks) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    bool immediate_ran = false;
    bool timer_fired = false;
    Timer t = loop.set_timeout(10min, [&] { timer_fired = true; });
    loop.set_immediate([&] { immediate_ran = true; });
    const auto turns_before = loop.turns();
    EXPECT_TRUE(loop.run(RunMode::kNoWait));
    EXPECT_EQ(loop.turns(), turns_before + 1);
    EXPECT_TRUE(immediate_ran);
    EXPECT_TRUE(loop.run(RunMode::kNoWait));
    EXPECT_EQ(loop.turns(), turns_before + 2);
    EXPECT_FALSE(timer_fired);
    EXPECT_EQ(loop.idle_time(), Clock::duration::zero()) << "kNoWait parked";
    t.cancel();
    EXPECT_FALSE(loop.run(RunMode::kNoWait));
  });
}

TEST_F(EventLoopTest, RunOnceParksUntilSomethingIsReadyThenReturns) {
  LoopHandle handle;
  pid_t tid = 0;
  Flag entering;
  bool task_ran = false;  // loop thread only
  std::thread loop_thread([&] {
    EventLoop& loop = EventLoop::current();
    KeepAlive ka = loop.handle().keep_alive();
    handle = loop.handle();
    tid = current_tid();
    entering.set();
    EXPECT_TRUE(loop.run(RunMode::kOnce)) << "the KeepAlive is still held";
    EXPECT_TRUE(task_ran) << "run(kOnce) returned before anything was ready";
    ka.reset();
    EXPECT_FALSE(loop.run());
  });
  entering.wait();
  EXPECT_TRUE(wait_until_parked(tid));
  EXPECT_TRUE(handle.post([&] { task_ran = true; }));
  loop_thread.join();
}

TEST_F(EventLoopTest, RunOnceWaitsForTheNextTimerAndFiresIt) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    constexpr auto kDelay = 5ms;
    int fired = 0;
    Timer keep = loop.set_timeout(10min, [] {});
    const auto start = Clock::now();
    loop.set_timeout(kDelay, [&] { ++fired; });
    // kOnce may return early (e.g. a spurious wake-up) but never fires early,
    // and a few calls must get there.
    for (int calls = 0; fired == 0 && calls < 100; ++calls) {
      EXPECT_TRUE(loop.run(RunMode::kOnce));
    }
    EXPECT_EQ(fired, 1);
    EXPECT_GE(Clock::now() - start, kDelay);
    keep.cancel();
    EXPECT_FALSE(loop.run());
  });
}

// Contract: kOnce runs turns until one ran a callback, parking only while
// none has. Here an immediate is ready when run(kOnce) starts, so it must
// run it and return, even though a KeepAlive leaves the loop alive.
TEST_F(EventLoopTest, RunOnceDoesNotParkAfterRunningWorkThatWasReady) {
  LoopHandle handle;
  pid_t tid = 0;
  Flag entering;
  std::atomic<bool> returned{false};
  std::thread loop_thread([&] {
    EventLoop& loop = EventLoop::current();
    KeepAlive ka = loop.handle().keep_alive();
    bool ran = false;
    loop.set_immediate([&] { ran = true; });
    handle = loop.handle();
    tid = current_tid();
    entering.set();
    const bool more = loop.run(RunMode::kOnce);
    returned.store(true, std::memory_order_release);
    EXPECT_TRUE(ran);
    EXPECT_TRUE(more);
    ka.reset();
    EXPECT_FALSE(loop.run());
  });
  entering.wait();
  // Either run(kOnce) returns, or its thread falls asleep inside it (the
  // state is read before `returned`, so a sleep seen with `returned` still
  // false happened inside run()).
  const auto deadline = Clock::now() + kHangGuard;
  bool parked = false;
  bool timed_out = false;
  while (!returned.load(std::memory_order_acquire)) {
    if (thread_state(tid) == 'S' && !returned.load(std::memory_order_acquire)) {
      parked = true;
      break;
    }
    if (Clock::now() > deadline) {
      timed_out = true;
      break;
    }
    std::this_thread::yield();
  }
  EXPECT_FALSE(parked) << "run(kOnce) parked after its turn had already run a ready immediate";
  EXPECT_FALSE(timed_out) << "run(kOnce) neither returned nor parked";
  if (parked || timed_out) {
    EXPECT_TRUE(handle.post([] {}));  // wake it so the test can end
  }
  loop_thread.join();
}

// --- Exceptions ---------------------------------------------------------------------

TEST_F(EventLoopTest, ExceptionInATimerPropagatesOutOfRunAndTheLoopStaysUsable) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    std::vector<char> fired;
    Timer a = loop.set_timeout(0ms, [&] {
      fired.push_back('a');
      throw std::runtime_error("from timer a");
    });
    loop.set_timeout(0ms, [&] { fired.push_back('b'); });
    loop.set_timeout(5ms, [&] { fired.push_back('c'); });
    try {
      loop.run();
      ADD_FAILURE() << "the exception did not leave run()";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "from timer a");
    }
    EXPECT_EQ(fired, (std::vector<char>{'a'}));
    EXPECT_FALSE(a.active());
    EXPECT_TRUE(loop.alive());
    EXPECT_FALSE(loop.run());
    EXPECT_EQ(fired, (std::vector<char>{'a', 'b', 'c'}));
  });
}

TEST_F(EventLoopTest, ExceptionInAnIntervalPropagatesAndLeavesItArmed) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    int runs = 0;
    Timer iv;
    iv = loop.set_interval(1ms, [&] {
      if (++runs == 1) throw std::runtime_error("from interval");
      if (runs == 3) iv.cancel();
    });
    EXPECT_THROW(loop.run(), std::runtime_error);
    EXPECT_EQ(runs, 1);
    EXPECT_TRUE(iv.active()) << "an interval is active until cancelled";
    EXPECT_TRUE(iv.has_ref());
    EXPECT_FALSE(loop.run());
    EXPECT_EQ(runs, 3);
  });
}

TEST_F(EventLoopTest, ExceptionInAPostedTaskPropagatesAndLaterTasksStillRun) {
  std::vector<char> ran;  // loop thread only
  LoopHandle handle;
  Flag published;
  Flag posted;
  std::thread loop_thread([&] {
    EventLoop& loop = EventLoop::current();
    handle = loop.handle();
    published.set();
    posted.wait();
    EXPECT_THROW(loop.run(), std::logic_error);
    EXPECT_EQ(ran, (std::vector<char>{'a'}));
    EXPECT_TRUE(loop.alive());
    EXPECT_FALSE(loop.run());
    EXPECT_EQ(ran, (std::vector<char>{'a', 'b'}));
  });
  published.wait();
  EXPECT_TRUE(handle.post([&] {
    ran.push_back('a');
    throw std::logic_error("from task a");
  }));
  EXPECT_TRUE(handle.post([&] { ran.push_back('b'); }));
  posted.set();
  loop_thread.join();
}

TEST_F(EventLoopTest, ExceptionInAnImmediateLeavesTheRestQueuedInOrder) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    std::vector<char> ran;
    loop.set_immediate([&] { ran.push_back('a'); });
    loop.set_immediate([&] {
      ran.push_back('b');
      throw std::runtime_error("from immediate b");
    });
    loop.set_immediate([&] { ran.push_back('c'); });
    loop.set_immediate([&] { ran.push_back('d'); });
    EXPECT_THROW(loop.run(), std::runtime_error);
    EXPECT_EQ(ran, (std::vector<char>{'a', 'b'}));
    loop.set_immediate([&] { ran.push_back('e'); });
    EXPECT_FALSE(loop.run());
    EXPECT_EQ(ran, (std::vector<char>{'a', 'b', 'c', 'd', 'e'}));
  });
}

// --- Node-style shorthands ---------------------------------------------------------

TEST_F(EventLoopTest, ShorthandsUseTheCallingThreadsLoop) {
  on_fresh_thread([] {
    std::vector<char> ran;
    weave::set_timeout(1ms, [&] { ran.push_back('t'); });
    weave::set_immediate([&] { ran.push_back('i'); });
    Timer iv;
    iv = weave::set_interval(1ms, [&] {
      ran.push_back('v');
      iv.cancel();
    });
    EXPECT_TRUE(EventLoop::current().alive());
    run_loop();
    EXPECT_FALSE(EventLoop::current().alive());
    ASSERT_EQ(ran.size(), 3u);
    EXPECT_EQ(std::count(ran.begin(), ran.end(), 'i'), 1);
    EXPECT_EQ(std::count(ran.begin(), ran.end(), 't'), 1);
    EXPECT_EQ(std::count(ran.begin(), ran.end(), 'v'), 1);
  });
}

// --- Sources (internal hook for ports and channels) ---------------------------------

TEST_F(EventLoopTest, RefedSourceKeepsTheLoopAliveUntilUnrefdOrRemoved) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    auto s = std::make_shared<TestSource>();
    internal::LoopSources::add(loop, s, /*refed=*/true);
    EXPECT_TRUE(loop.alive());
    EXPECT_TRUE(loop.run(RunMode::kNoWait));
    EXPECT_EQ(s->dispatches, 0) << "dispatched without being scheduled";
    internal::LoopSources::set_ref(loop, s.get(), false);
    EXPECT_FALSE(loop.alive());
    internal::LoopSources::set_ref(loop, s.get(), false);  // twice: counts once
    internal::LoopSources::set_ref(loop, s.get(), true);
    EXPECT_TRUE(loop.alive());
    internal::LoopSources::add(loop, s, /*refed=*/true);  // again: updates the ref, no second count
    internal::LoopSources::remove(loop, s.get());
    EXPECT_FALSE(loop.alive());
    EXPECT_FALSE(loop.run());
    EXPECT_EQ(s.use_count(), 1) << "the loop kept a removed source";
  });
}

TEST_F(EventLoopTest, ScheduledSourcesAreDispatchedOnceEachInScheduleOrder) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    std::vector<int> order;
    auto record = [](TestSource& s, EventLoop&) { s.log->push_back(s.name); };
    std::vector<std::shared_ptr<TestSource>> sources;
    for (int i = 0; i < 3; ++i) {
      sources.push_back(std::make_shared<TestSource>(record));
      sources.back()->name = i;
      sources.back()->log = &order;
      internal::LoopSources::add(loop, sources.back(), /*refed=*/false);
    }
    const auto pushes_before = internal::LoopSources::core(loop).ready_pushes_approx();
    internal::LoopSources::core(loop).schedule(sources[2].get());
    internal::LoopSources::core(loop).schedule(sources[0].get());
    internal::LoopSources::core(loop).schedule(sources[2].get());  // merged with the first schedule
    internal::LoopSources::core(loop).schedule(sources[1].get());
    EXPECT_EQ(internal::LoopSources::core(loop).ready_pushes_approx() - pushes_before, 3u)
        << "a schedule of an already queued source pushed it again";
    EXPECT_FALSE(loop.run(RunMode::kNoWait));
    EXPECT_EQ(order, (std::vector<int>{2, 0, 1}));
    EXPECT_FALSE(loop.run(RunMode::kNoWait));
    EXPECT_EQ(order.size(), 3u) << "dispatched again without a new schedule";
    for (auto& s : sources) internal::LoopSources::remove(loop, s.get());
  });
}

TEST_F(EventLoopTest, SourceRemovedAfterBeingScheduledIsNotDispatched) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    auto s = std::make_shared<TestSource>();
    internal::LoopSources::add(loop, s, /*refed=*/true);
    internal::LoopSources::core(loop).schedule(s.get());
    internal::LoopSources::remove(loop, s.get());
    EXPECT_FALSE(loop.run());
    EXPECT_EQ(s->dispatches, 0);
  });
}

TEST_F(EventLoopTest, SourceScheduledFromAnotherThreadIsDispatchedOnTheLoopThread) {
  constexpr int kItems = 2000;
  auto s = std::make_shared<TestSource>(
      [](TestSource& src, EventLoop&) { src.seen = src.items.load(std::memory_order_acquire); });
  LoopHandle handle;
  KeepAlive producer_ka;
  std::thread::id loop_id;
  Flag published;
  std::thread loop_thread([&] {
    EventLoop& loop = EventLoop::current();
    internal::LoopSources::add(loop, s, /*refed=*/false);
    producer_ka = loop.handle().keep_alive();  // released by the producer's last task
    handle = loop.handle();
    loop_id = std::this_thread::get_id();
    published.set();
    EXPECT_FALSE(loop.run());
    EXPECT_EQ(s->seen, kItems) << "an item scheduled before the last task was never dispatched";
    EXPECT_GE(s->dispatches, 1);
    EXPECT_LE(s->dispatches, kItems);
    internal::LoopSources::remove(loop, s.get());
  });
  published.wait();
  std::thread producer([&] {
    for (int i = 0; i < kItems; ++i) {
      s->items.fetch_add(1, std::memory_order_release);
      internal::LoopSources::core(handle)->schedule(s.get());
    }
    // Every schedule has returned: this task runs in a turn whose source
    // phase (after the tasks) still sees the last one.
    EXPECT_TRUE(handle.post([ka = std::move(producer_ka), &loop_id]() mutable {
      EXPECT_EQ(std::this_thread::get_id(), loop_id);
      ka.reset();
    }));
  });
  producer.join();
  loop_thread.join();
  EXPECT_EQ(s.use_count(), 1);
}

// loop_core.h: take_ready "acquire: pairs with the release CAS in schedule(),
// so the source's state written before it was scheduled is visible here".
// A schedule that finds the source already queued is merged into the earlier
// one; state written before the merged call must be visible too. Here the
// loop is busy in a task while the producer schedules, writes, schedules
// again, so the loop takes the source without parking. The failure shows as
// a ThreadSanitizer data-race report on `plain_item`.
TEST_F(EventLoopTest, SourceStateWrittenBeforeAMergedScheduleIsVisibleToDispatch) {
  auto s =
      std::make_shared<TestSource>([](TestSource& src, EventLoop&) { src.seen = src.plain_item; });
  LoopHandle handle;
  Flag published, task_running;
  std::atomic<bool> producer_done{false};
  std::thread loop_thread([&] {
    EventLoop& loop = EventLoop::current();
    internal::LoopSources::add(loop, s, /*refed=*/false);
    EXPECT_TRUE(loop.post([&] {
      task_running.set();
      // Relaxed on purpose: this wait orders the steps in time without
      // creating a happens-before edge of its own.
      while (!producer_done.load(std::memory_order_relaxed)) std::this_thread::yield();
    }));
    handle = loop.handle();
    published.set();
    EXPECT_FALSE(loop.run(RunMode::kNoWait));  // task, then the source, in one turn
    EXPECT_EQ(s->dispatches, 1);
    EXPECT_EQ(s->seen, 42);
    internal::LoopSources::remove(loop, s.get());
  });
  published.wait();
  task_running.wait();
  internal::LoopSources::core(handle)->schedule(s.get());
  s->plain_item = 42;
  internal::LoopSources::core(handle)->schedule(s.get());  // merged: the source is still queued
  producer_done.store(true, std::memory_order_relaxed);
  loop_thread.join();
}

// The contract: "an exception that escapes a callback propagates out of run();
// the loop stays consistent". Two sources are ready; the first one's dispatch
// throws; the second must still be dispatched by the next run().
TEST_F(EventLoopTest, SourceThatThrowsDoesNotStrandSourcesReadyAfterIt) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    auto thrower = std::make_shared<TestSource>(
        [](TestSource&, EventLoop&) { throw std::runtime_error("from source dispatch"); });
    auto other = std::make_shared<TestSource>();
    internal::LoopSources::add(loop, thrower, /*refed=*/false);
    internal::LoopSources::add(loop, other, /*refed=*/false);
    internal::LoopSources::core(loop).schedule(thrower.get());
    internal::LoopSources::core(loop).schedule(other.get());
    EXPECT_THROW(loop.run(RunMode::kNoWait), std::runtime_error);
    EXPECT_EQ(other->dispatches, 0);
    loop.run(RunMode::kNoWait);
    EXPECT_EQ(other->dispatches, 1) << "a source scheduled before the throw was never dispatched";
    internal::LoopSources::remove(loop, thrower.get());
    internal::LoopSources::remove(loop, other.get());
  });
}

TEST_F(EventLoopTest, SourceStillRegisteredWhenTheLoopThreadExitsIsToldAndReleased) {
  auto s = std::make_shared<TestSource>();
  on_fresh_thread([&] { internal::LoopSources::add(EventLoop::current(), s, /*refed=*/true); });
  EXPECT_TRUE(s->loop_destroyed);
  EXPECT_EQ(s.use_count(), 1) << "the dead loop still holds the source";
}

// --- Loop identity after the thread is gone ------------------------------------------

// LoopHandle::is_current(): "True when this handle names the calling thread's
// loop". A loop whose thread exited is nobody's loop, whichever thread asks.
TEST_F(EventLoopTest, HandleOfAnExitedLoopIsNotCurrentOnAnyThread) {
  LoopHandle old;
  on_fresh_thread([&] {
    old = EventLoop::current().handle();
    EXPECT_TRUE(old.is_current());
  });
  EXPECT_FALSE(old.is_current());
  for (int i = 0; i < 4; ++i) {
    on_fresh_thread([&] {
      EXPECT_FALSE(old.is_current()) << "a new thread took over a dead loop's identity";
      EXPECT_FALSE(old == EventLoop::current().handle());
    });
  }
}

// --- Cancelled timers give their memory back (D3) --------------------------------

// Per-request timeouts that are cancelled when the request ends (the common
// case) used to stay in the heap until their deadline: 10^6 set+cancel pairs
// of a 1 h timeout held ~24 MB. White-box: the heap holds only live timers.
TEST_F(EventLoopTest, AMillionSetAndCancelPairsLeaveTheTimerHeapEmpty) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    Timer keep = loop.set_timeout(2h, [] {});  // a live one stays put
    for (int i = 0; i < 1'000'000; ++i) loop.set_timeout(1h, [] {}).cancel();
    EXPECT_EQ(internal::LoopTesting::timer_heap_size(loop), 1u);
    EXPECT_EQ(internal::LoopTesting::timer_count(loop), 1u);
    EXPECT_TRUE(loop.run(RunMode::kNoWait));
    keep.cancel();
    EXPECT_EQ(internal::LoopTesting::timer_heap_size(loop), 0u);
    EXPECT_FALSE(loop.run());
  });
}

// Removal from the middle of the heap keeps the heap a heap: timers set in a
// scrambled order, every third one cancelled (from the front, the middle and
// the back of the heap), fire in deadline order, ties in the order set. The
// slots are 50 ms apart, far more than setting all the timers takes (even
// under a sanitizer), so each slot's timers are due before the next slot's.
TEST_F(EventLoopTest, CancellingFromTheMiddleOfTheHeapKeepsDeadlineAndTieOrder) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    constexpr int kTimers = 600;
    constexpr int kSlots = 10;
    std::vector<int> fired;
    std::vector<Timer> timers;
    std::vector<int> expected;
    auto slot_of = [](int i) { return (i * 7) % kSlots; };
    for (int i = 0; i < kTimers; ++i) {
      timers.push_back(loop.set_timeout(std::chrono::milliseconds(50 * slot_of(i)),
                                        [&fired, i] { fired.push_back(i); }));
    }
    for (int i = 0; i < kTimers; i += 3) timers[static_cast<std::size_t>(i)].cancel();
    EXPECT_EQ(internal::LoopTesting::timer_heap_size(loop), std::size_t{kTimers - kTimers / 3});
    for (int slot = 0; slot < kSlots; ++slot) {
      for (int i = 0; i < kTimers; ++i) {
        if (slot_of(i) == slot && i % 3 != 0) expected.push_back(i);
      }
    }
    EXPECT_FALSE(loop.run());
    EXPECT_EQ(fired, expected);
    EXPECT_EQ(internal::LoopTesting::timer_heap_size(loop), 0u);
  });
}

// An interval cancelled while its callback runs (it is off the heap then) and
// one cancelled between runs both leave nothing behind.
TEST_F(EventLoopTest, CancelledIntervalsLeaveNothingInTheHeap) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    int a_runs = 0;
    Timer a;
    a = loop.set_interval(1ms, [&] {
      if (++a_runs == 3) a.cancel();
    });
    Timer b = loop.set_interval(1h, [] {});
    EXPECT_EQ(internal::LoopTesting::timer_heap_size(loop), 2u);
    b.cancel();
    EXPECT_EQ(internal::LoopTesting::timer_heap_size(loop), 1u);
    EXPECT_FALSE(loop.run());
    EXPECT_EQ(a_runs, 3);
    EXPECT_EQ(internal::LoopTesting::timer_heap_size(loop), 0u);
    EXPECT_EQ(internal::LoopTesting::timer_count(loop), 0u);
  });
}

// --- Huge delays (D7) ---------------------------------------------------------------

// `Clock::now() + delay` used to overflow (undefined behaviour; in practice it
// wrapped into the past and the timer fired at once). kForever never fires and,
// while refed, keeps the loop alive. Checked with kNoWait turns: no waiting.
TEST_F(EventLoopTest, ForeverAndHugeDelaysNeverFireAndKeepTheLoopAliveWhileRefed) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    int fired = 0;
    std::vector<Timer> timers;
    timers.push_back(loop.set_timeout(kForever, [&] { ++fired; }));
    timers.push_back(loop.set_timeout(Clock::duration::max(), [&] { ++fired; }));
    timers.push_back(loop.set_timeout(std::chrono::hours::max(), [&] { ++fired; }));
    timers.push_back(
        loop.set_timeout(std::chrono::duration<double>(std::nan("")), [&] { ++fired; }));
    timers.push_back(loop.set_timeout(std::chrono::duration<double>(1e300), [&] { ++fired; }));
    timers.push_back(loop.set_interval(kForever, [&] { ++fired; }));
    timers.push_back(loop.set_interval(std::chrono::hours::max(), [&] { ++fired; }));
    for (int turn = 0; turn < 3; ++turn) {
      EXPECT_TRUE(loop.run(RunMode::kNoWait)) << "a forever timer let the loop end";
    }
    EXPECT_EQ(fired, 0) << "a forever timer fired";
    for (Timer& t : timers) {
      EXPECT_TRUE(t.active());
      t.unref();
    }
    EXPECT_FALSE(loop.run()) << "unref'd forever timers kept the loop alive";
    EXPECT_EQ(fired, 0);
    for (Timer& t : timers) t.cancel();
  });
}

// A forever timer does not bound the park: a post still wakes the loop, and
// the timer stays pending.
TEST_F(EventLoopTest, ForeverTimerAloneLetsTheLoopParkAndAPostEndsIt) {
  LoopHandle handle;
  std::atomic<pid_t> tid{0};
  Flag parked_soon;
  std::atomic<bool> fired{false};
  std::thread loop_thread([&] {
    EventLoop& loop = EventLoop::current();
    handle = loop.handle();
    tid = current_tid();
    Timer t = loop.set_timeout(kForever, [&] { fired = true; });
    loop.post([&] { parked_soon.set(); });
    EXPECT_TRUE(loop.run(RunMode::kOnce));  // ran the post
    EXPECT_TRUE(loop.run(RunMode::kOnce));  // parks; the next post ends it
    t.cancel();
    EXPECT_FALSE(loop.run());
  });
  parked_soon.wait();
  ASSERT_TRUE(wait_until_parked(tid.load()));
  EXPECT_TRUE(handle.post([] {}));
  loop_thread.join();
  EXPECT_FALSE(fired.load());
}

// Durations below the forever threshold are rounded up, never down: a
// floating-point delay of 1.5 ns is 2 ns, and a timer never fires early.
TEST_F(EventLoopTest, FractionalDelaysRoundUpAndNeverFireEarly) {
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    const auto start = Clock::now();
    Clock::time_point at{};
    loop.set_timeout(std::chrono::duration<double, std::milli>(5.0000001),
                     [&] { at = Clock::now(); });
    EXPECT_FALSE(loop.run());
    EXPECT_GE(at - start, 5ms);
  });
}

// --- A Timer kept past its loop ---------------------------------------------------------

// Timers used to hold a raw EventLoop*: one kept after its thread (and loop)
// ended was a use-after-free on cancel()/ref()/has_ref()/active(). Now every
// call is harmless — also on a thread whose own loop happens to reuse the
// memory of the dead one.
TEST_F(EventLoopTest, TimerKeptPastItsLoopIsHarmless) {
  std::vector<Timer> kept;
  auto token = std::make_shared<int>(0);
  on_fresh_thread([&] {
    EventLoop& loop = EventLoop::current();
    kept.push_back(loop.set_timeout(1h, [token] {}));
    kept.push_back(loop.set_interval(1ms, [token] {}));
    kept.push_back(loop.set_immediate([token] {}));
    kept.back().unref();
  });
  EXPECT_EQ(token.use_count(), 1) << "the ended loop kept a pending timer's callback";
  auto check = [&] {
    for (Timer& t : kept) {
      EXPECT_NE(t.id(), 0u);
      EXPECT_FALSE(t.active());
      EXPECT_FALSE(t.has_ref());
      t.cancel();
      t.ref();
      EXPECT_FALSE(t.has_ref());
      t.unref();
      EXPECT_FALSE(t.active());
    }
  };
  check();  // on a thread whose loop is not the dead one
  for (int i = 0; i < 3; ++i) {
    on_fresh_thread([&] {
      EventLoop& loop = EventLoop::current();
      // A new loop, likely at the dead one's address, with timers of the same ids.
      std::vector<Timer> fresh;
      for (int j = 0; j < 3; ++j) fresh.push_back(loop.set_timeout(1h, [] {}));
      check();
      for (Timer& t : fresh) {
        EXPECT_TRUE(t.active()) << "a dead loop's Timer reached a new loop's timer";
        t.cancel();
      }
      EXPECT_FALSE(loop.run());
    });
  }
}

// A timer cancelled by a callback that is being destroyed at the loop's end
// (a capture's destructor): harmless.
TEST_F(EventLoopTest, TimerCancelledFromACallbackDestroyedAtTheEndIsHarmless) {
  struct CancelsOnDestroy {
    std::shared_ptr<Timer> timer;
    ~CancelsOnDestroy() {
      if (timer) {
        timer->cancel();
        EXPECT_FALSE(timer->active());
      }
    }
    CancelsOnDestroy(std::shared_ptr<Timer> t) : timer(std::move(t)) {}
    CancelsOnDestroy(CancelsOnDestroy&& o) noexcept = default;
  };
  on_fresh_thread([] {
    EventLoop& loop = EventLoop::current();
    auto other = std::make_shared<Timer>();
    *other = loop.set_timeout(1h, [] {});
    loop.set_timeout(1h, [c = CancelsOnDestroy(other)] {});
    loop.set_immediate([c = CancelsOnDestroy(other)] {});
  });
}
}  // namespace
}  // namespace weave
