#include "loop/atomics_async.h"

#include <utility>

#include "atomics/internal/waiter_list.h"
#include "loop/internal/loop_core.h"
#include "loop/internal/sources.h"

namespace weave::atomics::detail {

// One pending wait: an asynchronous waiter on the waiter list and, at the same
// time, a source registered with the owner's loop. A notify schedules the
// source (intrusive: no allocation, never throws, so it is fine under the
// shard lock); the loop then dispatches it and the callback runs.
//
// Ownership: the loop's registration holds the node from start to
// completion; the AsyncWait handles hold it too. No self-reference: when the
// loop ends with the wait still pending, on_loop_destroyed() withdraws it from
// the waiter list and destroys the callback unrun, and the registration goes.
//
// Lifetime rule for notifiers: the node is linked only while registered, and
// every path that unregisters it unlinks it first (or found it unlinked by a
// notify, whose schedule then happened under the shard lock, before our
// unlink attempt returned). So on_notified() always finds the node and its
// loop's core alive.
class AsyncWaitNode final : public internal::AsyncWaiter,
                            public internal::LoopSource,
                            public std::enable_shared_from_this<AsyncWaitNode> {
 public:
  AsyncWaitNode(internal::LoopCore& core, std::function<void(WaitResult)> on_done)
      : core_(&core), on_done_(std::move(on_done)) {}

  // Under the shard lock, on the notifier's thread. Never allocates.
  void on_notified() noexcept override { core_->schedule(this); }

  // On the loop's thread, after a notify scheduled us: unlinked already.
  void dispatch(EventLoop& loop) override {
    internal::LoopSources::remove(loop, this);  // the loop keeps us alive through this call
    complete(WaitResult::kOk);
  }

  // The loop ends with the wait pending: withdraw it and drop the callback,
  // unrun, here on the loop's thread. If a notify took the node first, its
  // schedule went to the ending loop and is dropped with it.
  void on_loop_destroyed() noexcept override {
    (void)internal::cancel_async(this);
    finish_unrun();
  }

  // Unlinked by us (timeout): complete from the loop's thread.
  void complete_unlinked(EventLoop& loop, WaitResult r) {
    internal::LoopSources::remove(loop, this);
    complete(r);
  }

  // Unlinked by us (cancel): no callback.
  void withdraw(EventLoop& loop) noexcept {
    internal::LoopSources::remove(loop, this);
    finish_unrun();
  }

  [[nodiscard]] bool done() const noexcept { return done_; }

  Timer timer_;

 private:
  void complete(WaitResult r) {
    if (done_) return;
    done_ = true;
    timer_.cancel();
    std::function<void(WaitResult)> f = std::move(on_done_);
    on_done_ = nullptr;
    if (f) f(r);
  }
  void finish_unrun() noexcept {
    done_ = true;
    timer_.cancel();
    on_done_ = nullptr;
  }

  internal::LoopCore* core_;  // alive while we are linked (see the top)
  std::function<void(WaitResult)> on_done_;
  bool done_ = false;  // owner thread
};

std::shared_ptr<AsyncWaitNode> start_async_wait(void* addr, std::size_t width,
                                                std::uint64_t expected,
                                                std::optional<Clock::duration> timeout,
                                                std::function<void(WaitResult)> on_done) {
  // wait_async has answered a zero timeout itself.
  EventLoop& loop = EventLoop::current();
  auto node =
      std::make_shared<AsyncWaitNode>(internal::LoopSources::core(loop), std::move(on_done));
  // Registered (and refed: a pending wait keeps the loop alive) before it is
  // linked: a notify may schedule it at once. Everything that allocates is
  // done here, on the owner's thread, before the node is linked.
  internal::LoopSources::add(loop, node, /*refed=*/true);
  if (timeout && !is_forever(*timeout)) {
    std::weak_ptr<AsyncWaitNode> weak = node;
    try {
      node->timer_ = loop.set_timeout(*timeout, [weak] {
        std::shared_ptr<AsyncWaitNode> n = weak.lock();
        if (!n || n->done()) return;
        // Lost the race to a notify: its dispatch will complete it with kOk.
        if (!internal::cancel_async(n.get())) return;
        n->complete_unlinked(EventLoop::current(), WaitResult::kTimedOut);
      });
    } catch (...) {
      internal::LoopSources::remove(loop, node.get());
      throw;
    }
    node->timer_.unref();  // the registration keeps the loop up, once
  }
  if (internal::enqueue_async(addr, width, expected, node.get()) ==
      internal::WaitOutcome::kNotEqual) {
    node->withdraw(loop);
    return nullptr;
  }
  return node;
}

bool cancel_async_wait(const std::shared_ptr<AsyncWaitNode>& node) {
  if (node->done()) return false;
  if (!internal::cancel_async(node.get())) return false;  // a notify's dispatch is on its way
  node->withdraw(EventLoop::current());
  return true;
}

bool async_wait_pending(const std::shared_ptr<AsyncWaitNode>& node) noexcept {
  return !node->done();
}

}  // namespace weave::atomics::detail
