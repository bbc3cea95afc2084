// The submitting side: admission (closed, max_queue, queue_full), the queue
// and its producer tokens, and waking a parked worker (the idle list).
#include <algorithm>
#include <cassert>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>

#include "atomics/internal/barrier.h"
#include "base/deadline.h"
#include "pool/internal/pool_core.h"
#include "pool/internal/pool_worker.h"
#include "pool/internal/ticks.h"
#include "workers/internal/pool_hooks.h"

namespace weave::internal {

namespace {
// The producer tokens the calling thread used last, by pool serial; and
// every pool it holds a token of, to give them back as the thread ends (a
// server that churns submitting threads must not grow every pool's producer
// list, which each worker's hot poll walks).
struct TokenCache {
  static constexpr int kEntries = 4;
  std::uint64_t serial[kEntries] = {};
  moodycamel::ProducerToken* token[kEntries] = {};
  int next = 0;
  std::vector<std::weak_ptr<PoolCore>> pools;
  TokenCache() = default;
  TokenCache(const TokenCache&) = delete;
  TokenCache& operator=(const TokenCache&) = delete;
  ~TokenCache() {
    for (const std::weak_ptr<PoolCore>& w : pools) {
      if (std::shared_ptr<PoolCore> p = w.lock()) p->release_producer_token();
    }
  }
};
thread_local TokenCache tl_tokens;
}  // namespace

void PoolCore::release_producer_token() noexcept {
  std::unique_ptr<moodycamel::ProducerToken> gone;  // destroyed after the lock
  std::lock_guard<std::mutex> lock(tokens_mu);
  auto it = tokens.find(std::this_thread::get_id());
  if (it == tokens.end()) return;
  gone = std::move(it->second);
  tokens.erase(it);
}

moodycamel::ProducerToken& PoolCore::producer_token() {
  TokenCache& c = tl_tokens;
  for (int i = 0; i < TokenCache::kEntries; ++i) {
    if (c.serial[i] == serial) return *c.token[i];
  }
  moodycamel::ProducerToken* t = nullptr;
  {
    std::lock_guard<std::mutex> lock(tokens_mu);
    auto& slot = tokens[std::this_thread::get_id()];
    if (!slot) {
      std::erase_if(c.pools, [](const std::weak_ptr<PoolCore>& w) { return w.expired(); });
      c.pools.reserve(c.pools.size() + 1);  // before the token: no throw after it
      slot = std::make_unique<moodycamel::ProducerToken>(queue);
      c.pools.push_back(weak_from_this());
    }
    t = slot.get();
  }
  const int i = c.next;
  c.next = (c.next + 1) % TokenCache::kEntries;
  c.serial[i] = serial;
  c.token[i] = t;
  return *t;
}

void PoolCore::list_idle(WorkerSlot& slot) noexcept {
  std::lock_guard<SpinLock> lock(idle_mu);
  if (slot.listed_idle.load(std::memory_order_relaxed) ||
      slot.retiring.load(std::memory_order_relaxed)) {
    return;
  }
  slot.listed_idle.store(true, std::memory_order_relaxed);
  idle.push_back(&slot);
  sleepers.store(static_cast<int>(idle.size()), std::memory_order_relaxed);
}

void PoolCore::unlist_idle(WorkerSlot& slot) noexcept {
  std::lock_guard<SpinLock> lock(idle_mu);
  if (!slot.listed_idle.load(std::memory_order_relaxed)) return;
  slot.listed_idle.store(false, std::memory_order_relaxed);
  std::erase(idle, &slot);
  sleepers.store(static_cast<int>(idle.size()), std::memory_order_relaxed);
}

void PoolCore::wake_or_grow() noexcept {
  // The fast side of the handshake with list_idle + the loop's heavy
  // barrier + arm_end (see the top of this file).
  light_barrier();
  if (sleepers.load(std::memory_order_relaxed) > 0) {
    std::lock_guard<SpinLock> lock(idle_mu);
    if (!idle.empty()) {
      WorkerSlot* s = idle.back();
      idle.pop_back();
      s->listed_idle.store(false, std::memory_order_relaxed);
      sleepers.store(static_cast<int>(idle.size()), std::memory_order_relaxed);
      // Under the lock: a worker unlists itself under it before its loop
      // (and the source) can go away.
      s->loop_core->schedule(s->source);
      return;
    }
  }
  if (static_cast<std::size_t>(live.load(std::memory_order_relaxed)) < max_threads) {
    request_spawn();
  }
}

void PoolCore::refuse_at_door(TaskRecord& rec, std::unique_ptr<TaskError> error) noexcept {
  take_id(rec);
  (void)rec.settle(std::move(error));
  rec.drop_payload();
  rec.release();  // the queue's reference: never queued
  rejected.fetch_add(1, std::memory_order_relaxed);
  refused.fetch_add(1, std::memory_order_seq_cst);
}

void PoolCore::take_id(TaskRecord& rec) noexcept {
  if (rec.id() == 0) rec.set_id(next_id.fetch_add(1, std::memory_order_relaxed));
}

void PoolCore::submit(const TaskRecordRef& rec, RunOptions& options,
                      const std::function<Status()>* prepare) {
  // The id first: from here on the task counts as accepted until refused,
  // and every path below either refuses or settles it, exceptions included.
  take_id(*rec);
  rec->queued_ticks = ticks();
  // kForever (or anything at least ~100 years): no limit, as if unset.
  if (options.timeout && is_forever(*options.timeout)) options.timeout.reset();
  // Deadlines are on steady_clock; read only when the task has one.
  const Clock::time_point submitted = options.timeout ? Clock::now() : Clock::time_point{};
  bool admitted = false;
  bool holds_queue_ref = true;  // the queue's reference, until handed over or given back
  try {
    if (!admit(rec, options, submitted)) return;
    // Accepted: every path settles the task through conclude(), an
    // exception included (out of memory cloning the args, making the stop
    // callback or a producer token): run() never throws for a task.
    admitted = true;
    enqueue_admitted(rec, options, prepare, submitted, holds_queue_ref);
  } catch (...) {
    std::string what = "weave::Pool: run() failed";
    try {
      throw;
    } catch (const std::exception& e) {
      what += ": ";
      what += e.what();
    } catch (...) {
    }
    std::unique_ptr<TaskError> error =
        make_task_error(TaskErrc::kThrew, std::move(what), current_exception_type_name());
    if (!admitted) {
      refuse_at_door(*rec, std::move(error));
      return;
    }
    (void)settle_queued(*rec, std::move(error));
    if (holds_queue_ref) rec->release();
  }
}

bool PoolCore::admit(const TaskRecordRef& rec, RunOptions& options, Clock::time_point submitted) {
  auto refuse = [&](TaskErrc errc, const std::string& message) {
    refuse_at_door(*rec, make_task_error(errc, message));
    return false;
  };
  if (closed.load(std::memory_order_acquire)) {
    return refuse(TaskErrc::kPoolClosed, "weave::Pool: the pool is closed");
  }
  // Admission: at most max_threads x concurrency running plus max_queue waiting.
  if (opt.max_queue != PoolOptions::kUnbounded) {
    const auto limit = static_cast<std::int64_t>(
        std::min<std::size_t>(opt.max_queue, (std::size_t{1} << 40)) + max_threads * concurrency);
    std::int64_t n = bounded.load(std::memory_order_relaxed);
    for (;;) {
      if (n < limit) {
        if (bounded.compare_exchange_weak(n, n + 1, std::memory_order_acq_rel)) break;
        continue;
      }
      QueueFullAction action = opt.queue_full;
      if (opt.on_queue_full) {
        const auto waiting = static_cast<std::size_t>(
            std::max<std::int64_t>(0, n - static_cast<std::int64_t>(max_threads * concurrency)));
        try {
          action = opt.on_queue_full(QueueFullInfo{rec->id(), rec->name(), waiting, opt.max_queue});
        } catch (...) {
          action = QueueFullAction::kReject;  // a throwing callback refuses the task
        }
      }
      if (action == QueueFullAction::kReject) {
        return refuse(TaskErrc::kQueueFull, "weave::Pool: the queue is full (max_queue = " +
                                                std::to_string(opt.max_queue) + ")");
      }
      if (action == QueueFullAction::kDropOldest) {
        TaskRecord* old = nullptr;
        bool evicted = false;
        while (!evicted && queue.try_dequeue(old)) {
          evicted = settle_queued(*old, make_task_error(TaskErrc::kQueueFull,
                                                        "weave::Pool: evicted from a full "
                                                        "queue by a newer task"));
          old->release();
        }
        if (!evicted) {
          return refuse(TaskErrc::kQueueFull,
                        "weave::Pool: the queue is full and no task is waiting to evict");
        }
        n = bounded.load(std::memory_order_relaxed);
        continue;
      }
      // kWait: until a settle makes room, the pool closes or the task is
      // cancelled. Meanwhile it is not counted as accepted. Not from a task
      // of this pool: the room may be the one it holds.
      assert(!on_worker_of(this) &&
             "weave::Pool::run: kWait at max_queue from a task of the same pool (it may "
             "deadlock)");
      at_door.fetch_add(1, std::memory_order_seq_cst);
      waiters.fetch_add(1, std::memory_order_seq_cst);
      {
        std::unique_lock<std::mutex> lock(wait_mu);
        wait_cv.wait_for(lock, std::chrono::milliseconds(50), [&] {
          return bounded.load(std::memory_order_seq_cst) < limit ||
                 closed.load(std::memory_order_acquire) || options.signal.stop_requested() ||
                 (options.timeout && Clock::now() - submitted >= *options.timeout);
        });
      }
      waiters.fetch_sub(1, std::memory_order_relaxed);
      at_door.fetch_sub(1, std::memory_order_seq_cst);
      if (closed.load(std::memory_order_acquire)) {
        return refuse(TaskErrc::kPoolClosed, "weave::Pool: the pool closed while run() waited");
      }
      const bool stopped = options.signal.stop_requested();
      if (stopped || (options.timeout && Clock::now() - submitted >= *options.timeout)) {
        // Accepted and cancelled at once, as if it had waited in the queue.
        bounded.fetch_add(1, std::memory_order_acq_rel);
        (void)settle_queued(*rec,
                            cancelled_error(stopped ? TaskErrc::kCancelled : TaskErrc::kTimedOut));
        rec->release();  // the queue's reference: never queued
        return false;
      }
      n = bounded.load(std::memory_order_relaxed);
    }
  }

  return true;
}

void PoolCore::enqueue_admitted(const TaskRecordRef& rec, RunOptions& options,
                                const std::function<Status()>* prepare, Clock::time_point submitted,
                                bool& holds_queue_ref) {
  auto give_back_queue_ref = [&] {
    holds_queue_ref = false;
    rec->release();  // never queued
  };
  if (prepare) {
    if (Status st = (*prepare)(); !st) {
      (void)settle_queued(*rec,
                          make_task_error(TaskErrc::kDataClone,
                                          "weave::Pool: the args cannot be sent: " + st.message()));
      return give_back_queue_ref();
    }
  }
  if (opt.hooks.on_queue) {
    try {
      opt.hooks.on_queue(TaskEvent{rec->id(), rec->name()});
    } catch (...) {
    }
  }
  if (options.timeout) {
    // Listed before anything (a signal, a worker) can settle the task, so
    // the settle finds it to unlist.
    rec->timed = true;
    rec->deadline = deadline_after(submitted, *options.timeout);
    add_deadline(rec);
  }
  if (options.signal.stop_possible()) {
    // The callback holds no reference (the record owns it: a cycle
    // otherwise), so it takes one first; at zero the record is being
    // destroyed, and release() is waiting for this callback to return.
    TaskRecord* raw = rec.get();
    rec->signal_callback = std::make_unique<std::stop_callback<std::function<void()>>>(
        options.signal, std::function<void()>([pool = shared_from_this(), raw] {
          if (!raw->try_add_ref()) return;
          PoolCore& p = *pool;
          // If this is the last reference, the record, and this callback
          // with it, go as `ref` does: nothing runs after it.
          const TaskRecordRef ref(raw);
          (void)cancel_task(p, ref, TaskErrc::kCancelled);
        }));
    if (rec->settled()) return give_back_queue_ref();  // the signal was already requested
  }
  moodycamel::ProducerToken& token = producer_token();
  if (!queue.enqueue(token, rec.get())) {
    (void)settle_queued(
        *rec, make_task_error(TaskErrc::kThrew, "weave::Pool: out of memory", "std::bad_alloc"));
    return give_back_queue_ref();
  }
  holds_queue_ref = false;  // the queue has it now
  // destroy() may have drained the queue just before this enqueue: its
  // store of `destroying`, heavy_barrier() and cancel_queued_all() against
  // this enqueue, light_barrier() and load. Either it sees the task, or
  // this sees it destroying.
  light_barrier();
  if (destroying.load(std::memory_order_relaxed)) {
    cancel_queued_all();
    return;
  }
  wake_or_grow();
}

}  // namespace weave::internal
