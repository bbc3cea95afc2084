// weave::SharedMutex / SharedSemaphore / SharedLatch / SharedBarrier: the
// zero-bytes state, identity of handles over one offset, offset checks, and
// each type's contract under concurrency (no sleeps: threads meet at a
// StartBarrier, and "is now blocked" is read from the waiter list).
#include "atomics/sync.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "atomics/atomics.h"
#include "tests/atomics/waiters.h"
#include "tests/test_util.h"

namespace weave {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

// Blocks until `n` threads wait on Int32 word `index` of `sab`: the way a test
// knows, without sleeping, that threads are parked inside a sync object.
void wait_for_waiters(const SharedArrayBuffer& sab, std::size_t byte_offset, std::size_t n) {
  ASSERT_TRUE(testing::wait_for_waiters(Int32View(sab, byte_offset, 1), 0, n))
      << "waiters never arrived";
}

class SyncTest : public testing::CleanShutdownTest {};
class SyncSweepTest : public testing::CleanShutdownTest,
                      public ::testing::WithParamInterface<int> {};
INSTANTIATE_TEST_SUITE_P(Threads, SyncSweepTest, ::testing::Values(2, 4, 8));

// ---- layout and construction -------------------------------------------------------

static_assert(SharedMutex::kByteLength == 4 && SharedMutex::kAlignment == 4);
static_assert(SharedSemaphore::kByteLength == 8 && SharedSemaphore::kAlignment == 4);
static_assert(SharedLatch::kByteLength == 4 && SharedLatch::kAlignment == 4);
static_assert(SharedBarrier::kByteLength == 12 && SharedBarrier::kAlignment == 4);

TEST_F(SyncTest, MisalignedOffsetIsRejectedNamingTheArgument) {
  SharedArrayBuffer sab(64);
  try {
    SharedMutex m(sab, 2);
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("weave::SharedMutex"));
    EXPECT_THAT(e.what(), HasSubstr("byte_offset 2"));
  }
  EXPECT_THROW(SharedSemaphore(sab, 6), std::invalid_argument);
  EXPECT_THROW(SharedLatch(sab, 1), std::invalid_argument);
  EXPECT_THROW(SharedBarrier(sab, 3), std::invalid_argument);
}

TEST_F(SyncTest, OffsetThatDoesNotFitIsRejectedNamingTheArgument) {
  SharedArrayBuffer sab(16);
  try {
    SharedBarrier b(sab, 8);  // 8 + 12 > 16
    FAIL() << "no exception";
  } catch (const std::out_of_range& e) {
    EXPECT_THAT(e.what(), HasSubstr("weave::SharedBarrier"));
    EXPECT_THAT(e.what(), HasSubstr("byte_offset 8"));
    EXPECT_THAT(e.what(), HasSubstr("0..4"));
  }
  EXPECT_THROW(SharedMutex(sab, 16), std::out_of_range);
  EXPECT_THROW(SharedMutex(sab, 1ull << 62), std::out_of_range);  // no overflow
  EXPECT_THROW(SharedSemaphore(sab, 12), std::out_of_range);
  EXPECT_THROW(SharedLatch(SharedArrayBuffer(0), 0), std::out_of_range);
  EXPECT_THROW(SharedBarrier(SharedArrayBuffer(8), 0), std::out_of_range);
}

TEST_F(SyncTest, LastFittingOffsetIsAccepted) {
  SharedArrayBuffer sab(16);
  EXPECT_NO_THROW(SharedMutex(sab, 12));
  EXPECT_NO_THROW(SharedSemaphore(sab, 8));
  EXPECT_NO_THROW(SharedLatch(sab, 12));
  EXPECT_NO_THROW(SharedBarrier(sab, 4));
  const SharedMutex m(sab, 12);
  EXPECT_EQ(m.byte_offset(), 12u);
  EXPECT_TRUE(m.buffer() == sab);
}

TEST_F(SyncTest, ZeroBytesAreAnUnlockedMutexAnEmptySemaphoreAndAnOpenLatch) {
  SharedArrayBuffer sab(64);
  const SharedMutex m(sab, 0);
  const SharedSemaphore s(sab, 8);
  const SharedLatch l(sab, 16);
  EXPECT_EQ(s.count_approx(), 0);
  EXPECT_FALSE(s.try_acquire());
  EXPECT_TRUE(l.try_wait());
  l.wait();  // returns at once
  ASSERT_TRUE(m.try_lock());
  m.unlock();
}

TEST_F(SyncTest, ObjectsStayInTheirOwnBytes) {
  SharedArrayBuffer sab(32);
  const SharedSemaphore s(sab, 4);
  s.init(7);
  s.release(3);
  const Int32View all(sab);
  EXPECT_EQ(atomics::load(all, 0), 0);
  EXPECT_EQ(atomics::load(all, 1), 10);  // the count
  EXPECT_EQ(atomics::load(all, 3), 0);
}

// ---- SharedMutex -------------------------------------------------------------------

TEST_P(SyncSweepTest, MutexGivesMutualExclusionToAPlainCounter) {
  const int threads = GetParam();
  constexpr int kIncrements = 20'000;
  SharedArrayBuffer sab(64);
  // The counter is a plain (non-atomic) int64 in the region: only the mutex
  // keeps the increments from racing (TSan would report a lost ordering).
  auto* counter = reinterpret_cast<std::int64_t*>(sab.data() + 8);
  testing::StartBarrier start(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([sab, &start] {
      SharedMutex m(sab, 0);  // this thread's own handle
      auto* c = reinterpret_cast<std::int64_t*>(sab.data() + 8);
      start.arrive_and_wait();
      for (int i = 0; i < kIncrements; ++i) {
        std::lock_guard<SharedMutex> guard(m);
        *c = *c + 1;
      }
    });
  }
  for (auto& th : pool) th.join();
  EXPECT_EQ(*counter, std::int64_t{threads} * kIncrements);
  EXPECT_EQ(atomics::load(Int32View(sab), 0), 0);  // left unlocked
}

TEST_F(SyncTest, TryLockFailsWhileHeldByAnotherThread) {
  SharedArrayBuffer sab(8);
  SharedMutex m(sab, 0);  // non-const: std::unique_lock takes a SharedMutex&
  std::unique_lock<SharedMutex> lock(m);
  bool got = true;
  std::thread([&] { got = SharedMutex(sab, 0).try_lock(); }).join();
  EXPECT_FALSE(got);
  EXPECT_FALSE(m.try_lock());  // not recursive
  lock.unlock();
  std::thread([&] {
    const SharedMutex other(sab, 0);
    got = other.try_lock();
    if (got) other.unlock();
  }).join();
  EXPECT_TRUE(got);
}

TEST_F(SyncTest, HandlesOverTheSameOffsetAreOneMutexAndOtherOffsetsAreNot) {
  SharedArrayBuffer sab(16);
  const SharedMutex a(sab, 0);
  const SharedMutex copy = a;
  ASSERT_TRUE(a.try_lock());
  EXPECT_FALSE(copy.try_lock());
  EXPECT_FALSE(SharedMutex(SharedArrayBuffer(sab), 0).try_lock());
  const SharedMutex neighbour(sab, 4);
  EXPECT_TRUE(neighbour.try_lock());
  neighbour.unlock();
  copy.unlock();  // any handle may unlock
  EXPECT_TRUE(a.try_lock());
  a.unlock();
}

TEST_F(SyncTest, UnlockWakesABlockedLocker) {
  SharedArrayBuffer sab(8);
  const SharedMutex m(sab, 0);
  m.lock();
  std::atomic<bool> got{false};
  std::thread t([&] {
    const SharedMutex mine(sab, 0);
    mine.lock();
    got = true;
    mine.unlock();
  });
  wait_for_waiters(sab, 0, 1);
  EXPECT_FALSE(got);
  m.unlock();
  t.join();
  EXPECT_TRUE(got);
}

TEST_F(SyncTest, TryLockForReturnsFalseNotBeforeItsDeadline) {
  SharedArrayBuffer sab(8);
  const SharedMutex m(sab, 0);
  m.lock();
  bool got = true;
  std::chrono::steady_clock::duration took{};
  std::thread([&] {
    const auto t0 = std::chrono::steady_clock::now();
    got = SharedMutex(sab, 0).try_lock_for(20ms);
    took = std::chrono::steady_clock::now() - t0;
  }).join();
  EXPECT_FALSE(got);
  EXPECT_GE(took, 20ms);
  EXPECT_FALSE(m.try_lock_for(-1s));  // negative counts as zero
  m.unlock();
  EXPECT_TRUE(m.try_lock_for(0s));  // free: taken without waiting
  m.unlock();
}

TEST_F(SyncTest, TryLockForSucceedsWhenUnlockedBeforeTheDeadline) {
  SharedArrayBuffer sab(8);
  const SharedMutex m(sab, 0);
  m.lock();
  bool got = false;
  std::thread t([&] {
    const SharedMutex mine(sab, 0);
    got = mine.try_lock_until(std::chrono::steady_clock::now() + testing::kHangGuard);
    if (got) mine.unlock();
  });
  wait_for_waiters(sab, 0, 1);
  m.unlock();
  t.join();
  EXPECT_TRUE(got);
}

// ---- SharedSemaphore ---------------------------------------------------------------

TEST_F(SyncTest, SemaphoreHandsOutExactlyItsCount) {
  SharedArrayBuffer sab(8);
  const SharedSemaphore s(sab, 0);
  s.init(3);
  EXPECT_TRUE(s.try_acquire());
  EXPECT_TRUE(s.try_acquire());
  EXPECT_TRUE(s.try_acquire());
  EXPECT_FALSE(s.try_acquire());
  s.release(2);
  EXPECT_EQ(s.count_approx(), 2);
  s.acquire();  // available: does not block
  EXPECT_TRUE(SharedSemaphore(sab, 0).try_acquire());
  EXPECT_FALSE(s.try_acquire());
  s.release(0);
  EXPECT_EQ(s.count_approx(), 0);
}

TEST_F(SyncTest, SemaphoreReleaseOfNWakesNBlockedAcquirers) {
  SharedArrayBuffer sab(8);
  constexpr int kWaiters = 4;
  std::atomic<int> acquired{0};
  std::vector<std::thread> pool;
  for (int i = 0; i < kWaiters; ++i) {
    pool.emplace_back([sab, &acquired] {
      SharedSemaphore(sab, 0).acquire();
      acquired.fetch_add(1);
    });
  }
  const SharedSemaphore s(sab, 0);
  wait_for_waiters(sab, 0, kWaiters);
  s.release(3);
  wait_for_waiters(sab, 0, 1);  // three left the wait list; one is still asleep
  while (acquired.load() != 3) std::this_thread::yield();
  EXPECT_EQ(s.count_approx(), 0);
  s.release(1);
  for (auto& t : pool) t.join();
  EXPECT_EQ(acquired.load(), kWaiters);
  EXPECT_EQ(s.count_approx(), 0);
}

TEST_F(SyncTest, SemaphoreTryAcquireForReturnsFalseNotBeforeItsDeadline) {
  SharedArrayBuffer sab(8);
  const SharedSemaphore s(sab, 0);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(s.try_acquire_for(20ms));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 20ms);
  EXPECT_EQ(atomics::load(Int32View(sab), 1), 0);  // no sleeper left counted
  s.release();
  EXPECT_TRUE(s.try_acquire_for(0s));
}

TEST_P(SyncSweepTest, SemaphoreConservesUnitsBetweenProducersAndConsumers) {
  const int pairs = GetParam();
  constexpr int kUnits = 10'000;
  SharedArrayBuffer sab(8);
  testing::StartBarrier start(2 * pairs);
  std::vector<std::thread> pool;
  for (int p = 0; p < pairs; ++p) {
    pool.emplace_back([sab, &start] {
      const SharedSemaphore s(sab, 0);
      start.arrive_and_wait();
      for (int i = 0; i < kUnits; ++i) s.release();
    });
    pool.emplace_back([sab, &start] {
      const SharedSemaphore s(sab, 0);
      start.arrive_and_wait();
      for (int i = 0; i < kUnits; ++i) {
        if (i % 2 == 0) {
          s.acquire();
        } else {
          while (!s.try_acquire_for(testing::kHangGuard)) {
          }
        }
      }
    });
  }
  for (auto& t : pool) t.join();
  const SharedSemaphore s(sab, 0);
  EXPECT_EQ(s.count_approx(), 0);
  EXPECT_EQ(atomics::load(Int32View(sab), 1), 0);  // no sleeper left counted
}

// ---- SharedLatch -------------------------------------------------------------------

TEST_F(SyncTest, LatchReleasesEveryWaiterExactlyWhenTheCountHitsZero) {
  constexpr int kWaiters = 4;
  constexpr int kCount = 5;
  SharedArrayBuffer sab(4);
  const SharedLatch latch(sab, 0);
  latch.init(kCount);
  std::atomic<int> released{0};
  std::vector<std::thread> pool;
  for (int i = 0; i < kWaiters; ++i) {
    pool.emplace_back([sab, &released] {
      SharedLatch(sab, 0).wait();
      released.fetch_add(1);
    });
  }
  wait_for_waiters(sab, 0, kWaiters);
  latch.count_down(kCount - 2);
  latch.count_down();
  EXPECT_FALSE(latch.try_wait());
  EXPECT_EQ(released.load(), 0);
  EXPECT_EQ(internal::waiter_count_approx(Int32View(sab), 0), std::size_t{kWaiters});
  latch.count_down();
  for (auto& t : pool) t.join();
  EXPECT_EQ(released.load(), kWaiters);
  EXPECT_TRUE(latch.try_wait());
}

TEST_P(SyncSweepTest, LatchArriveAndWaitReturnsOnlyOnceAllHaveArrived) {
  const int threads = GetParam();
  SharedArrayBuffer sab(64);
  const SharedLatch latch(sab, 0);
  latch.init(threads);
  // Plain ints in the region, each written by one thread before it arrives.
  auto* marks = reinterpret_cast<std::int32_t*>(sab.data() + 4);
  std::vector<std::thread> pool;
  std::atomic<int> bad{0};
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([sab, t, threads, &bad] {
      auto* mine = reinterpret_cast<std::int32_t*>(sab.data() + 4);
      mine[t] = t + 1;
      SharedLatch(sab, 0).arrive_and_wait();
      for (int u = 0; u < threads; ++u) {
        if (mine[u] != u + 1) bad.fetch_add(1);  // every write before count_down is seen
      }
    });
  }
  for (auto& th : pool) th.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(marks[threads - 1], threads);
  EXPECT_TRUE(latch.try_wait());
}

// ---- SharedBarrier -----------------------------------------------------------------

TEST_P(SyncSweepTest, BarrierEveryPartySeesEveryPhaseAcross1000Phases) {
  const int parties = GetParam();
  constexpr int kPhases = 1000;
  // The barrier at 0, then one plain int32 per party: party t writes the
  // phase number into its slot before arriving; after the phase, every party
  // reads every slot and must find that same phase.
  SharedArrayBuffer sab(16 + 4 * 8);
  SharedBarrier(sab, 0).init(parties);
  testing::StartBarrier start(parties);
  std::atomic<int> bad{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < parties; ++t) {
    pool.emplace_back([sab, t, parties, &start, &bad] {
      const SharedBarrier barrier(sab, 0);
      auto* slots = reinterpret_cast<std::int32_t*>(sab.data() + 16);
      start.arrive_and_wait();
      for (int phase = 0; phase < kPhases; ++phase) {
        slots[t] = phase;
        barrier.arrive_and_wait();
        for (int u = 0; u < parties; ++u) {
          if (slots[u] != phase) bad.fetch_add(1);
        }
        // Nobody may write the next phase's slot until everyone has read this one.
        barrier.arrive_and_wait();
      }
    });
  }
  for (auto& th : pool) th.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(SharedBarrier(sab, 0).phase_approx(), 2u * kPhases);
}

TEST_F(SyncTest, BarrierHoldsEarlyArriversUntilTheLastParty) {
  SharedArrayBuffer sab(12);
  const SharedBarrier barrier(sab, 0);
  barrier.init(3);
  std::atomic<int> passed{0};
  std::vector<std::thread> pool;
  for (int i = 0; i < 2; ++i) {
    pool.emplace_back([sab, &passed] {
      SharedBarrier(sab, 0).arrive_and_wait();
      passed.fetch_add(1);
    });
  }
  wait_for_waiters(sab, 4, 2);  // both asleep on the phase word
  EXPECT_EQ(passed.load(), 0);
  EXPECT_EQ(barrier.phase_approx(), 0u);
  barrier.arrive_and_wait();  // the third party: nobody waits for it
  for (auto& t : pool) t.join();
  EXPECT_EQ(passed.load(), 2);
  EXPECT_EQ(barrier.phase_approx(), 1u);
}

TEST_F(SyncTest, BarrierOfOnePartyNeverBlocks) {
  SharedArrayBuffer sab(12);
  const SharedBarrier barrier(sab, 0);
  barrier.init(1);
  for (int i = 0; i < 10; ++i) barrier.arrive_and_wait();
  EXPECT_EQ(barrier.phase_approx(), 10u);
}

// --- interruption (Worker::terminate()) -------------------------------------------

// D12: acquire() raised the semaphore's sleeper count, and a wait that threw
// WaitInterrupted (the worker being terminated) never gave it back: every
// later release() then paid a notify that woke no one. White-box: the sleeper
// count is the semaphore's second Int32 (see kByteLength).
TEST_F(SyncTest, SemaphoreAcquireInterruptedGivesItsSleeperCountBack) {
  SharedArrayBuffer sab(8);
  SharedSemaphore sem(sab, 0);
  Int32View words(sab, 0, 2);
  internal::WaitInterruptor interruptor;
  bool interrupted = false;
  std::thread worker([&] {
    internal::set_thread_interruptor(&interruptor);
    try {
      sem.acquire();
    } catch (const atomics::WaitInterrupted&) {
      interrupted = true;
    }
    internal::set_thread_interruptor(nullptr);
  });
  wait_for_waiters(sab, 0, 1);
  EXPECT_EQ(atomics::load(words, 1), 1);
  interruptor.interrupt();
  worker.join();
  EXPECT_TRUE(interrupted);
  EXPECT_EQ(atomics::load(words, 1), 0) << "the interrupted acquire left its sleeper count";
  // release() reads the sleeper count to decide whether to notify: with none
  // left it pays no wake-up, and the unit is there for the next acquirer.
  sem.release();
  EXPECT_EQ(sem.count_approx(), 1);
  EXPECT_TRUE(sem.try_acquire());
}

// The same through the timed form, and a mutex lock() interrupted: the mutex
// stays usable (the word may stay "contended", which costs one spare notify).
TEST_F(SyncTest, InterruptedTimedAcquireAndLockLeaveTheObjectsUsable) {
  SharedArrayBuffer sab(12);
  SharedSemaphore sem(sab, 0);
  SharedMutex mu(sab, 8);
  Int32View words(sab, 0, 2);
  mu.lock();
  internal::WaitInterruptor interruptor;
  int interrupted = 0;
  std::thread worker([&] {
    internal::set_thread_interruptor(&interruptor);
    try {
      (void)sem.try_acquire_for(1h);
    } catch (const atomics::WaitInterrupted&) {
      ++interrupted;
    }
    try {
      mu.lock();  // the interruptor is pending: throws at once
    } catch (const atomics::WaitInterrupted&) {
      ++interrupted;
    }
    internal::set_thread_interruptor(nullptr);
  });
  wait_for_waiters(sab, 0, 1);
  interruptor.interrupt();
  worker.join();
  EXPECT_EQ(interrupted, 2);
  EXPECT_EQ(atomics::load(words, 1), 0);
  mu.unlock();
  EXPECT_TRUE(mu.try_lock());
  mu.unlock();
}

// Timeouts mean what base/deadline.h says: NaN and kForever wait for good
// (they used to be UB or "~100 years"), zero or less does not wait.
TEST_F(SyncTest, ForeverAndNanTimeoutsWaitUntilReleased) {
  SharedArrayBuffer sab(8);
  SharedSemaphore sem(sab, 0);
  for (int round = 0; round < 2; ++round) {
    bool got = false;
    std::thread t([&] {
      got = round == 0 ? sem.try_acquire_for(std::chrono::duration<double>(std::nan("")))
                       : sem.try_acquire_for(kForever);
    });
    wait_for_waiters(sab, 0, 1);
    sem.release();
    t.join();
    EXPECT_TRUE(got);
  }
  EXPECT_FALSE(sem.try_acquire_for(std::chrono::duration<double>(-1.0)));
  EXPECT_FALSE(sem.try_acquire_for(0ms));
  SharedMutex mu(sab, 4);
  mu.lock();
  EXPECT_FALSE(mu.try_lock_for(std::chrono::duration<double>(-0.5)));
  EXPECT_FALSE(mu.try_lock_until(std::chrono::steady_clock::time_point::min()));
  mu.unlock();
  EXPECT_TRUE(mu.try_lock_until(std::chrono::steady_clock::time_point::max()));
  mu.unlock();
}
}  // namespace
}  // namespace weave
