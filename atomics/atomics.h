// weave::atomics: JS's Atomics on weave's typed views over a SharedArrayBuffer.
//
//   load, store, add, sub, bit_and, bit_or, bit_xor, exchange,
//   compare_exchange, is_lock_free                   (integer views)
//   wait, wait_for, wait_until, notify                (Int32View, Int64View)
//
// Names: JS's Atomics.and / or / xor are bit_and / bit_or / bit_xor (after
// std::bit_and etc.; `and` is a C++ keyword); compareExchange is
// compare_exchange. Every read-modify-write returns the value that was there
// before, as in JS; store returns the value stored.
//
// Semantics follow Node (ECMAScript's Atomics): every operation is seq_cst
// and is a std::atomic_ref operation on the element. Arithmetic wraps at the
// type's width like a JS typed array, for signed types too: it is done on the
// unsigned representation, so there is no undefined behaviour. Indexes are
// bounds-checked against the view's current length: out of range throws
// std::out_of_range (index and length in the message) and touches nothing.
// Using a float view is a compile-time error (the functions are constrained on
// atomics::AtomicElement, which the diagnostic names), as is waiting on a
// width other than 32/64 bits (a static_assert that says so).
//
// wait / notify: the ECMAScript memory model's WaiterList. A waiter compares
// the element with `expected` and, if equal, joins the FIFO list of waiters
// on that element's address, atomically with respect to notify (so a notify
// after a store that changed the value never misses a waiter that saw the old
// one). notify(view, i, count) wakes the `count` oldest waiters on element i
// (all by default; none for a negative count, as in JS) and returns how many
// it woke. Timeouts use the steady clock and never end a wait early; they
// mean what base/deadline.h says: kForever, ~100 years or more, or a
// floating-point NaN is no timeout (JS: a NaN timeout waits forever), zero or
// less does not wait. A wait in a worker being terminated throws
// WaitInterrupted (below). See atomics/internal/waiter_list.h for the design;
// the asynchronous form, wait_async, is in loop/atomics_async.h.
//
// Memory ordering: all seq_cst, as in JS. Every write made before a notify()
// that wakes a wait() is visible to the waiter once wait() returns kOk.
//
// Threading: every function here may be called from any thread on any view.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string_view>
#include <type_traits>

#include "atomics/internal/waiter_list.h"
#include "atomics/shared_view.h"
#include "base/deadline.h"

namespace weave::atomics {

// The element types Atomics operate on: the integer views (Int8View ..
// Uint64View). Not float views — JS's Atomics reject Float32Array and
// Float64Array too: passing one fails to compile, naming this concept.
template <class T>
concept AtomicElement = std::is_integral_v<T> && internal::kIsViewElement<T>;

namespace detail {

template <class T>
inline constexpr bool kIsAtomicElement = AtomicElement<T>;

// The element as its unsigned representation: arithmetic on it wraps with no
// undefined behaviour, and converting back to T is modular (C++20).
template <AtomicElement T>
std::atomic_ref<std::make_unsigned_t<T>> unsigned_ref(const SharedView<T>& view, std::size_t i) {
  // Aliasing a signed integer as its unsigned counterpart is allowed.
  return std::atomic_ref<std::make_unsigned_t<T>>(
      *reinterpret_cast<std::make_unsigned_t<T>*>(view.at(i)));
}

template <AtomicElement T>
constexpr std::make_unsigned_t<T> to_unsigned(T v) noexcept {
  return static_cast<std::make_unsigned_t<T>>(v);
}

template <class T>
constexpr void check_waitable() {
  static_assert(std::is_same_v<T, std::int32_t> || std::is_same_v<T, std::int64_t>,
                "weave::atomics::wait/notify: only Int32View and Int64View can be waited on, "
                "as JS's Atomics.wait takes only Int32Array and BigInt64Array");
}

}  // namespace detail

// `view[i]`, seq_cst. Any thread. Never blocks. Never allocates.
template <AtomicElement T>
[[nodiscard]] T load(const SharedView<T>& view, std::size_t i) {
  return static_cast<T>(detail::unsigned_ref(view, i).load());
}

// Stores `value` into `view[i]`, seq_cst; returns `value`.
// Any thread. Never blocks. Never allocates.
template <AtomicElement T>
T store(const SharedView<T>& view, std::size_t i, std::type_identity_t<T> value) {
  detail::unsigned_ref(view, i).store(detail::to_unsigned(value));
  return value;
}

// view[i] += value, wrapping; returns the old value. Any thread. Never blocks.
// Never allocates.
template <AtomicElement T>
T add(const SharedView<T>& view, std::size_t i, std::type_identity_t<T> value) {
  return static_cast<T>(detail::unsigned_ref(view, i).fetch_add(detail::to_unsigned(value)));
}

// view[i] -= value, wrapping; returns the old value. Any thread. Never blocks.
// Never allocates.
template <AtomicElement T>
T sub(const SharedView<T>& view, std::size_t i, std::type_identity_t<T> value) {
  return static_cast<T>(detail::unsigned_ref(view, i).fetch_sub(detail::to_unsigned(value)));
}

// view[i] &= value (JS's Atomics.and); returns the old value. Any thread.
// Never blocks. Never allocates.
template <AtomicElement T>
T bit_and(const SharedView<T>& view, std::size_t i, std::type_identity_t<T> value) {
  return static_cast<T>(detail::unsigned_ref(view, i).fetch_and(detail::to_unsigned(value)));
}

// view[i] |= value (JS's Atomics.or); returns the old value. Any thread.
// Never blocks. Never allocates.
template <AtomicElement T>
T bit_or(const SharedView<T>& view, std::size_t i, std::type_identity_t<T> value) {
  return static_cast<T>(detail::unsigned_ref(view, i).fetch_or(detail::to_unsigned(value)));
}

// view[i] ^= value (JS's Atomics.xor); returns the old value. Any thread.
// Never blocks. Never allocates.
template <AtomicElement T>
T bit_xor(const SharedView<T>& view, std::size_t i, std::type_identity_t<T> value) {
  return static_cast<T>(detail::unsigned_ref(view, i).fetch_xor(detail::to_unsigned(value)));
}

// view[i] = value; returns the old value. Any thread. Never blocks. Never
// allocates.
template <AtomicElement T>
T exchange(const SharedView<T>& view, std::size_t i, std::type_identity_t<T> value) {
  return static_cast<T>(detail::unsigned_ref(view, i).exchange(detail::to_unsigned(value)));
}

// If view[i] == expected, stores replacement. Returns the value that was
// there either way (equal to `expected` exactly when it stored), as JS's
// Atomics.compareExchange. Any thread. Never blocks. Never allocates.
template <AtomicElement T>
T compare_exchange(const SharedView<T>& view, std::size_t i, std::type_identity_t<T> expected,
                   std::type_identity_t<T> replacement) {
  auto old = detail::to_unsigned(expected);
  // On failure compare_exchange_strong writes the current value into `old`.
  detail::unsigned_ref(view, i).compare_exchange_strong(old, detail::to_unsigned(replacement));
  return static_cast<T>(old);
}

// Node's Atomics.isLockFree(size): true for 1, 2, 4 and 8 where the platform
// does those widths without a lock (x86-64 and aarch64 do all four).
// Any thread. Never blocks. Never allocates.
[[nodiscard]] constexpr bool is_lock_free(std::size_t size) noexcept {
  switch (size) {
    case 1:
      return std::atomic_ref<std::uint8_t>::is_always_lock_free;
    case 2:
      return std::atomic_ref<std::uint16_t>::is_always_lock_free;
    case 4:
      return std::atomic_ref<std::uint32_t>::is_always_lock_free;
    case 8:
      return std::atomic_ref<std::uint64_t>::is_always_lock_free;
    default:
      return false;
  }
}

// Node's three outcomes of Atomics.wait.
enum class WaitResult : std::uint8_t {
  kOk,        // woken by notify
  kNotEqual,  // view[i] != expected; did not wait
  kTimedOut,  // the timeout elapsed first
};

// "ok", "not-equal", "timed-out" (Node's strings). Any thread. Never blocks.
// Never allocates.
[[nodiscard]] std::string_view to_string(WaitResult result) noexcept;

// notify's default count: wake every waiter (JS: a count of +Infinity).
inline constexpr std::int64_t kNotifyAll = std::numeric_limits<std::int64_t>::max();

// Thrown by wait / wait_for / wait_until in a worker that is being
// terminated (Worker::terminate() interrupts its wait), to unwind it; the
// worker runtime catches it and the worker ends with exit code 1, as Node's
// terminate() ends a worker blocked in Atomics.wait. Deliberately not a
// std::exception, so `catch (const std::exception&)` lets it pass. Never
// thrown on a thread that is not a weave worker.
struct WaitInterrupted {};

namespace detail {
// Throws WaitInterrupted for kInterrupted.
WaitResult to_wait_result(internal::WaitOutcome outcome);

template <class T>
WaitResult wait_impl(const SharedView<T>& view, std::size_t i, T expected,
                     const std::chrono::steady_clock::time_point* deadline) {
  check_waitable<T>();
  T* p = view.at(i);  // bounds check first: throws before any waiting
  return to_wait_result(internal::wait_on_address(
      p, sizeof(T), static_cast<std::uint64_t>(to_unsigned(expected)), deadline));
}
}  // namespace detail

// Atomics.wait with no timeout: kNotEqual at once if view[i] != expected,
// else blocks until a notify wakes this waiter (kOk). In a worker being
// terminated, throws WaitInterrupted instead (this and the timed forms).
// Any thread. May block. Never allocates (but for that exception).
template <class T>
[[nodiscard]] WaitResult wait(const SharedView<T>& view, std::size_t i,
                              std::type_identity_t<T> expected) {
  return detail::wait_impl<T>(view, i, expected, nullptr);
}

// As wait(), but gives up with kTimedOut at `deadline` (steady clock; never
// earlier). A deadline already passed still compares: kNotEqual or kTimedOut.
// time_point::max() (or any deadline past what the clock can hold) is none.
// Any thread. May block. Never allocates.
template <class T, class Duration>
[[nodiscard]] WaitResult wait_until(
    const SharedView<T>& view, std::size_t i, std::type_identity_t<T> expected,
    const std::chrono::time_point<std::chrono::steady_clock, Duration>& deadline) {
  using Dur = std::chrono::steady_clock::duration;
  if (std::chrono::duration<double>(deadline.time_since_epoch()) >=
      std::chrono::duration<double>(Dur::max())) {
    return detail::wait_impl<T>(view, i, expected, nullptr);
  }
  const std::chrono::steady_clock::time_point d = std::chrono::ceil<Dur>(deadline);  // never early
  return detail::wait_impl<T>(view, i, expected, is_forever(d) ? nullptr : &d);
}

// As wait(), but gives up with kTimedOut after `timeout`: zero or less does
// not wait (JS); kForever, ~100 years or more, or NaN is no timeout (see
// base/deadline.h). Any thread. May block. Never allocates.
template <class T, class Rep, class Period>
[[nodiscard]] WaitResult wait_for(const SharedView<T>& view, std::size_t i,
                                  std::type_identity_t<T> expected,
                                  const std::chrono::duration<Rep, Period>& timeout) {
  const std::chrono::steady_clock::time_point deadline =
      deadline_after(std::chrono::steady_clock::now(), timeout);
  return detail::wait_impl<T>(view, i, expected, is_forever(deadline) ? nullptr : &deadline);
}

// Atomics.notify: wakes up to `count` waiters on view[i], oldest first;
// returns how many it woke (0 when none wait). `count` is any integer: a
// negative one wakes none (as JS's Atomics.notify does), kNotifyAll (the
// default) or any count at least the number of waiters wakes them all. The
// index is checked either way. Any thread. Never blocks (beyond a short
// internal lock). Never allocates.
template <class T, class Count = std::int64_t>
requires(std::is_integral_v<Count> && !std::is_same_v<Count, bool>) std::size_t
    notify(const SharedView<T>& view, std::size_t i, Count count = kNotifyAll) {
  detail::check_waitable<T>();
  T* p = view.at(i);  // bounds check first, whatever the count
  std::size_t n = 0;
  if constexpr (std::is_signed_v<Count>) {
    if (count <= 0) return 0;
    n = static_cast<std::size_t>(count);
  } else {
    n = static_cast<std::size_t>(count);  // size_t is the widest: no wrap
  }
  return n == 0 ? 0 : internal::notify_address(p, n);
}

}  // namespace weave::atomics

namespace weave::internal {

// Test hook: how many threads wait on view[i] right now (racy).
// Any thread. Never blocks (beyond a short internal lock). Never allocates.
template <class T>
[[nodiscard]] std::size_t waiter_count_approx(const SharedView<T>& view, std::size_t i) {
  atomics::detail::check_waitable<T>();
  return waiter_count_on_address_approx(view.at(i));
}

}  // namespace weave::internal
