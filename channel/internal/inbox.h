// The queue behind every receiving end (a MessagePort, a BroadcastChannel):
// a moodycamel ConcurrentQueue of messages plus one 64-bit state word that
// carries the post count and two flags.
//
//   state = posted << 2 | kArmed | kClosed
//
// Producer (post): one fetch_add on the state word reserves the post, then
// the message is enqueued. That single RMW (a) tells the producer whether the
// consumer had closed first — then the post fails before anything was
// committed: nothing is sent, detached or handed over; (b) says whether the
// consumer was armed (idle) and must be scheduled after the enqueue, so a
// busy consumer costs producers no wake-up and no system call.
//
// Consumer: takes whatever is in the queue — all of it was accepted — and
// reads the state word only when it runs dry (to arm) or to learn that a
// close is complete, so a busy consumer does not pull the producers' cache
// line per message. A message counted but not yet enqueued (its producer is
// between the two steps) is waited for, briefly, at those two points.
//
// Arming: when it runs dry the consumer arms with a CAS that fails if the
// count moved, so a post can never slip between "empty" and "armed" (both
// sides RMW the same word: a total order).
//
// Close: whoever closes sets kClosed with an RMW. The posts counted before it
// are exactly the accepted ones: each is delivered before the close event;
// each later post returns false. No message is lost silently.
//
// Threading: producer methods are "Any thread" (a port's inbox has one
// producer at a time, whose ProducerToken keeps FIFO order across threads as
// the port moves; a broadcast inbox has many, FIFO per sender thread).
// Consumer methods run on the thread that owns the receiving end.
#pragma once

#include <concurrentqueue/concurrentqueue.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>  // std::lock_guard
#include <thread>
#include <vector>

#include "atomics/internal/futex.h"
#include "channel/message_port.h"
#include "channel/value.h"
#include "loop/event_loop.h"

namespace weave::internal {

// What travels in the queue is what the handler receives: no conversion on
// delivery.
using Message = MessageEvent;
static_assert(std::is_nothrow_move_constructible_v<Message>,
              "weave::Message: must be nothrow move-constructible for the queue");

// A test-and-set lock for the few instructions of a loop binding. Cheaper
// than a mutex on the signal path (one RMW to take, a plain store to give
// back); never held across anything that blocks.
class SpinLock {
 public:
  void lock() noexcept {
    while (flag_.exchange(true, std::memory_order_acquire)) {
      while (flag_.load(std::memory_order_relaxed)) cpu_relax();
    }
  }
  void unlock() noexcept { flag_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> flag_{false};
};

class Inbox {
 public:
  static constexpr std::uint64_t kClosed = 1;
  static constexpr std::uint64_t kArmed = 2;
  static constexpr std::uint64_t kOne = 4;

  Inbox() : queue_(kInitialCapacity) {}
  Inbox(const Inbox&) = delete;
  Inbox& operator=(const Inbox&) = delete;

  [[nodiscard]] moodycamel::ConcurrentQueue<Message>& queue() noexcept { return queue_; }

  // --- producer side ----------------------------------------------------------
  struct Reservation {
    bool accepted;  // false: the consumer closed first; nothing may be sent
    bool armed;     // the consumer was idle: publish() must schedule it
  };
  // Step 1 of a post: counts it. Before anything is committed, so a post the
  // consumer's close refused changes nothing. Any thread. Never blocks.
  Reservation reserve() noexcept {
    // acquire orders our read of kClosed after the closer's RMW.
    const std::uint64_t prev = state_.fetch_add(kOne, std::memory_order_acq_rel);
    return {(prev & kClosed) == 0, (prev & kArmed) != 0};
  }
  // Step 2, only after an accepted reservation: enqueues `m` (with `token`,
  // or the calling thread's implicit producer) and wakes an idle consumer.
  // Any thread. Never blocks. Allocates only when the queue needs a block.
  void publish(moodycamel::ProducerToken* token, Message&& m, Reservation r) {
    if (token) {
      queue_.enqueue(*token, std::move(m));
    } else {
      queue_.enqueue(std::move(m));
    }
    if (r.armed) disarm_and_signal();
  }
  // Both steps; false (and `m` untouched) when the consumer had closed.
  bool push(moodycamel::ProducerToken* token, Message&& m) {
    const Reservation r = reserve();
    if (!r.accepted) return false;
    publish(token, std::move(m), r);
    return true;
  }
  // True once either side closed. A hint for the fast path. Any thread.
  [[nodiscard]] bool closed_approx() const noexcept {
    return state_.load(std::memory_order_relaxed) & kClosed;
  }
  // Closes from the producing side: the consumer will drain what was posted,
  // then see the close. Always signals (rare): a consumer that only listens
  // for the close event never arms. Any thread. Never blocks.
  void close_from_producer() noexcept {
    state_.fetch_or(kClosed, std::memory_order_acq_rel);
    signal();
  }

  // --- consumer side (owner thread of the receiving end) -----------------------
  // Closes from the consuming side: posts counted so far are still delivered,
  // later ones fail.
  void close_from_consumer() noexcept {
    const std::uint64_t prev = state_.fetch_or(kClosed, std::memory_order_acq_rel);
    limit_ = prev >> 2;
  }
  // The consumer is being destroyed: drops every accepted message not yet
  // taken (and the ports inside them). Exact, because the close froze which
  // posts were accepted and refused ones never enqueue. Call after
  // close_from_consumer(). Never blocks for long (see wait_for_publish).
  void abandon(moodycamel::ConsumerToken& token) noexcept {
    Message m;
    for (int spins = 0; received_ < available(); ++spins) {
      if (queue_.try_dequeue(token, m)) {
        ++received_;
        m = Message();
      } else {
        wait_for_publish(spins);
      }
    }
  }
  // Takes the next message, if one is in the queue. Refused posts never
  // enqueue, so whatever is there was accepted: no need to read the state
  // word (and pull the producer's cache line) per message. Never blocks.
  // Never allocates.
  // If the queue looks empty but a message was counted (its producer is
  // between reserve and publish), waits for it: an accepted post is never
  // reported as absent.
  bool take(moodycamel::ConsumerToken& token, Message& out) noexcept {
    for (int spins = 0; !queue_.try_dequeue(token, out); ++spins) {
      if (received_ >= available()) return false;
      wait_for_publish(spins);
    }
    ++received_;
    return true;
  }
  // Takes up to `max` messages into out[0..n); returns n. Never blocks.
  // Never allocates.
  std::size_t take_bulk(moodycamel::ConsumerToken& token, Message* out, std::size_t max) noexcept {
    const std::size_t n = queue_.try_dequeue_bulk(token, out, max);
    received_ += n;
    return n;
  }
  // Arms the inbox when nothing is left; false if a message was counted that
  // has not been taken (it arrived meanwhile, or its producer is between
  // reserve and publish): the caller then takes again. Never blocks. Never
  // allocates.
  bool arm() noexcept {
    std::uint64_t s = state_.load(std::memory_order_acquire);
    for (;;) {
      if (received_ < available_in(s)) return false;
      if (s & (kArmed | kClosed)) return true;
      if (state_.compare_exchange_weak(s, s | kArmed, std::memory_order_acq_rel,
                                       std::memory_order_acquire)) {
        return true;
      }
    }
  }
  // True once either side closed.
  [[nodiscard]] bool closed() const noexcept {
    return state_.load(std::memory_order_acquire) & kClosed;
  }
  // True when the inbox is closed and every accepted message was taken.
  [[nodiscard]] bool finished() noexcept {
    const std::uint64_t s = state_.load(std::memory_order_acquire);
    return (s & kClosed) && received_ >= available_in(s);
  }
  // Accepted messages not yet taken. Consumer thread only.
  [[nodiscard]] std::uint64_t pending_approx() const noexcept {
    const std::uint64_t a = available_in(state_.load(std::memory_order_acquire));
    return a > received_ ? a - received_ : 0;
  }

  // A message is counted (reserve) a moment before it is in the queue
  // (publish): its producer is between two steps, so spin briefly, then let
  // it run in case it was preempted there.
  static void wait_for_publish(int spins) noexcept {
    if (spins < 1000) {
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }

  // --- loop binding -------------------------------------------------------------
  // While bound, a producer that finds the inbox armed schedules `target` on
  // `core`. Producers read the binding under mu_, and the owner unbinds under
  // mu_ before it unregisters the source, so a producer never touches a loop
  // or source that is gone. Owner thread only.
  void bind(LoopCore* core, LoopSource* target) {
    std::lock_guard<SpinLock> lock(mu_);
    core_ = core;
    target_ = target;
  }
  void unbind() {
    std::lock_guard<SpinLock> lock(mu_);
    core_ = nullptr;
    target_ = nullptr;
  }

 private:
  // One block to start: a channel that carries little costs little memory.
  static constexpr std::size_t kInitialCapacity = moodycamel::ConcurrentQueueDefaultTraits::BLOCK_SIZE;

  std::uint64_t available() const noexcept {
    return available_in(state_.load(std::memory_order_acquire));
  }
  std::uint64_t available_in(std::uint64_t s) const noexcept {
    const std::uint64_t posted = s >> 2;
    if (!(s & kClosed)) return posted;
    // Closed by the producer: the count is frozen, all of it accepted. Closed
    // by us: only what was counted when we closed.
    return posted < limit_ ? posted : limit_;
  }
  void disarm_and_signal() noexcept {
    // Several producers (broadcast) may see kArmed; the one that clears it signals.
    if (state_.fetch_and(~kArmed, std::memory_order_acq_rel) & kArmed) signal();
  }
  void signal() noexcept {
    std::lock_guard<SpinLock> lock(mu_);
    if (core_) core_->schedule(target_);
  }

  moodycamel::ConcurrentQueue<Message> queue_;
  // Written by every producer on every post; its own cache line keeps it off
  // the queue's and the consumer's fields.
  alignas(64) std::atomic<std::uint64_t> state_{0};
  static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
                "weave::Inbox: needs a lock-free 64-bit atomic");
  // Consumer-owned: moves with the receiving end.
  alignas(64) std::uint64_t received_ = 0;
  std::uint64_t limit_ = std::numeric_limits<std::uint64_t>::max();
  // The binding: taken by producers that signal, so off the consumer's line.
  alignas(64) SpinLock mu_;
  LoopCore* core_ = nullptr;
  LoopSource* target_ = nullptr;
};

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
  // Cut when the end unbinds; a retired node then dispatches nothing.
  void detach() noexcept { owner_.reset(); }

 private:
  std::shared_ptr<InboxSource> owner_;
};

// A receiving end that dispatches its inbox on a loop: the part that
// MessagePort and BroadcastChannel share. Owner thread only.
class InboxSource : public std::enable_shared_from_this<InboxSource> {
 public:
  using Handler = std::function<void(MessageEvent&)>;
  using CloseHandler = std::function<void()>;

  explicit InboxSource(Inbox& inbox) : inbox_(inbox), token_(inbox.queue()) {}
  virtual ~InboxSource() = default;

  void set_message_handler(Handler h);
  void set_close_handler(CloseHandler h);
  void set_ref(bool refed);
  [[nodiscard]] bool has_ref() const noexcept { return refed_; }
  // Stops dispatching and drops the handlers; the inbox keeps its messages.
  void unbind_from_loop();
  // Takes one message without the loop (receiveMessageOnPort).
  bool take(Message& out);
  // Accepted messages not yet delivered (queued or stashed).
  [[nodiscard]] std::size_t pending() const noexcept {
    return static_cast<std::size_t>(inbox_.pending_approx()) + (stash_len_ - stash_pos_);
  }
  // Schedules a dispatch on the bound loop (e.g. to deliver a close event).
  void poke();
  // Called when the port is posted to another thread: if its own handler is
  // running on this thread, dispatch lets go of it without touching it again.
  void note_transferred();

  // Called through the LoopBinding, on the bound loop's thread.
  void dispatch(EventLoop& loop);
  void on_loop_destroyed() noexcept;

 protected:
  Inbox& inbox_;
  moodycamel::ConsumerToken token_;

 private:
  static constexpr int kBudget = 256;      // messages per dispatch: fairness between sources
  static constexpr std::size_t kBatch = 32;  // taken from the queue at once
  void bind_if_needed();
  // All accepted messages delivered (or stashed ones pending) and closed.
  bool finished() noexcept { return stash_pos_ == stash_len_ && inbox_.finished(); }
  void update_ref();

  EventLoop* loop_ = nullptr;
  std::shared_ptr<LoopBinding> binding_;  // set while bound to loop_
  std::shared_ptr<Handler> on_message_;
  std::shared_ptr<CloseHandler> on_close_;
  bool refed_ = true;
  bool close_emitted_ = false;
  // Taken from the queue in bulk but not yet delivered. Part of the port's
  // state: it travels with the port and is read first by every take.
  std::unique_ptr<Message[]> stash_;
  std::size_t stash_pos_ = 0;
  std::size_t stash_len_ = 0;
};

}  // namespace weave::internal
