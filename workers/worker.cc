// weave::Worker, the facade (see worker.h): the start and its protocol, the
// handlers, posts, terminate, ref/unref and the queries. The parent-side
// state machine is internal/worker_parent.cc, the thread's side
// internal/worker_main.cc.
#include "workers/worker.h"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include "base/internal/scope_exit.h"
#include "loop/internal/clock.h"
#include "workers/internal/live_workers.h"
#include "workers/internal/pool_hooks.h"
#include "workers/internal/worker_main.h"
#include "workers/internal/worker_options_check.h"
#include "workers/internal/worker_parent.h"
#include "workers/internal/worker_thread.h"

namespace weave {

namespace {

std::atomic<int> g_next_thread_id{1};  // 0 is the main thread

[[noreturn]] void invalid(const std::string& what) {
  throw std::invalid_argument("weave::Worker: " + what);
}

Status closed_worker() { return Status(ErrorCode::kClosed, "weave::Worker: the worker has ended"); }

}  // namespace

Worker::Worker(Entry entry, WorkerOptions&& options) {
  if (!entry) invalid("the entry is empty; pass a callable");
  start(std::move(entry), options);
}

Worker::Worker(std::string_view entry_name, WorkerOptions&& options) {
  internal::EntryFunction fn = internal::find_worker_entry(entry_name);
  if (!fn) {
    invalid("no worker entry is named \"" + std::string(entry_name) +
            "\" (define one with WEAVE_WORKER_ENTRY)");
  }
  start(Entry(fn), options);
}

// The start protocol (internal/worker_main.h): everything that can fail
// comes before the commit — the post of worker_data with the transfer list —
// so a throw leaves `options` as it was. `options` is only read, except the
// transfer list, which the successful post takes.
void Worker::start(Entry entry, WorkerOptions& options) {
  internal::validate_worker_options(options);
  EventLoop& loop = EventLoop::current();

  // 1. Every allocation.
  MessageChannel channel;
  auto args = std::make_unique<internal::StartArgs>();
  args->env =
      options.env == EnvMode::kShare ? internal::current_env() : internal::current_env()->fork();
  for (const auto& [key, value] : internal::current_environment_data()) {
    // Private copies made by set_environment_data: they always clone.
    Result<Value> copy = structured_clone(value);
    if (copy) args->environment_data.emplace(key, std::move(*copy));
  }
  const int id = g_next_thread_id.fetch_add(1, std::memory_order_relaxed);
  auto shared = std::make_shared<internal::WorkerShared>(id, options.name,
                                                         options.resource_limits.max_arena_bytes);
  auto parent = std::make_shared<internal::WorkerParent>(shared, loop.handle());
  parent->port = std::move(channel.port1);
  parent->port.unref();  // the KeepAlive decides, not the port
  parent->refed = options.ref;
  parent->update_keep_alive();
  args->shared = shared;
  args->parent = parent;
  args->parent_loop = loop.handle();
  args->entry = std::move(entry);
  args->port = std::move(channel.port2);

  // 2. The thread, parked at its gate until the commit.
  pthread_attr_t attr;
  if (int rc = pthread_attr_init(&attr); rc != 0) {
    throw std::system_error(rc, std::generic_category(), "weave::Worker: pthread_attr_init");
  }
  internal::ScopeExit destroy_attr{[&attr]() noexcept { pthread_attr_destroy(&attr); }};
  if (std::size_t stack = options.resource_limits.stack_size_bytes; stack != 0) {
    const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    const std::size_t rounded = (stack + page - 1) / page * page;
    if (int rc = pthread_attr_setstacksize(&attr, rounded); rc != 0) {
      throw std::system_error(
          rc, std::generic_category(),
          "weave::Worker: cannot give the thread a stack of " + std::to_string(rounded) + " bytes");
    }
  }
  if (int rc = internal::create_thread(&parent->thread, &attr, &internal::worker_main, args.get());
      rc != 0) {
    throw std::system_error(rc, std::generic_category(), "weave::Worker: cannot start the thread");
  }
  parent->started = true;
  // Until the commit succeeds, a throw sends the thread away unstarted: it
  // has touched nothing but `shared`, so `args` stays ours.
  internal::ScopeExit cancel{[&shared, &parent]() noexcept {
    shared->start_gate.store(internal::StartArgs::kCancel, std::memory_order_release);
    shared->start_gate.notify_one();
    pthread_join(parent->thread, nullptr);
    parent->joined = true;
    parent->detached = true;
  }};

  // 3. The commit: the port clones worker_data, moves the listed buffers and
  // hands over the listed ports, or refuses with nothing changed.
  // Nothing to send (the common case): no post, and the worker reads none.
  const Transfer& t = options.transfer_list;
  args->init_posted = !options.worker_data.is_undefined() || !t.buffers.empty() ||
                      !t.ports.empty() || !t.shared_buffers.empty();
  if (args->init_posted) {
    Status sent = parent->port.post_message(options.worker_data, std::move(options.transfer_list));
    if (sent.code() == ErrorCode::kOutOfMemory) throw std::bad_alloc();  // not the options' fault
    if (!sent) {
      invalid("options.worker_data cannot be sent with options.transfer_list: " + sent.to_string());
    }
  }
  internal::list_live_worker(*shared);
  cancel.release();

  // 4. Go. release: pairs with the thread's acquire; the post above is in
  // the port before it looks. The thread owns `args` from here.
  args.release();
  shared->start_gate.store(internal::StartArgs::kGo, std::memory_order_release);
  shared->start_gate.notify_one();
  p_ = std::move(parent);
}

Worker::Worker(Worker&&) noexcept = default;

Worker& Worker::operator=(Worker&& other) noexcept {
  if (this != &other) {
    shut_down();
    p_ = std::move(other.p_);
  }
  return *this;
}

Worker::~Worker() { shut_down(); }

void Worker::shut_down() noexcept {
  if (!p_) return;
  assert(p_->on_owner_thread() &&
         "weave::Worker: destroyed on a thread other than the one that constructed it");
  p_->shut_down();
  p_.reset();
}

namespace internal {
bool worker_ending() noexcept {
  WorkerThread* self = current_worker_thread();
  return self && self->ending;
}

bool worker_exit_in_progress() noexcept {
  WorkerThread* self = current_worker_thread();
  return self && self->exit_requested;
}

std::future<std::optional<int>> WorkerAccess::abandon(Worker&& worker) {
  Worker w = std::move(worker);
  std::future<std::optional<int>> code = w.terminate();
  if (w.p_) {
    assert(w.p_->on_owner_thread() && "weave::internal::abandon_worker: owner thread only");
    w.p_->shut_down(/*detach=*/true);
    w.p_.reset();
  }
  return code;
}
}  // namespace internal

#define WEAVE_WORKER_OWNER_ONLY(what)      \
  assert((!p_ || p_->on_owner_thread()) && \
         "weave::Worker::" what ": owner thread only (the thread that constructed the Worker)")

Worker& Worker::on_online(std::function<void()> handler) {
  WEAVE_WORKER_OWNER_ONLY("on_online");
  if (p_)
    p_->on_online = handler ? std::make_shared<std::function<void()>>(std::move(handler)) : nullptr;
  return *this;
}

Worker& Worker::on_message(std::function<void(MessageEvent&)> handler) {
  if (!handler) return on_message_decoded(nullptr);
  return on_message_decoded([h = std::move(handler)](MessageEvent& e) {
    h(e);
    return Status();
  });
}

Worker& Worker::on_message_decoded(std::function<Status(MessageEvent&)> handler) {
  WEAVE_WORKER_OWNER_ONLY("on_message");
  if (p_) {
    if (p_->delivering) p_->retired_on_message = std::move(p_->on_message);
    p_->on_message =
        handler ? std::make_shared<internal::WorkerParent::MessageHandler>(std::move(handler))
                : nullptr;
  }
  return *this;
}

Worker& Worker::on_messageerror(std::function<void(const WorkerError&)> handler) {
  WEAVE_WORKER_OWNER_ONLY("on_messageerror");
  if (p_) {
    p_->on_messageerror =
        handler ? std::make_shared<internal::WorkerParent::ErrorHandler>(std::move(handler))
                : nullptr;
  }
  return *this;
}

Worker& Worker::on_error(std::function<void(const WorkerError&)> handler) {
  WEAVE_WORKER_OWNER_ONLY("on_error");
  if (p_) {
    p_->on_error = handler
                       ? std::make_shared<internal::WorkerParent::ErrorHandler>(std::move(handler))
                       : nullptr;
  }
  return *this;
}

Worker& Worker::on_exit(std::function<void(int)> handler) {
  WEAVE_WORKER_OWNER_ONLY("on_exit");
  if (p_)
    p_->on_exit =
        handler ? std::make_shared<std::function<void(int)>>(std::move(handler)) : nullptr;
  return *this;
}

Status Worker::post_message(const Value& value) {
  WEAVE_WORKER_OWNER_ONLY("post_message");
  if (!p_ || !p_->port.valid()) return closed_worker();
  Status s = p_->port.post_message(value);
  if (s) internal::bump(p_->shared->messages_in);
  return s;
}

Status Worker::post_message(const Value& value, Transfer&& transfer) {
  WEAVE_WORKER_OWNER_ONLY("post_message");
  if (!p_ || !p_->port.valid()) return closed_worker();
  Status s = p_->port.post_message(value, std::move(transfer));
  if (s) internal::bump(p_->shared->messages_in);
  return s;
}

std::future<std::optional<int>> Worker::terminate() {
  WEAVE_WORKER_OWNER_ONLY("terminate");
  std::promise<std::optional<int>> promise;
  std::future<std::optional<int>> result = promise.get_future();
  if (!p_) {
    promise.set_value(std::nullopt);
    return result;
  }
  internal::WorkerShared& s = *p_->shared;
  {
    // Under the lock the worker's thread finishes with: either it has
    // finished, or it will fulfil this promise.
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.finished.load(std::memory_order_acquire)) {
      promise.set_value(std::nullopt);  // it had already exited
      return result;
    }
    s.waiters.push_back(std::move(promise));
  }
  // Outside the lock: request_stop() runs the worker's stop_callbacks here.
  internal::request_terminate(s);
  return result;
}

Worker& Worker::ref() {
  WEAVE_WORKER_OWNER_ONLY("ref");
  if (p_) {
    p_->refed = true;
    p_->update_keep_alive();
  }
  return *this;
}

Worker& Worker::unref() {
  WEAVE_WORKER_OWNER_ONLY("unref");
  if (p_) {
    p_->refed = false;
    p_->update_keep_alive();
  }
  return *this;
}

#undef WEAVE_WORKER_OWNER_ONLY

bool Worker::has_ref() const noexcept { return p_ && p_->has_ref(); }

int Worker::thread_id() const noexcept { return p_ ? p_->shared->thread_id : 0; }

const std::string& Worker::name() const noexcept {
  static const std::string kNone;
  return p_ ? p_->shared->name : kNone;
}

std::optional<int> Worker::exit_code() const noexcept {
  if (!p_) return std::nullopt;
  const internal::WorkerShared& s = *p_->shared;
  // acquire: pairs with the release in the worker's last act.
  if (!s.finished.load(std::memory_order_acquire)) return std::nullopt;
  return s.exit_code.load(std::memory_order_relaxed);
}

bool Worker::running() const noexcept { return p_ && !exit_code().has_value(); }

WorkerStats Worker::stats() const noexcept {
  WorkerStats out;
  if (!p_) return out;
  const internal::WorkerShared& s = *p_->shared;
  out.messages_in = s.messages_in.load(std::memory_order_relaxed);
  out.messages_out = s.messages_out.load(std::memory_order_relaxed);
  const ArenaStats arena = s.arena.stats();
  out.arena_bytes = arena.bytes_in_use;
  out.arena_peak_bytes = arena.peak_bytes_in_use;
  out.arena_reserved_bytes = arena.bytes_reserved;
  // acquire: the handle was written before loop_published was set.
  if (s.loop_published.load(std::memory_order_acquire)) out.loop_turns = s.loop.turns_approx();
  return out;
}

LoopUtilization Worker::event_loop_utilization() const noexcept {
  LoopUtilization out;
  if (!p_) return out;
  const internal::WorkerShared& s = *p_->shared;
  if (!s.loop_published.load(std::memory_order_acquire)) return out;
  const std::int64_t start = s.loop_start_ns.load(std::memory_order_relaxed);
  std::int64_t end = s.loop_end_ns.load(std::memory_order_relaxed);
  if (end == 0) end = internal::now_ns();
  const Clock::duration elapsed = std::chrono::nanoseconds(end > start ? end - start : 0);
  out.idle = std::min(s.loop.idle_time_approx(), elapsed);
  out.active = elapsed - out.idle;
  if (elapsed.count() > 0) {
    out.utilization =
        std::chrono::duration<double>(out.active) / std::chrono::duration<double>(elapsed);
  }
  return out;
}

}  // namespace weave
