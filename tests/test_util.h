// Helpers shared by weave's tests: a clean-shutdown check that every test ends
// with (no thread or fd left behind; bytes are checked by LeakSanitizer under
// --config=asan), and a start barrier for concurrency tests.
#pragma once

#include <dirent.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <thread>

#include "tests/thread_state.h"

namespace weave::testing {

// Entries in a /proc/self directory, not counting "." and "..".
inline std::size_t count_dir_entries(const char* path) {
  std::size_t n = 0;
  if (DIR* d = opendir(path)) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') ++n;
    }
    closedir(d);
  }
  return n;
}
inline std::size_t thread_count() { return count_dir_entries("/proc/self/task"); }
// The fd that opendir itself holds while counting is excluded by measuring
// the same way at both ends.
inline std::size_t fd_count() { return count_dir_entries("/proc/self/fd"); }

// ThreadSanitizer starts a background thread of its own on the process's
// first pthread_create, which CleanShutdownTest would blame on whichever test
// runs first. Creating (and joining) one thread before any test settles that.
class SanitizerThreadWarmUp : public ::testing::Environment {
 public:
  void SetUp() override {
    std::thread([] {}).join();
  }
};
inline ::testing::Environment* const kSanitizerThreadWarmUp =
    ::testing::AddGlobalTestEnvironment(new SanitizerThreadWarmUp);

// A fixture whose TearDown proves that the test left no thread or fd behind.
class CleanShutdownTest : public ::testing::Test {
 protected:
  void SetUp() override {
    threads_ = thread_count();
    fds_ = fd_count();
  }
  void TearDown() override {
    // pthread_join returns when the thread has finished, but the kernel may
    // list it in /proc/self/task a moment longer (and may still have listed
    // an earlier test's thread at SetUp). Let that settle; bounded, so a
    // thread that really leaked still fails.
    for (int i = 0; i < 100'000 && thread_count() > threads_; ++i) std::this_thread::yield();
    EXPECT_LE(thread_count(), threads_) << "a thread outlived the test";
    EXPECT_EQ(fd_count(), fds_) << "an fd outlived the test";
  }

 private:
  std::size_t threads_ = 0;
  std::size_t fds_ = 0;
};

// All parties block in arrive_and_wait() until the last one arrives.
class StartBarrier {
 public:
  explicit StartBarrier(int parties) : left_(parties) {}
  void arrive_and_wait() {
    if (left_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      left_.notify_all();
      return;
    }
    for (int v = left_.load(std::memory_order_acquire); v != 0;
         v = left_.load(std::memory_order_acquire)) {
      left_.wait(v, std::memory_order_acquire);
    }
  }

 private:
  std::atomic<int> left_;
};

// A bound against hanging in tests that wait for another thread to reach a
// state: not a timing assertion.
inline constexpr auto kHangGuard = std::chrono::seconds(10);

// Stress targets divide their counts by this: the sanitizers run ~10x slower.
#if defined(WEAVE_TSAN) || defined(WEAVE_ASAN)
inline constexpr int kStressScale = 10;
#else
inline constexpr int kStressScale = 1;
#endif

// Polls `done` until it holds, at most kHangGuard: for what nothing signals
// (counters, the end of a thread). The pause between polls is back-off, not a
// wait for anything; a false return fails the test instead of hanging it.
template <class Pred>
bool eventually(Pred done) {
  const auto deadline = std::chrono::steady_clock::now() + kHangGuard;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  return true;
}

using ::weave::proc::current_tid;
using ::weave::proc::thread_state;

// Waits until thread `tid` sleeps in the kernel. Call it only once that
// thread signalled, from inside its loop, that it has nothing left to do
// there, so the loop's park is the only place it can sleep. False if that did
// not happen within kHangGuard (a loop that spins instead of parking).
inline bool wait_until_parked(pid_t tid) {
  const auto deadline = std::chrono::steady_clock::now() + kHangGuard;
  while (thread_state(tid) != 'S') {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

}  // namespace weave::testing
