// The queue behind every receiving end (a MessagePort, a BroadcastChannel):
// a moodycamel ConcurrentQueue of messages, two words that only the producer
// writes, and a control word that (mostly) only the consumer writes.
//
//   posted_  = posts published so far          } the producer's line; the consumer
//   posting_ = 1 while a post is in progress   } reads it to arm and to close
//   ctrl_    = kArmed | kClosedByConsumer | kClosedByProducer
//
// Producer (post): no atomic read-modify-write, no fence. It marks a post in
// progress (posting_ = 1), reads ctrl_ behind a compiler-only
// light_barrier(), refuses if the consumer closed (nothing committed: nothing
// sent, detached or handed over), else enqueues, publishes the count and
// clears posting_. Those two words share a line that only the producer
// touches per post: a post costs no cache line beyond the queue's own.
// If ctrl_ said kArmed (the consumer's loop may be parked) it clears the
// flag with one RMW and schedules the consumer — the only RMW, and only on
// an idle consumer.
//
// Consumer: takes whatever is in the queue. When it runs dry it stays hot
// (its loop polls the queue, see loop/internal/loop_core.h) instead of arming;
// only when its loop is about to park does it arm: set kArmed, then a
// heavy_barrier(), then read posting_ and posted_ (atomics/internal/
// barrier.h: of the producer's "posting_ = 1; read ctrl_" and the
// consumer's "set kArmed; read posting_", at least one sees the other's
// write). So a post either sees kArmed and signals, or the consumer sees the
// post and does not park — never a lost wake-up. A post the consumer sees in
// progress counts as work: it is only a few instructions from done.
//
// Close: the consumer sets kClosedByConsumer, heavy_barrier(), then waits
// for posting_ to be 0: the count it then reads is exactly the accepted
// posts (a producer whose read of ctrl_ came after the barrier sees the
// close and refuses; one whose came before has its posting_ = 1 seen by the
// consumer, who waits for its outcome). Each accepted post is delivered before the close
// event; each later post fails. No message is lost silently. A producer that
// closes (kClosedByProducer) does so after its last post, so the count is
// final.
//
// Threading: the producer methods run on one thread at a time — a port's
// sending end, which may move to another thread with happens-before (the
// message that carries it); its ProducerToken keeps FIFO across moves. A
// broadcast inbox has many producers: constructed with kManyProducers, its
// push() serialises them with a spin lock and enqueues through one producer
// token of the inbox's own (one FIFO, so FIFO per sender thread; the queue
// keeps no producer per sending thread). Consumer methods run on the thread
// that owns the receiving end.
#pragma once

#include <concurrentqueue/concurrentqueue.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <iterator>
#include <limits>
#include <memory>
#include <mutex>  // std::lock_guard
#include <new>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "atomics/internal/barrier.h"
#include "atomics/internal/cache_line.h"
#include "atomics/internal/futex.h"
#include "atomics/internal/spin_lock.h"
#include "channel/internal/queue_alloc.h"
#include "channel/message_port.h"
#include "channel/value.h"
#include "loop/event_loop.h"
#include "loop/internal/loop_core.h"

namespace weave::internal {

// What travels in the queue is what the handler receives: no conversion on
// delivery.
using Message = MessageEvent;
using MessageQueue = moodycamel::ConcurrentQueue<Message, QueueTraits>;
static_assert(std::is_nothrow_move_constructible_v<Message>,
              "weave::Message: must be nothrow move-constructible for the queue");
// Inbox::publish builds a queue slot straight from a Value, by C++20
// aggregate initialisation with parentheses (GCC 10+, Clang 16+); the queue
// relies on that not throwing.
static_assert(noexcept(::new (static_cast<void*>(nullptr)) Message(std::declval<Value&&>())),
              "weave::Message: a slot built from a Value must not throw");

class Inbox {
 public:
  static constexpr std::uint32_t kArmed = 1;
  static constexpr std::uint32_t kClosedByConsumer = 2;
  static constexpr std::uint32_t kClosedByProducer = 4;
  static constexpr std::uint32_t kClosed = kClosedByConsumer | kClosedByProducer;

  enum Producers { kOneProducer, kManyProducers };

  // Allocates; throws std::bad_alloc when a kManyProducers inbox cannot get
  // its producer.
  explicit Inbox(Producers producers = kOneProducer)
      : queue_(kInitialCapacity), many_producers_(producers == kManyProducers) {
    if (many_producers_) {
      shared_token_.emplace(queue_);
      if (!shared_token_->valid()) throw std::bad_alloc();
    }
  }
  Inbox(const Inbox&) = delete;
  Inbox& operator=(const Inbox&) = delete;

  [[nodiscard]] MessageQueue& queue() noexcept { return queue_; }

  // --- producer side ----------------------------------------------------------
  struct Reservation {
    bool accepted;         // false: the consumer closed first; nothing may be sent
    bool armed;            // the consumer may be parked: publish() must signal it
    std::uint64_t posted;  // posted_ before this post
  };
  // Step 1 of a post: marks it in progress and checks for a close. Before
  // anything is committed, so a post the consumer's close refused changes
  // nothing. Every reserve is followed by publish() or, if not accepted,
  // nothing. The producer thread only. Never blocks. Never allocates.
  [[gnu::always_inline]] Reservation reserve() noexcept {
    // relaxed: only producers write posted_, and a new producer thread got
    // the port (and this value) with happens-before.
    const std::uint64_t n = posted_.load(std::memory_order_relaxed);
    posting_.store(1, std::memory_order_relaxed);
    light_barrier();  // the fast side of the Dekker handshake (see top)
    // acquire: orders what we do after a refused post behind the close.
    const std::uint32_t c = ctrl_.load(std::memory_order_acquire);
    if (c & kClosedByConsumer) {
      posting_.store(0, std::memory_order_release);
      return {false, false, n};
    }
    return {true, (c & kArmed) != 0, n};
  }
  // Step 2, only after an accepted reservation: enqueues `item` (with
  // `token`, or the calling thread's implicit producer), publishes the count
  // and wakes an armed consumer. `item` is a whole Message, or a Value that
  // becomes a message without ports: its slot is built straight from the
  // Value, with no Message in between (the scalar fast path). False when the
  // queue could not allocate a block: then nothing was enqueued or counted,
  // `item` is untouched, and the post is over. The producer thread only.
  // Never blocks. Allocates only when the queue needs a block.
  template <class Item>
  [[gnu::always_inline]] bool publish(moodycamel::ProducerToken* token, Item&& item,
                                      Reservation r) noexcept {
    static_assert(std::is_same_v<Item, Message> || std::is_same_v<Item, Value>,
                  "weave::Inbox::publish: a Message or a Value, as an rvalue");
    // A one-item bulk enqueue constructs the slot from *first: Message(Value&&)
    // for a Value. Moves cannot throw, and the queue's allocations report
    // failure by returning false.
    const auto first = std::make_move_iterator(&item);
    const bool ok = token ? queue_.enqueue_bulk(*token, first, 1) : queue_.enqueue_bulk(first, 1);
    if (!ok) [[unlikely]] {
      posting_.store(0, std::memory_order_release);
      return false;
    }
    // release: the count is published after the message is in the queue,
    // and the post ends after the count.
    posted_.store(r.posted + 1, std::memory_order_release);
    posting_.store(0, std::memory_order_release);
    if (r.armed) disarm_and_signal();
    return true;
  }
  // What push() did.
  enum class Pushed : std::uint8_t {
    kSent,
    kClosed,    // the consumer had closed: nothing sent
    kNoMemory,  // the queue could not allocate: nothing sent
  };
  // Both steps; unless kSent, `item` is untouched. The only producer entry
  // point of a kManyProducers inbox. Never blocks (a kManyProducers inbox
  // spins while another sender is inside push()).
  // A kManyProducers inbox enqueues every push (token is ignored) through
  // one producer of its own, under the lock: one FIFO for all senders, and
  // no producer per sending thread kept by the queue forever.
  template <class Item>
  [[gnu::always_inline]] Pushed push(moodycamel::ProducerToken* token, Item&& item) noexcept {
    std::unique_lock<SpinLock> lock(producer_mu_, std::defer_lock);
    if (many_producers_) {
      lock.lock();
      token = &*shared_token_;
    }
    const Reservation r = reserve();
    if (!r.accepted) return Pushed::kClosed;
    return publish(token, std::forward<Item>(item), r) ? Pushed::kSent : Pushed::kNoMemory;
  }
  // True once either side closed. A hint for the fast path. Any thread.
  [[nodiscard]] bool closed_approx() const noexcept {
    return ctrl_.load(std::memory_order_relaxed) & kClosed;
  }
  // Closes from the producing side, after its last post: the consumer will
  // drain what was posted, then see the close. Always signals (rare): a
  // consumer that only listens for the close event never arms. The producer
  // thread only. Never blocks.
  void close_from_producer() noexcept {
    ctrl_.fetch_or(kClosedByProducer, std::memory_order_acq_rel);
    signal();
  }

  // --- consumer side (owner thread of the receiving end) -----------------------
  // Closes from the consuming side: posts accepted so far are still
  // delivered, later ones fail. Costs a heavy barrier. Never blocks for long
  // (see wait_for_publish).
  void close_from_consumer() noexcept {
    const std::uint32_t was = ctrl_.fetch_or(kClosedByConsumer, std::memory_order_acq_rel);
    if (was & kClosedByConsumer) return;
    // A producer that closed did so after its last post, and our acquire
    // read of its kClosedByProducer (a release RMW) shows that post's
    // posting_ = 0 and its count: nothing can race, so no barrier (a
    // worker's exit closes both sides, and the second closer skips one
    // membarrier). Only a port's single producer ever sets that flag.
    if (!(was & kClosedByProducer)) {
      heavy_barrier();  // the slow side of the handshake (see top)
      for (int spins = 0; posting_.load(std::memory_order_acquire) != 0; ++spins) {
        wait_for_publish(spins);
      }
    }
    limit_ = posted_.load(std::memory_order_acquire);
  }
  // The consumer is being destroyed: drops every accepted message not yet
  // taken (and the ports inside them). Exact, because the close froze which
  // posts were accepted and refused ones never enqueue. Call after
  // close_from_consumer(). Never blocks for long (see wait_for_publish).
  void abandon(moodycamel::ConsumerToken& token) noexcept {
    Message m;
    for (int spins = 0; received_ < published(); ++spins) {
      if (queue_.try_dequeue(token, m)) {
        ++received_;
        m = Message();
      } else {
        wait_for_publish(spins);
      }
    }
  }
  // Takes the next message, if one is in the queue. Refused posts never
  // enqueue, so whatever is there was accepted. Never blocks. Never
  // allocates. An accepted post (its post_message returned) is never
  // reported absent: if the count says it is there but the queue does not
  // show it yet, waits for it.
  bool take(moodycamel::ConsumerToken& token, Message& out) noexcept {
    for (int spins = 0; !queue_.try_dequeue(token, out); ++spins) {
      if (received_ >= published()) return false;
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
  // True when a message is in the queue: the hot poll. Reads the queue's
  // own indexes (which the consumer reads to dequeue anyway), not the
  // producer's line. Never blocks.
  [[nodiscard]] bool poll() const noexcept { return queue_.size_approx() != 0; }
  // Arming, in two steps around the loop's heavy barrier (see top).
  void arm_begin() noexcept {
    if (ctrl_.load(std::memory_order_relaxed) & (kArmed | kClosed)) return;
    ctrl_.fetch_or(kArmed, std::memory_order_acq_rel);
  }
  // True when armed with nothing pending. A post in progress counts as
  // pending here: its producer may have read ctrl_ before kArmed was set.
  // acquire on posting_: if it reads the 0 that ended a post, that post's
  // enqueue is visible to poll(); if it reads an older 0, the post started
  // after the barrier and its producer sees kArmed.
  [[nodiscard]] bool arm_end() const noexcept {
    return posting_.load(std::memory_order_acquire) == 0 && !poll();
  }
  // The consumer is dispatching: producers need not signal it. Clears a
  // kArmed left by an arm that found work. Never blocks.
  void disarm() noexcept {
    if (ctrl_.load(std::memory_order_relaxed) & kArmed) {
      ctrl_.fetch_and(~kArmed, std::memory_order_acq_rel);
    }
  }
  // True once either side closed.
  [[nodiscard]] bool closed() const noexcept {
    return ctrl_.load(std::memory_order_acquire) & kClosed;
  }
  // True when the inbox is closed and every accepted message was taken.
  [[nodiscard]] bool finished() const noexcept { return closed() && received_ >= published(); }
  // Accepted messages not yet taken. Consumer thread only.
  [[nodiscard]] std::uint64_t pending_approx() const noexcept {
    const std::uint64_t a = published();
    return a > received_ ? a - received_ : 0;
  }

  // A post is a few instructions from done (in progress, or counted but not yet
  // visible in the queue): spin briefly, then let its thread run in case it
  // was preempted there.
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
  static constexpr std::size_t kInitialCapacity = QueueTraits::BLOCK_SIZE;

  // Posts accepted so far (frozen at the consumer's close). Consumer thread.
  std::uint64_t published() const noexcept {
    const std::uint64_t posted = posted_.load(std::memory_order_acquire);
    return posted < limit_ ? posted : limit_;
  }
  void disarm_and_signal() noexcept {
    // Several producers (broadcast) may see kArmed; the one that clears it signals.
    if (ctrl_.fetch_and(~kArmed, std::memory_order_acq_rel) & kArmed) signal();
  }
  void signal() noexcept {
    std::lock_guard<SpinLock> lock(mu_);
    if (core_) core_->schedule(target_);
  }

  MessageQueue queue_;
  // Written by the producer on every post, read by the consumer only when it
  // arms, closes or finds the queue empty: a line the producer keeps to itself.
  alignas(kFalseSharingSpan) std::atomic<std::uint64_t> posted_{0};
  std::atomic<std::uint32_t> posting_{0};
  static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
                "weave::Inbox: needs a lock-free 64-bit atomic");
  // Read by the producer on every post, written rarely (arm, close, signal):
  // its own line, so the consumer's per-message counters do not disturb it.
  alignas(kFalseSharingSpan) std::atomic<std::uint32_t> ctrl_{0};
  SpinLock mu_;  // the binding; taken by producers that signal
  LoopCore* core_ = nullptr;
  LoopSource* target_ = nullptr;
  const bool many_producers_;
  SpinLock producer_mu_;  // kManyProducers: one push at a time
  // kManyProducers: the one producer every push uses, under producer_mu_
  // (which orders its uses by different threads).
  std::optional<moodycamel::ProducerToken> shared_token_;
  // Consumer-owned: moves with the receiving end.
  alignas(kFalseSharingSpan) std::uint64_t received_ = 0;
  std::uint64_t limit_ = std::numeric_limits<std::uint64_t>::max();
};

}  // namespace weave::internal
