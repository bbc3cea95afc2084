// weave::atomics::wait_async: Node's Atomics.waitAsync — wait on a shared
// Int32View / Int64View element without blocking the thread: the outcome is
// delivered to a callback on the calling thread's event loop.
//
//   auto r = weave::atomics::wait_async(flag, 0, 0, 5s, [](weave::atomics::WaitResult w) {
//     // on this thread's loop: kOk (notified) or kTimedOut
//   });
//   if (!r.async) { /* r.value: kNotEqual, or kTimedOut for a zero timeout */ }
//
// As in Node: if the element differs from `expected`, or the timeout is zero,
// the result is immediate (async == false, the callback never runs).
// Otherwise the waiter joins the element's FIFO waiter list like a blocking
// wait() — notify() counts it and wakes waiters oldest first, blocking and
// asynchronous alike — and the callback runs on the loop once it is notified
// (kOk) or the timeout passes (kTimedOut). While pending it keeps the loop
// alive; AsyncWait::cancel() withdraws it (no callback, no keep-alive). A
// timeout of kForever (base/deadline.h) is no timeout.
//
// The end of the loop: if the loop's thread exits while the wait is pending,
// the wait is withdrawn from the waiter list (a later notify does not count
// it) and its callback is destroyed unrun, on that thread — as a task posted
// to an ended loop is (loop/event_loop.h). The AsyncWait handle then reports
// !pending().
//
// Cost: wait_async allocates everything up front (the node, its timer, its
// registration with the loop); a notify only links the node onto the loop's
// ready list — no allocation, never a throw, under the waiter list's lock.
//
// Lives in loop/, not atomics/: it needs an event loop, and atomics/ is the
// leaf. Built on internal::AsyncWaiter (atomics/internal/waiter_list.h).
//
// Threading: wait_async and the AsyncWait handle: Owner thread only (the
// thread whose loop runs the callback). notify() from any thread.
// Memory ordering: every write made before the notify() that wakes the
// waiter is visible to the callback.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>

#include "atomics/atomics.h"
#include "loop/event_loop.h"

namespace weave::atomics {

namespace detail {
class AsyncWaitNode;
// nullptr when the value differed (not linked); the timeout is not zero.
std::shared_ptr<AsyncWaitNode> start_async_wait(void* addr, std::size_t width,
                                                std::uint64_t expected,
                                                std::optional<Clock::duration> timeout,
                                                std::function<void(WaitResult)> on_done);
bool cancel_async_wait(const std::shared_ptr<AsyncWaitNode>& node);
bool async_wait_pending(const std::shared_ptr<AsyncWaitNode>& node) noexcept;
}  // namespace detail

// A pending asynchronous wait. Copyable handle; copies name the same wait.
class AsyncWait {
 public:
  AsyncWait() = default;
  explicit AsyncWait(std::shared_ptr<detail::AsyncWaitNode> node) : node_(std::move(node)) {}
  // Withdraws the wait if it is still pending: true if it was (its callback
  // will not run, the loop is no longer kept alive for it), false if it had
  // completed. Owner thread only. Never blocks (beyond a short lock).
  bool cancel() { return node_ && detail::cancel_async_wait(node_); }
  // True until the callback has run or the wait was cancelled.
  // Owner thread only. Never blocks. Never allocates.
  [[nodiscard]] bool pending() const noexcept { return node_ && detail::async_wait_pending(node_); }

 private:
  std::shared_ptr<detail::AsyncWaitNode> node_;
};

// What wait_async returns (Node's { async, value }).
struct WaitAsyncResult {
  bool async = false;                        // true: the outcome comes to the callback, on the loop
  WaitResult value = WaitResult::kNotEqual;  // when !async: kNotEqual or kTimedOut
  AsyncWait wait;                            // when async: cancel() / pending()
};

// Node's Atomics.waitAsync on Int32View / Int64View elements (see the top).
// `timeout`: none = wait until notified; zero or less = do not wait. Throws
// std::out_of_range for a bad index. Owner thread only (the calling thread's
// loop delivers). Never blocks. Allocates.
template <class T>
WaitAsyncResult wait_async(const SharedView<T>& view, std::size_t i,
                           std::type_identity_t<T> expected, std::optional<Clock::duration> timeout,
                           std::function<void(WaitResult)> on_done) {
  detail::check_waitable<T>();
  T* p = view.at(i);  // bounds check first
  if (timeout && *timeout <= Clock::duration::zero()) {
    // Node: with a zero timeout the answer is immediate either way.
    const bool equal = load(view, i) == expected;
    return WaitAsyncResult{false, equal ? WaitResult::kTimedOut : WaitResult::kNotEqual, {}};
  }
  auto node = detail::start_async_wait(p, sizeof(T),
                                       static_cast<std::uint64_t>(detail::to_unsigned(expected)),
                                       timeout, std::move(on_done));
  if (!node) return WaitAsyncResult{false, WaitResult::kNotEqual, AsyncWait()};
  return WaitAsyncResult{true, WaitResult::kOk, AsyncWait(std::move(node))};
}

}  // namespace weave::atomics
