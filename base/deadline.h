// weave::kForever and deadline_after(): what a duration means wherever weave
// takes one (a timeout, a timer's delay, a pool option), written once.
//
//  - A duration of at least ~100 years (kForeverThreshold) is "no limit", and
//    so is a floating-point NaN (as in JS, where a NaN timeout never fires).
//    kForever is the spelling to use for it.
//  - A duration at or below zero is "now".
//  - A deadline never overflows: now + d saturates at time_point::max(),
//    which every weave wait reads as "no deadline".
//
// Threading: pure functions of their arguments. Any thread. Never blocks.
// Never allocates.
#pragma once

#include <chrono>
#include <cmath>
#include <type_traits>

namespace weave {

// "No limit", for every duration option and timeout in weave.
inline constexpr std::chrono::steady_clock::duration kForever =
    std::chrono::steady_clock::duration::max();

// Durations this long or longer count as forever: far past any real wait,
// and well inside what a steady_clock deadline can hold (~292 years of ns).
inline constexpr std::chrono::duration<double> kForeverThreshold{100.0 * 365 * 24 * 3600};

// True for "no limit": at least kForeverThreshold, or NaN.
template <class Rep, class Period>
[[nodiscard]] constexpr bool is_forever(const std::chrono::duration<Rep, Period>& d) noexcept {
  if constexpr (std::is_floating_point_v<Rep>) {
    if (d.count() != d.count()) return true;  // NaN
  }
  return std::chrono::duration<double>(d) >= kForeverThreshold;
}

// `now + d`, never earlier than that (rounded up to the clock's tick), with
// d <= 0 meaning `now` and a forever `d` (or one that would overflow) giving
// time_point::max().
template <class Rep, class Period>
[[nodiscard]] constexpr std::chrono::steady_clock::time_point deadline_after(
    std::chrono::steady_clock::time_point now,
    const std::chrono::duration<Rep, Period>& d) noexcept {
  using Tp = std::chrono::steady_clock::time_point;
  using Dur = std::chrono::steady_clock::duration;
  if (is_forever(d)) return Tp::max();
  if (!(d > std::chrono::duration<Rep, Period>::zero())) return now;
  const Dur rel = std::chrono::ceil<Dur>(d);  // below the threshold: fits
  if (now.time_since_epoch() > Dur::max() - rel) return Tp::max();
  return now + rel;
}

// True for the deadline deadline_after() gives for "no limit".
[[nodiscard]] constexpr bool is_forever(std::chrono::steady_clock::time_point t) noexcept {
  return t == std::chrono::steady_clock::time_point::max();
}

}  // namespace weave
