#include "loop/atomics_async.h"

#include <utility>

#include "atomics/internal/waiter_list.h"

namespace weave::atomics::detail {

// One pending wait. Owned by its handle(s), by `self_` while it is on the
// waiter list, and by the task that delivers its completion.
class AsyncWaitNode final : public internal::AsyncWaiter,
                            public std::enable_shared_from_this<AsyncWaitNode> {
 public:
  AsyncWaitNode(LoopHandle loop, std::function<void(WaitResult)> on_done)
      : loop_(std::move(loop)), keep_(loop_.keep_alive()), on_done_(std::move(on_done)) {}

  // Under the shard lock, on the notifier's thread: hand the completion to
  // the owner's loop (a false post means that loop has ended: nothing to run).
  void on_notified() noexcept override {
    std::shared_ptr<AsyncWaitNode> me = std::move(self_);
    (void)loop_.post([me] { me->complete(WaitResult::kOk); });
  }

  // Owner thread.
  void complete(WaitResult r) {
    if (done_) return;
    done_ = true;
    timer_.cancel();
    keep_.reset();
    std::function<void(WaitResult)> f = std::move(on_done_);
    if (f) f(r);
  }
  void withdraw() {
    done_ = true;
    timer_.cancel();
    keep_.reset();
    on_done_ = nullptr;
    self_.reset();
  }
  [[nodiscard]] bool done() const noexcept { return done_; }

  std::shared_ptr<AsyncWaitNode> self_;  // while linked; moved out by on_notified
  Timer timer_;

 private:
  LoopHandle loop_;
  KeepAlive keep_;
  std::function<void(WaitResult)> on_done_;
  bool done_ = false;  // owner thread
};

std::shared_ptr<AsyncWaitNode> start_async_wait(void* addr, std::size_t width,
                                                std::uint64_t expected,
                                                std::optional<Clock::duration> timeout,
                                                std::function<void(WaitResult)> on_done) {
  // wait_async has answered a zero timeout itself.
  EventLoop& loop = EventLoop::current();
  auto node = std::make_shared<AsyncWaitNode>(loop.handle(), std::move(on_done));
  node->self_ = node;  // before linking: a notify may take it at once
  if (internal::enqueue_async(addr, width, expected, node.get()) ==
      internal::WaitOutcome::kNotEqual) {
    node->withdraw();
    return nullptr;
  }
  if (timeout) {
    std::weak_ptr<AsyncWaitNode> weak = node;
    node->timer_ = loop.set_timeout(*timeout, [weak] {
      std::shared_ptr<AsyncWaitNode> n = weak.lock();
      if (!n || n->done()) return;
      // Lost the race to a notify: its task will complete it with kOk.
      if (!internal::cancel_async(n.get())) return;
      n->self_.reset();
      n->complete(WaitResult::kTimedOut);
    });
    node->timer_.unref();  // the KeepAlive keeps the loop up, once
  }
  return node;
}

bool cancel_async_wait(const std::shared_ptr<AsyncWaitNode>& node) {
  if (node->done()) return false;
  if (!internal::cancel_async(node.get())) return false;  // a notify's task is on its way
  node->withdraw();
  return true;
}

bool async_wait_pending(const std::shared_ptr<AsyncWaitNode>& node) noexcept {
  return !node->done();
}

}  // namespace weave::atomics::detail
