#include "atomics/internal/waiter_list.h"

#include "atomics/internal/futex.h"
#include "atomics/internal/spin_policy.h"

namespace weave::internal {

namespace {
// kWaiting: linked, spinning; kSleeping: linked, (about to be) in futex_wait;
// kNotified / kInterrupted: unlinked by a waker.
enum : std::uint32_t { kWaiting = 0, kNotified = 1, kInterrupted = 2, kSleeping = 3 };
// A waiter spins on its own word before it sleeps in the kernel, as an event
// loop does before it parks (atomics/internal/spin_policy.h): a notify that
// comes within it (a peer answering) costs neither side a system call.
constexpr auto kSpinFor = kSpinBeforePark;
constexpr int kClockMask = kSpinPausesPerClockRead - 1;
thread_local WaitInterruptor* tl_interruptor = nullptr;
}  // namespace

// alignas: each shard's lock is taken by different threads; keep shards out
// of each other's prefetch pair.
struct alignas(kFalseSharingSpan) Shard {
  std::mutex mu;
  Waiter* head = nullptr;  // oldest
  Waiter* tail = nullptr;  // newest

  void push_back(Waiter* w) noexcept {
    w->prev = tail;
    w->next = nullptr;
    (tail ? tail->next : head) = w;
    tail = w;
    w->linked = true;
  }
  void unlink(Waiter* w) noexcept {
    (w->prev ? w->prev->next : head) = w->next;
    (w->next ? w->next->prev : tail) = w->prev;
    w->prev = w->next = nullptr;
    w->linked = false;
  }
  // Unlinks `w`, marks it and wakes its thread — with a system call only if
  // it went to sleep. Under mu.
  static void wake(Shard& shard, Waiter* w, std::uint32_t state) noexcept {
    shard.unlink(w);
    if (w->async) {
      w->state.store(state, std::memory_order_relaxed);  // the lock orders it
      w->async->on_notified();
      return;
    }
    // release: the waiter's acquire load of its state sees everything
    // written before this notify; acquire: orders our read of kSleeping.
    if (w->state.exchange(state, std::memory_order_acq_rel) == kSleeping) {
      futex_wake(w->state, 1);
    }
  }
};

namespace {
static_assert(sizeof(Shard) == kFalseSharingSpan && alignof(Shard) == kFalseSharingSpan,
              "weave::internal::Shard: one shard per false-sharing span");

constexpr std::size_t kWaiterShards = 64;
// std::mutex's constructor is constexpr: the table is constant-initialised,
// so it is ready before any static constructor can wait.
Shard g_shards[kWaiterShards];

Shard& shard_for(const void* addr) noexcept {
  // Elements waited on are 4 or 8 bytes: drop the low bits, then mix so that
  // neighbouring elements and page-aligned buffers spread over the shards.
  auto x = reinterpret_cast<std::uintptr_t>(addr) >> 2;
  x *= 0x9E3779B97F4A7C15ull;
  return g_shards[(x >> 32) % kWaiterShards];
}

bool value_equals(void* addr, std::size_t width, std::uint64_t expected) noexcept {
  if (width == 4) {
    return std::atomic_ref<std::uint32_t>(*static_cast<std::uint32_t*>(addr)).load() ==
           static_cast<std::uint32_t>(expected);
  }
  return std::atomic_ref<std::uint64_t>(*static_cast<std::uint64_t*>(addr)).load() == expected;
}

WaitOutcome outcome_of(std::uint32_t state) noexcept {
  return state == kInterrupted ? WaitOutcome::kInterrupted : WaitOutcome::kOk;
}

}  // namespace

void set_thread_interruptor(WaitInterruptor* interruptor) noexcept { tl_interruptor = interruptor; }

void WaitInterruptor::interrupt() noexcept {
  pending_.store(true, std::memory_order_seq_cst);
  std::lock_guard outer(mu_);
  if (current_ == nullptr) return;
  std::lock_guard inner(shard_->mu);
  // Not linked: not enqueued yet (it will see pending_ under this lock), or
  // already notified or timed out.
  if (current_->linked) Shard::wake(*shard_, current_, kInterrupted);
}

WaitOutcome wait_on_address(void* addr, std::size_t width, std::uint64_t expected,
                            const std::chrono::steady_clock::time_point* deadline) noexcept {
  Shard& shard = shard_for(addr);
  Waiter self;
  self.addr = addr;
  WaitInterruptor* const intr = tl_interruptor;
  // Published before the node is linked, withdrawn before the frame goes
  // (the interrupter holds intr->mu_ while it touches the node).
  struct Registration {
    WaitInterruptor* intr;
    ~Registration() {
      if (!intr) return;
      std::lock_guard lock(intr->mu_);
      intr->current_ = nullptr;
      intr->shard_ = nullptr;
    }
  } registration{intr};
  if (intr) {
    std::lock_guard lock(intr->mu_);
    intr->current_ = &self;
    intr->shard_ = &shard;
  }
  {
    std::lock_guard lock(shard.mu);
    if (intr && intr->pending()) return WaitOutcome::kInterrupted;
    // Compare and enqueue under the lock that notify scans under: no lost
    // wake-up (see the header).
    if (!value_equals(addr, width, expected)) return WaitOutcome::kNotEqual;
    shard.push_back(&self);
  }
  // The waker calls futex_wake on our word under the shard lock: take the
  // lock once before our frame (and the word) goes.
  auto woken = [&](std::uint32_t state) {
    std::lock_guard lock(shard.mu);
    return outcome_of(state);
  };
  // Spin first (see kSpinFor); the clock is read every kSpinPausesPerClockRead pauses.
  {
    auto spin_until = std::chrono::steady_clock::now() + kSpinFor;
    if (deadline != nullptr && *deadline < spin_until) spin_until = *deadline;
    for (int i = 0;; ++i) {
      // acquire: pairs with the waker's exchange, after which the node is
      // off the list.
      const std::uint32_t s = self.state.load(std::memory_order_acquire);
      if (s != kWaiting) return woken(s);
      cpu_relax();
      if ((i & kClockMask) == kClockMask && std::chrono::steady_clock::now() >= spin_until) break;
    }
  }
  for (;;) {
    std::uint32_t s = self.state.load(std::memory_order_acquire);
    if (s == kWaiting) {
      // From now on a waker must futex_wake us; if it got here first, the
      // CAS fails and we see its mark.
      if (!self.state.compare_exchange_strong(s, kSleeping, std::memory_order_acq_rel)) {
        return woken(s);
      }
      s = kSleeping;
    }
    if (s != kSleeping) return woken(s);
    if (deadline == nullptr) {
      futex_wait(self.state, kSleeping);
      continue;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now < *deadline) {
      // A futex timeout is only a hint: the loop re-reads the clock, so the
      // wait never ends before the deadline.
      futex_wait(self.state, kSleeping, *deadline - now);
      continue;
    }
    std::lock_guard lock(shard.mu);
    // relaxed: the lock orders it against the waker's exchange.
    s = self.state.load(std::memory_order_relaxed);
    if (s != kWaiting && s != kSleeping) return outcome_of(s);  // woken just in time
    shard.unlink(&self);
    return WaitOutcome::kTimedOut;
  }
}

WaitOutcome enqueue_async(void* addr, std::size_t width, std::uint64_t expected,
                          AsyncWaiter* w) noexcept {
  Shard& shard = shard_for(addr);
  w->node_.addr = addr;
  w->node_.async = w;
  std::lock_guard lock(shard.mu);
  if (!value_equals(addr, width, expected)) return WaitOutcome::kNotEqual;
  shard.push_back(&w->node_);
  return WaitOutcome::kOk;
}

bool cancel_async(AsyncWaiter* w) noexcept {
  Shard& shard = shard_for(w->node_.addr);
  std::lock_guard lock(shard.mu);
  if (!w->node_.linked) return false;
  shard.unlink(&w->node_);
  return true;
}

std::size_t notify_address(const void* addr, std::size_t count) noexcept {
  Shard& shard = shard_for(addr);
  std::size_t woken = 0;
  std::lock_guard lock(shard.mu);
  for (Waiter* w = shard.head; w != nullptr && woken < count;) {
    Waiter* next = w->next;
    if (w->addr == addr) {
      Shard::wake(shard, w, kNotified);
      ++woken;
    }
    w = next;
  }
  return woken;
}

std::size_t waiter_count_on_address_approx(const void* addr) noexcept {
  Shard& shard = shard_for(addr);
  std::size_t n = 0;
  std::lock_guard lock(shard.mu);
  for (Waiter* w = shard.head; w != nullptr; w = w->next) n += (w->addr == addr);
  return n;
}

}  // namespace weave::internal
