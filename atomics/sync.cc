#include "atomics/sync.h"

#include <cassert>
#include <stdexcept>
#include <string>
#include <utility>

#include "atomics/atomics.h"
#include "base/internal/scope_exit.h"

namespace weave {
namespace internal {

Int32View sync_words(const char* type, SharedArrayBuffer buffer, std::size_t byte_offset,
                     std::size_t byte_length) {
  constexpr std::size_t kAlignment = sizeof(std::int32_t);
  if (byte_offset % kAlignment != 0) {
    throw std::invalid_argument(std::string(type) + ": byte_offset " + std::to_string(byte_offset) +
                                " is not a multiple of " + std::to_string(kAlignment) +
                                " (kAlignment)");
  }
  const std::size_t size = buffer.byte_length();
  if (byte_offset > size || size - byte_offset < byte_length) {
    throw std::out_of_range(
        std::string(type) + ": byte_offset " + std::to_string(byte_offset) +
        " leaves no room for its " + std::to_string(byte_length) +
        " bytes (kByteLength) in a buffer of byte_length " + std::to_string(size) +
        "; allowed: 0.." +
        (size >= byte_length ? std::to_string(size - byte_length) : std::string("none")));
  }
  return Int32View(std::move(buffer), byte_offset, byte_length / sizeof(std::int32_t));
}

namespace {

// atomics::wait on words[i] while it holds `expected`, until `deadline`.
// False only when the deadline passed.
bool wait_word(const Int32View& words, std::size_t i, std::int32_t expected,
               const SyncDeadline& deadline) {
  if (is_forever(deadline)) {
    (void)atomics::wait(words, i, expected);  // kOk or kNotEqual: either way, look again
    return true;
  }
  return atomics::wait_until(words, i, expected, deadline) != atomics::WaitResult::kTimedOut;
}

}  // namespace
}  // namespace internal

// ---- SharedMutex ---------------------------------------------------------------
// Drepper's "mutex3": 0 unlocked, 1 locked with no waiters, 2 locked and maybe
// waited on. A thread that has to wait sets 2 first, so the unlock that follows
// knows it must notify; a waiter that takes the lock after waking takes it in
// state 2 (it cannot know whether others still wait), costing at most one
// notify that wakes no one.

namespace {
constexpr std::int32_t kUnlocked = 0;
constexpr std::int32_t kLocked = 1;
constexpr std::int32_t kContended = 2;
}  // namespace

SharedMutex::SharedMutex(SharedArrayBuffer buffer, std::size_t byte_offset)
    : word_(internal::sync_words("weave::SharedMutex", std::move(buffer), byte_offset,
                                 kByteLength)) {}

bool SharedMutex::try_lock() const {
  return atomics::compare_exchange(word_, 0, kUnlocked, kLocked) == kUnlocked;
}

void SharedMutex::lock() const { (void)lock_until(internal::SyncDeadline::max()); }

bool SharedMutex::lock_until(internal::SyncDeadline deadline) const {
  std::int32_t c = atomics::compare_exchange(word_, 0, kUnlocked, kLocked);
  if (c == kUnlocked) return true;
  if (c != kContended) c = atomics::exchange(word_, 0, kContended);
  while (c != kUnlocked) {
    // Timed out: the word may stay kContended with no one waiting, which only
    // costs the next unlock() a notify that wakes no one.
    if (!internal::wait_word(word_, 0, kContended, deadline)) return false;
    c = atomics::exchange(word_, 0, kContended);
  }
  return true;
}

void SharedMutex::unlock() const {
  const std::int32_t old = atomics::sub(word_, 0, 1);
  assert(old != kUnlocked && "weave::SharedMutex::unlock: the mutex is not locked");
  if (old != kLocked) {  // kContended: someone may sleep
    atomics::store(word_, 0, kUnlocked);
    atomics::notify(word_, 0, 1);
  }
}

// ---- SharedSemaphore -------------------------------------------------------------
// words_[0] is the count, words_[1] the threads that may be asleep on it. A
// waiter raises words_[1] before it waits for the count to leave 0; release()
// raises the count before it reads words_[1]. All seq_cst, so either release()
// sees the waiter and notifies, or the waiter's wait() sees the new count and
// does not sleep: no wake-up is lost.

namespace {
constexpr std::size_t kCount = 0;
constexpr std::size_t kSleepers = 1;
}  // namespace

SharedSemaphore::SharedSemaphore(SharedArrayBuffer buffer, std::size_t byte_offset)
    : words_(internal::sync_words("weave::SharedSemaphore", std::move(buffer), byte_offset,
                                  kByteLength)) {}

void SharedSemaphore::init(std::int32_t count) const {
  assert(count >= 0 && "weave::SharedSemaphore::init: count must be 0..kMax");
  atomics::store(words_, kSleepers, 0);
  atomics::store(words_, kCount, count);
}

void SharedSemaphore::release(std::int32_t n) const {
  assert(n >= 0 && "weave::SharedSemaphore::release: n must be >= 0");
  if (n == 0) return;
  [[maybe_unused]] const std::int32_t old = atomics::add(words_, kCount, n);
  assert(old <= kMax - n && "weave::SharedSemaphore::release: the count would pass kMax");
  if (atomics::load(words_, kSleepers) > 0) atomics::notify(words_, kCount, std::size_t(n));
}

bool SharedSemaphore::try_acquire() const {
  std::int32_t c = atomics::load(words_, kCount);
  while (c > 0) {
    const std::int32_t seen = atomics::compare_exchange(words_, kCount, c, c - 1);
    if (seen == c) return true;
    c = seen;
  }
  return false;
}

void SharedSemaphore::acquire() const { (void)acquire_until(internal::SyncDeadline::max()); }

bool SharedSemaphore::acquire_until(internal::SyncDeadline deadline) const {
  while (!try_acquire()) {
    atomics::add(words_, kSleepers, 1);
    bool in_time = false;
    {
      // Given back however the wait ends: also when it throws WaitInterrupted
      // (the worker is being terminated), or every later release() would pay
      // a notify that wakes no one.
      internal::ScopeExit sleeper_back{[this]() noexcept { atomics::sub(words_, kSleepers, 1); }};
      in_time = internal::wait_word(words_, kCount, 0, deadline);
    }
    // Timed out: a unit released at the last moment is still taken.
    if (!in_time) return try_acquire();
  }
  return true;
}

std::int32_t SharedSemaphore::count_approx() const { return atomics::load(words_, kCount); }

// ---- SharedLatch -----------------------------------------------------------------

SharedLatch::SharedLatch(SharedArrayBuffer buffer, std::size_t byte_offset)
    : word_(internal::sync_words("weave::SharedLatch", std::move(buffer), byte_offset,
                                 kByteLength)) {}

void SharedLatch::init(std::int32_t count) const {
  assert(count >= 0 && "weave::SharedLatch::init: count must be >= 0");
  atomics::store(word_, 0, count);
}

void SharedLatch::count_down(std::int32_t n) const {
  assert(n >= 0 && "weave::SharedLatch::count_down: n must be >= 0");
  const std::int32_t old = atomics::sub(word_, 0, n);
  assert(old >= n && "weave::SharedLatch::count_down: the count would go below zero");
  if (old == n && n != 0) atomics::notify(word_, 0);
}

bool SharedLatch::try_wait() const { return atomics::load(word_, 0) == 0; }

void SharedLatch::wait() const {
  // Every count_down changes the word, so a wait that started on an older
  // count returns kNotEqual and looks again; only the last one notifies.
  for (std::int32_t c = atomics::load(word_, 0); c != 0; c = atomics::load(word_, 0)) {
    (void)atomics::wait(word_, 0, c);
  }
}

void SharedLatch::arrive_and_wait(std::int32_t n) const {
  count_down(n);
  wait();
}

// ---- SharedBarrier ---------------------------------------------------------------
// words_[0] counts arrivals in the current phase, words_[1] is the phase, and
// words_[2] the parties. The last to arrive resets the arrivals and only then
// advances the phase (seq_cst), so a party that has seen the new phase also
// sees the reset, and its next arrival counts toward the next phase. A party
// reads the phase before it arrives: the phase cannot end without it.

namespace {
constexpr std::size_t kArrived = 0;
constexpr std::size_t kPhase = 1;
constexpr std::size_t kParties = 2;
}  // namespace

SharedBarrier::SharedBarrier(SharedArrayBuffer buffer, std::size_t byte_offset)
    : words_(internal::sync_words("weave::SharedBarrier", std::move(buffer), byte_offset,
                                  kByteLength)) {}

void SharedBarrier::init(std::int32_t parties) const {
  assert(parties >= 1 && "weave::SharedBarrier::init: parties must be >= 1");
  atomics::store(words_, kArrived, 0);
  atomics::store(words_, kPhase, 0);
  atomics::store(words_, kParties, parties);
}

void SharedBarrier::arrive_and_wait() const {
  const std::int32_t parties = atomics::load(words_, kParties);
  assert(parties >= 1 && "weave::SharedBarrier::arrive_and_wait: init() was not called");
  const std::int32_t phase = atomics::load(words_, kPhase);
  const std::int32_t arrived = atomics::add(words_, kArrived, 1) + 1;
  assert(arrived <= parties && "weave::SharedBarrier: more arrivals than parties in a phase");
  if (arrived == parties) {
    atomics::store(words_, kArrived, 0);
    atomics::add(words_, kPhase, 1);  // wraps, as Atomics do; only equality is compared
    atomics::notify(words_, kPhase);
    return;
  }
  while (atomics::load(words_, kPhase) == phase) (void)atomics::wait(words_, kPhase, phase);
}

std::uint32_t SharedBarrier::phase_approx() const {
  return static_cast<std::uint32_t>(atomics::load(words_, kPhase));
}

}  // namespace weave
