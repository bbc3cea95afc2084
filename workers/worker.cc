#include "workers/worker.h"

#include <cxxabi.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <system_error>
#include <typeinfo>
#include <utility>

#include "atomics/atomics.h"
#include "loop/internal/clock.h"
#include "workers/internal/pool_hooks.h"
#include "workers/internal/worker_thread.h"

namespace weave {
namespace internal {

namespace {

std::atomic<int> g_next_thread_id{1};  // 0 is the main thread
thread_local WorkerThread* tl_worker = nullptr;

std::string demangle(const char* mangled) {
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> name(
      abi::__cxa_demangle(mangled, nullptr, nullptr, &status), &std::free);
  return status == 0 && name ? std::string(name.get()) : std::string(mangled);
}

void request_terminate(WorkerShared& s) noexcept {
  s.terminating.store(true, std::memory_order_seq_cst);  // see WorkerShared: the Dekker pair
  s.stop.request_stop();
  s.interruptor.interrupt();  // wakes an atomics::wait in progress, and any later one
  if (s.loop_published.load(std::memory_order_seq_cst)) s.loop.stop();
}

}  // namespace

WorkerThread* current_worker_thread() noexcept { return tl_worker; }

std::string current_exception_type_name() {
  std::type_info* type = abi::__cxa_current_exception_type();
  return type ? demangle(type->name()) : std::string("unknown");
}

// --- parent side -------------------------------------------------------------------

// The Worker's state on its parent thread. Owned by the Worker; tasks from the
// worker's thread hold a weak_ptr and lock it only on the parent's thread, so
// it is created, used and destroyed there alone.
class WorkerParent : public std::enable_shared_from_this<WorkerParent> {
 public:
  using MessageHandler = std::function<Status(MessageEvent&)>;
  using ErrorHandler = std::function<void(const WorkerError&)>;

  WorkerParent(std::shared_ptr<WorkerShared> s, LoopHandle parent_loop)
      : shared(std::move(s)), loop(std::move(parent_loop)), owner(pthread_self()) {}

  void handle_online();
  void handle_error(const WorkerError& error);
  void handle_exit(int code);
  void update_keep_alive();
  // detach: let the thread go instead of joining it (abandon_worker).
  void shut_down(bool detach = false) noexcept;
  [[nodiscard]] bool on_owner_thread() const noexcept {
    return pthread_equal(owner, pthread_self());
  }

  const std::shared_ptr<WorkerShared> shared;
  const LoopHandle loop;  // the parent's
  const pthread_t owner;
  MessagePort port;  // the parent's end of the channel to the worker
  KeepAlive keep_alive;
  pthread_t thread{};
  bool started = false;
  bool joined = false;
  bool refed = true;
  bool online = false;
  bool exit_seen = false;     // the exit task ran: the thread is joined
  bool exit_emitted = false;  // on_exit was called
  bool detached = false;      // the Worker is gone: no more events
  // Shared, so that a handler that replaces itself keeps running safely.
  std::shared_ptr<std::function<void()>> on_online;
  std::shared_ptr<MessageHandler> on_message;
  std::shared_ptr<MessageHandler> retired_on_message;  // replaced while it ran
  bool delivering = false;
  std::shared_ptr<ErrorHandler> on_messageerror;
  std::shared_ptr<ErrorHandler> on_error;
  std::shared_ptr<std::function<void(int)>> on_exit;

 private:
  void deliver(MessageEvent& event);
  // Delivers every message still in the port; the worker posted them before
  // the error or exit being handled.
  void drain();
  void join() noexcept;
  template <class Fn>
  void repost(Fn fn) noexcept;
};

void WorkerParent::deliver(MessageEvent& event) {
  internal::bump(shared->messages_out);
  // A raw pointer, not a reference count per message: a handler that
  // replaces itself (on_message inside on_message) parks the old one in
  // retired_on_message until this returns.
  MessageHandler* handler = on_message.get();
  if (!handler) return;
  delivering = true;
  struct Done {
    WorkerParent* p;
    ~Done() {
      p->delivering = false;
      p->retired_on_message.reset();
    }
  } done{this};
  Status decoded = (*handler)(event);
  if (decoded.ok() || detached) return;
  if (std::shared_ptr<ErrorHandler> h = on_messageerror) {
    (*h)(WorkerError{"ERR_WORKER_MESSAGE_DECODE", std::string(error_code_name(decoded.code())),
                     decoded.message()});
  }
}

void WorkerParent::drain() {
  while (!detached) {
    std::optional<MessageEvent> event = receive_message_on_port(port);
    if (!event) return;
    deliver(*event);
  }
}

void WorkerParent::join() noexcept {
  if (!started || joined) return;
  pthread_join(thread, nullptr);
  joined = true;
}

template <class Fn>
void WorkerParent::repost(Fn fn) noexcept {
  // A handler threw in the middle of an event: the exception leaves the
  // parent's run(); the rest of the event runs on the next one.
  try {
    loop.post([weak = weak_from_this(), fn = std::move(fn)]() mutable {
      if (std::shared_ptr<WorkerParent> p = weak.lock()) fn(*p);
    });
  } catch (...) {
    // Out of memory while already unwinding: the rest of the event is lost;
    // the destructor still joins the thread.
  }
}

void WorkerParent::handle_online() {
  if (detached || online) return;
  online = true;
  // Messages are delivered from now on, so none comes before `online`.
  port.on_message([weak = weak_from_this()](MessageEvent& e) {
    if (std::shared_ptr<WorkerParent> p = weak.lock()) p->deliver(e);
  });
  if (std::shared_ptr<std::function<void()>> h = on_online) (*h)();
}

void WorkerParent::handle_error(const WorkerError& error) {
  if (detached) return;
  try {
    drain();
  } catch (...) {
    repost([error](WorkerParent& p) { p.handle_error(error); });
    throw;
  }
  if (detached) return;
  if (std::shared_ptr<ErrorHandler> h = on_error) (*h)(error);
}

void WorkerParent::handle_exit(int code) {
  if (detached || exit_emitted) return;
  if (!exit_seen) {
    // The thread posted this as its very last act: the join is immediate.
    join();
    exit_seen = true;
    update_keep_alive();
  }
  try {
    drain();
  } catch (...) {
    repost([code](WorkerParent& p) { p.handle_exit(code); });
    throw;
  }
  if (detached) return;
  exit_emitted = true;
  port = MessagePort();  // closed by the worker already; every message was delivered
  if (std::shared_ptr<std::function<void(int)>> h = on_exit) (*h)(code);
}

void WorkerParent::update_keep_alive() {
  if (refed && !exit_seen && !detached) {
    if (!keep_alive.holds()) keep_alive = loop.keep_alive();
  } else {
    keep_alive.reset();
  }
}

void WorkerParent::shut_down(bool detach) noexcept {
  if (detached) return;
  detached = true;
  on_online.reset();
  // The Worker may be destroyed from inside its own message handler: that
  // handler lives on until deliver() returns.
  if (delivering) retired_on_message = std::move(on_message);
  on_message.reset();
  on_messageerror.reset();
  on_error.reset();
  on_exit.reset();
  request_terminate(*shared);
  if (detach && started && !joined) {
    // The thread holds its own references (WorkerShared, the loops' cores,
    // a weak one to this): it may outlive every object here.
    pthread_detach(thread);
    joined = true;
  } else {
    join();
  }
  keep_alive.reset();
  port = MessagePort();
}

// --- worker side -------------------------------------------------------------------

namespace {

struct StartArgs {
  std::shared_ptr<WorkerShared> shared;
  std::weak_ptr<WorkerParent> parent;
  LoopHandle parent_loop;
  Worker::Entry entry;
  MessagePort port;
  std::shared_ptr<Env> env;
  EnvironmentData environment_data;
};

// Runs `fn(parent)` on the parent's loop, after everything this thread posted
// before (LoopHandle::post keeps each poster's order).
template <class Fn>
void post_to_parent(WorkerThread& self, Fn fn) noexcept {
  try {
    self.parent_loop.post([weak = self.parent, fn = std::move(fn)]() mutable {
      if (std::shared_ptr<WorkerParent> p = weak.lock()) fn(*p);
    });
  } catch (...) {
    // Out of memory: this event is lost. The exit still happens: the
    // parent's destructor joins the thread.
  }
}

void report_error(WorkerThread& self, const char* code, std::string type_name,
                  const char* message) noexcept {
  try {
    WorkerError error{code, std::move(type_name), message};
    post_to_parent(self, [error = std::move(error)](WorkerParent& p) { p.handle_error(error); });
  } catch (...) {
    // Out of memory while describing the error: the exit code still says 1.
  }
}

std::string type_name_of(const std::exception& e) noexcept {
  try {
    return demangle(typeid(e).name());
  } catch (...) {
    return std::string();
  }
}

std::string current_type_name() noexcept {
  try {
    return current_exception_type_name();
  } catch (...) {
    return std::string();
  }
}

// The worker's life up to its exit code: online, the entry, the loop.
int run_worker(WorkerThread& self, Worker::Entry& entry) {
  WorkerShared& s = *self.shared;
  EventLoop& loop = EventLoop::current();
  s.loop = loop.handle();
  s.loop_start_ns.store(now_ns(), std::memory_order_relaxed);
  s.loop_published.store(true, std::memory_order_seq_cst);  // see WorkerShared: the Dekker pair
  // The constructor's first post on the port carries worker_data and the
  // transferred ports; it is in the port before this thread started.
  if (std::optional<MessageEvent> init = receive_message_on_port(self.port)) {
    self.data = std::move(init->data);
    self.ports = std::move(init->ports);
  }
  if (s.terminating.load(std::memory_order_seq_cst)) return 1;  // before it began: no online
  post_to_parent(self, [](WorkerParent& p) { p.handle_online(); });
  try {
    entry();
    for (;;) {
      if (self.exit_requested) return self.exit_code;
      // acquire: pairs with the parent's store; the stop it requested makes
      // run() return too, so this only saves a turn.
      if (s.terminating.load(std::memory_order_acquire)) return 1;
      // run() returns false when nothing referenced is left, true when it was
      // stopped: by terminate() or exit() (checked above on the next pass), or
      // by the worker's own EventLoop::stop(), after which it simply goes on.
      if (!loop.run()) {
        if (self.exit_requested) return self.exit_code;
        return s.terminating.load(std::memory_order_acquire) ? 1 : 0;
      }
    }
  } catch (const WorkerExit&) {
    return self.exit_code;
  } catch (const atomics::WaitInterrupted&) {
    return 1;  // terminate() woke an atomics::wait: ended as terminated
  } catch (const ArenaOutOfMemory& e) {
    report_error(self, "ERR_WORKER_OUT_OF_MEMORY", type_name_of(e), e.what());
  } catch (const std::exception& e) {
    report_error(self, "ERR_UNCAUGHT_EXCEPTION", type_name_of(e), e.what());
  } catch (...) {
    report_error(self, "ERR_UNCAUGHT_EXCEPTION", current_type_name(), "");
  }
  return 1;
}

void set_thread_name(const WorkerShared& s) noexcept {
  // Linux keeps 15 bytes and a NUL.
  char name[16] = {};
  if (s.name.empty()) {
    std::snprintf(name, sizeof name, "worker-%d", s.thread_id);
  } else {
    s.name.copy(name, sizeof name - 1);
  }
  pthread_setname_np(pthread_self(), name);
}

void* worker_main(void* raw) {
  std::unique_ptr<StartArgs> args(static_cast<StartArgs*>(raw));
  // The first thread_local this thread makes, before its EventLoop: so it is
  // destroyed after the loop, and its destructor reports the exit once
  // everything the loop held is gone (see WorkerThread).
  static thread_local WorkerThread self;
  self.shared = std::move(args->shared);
  self.parent = std::move(args->parent);
  self.parent_loop = std::move(args->parent_loop);
  self.port = std::move(args->port);
  self.env = std::move(args->env);
  self.environment_data = std::move(args->environment_data);
  Worker::Entry entry = std::move(args->entry);
  args.reset();
  tl_worker = &self;
  set_thread_name(*self.shared);

  internal::set_thread_interruptor(&self.shared->interruptor);
  self.final_code = run_worker(self, entry);
  self.ending = true;
  // Teardown (the loop's destructor may still run tasks) must not be
  // interrupted: a throw there would have nowhere to go.
  internal::set_thread_interruptor(nullptr);

  // Let go of the worker's own objects while its loop still exists.
  entry = nullptr;
  self.port.close();
  self.port = MessagePort();
  self.data = Value();
  self.ports.clear();
  return nullptr;
}

}  // namespace

WorkerThread::~WorkerThread() {
  if (!shared) return;
  // The loop, and every callback it held, is gone: the arena can go too.
  shared->arena.release();
  shared->loop_end_ns.store(now_ns(), std::memory_order_relaxed);
  const int code = final_code;
  std::vector<std::promise<std::optional<int>>> waiters;
  {
    std::lock_guard<std::mutex> lock(shared->mu);
    shared->exit_code.store(code, std::memory_order_relaxed);
    // release: everything the worker did is visible to whoever sees it finished.
    shared->finished.store(true, std::memory_order_release);
    waiters = std::move(shared->waiters);
  }
  // The exit task is queued before any terminate() future is ready, so a
  // parent that waited on one and then runs its loop gets the exit event.
  post_to_parent(*this, [code](WorkerParent& p) { p.handle_exit(code); });
  for (auto& waiter : waiters) waiter.set_value(code);
}

// --- entry registry ----------------------------------------------------------------

namespace {
struct EntryRegistry {
  std::mutex mu;
  std::map<std::string, EntryFunction, std::less<>> entries;
};
EntryRegistry& entry_registry() {
  static EntryRegistry registry;
  return registry;
}
}  // namespace

bool register_worker_entry(std::string_view name, EntryFunction entry) {
  EntryRegistry& r = entry_registry();
  std::lock_guard<std::mutex> lock(r.mu);
  const bool inserted = r.entries.emplace(std::string(name), entry).second;
  assert(inserted && "WEAVE_WORKER_ENTRY: two entries have the same name");
  return inserted;
}

EntryFunction find_worker_entry(std::string_view name) noexcept {
  EntryRegistry& r = entry_registry();
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.entries.find(name);
  return it == r.entries.end() ? nullptr : it->second;
}

}  // namespace internal

// --- Worker ------------------------------------------------------------------------

namespace {

[[noreturn]] void invalid(const std::string& what) {
  throw std::invalid_argument("weave::Worker: " + what);
}

void validate(const WorkerOptions& o) {
  if (o.name.size() > WorkerOptions::kMaxNameBytes) {
    invalid("options.name is " + std::to_string(o.name.size()) + " bytes; at most " +
            std::to_string(WorkerOptions::kMaxNameBytes) + " are allowed");
  }
  if (o.name.find('\0') != std::string::npos) invalid("options.name must not contain a NUL byte");
  const ResourceLimits& r = o.resource_limits;
  if (r.stack_size_bytes != 0 && (r.stack_size_bytes < ResourceLimits::kMinStackBytes ||
                                  r.stack_size_bytes > ResourceLimits::kMaxStackBytes)) {
    invalid("options.resource_limits.stack_size_bytes must be 0 (the default) or between " +
            std::to_string(ResourceLimits::kMinStackBytes) + " and " +
            std::to_string(ResourceLimits::kMaxStackBytes) + "; got " +
            std::to_string(r.stack_size_bytes));
  }
  if (r.max_arena_bytes > ResourceLimits::kMaxArenaBytes) {
    invalid("options.resource_limits.max_arena_bytes must be 0 (unlimited) or at most " +
            std::to_string(ResourceLimits::kMaxArenaBytes) + "; got " +
            std::to_string(r.max_arena_bytes));
  }
}

Status closed_worker() { return Status(ErrorCode::kClosed, "weave::Worker: the worker has ended"); }

}  // namespace

Worker::Worker(Entry entry, WorkerOptions options) {
  if (!entry) invalid("the entry is empty; pass a callable");
  start(std::move(entry), std::move(options));
}

Worker::Worker(std::string_view entry_name, WorkerOptions options) {
  internal::EntryFunction fn = internal::find_worker_entry(entry_name);
  if (!fn) {
    invalid("no worker entry is named \"" + std::string(entry_name) +
            "\" (define one with WEAVE_WORKER_ENTRY)");
  }
  start(Entry(fn), std::move(options));
}

void Worker::start(Entry entry, WorkerOptions options) {
  validate(options);
  EventLoop& loop = EventLoop::current();

  // worker_data travels as the first message on the worker's port: the port
  // clones it, moves the listed buffers and hands over the listed ports, or
  // refuses with nothing changed.
  MessageChannel channel;
  Status sent = channel.port1.post_message(options.worker_data, std::move(options.transfer_list));
  if (sent.code() == ErrorCode::kOutOfMemory) throw std::bad_alloc();  // not the options' fault
  if (!sent) {
    invalid("options.worker_data cannot be sent with options.transfer_list: " + sent.to_string());
  }

  auto args = std::make_unique<internal::StartArgs>();
  args->env =
      options.env == EnvMode::kShare ? internal::current_env() : internal::current_env()->fork();
  for (const auto& [key, value] : internal::current_environment_data()) {
    // Private copies made by set_environment_data: they always clone.
    Result<Value> copy = structured_clone(value);
    if (copy) args->environment_data.emplace(key, std::move(*copy));
  }

  const int id = internal::g_next_thread_id.fetch_add(1, std::memory_order_relaxed);
  auto shared = std::make_shared<internal::WorkerShared>(id, std::move(options.name),
                                                         options.resource_limits.max_arena_bytes);
  auto parent = std::make_shared<internal::WorkerParent>(shared, loop.handle());
  parent->port = std::move(channel.port1);
  parent->port.unref();  // the KeepAlive below decides, not the port
  parent->refed = options.ref;
  parent->update_keep_alive();

  args->shared = shared;
  args->parent = parent;
  args->parent_loop = loop.handle();
  args->entry = std::move(entry);
  args->port = std::move(channel.port2);

  pthread_attr_t attr;
  pthread_attr_init(&attr);
  if (std::size_t stack = options.resource_limits.stack_size_bytes; stack != 0) {
    const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    pthread_attr_setstacksize(&attr, (stack + page - 1) / page * page);
  }
  const int rc = pthread_create(&parent->thread, &attr, &internal::worker_main, args.get());
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    parent->detached = true;
    throw std::system_error(rc, std::generic_category(), "weave::Worker: cannot start the thread");
  }
  args.release();  // the thread owns it now
  parent->started = true;
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
  WorkerThread* self = tl_worker;
  return self && self->ending;
}

bool worker_exit_in_progress() noexcept {
  WorkerThread* self = tl_worker;
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

bool Worker::has_ref() const noexcept { return p_ && p_->refed && !p_->exit_seen; }

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

// --- the calling thread -------------------------------------------------------------

MessagePort* parent_port() noexcept {
  internal::WorkerThread* self = internal::tl_worker;
  return self ? &self->port : nullptr;
}

const Value& worker_data() noexcept {
  static const Value kNone;
  internal::WorkerThread* self = internal::tl_worker;
  return self ? self->data : kNone;
}

std::vector<MessagePort>& worker_data_ports() noexcept {
  internal::WorkerThread* self = internal::tl_worker;
  if (self) return self->ports;
  thread_local std::vector<MessagePort> none;
  return none;
}

int thread_id() noexcept {
  internal::WorkerThread* self = internal::tl_worker;
  return self ? self->shared->thread_id : 0;
}

std::string_view worker_name() noexcept {
  internal::WorkerThread* self = internal::tl_worker;
  return self ? std::string_view(self->shared->name) : std::string_view();
}

bool is_main_thread() noexcept { return internal::tl_worker == nullptr; }

namespace this_worker {

void exit(int code) {
  internal::WorkerThread* self = internal::tl_worker;
  if (!self) std::exit(code);
  self->exit_requested = true;
  self->exit_code = code;
  // If the unwinding is swallowed, the loop still stops at its next check.
  self->shared->loop.stop();
  throw internal::WorkerExit{code};
}

std::stop_token stop_token() noexcept {
  internal::WorkerThread* self = internal::tl_worker;
  return self ? self->shared->stop.get_token() : std::stop_token();
}

bool stop_requested() noexcept {
  internal::WorkerThread* self = internal::tl_worker;
  return self && self->shared->stop.stop_requested();
}

std::pmr::memory_resource* arena() noexcept {
  internal::WorkerThread* self = internal::tl_worker;
  return self ? &self->shared->arena : std::pmr::new_delete_resource();
}

ArenaStats arena_stats() noexcept {
  internal::WorkerThread* self = internal::tl_worker;
  return self ? self->shared->arena.stats() : ArenaStats{};
}

}  // namespace this_worker

}  // namespace weave
