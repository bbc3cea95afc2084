// weave::internal futex primitives: park a thread on a 32-bit atomic word and
// wake it from another thread, with an optional timeout.
//
// Threading: every function here is safe from any thread. These are the raw
// building blocks under the event loop's park/wake and under each blocked
// waiter of the waiter list (atomics/internal/waiter_list.h: a waiter parks
// on its own word, not on the shared element); user code should not include
// this header.
//
// Memory ordering: futex_wait/futex_wake order nothing by themselves. Callers
// publish state with a release (or seq_cst) store/RMW on the word before
// futex_wake, and re-read the word with acquire after futex_wait returns.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>

namespace weave::internal {

static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t),
              "weave::futex: std::atomic<uint32_t> must be a plain 32-bit word");

// Blocks while `*word == expected`, until futex_wake on the word, the
// timeout (if any) elapses, or a spurious wake-up. Returns false only when the
// timeout elapsed. Callers must re-check their condition in a loop.
// Any thread. May block. Never allocates.
bool futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                std::optional<std::chrono::nanoseconds> timeout = std::nullopt) noexcept;

// Wakes up to `count` threads blocked in futex_wait on `word`; returns how
// many were woken. Any thread. Never blocks. Never allocates.
int futex_wake(std::atomic<std::uint32_t>& word, int count) noexcept;

// One CPU "pause" for spin loops: lets the sibling hyper-thread run and
// lowers power while spinning. Any thread. Never blocks. Never allocates.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

}  // namespace weave::internal
