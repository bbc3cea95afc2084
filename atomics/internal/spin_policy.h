// weave::internal spin-then-park policy: how long a thread that is about to
// sleep in the kernel (an event loop before it parks, a blocked atomics wait
// before its futex) first spins, watching for the wake-up in user space.
//
// One policy, in one place. A wake-up that comes within the spin (a busy peer
// answering) costs neither side a system call; waking a sleeping thread on
// another core costs ~15-20 us on a VM, so the spin is about that long, and
// short enough not to burn a core while idle. The clock is read only every
// kSpinPausesPerClockRead pauses, so a quick wake-up costs no clock read.
//
// Tuning: change the constants here (compile time); every user follows: the
// loop's park, the atomics waits, and a pool future's wait (TaskRecord::wait).
//
// Spinning ends in a park, never in sched_yield loops, so SCHED_FIFO is not a
// livelock here (see spin_lock.h for the places where it is).
#pragma once

#include <chrono>

namespace weave::internal {

inline constexpr std::chrono::nanoseconds kSpinBeforePark = std::chrono::microseconds(20);
// A power of two: spinners test `(i & (kSpinPausesPerClockRead - 1))`.
inline constexpr int kSpinPausesPerClockRead = 64;
static_assert((kSpinPausesPerClockRead & (kSpinPausesPerClockRead - 1)) == 0,
              "weave::internal::kSpinPausesPerClockRead must be a power of two");

}  // namespace weave::internal
