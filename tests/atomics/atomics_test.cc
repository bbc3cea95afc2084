// weave::atomics: every operation's return value on every integer width,
// wrap-around, bounds, and wait/notify's outcomes, counts and FIFO order.
#include "atomics/atomics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <thread>
#include <vector>

#include "tests/atomics/waiters.h"
#include "tests/test_util.h"

namespace weave {
namespace {

using ::testing::HasSubstr;

// ---- the read-modify-write set, typed over every integer width ---------------

template <class T>
class AtomicsTypedTest : public testing::CleanShutdownTest {
 protected:
  SharedArrayBuffer sab_{64};
  SharedView<T> view_{sab_, 0, 4};
};

using IntegerTypes = ::testing::Types<std::int8_t, std::uint8_t, std::int16_t, std::uint16_t,
                                      std::int32_t, std::uint32_t, std::int64_t, std::uint64_t>;
TYPED_TEST_SUITE(AtomicsTypedTest, IntegerTypes);

TYPED_TEST(AtomicsTypedTest, StoreReturnsTheValueAndLoadReadsIt) {
  using T = TypeParam;
  EXPECT_EQ(atomics::load(this->view_, 1), T{0});
  EXPECT_EQ(atomics::store(this->view_, 1, T{42}), T{42});
  EXPECT_EQ(atomics::load(this->view_, 1), T{42});
  EXPECT_EQ(atomics::store(this->view_, 2, std::numeric_limits<T>::max()),
            std::numeric_limits<T>::max());
  EXPECT_EQ(atomics::load(this->view_, 2), std::numeric_limits<T>::max());
  EXPECT_EQ(atomics::store(this->view_, 3, std::numeric_limits<T>::min()),
            std::numeric_limits<T>::min());
  EXPECT_EQ(atomics::load(this->view_, 3), std::numeric_limits<T>::min());
  EXPECT_EQ(this->view_.load(3), std::numeric_limits<T>::min());  // the plain view read agrees
}

TYPED_TEST(AtomicsTypedTest, AddReturnsOldValueAndWrapsAtMax) {
  using T = TypeParam;
  atomics::store(this->view_, 0, T{5});
  EXPECT_EQ(atomics::add(this->view_, 0, T{3}), T{5});
  EXPECT_EQ(atomics::load(this->view_, 0), T{8});
  atomics::store(this->view_, 0, std::numeric_limits<T>::max());
  EXPECT_EQ(atomics::add(this->view_, 0, T{1}), std::numeric_limits<T>::max());
  EXPECT_EQ(atomics::load(this->view_, 0),
            std::numeric_limits<T>::min());  // wraps, also when signed
}

TYPED_TEST(AtomicsTypedTest, SubReturnsOldValueAndWrapsAtMin) {
  using T = TypeParam;
  atomics::store(this->view_, 0, T{9});
  EXPECT_EQ(atomics::sub(this->view_, 0, T{4}), T{9});
  EXPECT_EQ(atomics::load(this->view_, 0), T{5});
  atomics::store(this->view_, 0, std::numeric_limits<T>::min());
  EXPECT_EQ(atomics::sub(this->view_, 0, T{1}), std::numeric_limits<T>::min());
  EXPECT_EQ(atomics::load(this->view_, 0), std::numeric_limits<T>::max());
}

TYPED_TEST(AtomicsTypedTest, BitOperationsReturnOldValue) {
  using T = TypeParam;
  atomics::store(this->view_, 0, T{0b1100});
  EXPECT_EQ(atomics::bit_and(this->view_, 0, T{0b1010}), T{0b1100});
  EXPECT_EQ(atomics::load(this->view_, 0), T{0b1000});
  EXPECT_EQ(atomics::bit_or(this->view_, 0, T{0b0011}), T{0b1000});
  EXPECT_EQ(atomics::load(this->view_, 0), T{0b1011});
  EXPECT_EQ(atomics::bit_xor(this->view_, 0, T{0b0110}), T{0b1011});
  EXPECT_EQ(atomics::load(this->view_, 0), T{0b1101});
  // All bits: for signed types the sign bit takes part like any other.
  EXPECT_EQ(atomics::bit_xor(this->view_, 0, static_cast<T>(~T{0})), T{0b1101});
  EXPECT_EQ(atomics::load(this->view_, 0), static_cast<T>(~T{0b1101}));
  EXPECT_EQ(atomics::bit_or(this->view_, 0, std::numeric_limits<T>::min()),
            static_cast<T>(~T{0b1101}));
}

TYPED_TEST(AtomicsTypedTest, ExchangeReturnsOldValue) {
  using T = TypeParam;
  atomics::store(this->view_, 2, T{7});
  EXPECT_EQ(atomics::exchange(this->view_, 2, std::numeric_limits<T>::max()), T{7});
  EXPECT_EQ(atomics::exchange(this->view_, 2, std::numeric_limits<T>::min()),
            std::numeric_limits<T>::max());
  EXPECT_EQ(atomics::load(this->view_, 2), std::numeric_limits<T>::min());
}

TYPED_TEST(AtomicsTypedTest, CompareExchangeReturnsWhatWasThere) {
  using T = TypeParam;
  atomics::store(this->view_, 1, T{10});
  // Mismatch: returns the current value, stores nothing.
  EXPECT_EQ(atomics::compare_exchange(this->view_, 1, T{11}, T{99}), T{10});
  EXPECT_EQ(atomics::load(this->view_, 1), T{10});
  // Match: returns the expected value, stores the replacement.
  EXPECT_EQ(atomics::compare_exchange(this->view_, 1, T{10}, std::numeric_limits<T>::min()), T{10});
  EXPECT_EQ(atomics::load(this->view_, 1), std::numeric_limits<T>::min());
  EXPECT_EQ(atomics::compare_exchange(this->view_, 1, std::numeric_limits<T>::min(),
                                      std::numeric_limits<T>::max()),
            std::numeric_limits<T>::min());
  EXPECT_EQ(atomics::load(this->view_, 1), std::numeric_limits<T>::max());
}

TYPED_TEST(AtomicsTypedTest, OperationsTouchOnlyTheirElement) {
  using T = TypeParam;
  atomics::store(this->view_, 1, std::numeric_limits<T>::max());
  atomics::add(this->view_, 1, T{1});
  atomics::sub(this->view_, 2, T{1});
  EXPECT_EQ(atomics::load(this->view_, 0), T{0});
  EXPECT_EQ(atomics::load(this->view_, 1), std::numeric_limits<T>::min());
  EXPECT_EQ(atomics::load(this->view_, 2), static_cast<T>(T{0} - T{1}));  // -1 or the max
  EXPECT_EQ(atomics::load(this->view_, 3), T{0});
}

TYPED_TEST(AtomicsTypedTest, OutOfRangeIndexThrowsAndWritesNothing) {
  using T = TypeParam;
  auto& v = this->view_;  // 4 elements at the start of a 64-byte buffer
  EXPECT_THAT(
      [&] {
        try {
          atomics::store(v, 4, T{1});
        } catch (const std::out_of_range& e) {
          return std::string(e.what());
        }
        return std::string();
      }(),
      HasSubstr("index 4 is out of range for length 4"));
  EXPECT_THROW((void)atomics::load(v, 4), std::out_of_range);
  EXPECT_THROW(atomics::add(v, 4, T{1}), std::out_of_range);
  EXPECT_THROW(atomics::sub(v, 5, T{1}), std::out_of_range);
  EXPECT_THROW(atomics::bit_and(v, 100, T{0}), std::out_of_range);
  EXPECT_THROW(atomics::bit_or(v, 4, T{1}), std::out_of_range);
  EXPECT_THROW(atomics::bit_xor(v, 4, T{1}), std::out_of_range);
  EXPECT_THROW(atomics::exchange(v, 4, T{1}), std::out_of_range);
  EXPECT_THROW(atomics::compare_exchange(v, 4, T{0}, T{1}), std::out_of_range);
  EXPECT_THROW(atomics::store(v, std::numeric_limits<std::size_t>::max(), T{1}), std::out_of_range);
  for (std::size_t i = 0; i < 64; ++i) ASSERT_EQ(this->sab_.data()[i], std::byte{0}) << i;
}

// ---- untyped -------------------------------------------------------------

class AtomicsTest : public testing::CleanShutdownTest {};

TEST_F(AtomicsTest, IsLockFreeMatchesNodeOnThisPlatform) {
  static_assert(atomics::is_lock_free(4), "usable in constant expressions");
  EXPECT_TRUE(atomics::is_lock_free(1));
  EXPECT_TRUE(atomics::is_lock_free(2));
  EXPECT_TRUE(atomics::is_lock_free(4));
  EXPECT_TRUE(atomics::is_lock_free(8));
  EXPECT_FALSE(atomics::is_lock_free(0));
  EXPECT_FALSE(atomics::is_lock_free(3));
  EXPECT_FALSE(atomics::is_lock_free(16));
}

TEST_F(AtomicsTest, SignedAndUnsignedViewsOfOneElementAgree) {
  SharedArrayBuffer sab(8);
  Int32View s(sab);
  Uint32View u(sab);
  atomics::store(u, 0, 0xFFFFFFFFu);
  EXPECT_EQ(atomics::load(s, 0), -1);
  EXPECT_EQ(atomics::add(s, 0, 1), -1);
  EXPECT_EQ(atomics::load(u, 0), 0u);
}

TEST_F(AtomicsTest, WaitResultStringsAreNodes) {
  EXPECT_EQ(atomics::to_string(atomics::WaitResult::kOk), "ok");
  EXPECT_EQ(atomics::to_string(atomics::WaitResult::kNotEqual), "not-equal");
  EXPECT_EQ(atomics::to_string(atomics::WaitResult::kTimedOut), "timed-out");
}

// ---- wait / notify -------------------------------------------------------

using testing::wait_for_waiters;

template <class T>
class WaitTypedTest : public testing::CleanShutdownTest {
 protected:
  SharedArrayBuffer sab_{64};
  SharedView<T> view_{sab_};
};
using WaitableTypes = ::testing::Types<std::int32_t, std::int64_t>;
TYPED_TEST_SUITE(WaitTypedTest, WaitableTypes);

TYPED_TEST(WaitTypedTest, WaitOnADifferentValueReturnsNotEqualAtOnce) {
  using T = TypeParam;
  atomics::store(this->view_, 0, T{1});
  EXPECT_EQ(atomics::wait(this->view_, 0, T{0}), atomics::WaitResult::kNotEqual);
  EXPECT_EQ(atomics::wait_for(this->view_, 0, T{0}, std::chrono::hours(1)),
            atomics::WaitResult::kNotEqual);
  EXPECT_EQ(internal::waiter_count_approx(this->view_, 0), 0u);
}

TYPED_TEST(WaitTypedTest, WaitComparesAllBitsOfTheElement) {
  using T = TypeParam;
  // Differs from the expected value only in the top bit.
  atomics::store(this->view_, 1, std::numeric_limits<T>::min());
  EXPECT_EQ(atomics::wait_for(this->view_, 1, T{0}, std::chrono::seconds(0)),
            atomics::WaitResult::kNotEqual);
  EXPECT_EQ(
      atomics::wait_for(this->view_, 1, std::numeric_limits<T>::min(), std::chrono::seconds(0)),
      atomics::WaitResult::kTimedOut);
}

TYPED_TEST(WaitTypedTest, TimedWaitReturnsTimedOutNotEarlierThanAsked) {
  using T = TypeParam;
  constexpr auto kTimeout = std::chrono::milliseconds(20);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(atomics::wait_for(this->view_, 0, T{0}, kTimeout), atomics::WaitResult::kTimedOut);
  EXPECT_GE(std::chrono::steady_clock::now() - start, kTimeout);
  EXPECT_EQ(internal::waiter_count_approx(this->view_, 0), 0u);  // it left the list
}

TYPED_TEST(WaitTypedTest, WaitUntilAPastDeadlineTimesOut) {
  using T = TypeParam;
  const auto past = std::chrono::steady_clock::now() - std::chrono::seconds(1);
  EXPECT_EQ(atomics::wait_until(this->view_, 0, T{0}, past), atomics::WaitResult::kTimedOut);
  EXPECT_EQ(atomics::wait_for(this->view_, 0, T{0}, std::chrono::milliseconds(-5)),
            atomics::WaitResult::kTimedOut);
}

TYPED_TEST(WaitTypedTest, NotifyWakesAWaiterWithOk) {
  using T = TypeParam;
  atomics::WaitResult result = atomics::WaitResult::kTimedOut;
  std::thread waiter([&] { result = atomics::wait(this->view_, 2, T{0}); });
  ASSERT_TRUE(wait_for_waiters(this->view_, 2, 1));
  EXPECT_EQ(atomics::notify(this->view_, 2), 1u);
  waiter.join();
  EXPECT_EQ(result, atomics::WaitResult::kOk);
}

TYPED_TEST(WaitTypedTest, HugeTimeoutWaitsUntilNotified) {
  using T = TypeParam;
  atomics::WaitResult result = atomics::WaitResult::kTimedOut;
  // hours::max() would overflow a deadline; it counts as no timeout.
  std::thread waiter(
      [&] { result = atomics::wait_for(this->view_, 0, T{0}, std::chrono::hours::max()); });
  ASSERT_TRUE(wait_for_waiters(this->view_, 0, 1));
  EXPECT_EQ(atomics::notify(this->view_, 0), 1u);
  waiter.join();
  EXPECT_EQ(result, atomics::WaitResult::kOk);
}

TYPED_TEST(WaitTypedTest, WaitAndNotifyOutOfRangeThrow) {
  using T = TypeParam;
  const std::size_t n = this->view_.length();
  EXPECT_THROW((void)atomics::wait(this->view_, n, T{0}), std::out_of_range);
  EXPECT_THROW((void)atomics::wait_for(this->view_, n, T{0}, std::chrono::seconds(1)),
               std::out_of_range);
  EXPECT_THROW(atomics::notify(this->view_, n), std::out_of_range);
}

TEST_F(AtomicsTest, NotifyWithNoWaitersReturnsZero) {
  SharedArrayBuffer sab(16);
  Int32View v(sab);
  EXPECT_EQ(atomics::notify(v, 0), 0u);
  EXPECT_EQ(atomics::notify(v, 3, 1), 0u);
}

TEST_F(AtomicsTest, NotifyWakesOnlyWaitersOnThatElement) {
  SharedArrayBuffer sab(16);
  Int32View v(sab);
  std::thread waiter([&] { EXPECT_EQ(atomics::wait(v, 1, 0), atomics::WaitResult::kOk); });
  ASSERT_TRUE(wait_for_waiters(v, 1, 1));
  EXPECT_EQ(atomics::notify(v, 0), 0u);
  EXPECT_EQ(atomics::notify(v, 2), 0u);
  EXPECT_EQ(internal::waiter_count_approx(v, 1), 1u);
  // Another view of the same memory names the same element.
  EXPECT_EQ(atomics::notify(Int32View(sab, 4), 0), 1u);
  waiter.join();
}

// --- interruption (what Worker::terminate() uses) -------------------------------

TEST_F(AtomicsTest, InterruptWakesAWaitInProgressWhichThrowsWaitInterrupted) {
  SharedArrayBuffer sab(8);
  Int32View v(sab);
  internal::WaitInterruptor interruptor;
  bool interrupted = false;
  std::thread waiter([&] {
    internal::set_thread_interruptor(&interruptor);
    try {
      (void)atomics::wait(v, 0, 0);
    } catch (const atomics::WaitInterrupted&) {
      interrupted = true;
    }
    internal::set_thread_interruptor(nullptr);
  });
  ASSERT_TRUE(wait_for_waiters(v, 0, 1));
  interruptor.interrupt();
  waiter.join();
  EXPECT_TRUE(interrupted);
  EXPECT_EQ(internal::waiter_count_approx(v, 0), 0u);  // it left the list
  EXPECT_EQ(atomics::notify(v, 0), 0u);
}

TEST_F(AtomicsTest, InterruptBeforeTheWaitMakesEveryLaterWaitThrowAtOnce) {
  SharedArrayBuffer sab(8);
  Int32View v(sab);
  internal::WaitInterruptor interruptor;
  interruptor.interrupt();
  int thrown = 0;
  std::thread t([&] {
    internal::set_thread_interruptor(&interruptor);
    for (int i = 0; i < 3; ++i) {
      try {
        (void)atomics::wait(v, 0, 0);
      } catch (const atomics::WaitInterrupted&) {
        ++thrown;
      }
    }
    internal::set_thread_interruptor(nullptr);
  });
  t.join();
  EXPECT_EQ(thrown, 3);
}

TEST_F(AtomicsTest, InterruptingOneThreadLeavesOtherWaitersAlone) {
  SharedArrayBuffer sab(8);
  Int32View v(sab);
  internal::WaitInterruptor first_interruptor;
  bool first_interrupted = false;
  atomics::WaitResult second = atomics::WaitResult::kNotEqual;
  std::thread first([&] {
    internal::set_thread_interruptor(&first_interruptor);
    try {
      (void)atomics::wait(v, 0, 0);
    } catch (const atomics::WaitInterrupted&) {
      first_interrupted = true;
    }
    internal::set_thread_interruptor(nullptr);
  });
  ASSERT_TRUE(wait_for_waiters(v, 0, 1));
  std::thread other([&] { second = atomics::wait(v, 0, 0); });  // no interruptor
  ASSERT_TRUE(wait_for_waiters(v, 0, 2));
  first_interruptor.interrupt();
  first.join();
  EXPECT_TRUE(first_interrupted);
  EXPECT_EQ(internal::waiter_count_approx(v, 0), 1u);
  EXPECT_EQ(atomics::notify(v, 0), 1u);
  other.join();
  EXPECT_EQ(second, atomics::WaitResult::kOk);
}

TEST_F(AtomicsTest, NotifyCountWakesNOfM) {
  constexpr int kWaiters = 5;
  SharedArrayBuffer sab(8);
  Int32View v(sab);
  std::vector<std::thread> threads;
  for (int t = 0; t < kWaiters; ++t) {
    threads.emplace_back([&] { EXPECT_EQ(atomics::wait(v, 0, 0), atomics::WaitResult::kOk); });
  }
  ASSERT_TRUE(wait_for_waiters(v, 0, kWaiters));
  EXPECT_EQ(atomics::notify(v, 0, 0), 0u);
  EXPECT_EQ(atomics::notify(v, 0, 2), 2u);
  EXPECT_EQ(internal::waiter_count_approx(v, 0), 3u);
  EXPECT_EQ(atomics::notify(v, 0), 3u);  // default: all
  EXPECT_EQ(atomics::notify(v, 0), 0u);
  for (auto& th : threads) th.join();
}

TEST_F(AtomicsTest, NotifyWakesWaitersInArrivalOrder) {
  constexpr int kWaiters = 6;
  SharedArrayBuffer sab(8 + kWaiters * 4);
  Int32View flag(sab, 0, 1);
  Int32View woke_order(sab, 8);  // woke_order[k] = which waiter was woken k-th
  Int32View next(sab, 4, 1);     // next slot in woke_order
  std::vector<std::thread> threads;
  for (int t = 0; t < kWaiters; ++t) {
    threads.emplace_back([&, t] {
      EXPECT_EQ(atomics::wait(flag, 0, 0), atomics::WaitResult::kOk);
      atomics::store(woke_order, atomics::add(next, 0, 1), t);
    });
    // Each waiter is confirmed in the list before the next one starts.
    ASSERT_TRUE(wait_for_waiters(flag, 0, t + 1));
  }
  for (int k = 0; k < kWaiters; ++k) {
    EXPECT_EQ(atomics::notify(flag, 0, 1), 1u);
    // The woken thread records itself before we wake the next.
    while (atomics::load(next, 0) != k + 1) std::this_thread::yield();
  }
  for (auto& th : threads) th.join();
  for (int k = 0; k < kWaiters; ++k) EXPECT_EQ(atomics::load(woke_order, k), k);
}

TEST_F(AtomicsTest, TimedOutWaiterLeavesOthersInOrder) {
  SharedArrayBuffer sab(8);
  Int32View v(sab);
  std::thread first([&] { EXPECT_EQ(atomics::wait(v, 0, 0), atomics::WaitResult::kOk); });
  ASSERT_TRUE(wait_for_waiters(v, 0, 1));
  EXPECT_EQ(atomics::wait_for(v, 0, 0, std::chrono::milliseconds(1)),
            atomics::WaitResult::kTimedOut);
  EXPECT_EQ(internal::waiter_count_approx(v, 0), 1u);
  EXPECT_EQ(atomics::notify(v, 0), 1u);
  first.join();
}

TEST_F(AtomicsTest, WritesBeforeNotifyAreVisibleToTheWokenWaiter) {
  SharedArrayBuffer sab(16);
  Int32View flag(sab, 0, 1);
  Float64View payload(sab, 8, 1);
  std::thread waiter([&] {
    while (atomics::wait(flag, 0, 0) != atomics::WaitResult::kNotEqual &&
           atomics::load(flag, 0) == 0) {
    }
    EXPECT_EQ(payload.load(0), 3.25);
  });
  ASSERT_TRUE(wait_for_waiters(flag, 0, 1));
  payload.store(0, 3.25);
  atomics::store(flag, 0, 1);
  atomics::notify(flag, 0);
  waiter.join();
}

class AtomicsCounterTest : public testing::CleanShutdownTest,
                           public ::testing::WithParamInterface<int> {};

TEST_P(AtomicsCounterTest, ConcurrentAddsReachTheExactTotal) {
  const int threads_n = GetParam();
  constexpr int kPerThread = 100'000;
  SharedArrayBuffer sab(16);
  Int64View counter(sab, 0, 1);
  Uint8View wrapping(sab, 8, 1);
  testing::StartBarrier start(threads_n);
  std::vector<std::thread> threads;
  for (int t = 0; t < threads_n; ++t) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      for (int k = 0; k < kPerThread; ++k) {
        atomics::add(counter, 0, 1);
        atomics::add(wrapping, 0, 1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(atomics::load(counter, 0), std::int64_t{threads_n} * kPerThread);
  EXPECT_EQ(atomics::load(wrapping, 0), static_cast<std::uint8_t>(threads_n * kPerThread));
}
INSTANTIATE_TEST_SUITE_P(Threads, AtomicsCounterTest, ::testing::Values(2, 4, 8));

// --- conformance with test262 (Atomics.wait / Atomics.notify) ---------------------

// test262 built-ins/Atomics/wait/nan-for-timeout: a NaN timeout is +Infinity.
// It used to be undefined behaviour (NaN converted to an integer inside
// std::chrono::ceil): it timed out at once, or not, at random.
TEST_F(AtomicsTest, NanTimeoutWaitsUntilNotified) {
  SharedArrayBuffer sab(8);
  Int32View v(sab);
  atomics::WaitResult result = atomics::WaitResult::kTimedOut;
  std::thread waiter(
      [&] { result = atomics::wait_for(v, 0, 0, std::chrono::duration<double>(std::nan(""))); });
  ASSERT_TRUE(wait_for_waiters(v, 0, 1));
  EXPECT_EQ(atomics::notify(v, 0), 1u);
  waiter.join();
  EXPECT_EQ(result, atomics::WaitResult::kOk);
}

TEST_F(AtomicsTest, ForeverAndHugeFloatingTimeoutsWaitUntilNotified) {
  SharedArrayBuffer sab(8);
  Int32View v(sab);
  for (auto timeout : {std::chrono::duration<double>(1e300),
                       std::chrono::duration<double>(std::numeric_limits<double>::infinity())}) {
    atomics::WaitResult result = atomics::WaitResult::kTimedOut;
    std::thread waiter([&] { result = atomics::wait_for(v, 0, 0, timeout); });
    ASSERT_TRUE(wait_for_waiters(v, 0, 1));
    EXPECT_EQ(atomics::notify(v, 0), 1u);
    waiter.join();
    EXPECT_EQ(result, atomics::WaitResult::kOk);
  }
  atomics::WaitResult result = atomics::WaitResult::kTimedOut;
  std::thread waiter([&] { result = atomics::wait_for(v, 0, 0, kForever); });
  ASSERT_TRUE(wait_for_waiters(v, 0, 1));
  EXPECT_EQ(atomics::notify(v, 0), 1u);
  waiter.join();
  EXPECT_EQ(result, atomics::WaitResult::kOk);
  // A negative floating timeout is zero: it does not wait.
  EXPECT_EQ(atomics::wait_for(v, 0, 0, std::chrono::duration<double>(-1e300)),
            atomics::WaitResult::kTimedOut);
  EXPECT_EQ(atomics::wait_for(v, 0, 0, std::chrono::duration<double>(-0.0)),
            atomics::WaitResult::kTimedOut);
}

TEST_F(AtomicsTest, WaitUntilTheEndOfTimeWaitsUntilNotified) {
  SharedArrayBuffer sab(8);
  Int32View v(sab);
  atomics::WaitResult result = atomics::WaitResult::kTimedOut;
  std::thread waiter([&] {
    result = atomics::wait_until(
        v, 0, 0, std::chrono::time_point<std::chrono::steady_clock, std::chrono::hours>::max());
  });
  ASSERT_TRUE(wait_for_waiters(v, 0, 1));
  EXPECT_EQ(atomics::notify(v, 0), 1u);
  waiter.join();
  EXPECT_EQ(result, atomics::WaitResult::kOk);
}

// test262 built-ins/Atomics/notify/negative-count: a negative count wakes
// none. It used to wake everyone (the count was a std::size_t: -1 became the
// largest count).
TEST_F(AtomicsTest, NotifyWithANegativeCountWakesNone) {
  SharedArrayBuffer sab(8);
  Int32View v(sab);
  std::vector<std::thread> waiters;
  for (int i = 0; i < 2; ++i) {
    waiters.emplace_back([&] { EXPECT_EQ(atomics::wait(v, 0, 0), atomics::WaitResult::kOk); });
  }
  ASSERT_TRUE(wait_for_waiters(v, 0, 2));
  EXPECT_EQ(atomics::notify(v, 0, -1), 0u);
  EXPECT_EQ(atomics::notify(v, 0, std::numeric_limits<std::int64_t>::min()), 0u);
  EXPECT_EQ(atomics::notify(v, 0, 0), 0u);
  EXPECT_EQ(internal::waiter_count_approx(v, 0), 2u);
  // Out of range is still checked with a count of none.
  EXPECT_THROW(atomics::notify(v, 2, -1), std::out_of_range);
  // An unsigned count as large as it gets is "all", not a negative one.
  EXPECT_EQ(atomics::notify(v, 0, std::numeric_limits<std::size_t>::max()), 2u);
  for (auto& t : waiters) t.join();
}

TEST_F(AtomicsTest, NotifyCountsAreExactWhateverTheirIntegerType) {
  SharedArrayBuffer sab(8);
  Int32View v(sab);
  std::vector<std::thread> waiters;
  for (int i = 0; i < 3; ++i) {
    waiters.emplace_back([&] { EXPECT_EQ(atomics::wait(v, 0, 0), atomics::WaitResult::kOk); });
  }
  ASSERT_TRUE(wait_for_waiters(v, 0, 3));
  EXPECT_EQ(atomics::notify(v, 0, std::int8_t{1}), 1u);
  EXPECT_EQ(atomics::notify(v, 0, std::uint16_t{1}), 1u);
  EXPECT_EQ(atomics::notify(v, 0, atomics::kNotifyAll), 1u);
  for (auto& t : waiters) t.join();
}

// A float view given to an atomic operation: JS throws a TypeError; here it
// does not compile, and the diagnostic names atomics::AtomicElement (it used
// to be an obscure std::make_unsigned<double> error from inside the library).
template <class View, class E>
concept CanAdd = requires(View v, E e) {
  atomics::add(v, 0, e);
};
template <class View, class E>
concept CanLoadStore = requires(View v, E e) {
  atomics::load(v, 0);
  atomics::store(v, 0, e);
};
template <class View, class E>
concept CanCompareExchange = requires(View v, E e) {
  atomics::compare_exchange(v, 0, e, e);
};
static_assert(!CanAdd<Float64View, double>, "a float view must not take atomics::add");
static_assert(!CanAdd<Float32View, float>, "a float view must not take atomics::add");
static_assert(!CanLoadStore<Float64View, double>);
static_assert(!CanCompareExchange<Float32View, float>);
static_assert(CanAdd<Int32View, std::int32_t> && CanAdd<Uint8View, std::uint8_t>);
static_assert(CanLoadStore<Int64View, std::int64_t>);
static_assert(CanCompareExchange<Uint16View, std::uint16_t>);
static_assert(!atomics::AtomicElement<float> && !atomics::AtomicElement<double> &&
              !atomics::AtomicElement<bool> && atomics::AtomicElement<std::int64_t>);
}  // namespace
}  // namespace weave
