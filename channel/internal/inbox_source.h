// The receiving end's dispatch, shared by MessagePort and BroadcastChannel:
// InboxSource takes messages from its Inbox (channel/internal/inbox.h) and
// hands them to the handler on the loop it is bound to; LoopBinding is the
// node it puts on that loop's ready stack.
//
// Delivery: a message taken for the handler lives in a local of the dispatch
// for exactly the handler's call; whatever the handler did not move out of it
// (the value, transferred buffers, the ports that came with it) is released
// when the call returns or throws, so a port received and ignored is closed
// then and its peer sees `close`.
//
// Threading: an InboxSource is unbound (no handler ever set, or its loop let
// it go) or bound to one loop, from the first handler set on that loop's
// thread until it is posted to another thread, emits its close event, or
// its loop is destroyed. Unbound, it may move to another thread with
// happens-before; bound, every operation belongs to the loop's thread, and
// check_thread() asserts so in debug builds. Producers on other threads
// reach it only through the Inbox's own protocol.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>

#include "atomics/internal/cache_line.h"
#include "channel/internal/batch_gate.h"
#include "channel/internal/inbox.h"
#include "loop/event_loop.h"
#include "loop/internal/clock.h"
#include "loop/internal/loop_core.h"

namespace weave::internal {

class InboxSource;

// The node a receiving end puts on one loop's ready stack. A new one is made
// each time the end binds to a loop: a port scheduled on thread B's loop and
// then transferred to thread C before B took it is still linked into B's
// stack through the old node, so C must not reuse that node's link.
class LoopBinding final : public LoopSource {
 public:
  explicit LoopBinding(std::shared_ptr<InboxSource> owner) : owner_(std::move(owner)) {}
  void dispatch(EventLoop& loop) override;
  void on_loop_destroyed() noexcept override;
  Readiness poll() noexcept override;
  void arm_begin() noexcept override;
  bool arm_end() noexcept override;
  // Cut when the end unbinds; a retired node then dispatches nothing. If the
  // end's own handler unbinds it, the end is released when dispatch returns.
  void detach() noexcept {
    if (dispatching_) {
      zombie_ = std::move(owner_);
    } else {
      owner_.reset();
    }
  }

 private:
  std::shared_ptr<InboxSource> owner_;
  std::shared_ptr<InboxSource> zombie_;  // detached during its own dispatch
  bool dispatching_ = false;
};

// What a debug thread check names: the public type and what it calls itself.
struct EndKind {
  const char* type;  // "weave::MessagePort"
  const char* noun;  // "port"
};

// A receiving end that dispatches its inbox on a loop: the part that
// MessagePort and BroadcastChannel share. Owner thread only.
// Aligned to a cache line: the two ends of a channel are allocated together,
// and the consumer's per-message fields here must not share a line with the
// peer end's sending fields, which its producer reads on every post.
class alignas(kFalseSharingSpan) InboxSource : public std::enable_shared_from_this<InboxSource> {
 public:
  using Handler = std::function<void(MessageEvent&)>;
  using CloseHandler = std::function<void()>;

  InboxSource(Inbox& inbox, EndKind kind) : inbox_(inbox), token_(inbox.queue()), kind_(kind) {}
  virtual ~InboxSource() = default;

  // A non-null handler refs the end again (Node: adding a 'message' listener
  // refs the port); nullptr stops delivery and the end no longer keeps its
  // loop alive. Binds the end to the calling thread's loop. Allocates.
  void set_message_handler(Handler h);
  void set_close_handler(CloseHandler h);
  void set_ref(bool refed);
  // Whether the end keeps its loop alive: referenced, with a message handler,
  // and its close event not yet emitted. Never blocks.
  [[nodiscard]] bool has_ref() const noexcept { return refed_ && on_message_ && !close_emitted_; }
  // Stops dispatching and drops the handlers; the inbox keeps its messages.
  // Never allocates.
  void unbind_from_loop() noexcept;
  // Takes one message without the loop (receiveMessageOnPort).
  bool take(Message& out);
  // Accepted messages not yet delivered (queued or stashed).
  [[nodiscard]] std::size_t pending() const noexcept {
    return static_cast<std::size_t>(inbox_.pending_approx()) + (stash_len_ - stash_pos_);
  }
  // Schedules a dispatch on the bound loop (e.g. to deliver a close event).
  void poke();
  // A post that hands this end to another thread calls this once it has
  // committed: if the end's own handler is running on this thread, dispatch
  // lets go of the end without touching it again (the handler's message is
  // a local of that dispatch; the stash travels with the end). Never
  // allocates.
  void note_transferred() noexcept;

  // Debug builds: aborts with a message naming the type, `op` and the
  // threading rule when the calling thread may not use this end now (it is
  // bound to another thread's loop). Release builds: nothing. Never blocks.
  // Never allocates.
  void check_thread(const char* op) const noexcept {
#ifndef NDEBUG
    if (loop_ && owner_thread_ != std::this_thread::get_id()) wrong_thread(op);
#else
    (void)op;
#endif
  }

  // Called through the LoopBinding, on the bound loop's thread.
  void dispatch(EventLoop& loop);
  void on_loop_destroyed() noexcept;
  // The hot poll: kReady when a handler is set and a message waits (stashed
  // or in the inbox); kGathering while the port lets a batch build (see
  // batch_gate.h): then it touches no shared line. Never blocks.
  // When the stash is empty the poll takes what the queue has straight into
  // it: one read of the producer's queue line per poll, the same as a bare
  // consumer's try_dequeue_bulk, instead of a look now and a take later.
  [[nodiscard]] Readiness poll() noexcept {
    if (!on_message_) return Readiness::kIdle;
    if (stash_pos_ < stash_len_) return Readiness::kReady;
    if (!stash_) return inbox_.poll() ? Readiness::kReady : Readiness::kIdle;
    if (gate_.holding(now_ns)) return Readiness::kGathering;
    return refill() ? Readiness::kReady : Readiness::kIdle;
  }
  void arm_begin() noexcept { inbox_.arm_begin(); }
  // Armed, or nothing to dispatch without a handler (set_message_handler
  // schedules the port when one comes). Either way the loop stops polling
  // the port, which ends its streak (batch_gate.h); when messages wait the
  // loop was about to park, so a batch has had its time: take it now.
  [[nodiscard]] bool arm_end() noexcept {
    const bool quiet = !on_message_ || (stash_pos_ == stash_len_ && inbox_.arm_end());
    gate_.reset();
    return quiet;
  }

 protected:
  Inbox& inbox_;
  moodycamel::ConsumerToken token_;

 private:
  static constexpr int kBudget = 256;          // messages per dispatch: fairness between sources
  static constexpr std::uint32_t kBatch = 32;  // taken from the queue at once
  void bind_if_needed();
  [[noreturn]] void wrong_thread(const char* op) const noexcept;
  // Takes the next batch into the (empty) stash; true if it got any. Tells
  // the gate, which may hold the take after this one (batch_gate.h).
  bool refill() noexcept {
    stash_pos_ = 0;
    stash_len_ = inbox_.take_bulk(token_, stash_.get(), kBatch);
    gate_.after_take(static_cast<std::uint32_t>(stash_len_), kBatch, now_ns);
    return stash_len_ != 0;
  }
  // All accepted messages delivered (or stashed ones pending) and closed.
  bool finished() noexcept { return stash_pos_ == stash_len_ && inbox_.finished(); }
  void update_ref();
  // Drops on_message_ and ends the batch-building streak; if it is the
  // handler running on this thread, the running dispatch keeps it alive
  // until the call returns.
  void release_message_handler() noexcept;

  EventLoop* loop_ = nullptr;
  std::shared_ptr<LoopBinding> binding_;  // set while bound to loop_
  std::thread::id owner_thread_;          // loop_'s thread, while bound
  const EndKind kind_;
  std::shared_ptr<Handler> on_message_;
  std::shared_ptr<CloseHandler> on_close_;
  bool refed_ = true;
  bool close_emitted_ = false;
  // Taken from the queue in bulk but not yet delivered. Part of the port's
  // state: it travels with the port and is read first by every take.
  std::unique_ptr<Message[]> stash_;
  std::size_t stash_pos_ = 0;
  std::size_t stash_len_ = 0;
  // When the next take may come (batch building).
  BatchGate gate_;
};

}  // namespace weave::internal
