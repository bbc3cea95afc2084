// The harness weave's benchmark binaries share: die(), CPU pinning
// (nth_cpu, pin_this_thread, PinScope), the loop's waiting protocol copied
// for the raw baselines (WakeWord), and the two-bare-queue echo baseline
// (RawEcho). One copy, so every binary's baselines wait exactly the same way.
// Private to //benchmarks.
//
// Threading: die, nth_cpu and the pinning calls may be used from any thread
// (each pins the calling thread). A WakeWord is parked on by one thread (its
// owner) and notified by any. A RawEcho is driven by one benchmark thread.
#pragma once

#include <benchmark/benchmark.h>
#include <concurrentqueue/concurrentqueue.h>
#include <errno.h>  // program_invocation_short_name (GNU)
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <utility>

#include "atomics/internal/futex.h"
#include "channel/value.h"

namespace weave::bench {

using internal::cpu_relax;

// Prints "<binary>: <what>" and aborts: a benchmark that saw a wrong result
// must not report a figure.
[[noreturn]] inline void die(const char* what) {
  std::fprintf(stderr, "%s: %s\n", program_invocation_short_name, what);
  std::abort();
}

// --- CPU placement ------------------------------------------------------------------
//
// A benchmark thread runs on the first CPU of the process's affinity mask and
// its peer thread on the second. Unpinned, on a busy 2-core machine the
// scheduler often puts both threads on one core; then every wait burns its
// whole 20 us spin before parking and a round trip measures ~2 x 20 us of
// spinning plus two context switches, for library and baseline alike.
// WEAVE_BENCH_NO_PIN=1 leaves placement to the scheduler. With fewer than two
// CPUs available nothing is pinned.

// The n-th CPU (0-based) of the process's affinity mask as of first use (the
// first benchmark, before any thread is pinned), or -1 when pinning is off or
// there are not enough CPUs.
inline int nth_cpu(int n) {
  static const cpu_set_t mask = [] {
    cpu_set_t m;
    CPU_ZERO(&m);
    if (sched_getaffinity(0, sizeof(m), &m) != 0) CPU_ZERO(&m);
    return m;
  }();
  static const bool enabled = [] {
    const char* e = std::getenv("WEAVE_BENCH_NO_PIN");
    return !(e && *e && *e != '0') && CPU_COUNT(&mask) >= 2;
  }();
  if (!enabled) return -1;
  for (int cpu = 0, seen = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &mask) && seen++ == n) return cpu;
  }
  return -1;
}

// Pins the calling thread to nth_cpu(n) for the rest of its life; false when
// pinning is off or failed. For a thread that cannot scope it (a worker's
// entry returns before its loop runs).
inline bool pin_this_thread(int n) {
  const int cpu = nth_cpu(n);
  if (cpu < 0) return false;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  return pthread_setaffinity_np(pthread_self(), sizeof(one), &one) == 0;
}

// Pins the calling thread to nth_cpu(n) for its lifetime; restores the
// thread's previous mask on destruction. A benchmark declares it first, so
// the mask is restored only after its peer thread was joined.
class PinScope {
 public:
  explicit PinScope(int n) {
    if (nth_cpu(n) < 0) return;
    if (pthread_getaffinity_np(pthread_self(), sizeof(old_), &old_) != 0) return;
    pinned_ = pin_this_thread(n);
  }
  ~PinScope() {
    if (pinned_) pthread_setaffinity_np(pthread_self(), sizeof(old_), &old_);
  }
  PinScope(const PinScope&) = delete;
  PinScope& operator=(const PinScope&) = delete;

 private:
  cpu_set_t old_{};
  bool pinned_ = false;
};
constexpr int kBenchCpu = 0;  // the benchmark thread
constexpr int kPeerCpu = 1;   // the echo / consumer / worker thread

// --- the baselines' waiting: a copy of LoopCore::park / LoopCore::notify ------
//
// Same states, same spin (20 us, clock read every 64 pauses), same futex
// calls, so a baseline differs from the library only in what it does around
// the wait.
class alignas(64) WakeWord {  // its own cache line: written by the peer per message
 public:
  // Wakes the owner if parked, otherwise makes its next park return at once.
  // Any thread.
  void notify() noexcept {
    // acq_rel: publishes the enqueue made before it; pairs with park().
    if (word_.exchange(kNotified, std::memory_order_acq_rel) == kSleeping) {
      internal::futex_wake(word_, 1);
    }
  }
  // Spins up to kSpinFor for a notify, then sleeps on the futex. May return
  // without a notify (a spurious futex wake-up): callers re-check their
  // condition in a loop. Owner only.
  void park() noexcept {
    const auto spin_until = std::chrono::steady_clock::now() + kSpinFor;
    for (int i = 0;; ++i) {
      if (word_.load(std::memory_order_relaxed) == kNotified) {
        word_.exchange(kRunning, std::memory_order_acq_rel);
        return;
      }
      cpu_relax();
      if ((i & 63) == 63 && std::chrono::steady_clock::now() >= spin_until) break;
    }
    std::uint32_t expected = kRunning;
    if (word_.compare_exchange_strong(expected, kSleeping, std::memory_order_acq_rel)) {
      internal::futex_wait(word_, kSleeping);
    }
    word_.exchange(kRunning, std::memory_order_acq_rel);
  }

 private:
  static constexpr auto kSpinFor = std::chrono::microseconds(20);
  static constexpr std::uint32_t kRunning = 0;
  static constexpr std::uint32_t kSleeping = 1;
  static constexpr std::uint32_t kNotified = 2;
  std::atomic<std::uint32_t> word_{kRunning};
};
static_assert(sizeof(WakeWord) == 64, "WakeWord: one cache line");

// Two bare queues and an echo thread (pinned to kPeerCpu) that sends every
// item straight back, both sides waiting as an EventLoop does (WakeWord).
template <class T>
class RawEcho {
 public:
  RawEcho() : to_main_tok_(to_echo_), from_echo_tok_(to_main_) {
    echo_ = std::thread([this] {
      PinScope pin(kPeerCpu);
      run_echo();
    });
  }
  ~RawEcho() {
    stop_.store(true, std::memory_order_release);
    echo_wake_.notify();
    echo_.join();
  }
  RawEcho(const RawEcho&) = delete;
  RawEcho& operator=(const RawEcho&) = delete;

  // Benchmark thread only.
  void send(T item) {
    to_echo_.enqueue(to_main_tok_, std::move(item));
    echo_wake_.notify();
  }
  T receive() {
    T out;
    while (!to_main_.try_dequeue(from_echo_tok_, out)) main_wake_.park();
    return out;
  }

 private:
  void run_echo() {
    moodycamel::ProducerToken ptok(to_main_);
    moodycamel::ConsumerToken ctok(to_echo_);
    T item;
    for (;;) {
      while (to_echo_.try_dequeue(ctok, item)) {
        to_main_.enqueue(ptok, std::move(item));
        main_wake_.notify();
      }
      if (stop_.load(std::memory_order_acquire)) return;
      echo_wake_.park();
    }
  }

  moodycamel::ConcurrentQueue<T> to_echo_;
  moodycamel::ConcurrentQueue<T> to_main_;
  moodycamel::ProducerToken to_main_tok_;    // benchmark thread -> echo
  moodycamel::ConsumerToken from_echo_tok_;  // benchmark thread <- echo
  WakeWord echo_wake_;
  WakeWord main_wake_;
  std::atomic<bool> stop_{false};
  std::thread echo_;
};

// The bare round-trip baseline: an int64 Value to RawEcho's echo thread and
// back, one round trip per iteration, the benchmark thread on kBenchCpu. The
// twin of both BM_PortPingPong and BM_WorkerRoundTrip; `what` names the
// benchmark in a failure.
inline void raw_echo_round_trips(benchmark::State& state, const char* what) {
  PinScope pin(kBenchCpu);
  RawEcho<Value> echo;
  std::int64_t i = 0;
  for (auto _ : state) {
    echo.send(Value(i));
    Value r = echo.receive();
    if (*r.if_int() != i) die(what);
    ++i;
  }
  state.SetItemsProcessed(state.iterations());  // round trips
}

}  // namespace weave::bench
