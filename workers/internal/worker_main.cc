// A worker's thread from its first instruction to its last: the start gate,
// its life up to an exit code (online, the entry, the loop, uncaught
// exceptions and on_uncaught_exception), its teardown and the exit report
// (~WorkerThread). Plus the thread-creation hook of the tests.
#include "workers/internal/worker_main.h"

#include <cxxabi.h>
#include <pthread.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <typeinfo>
#include <utility>

#include "atomics/atomics.h"
#include "loop/internal/clock.h"
#include "workers/internal/live_workers.h"
#include "workers/internal/pool_hooks.h"
#include "workers/internal/testing_hooks.h"
#include "workers/internal/worker_parent.h"
#include "workers/internal/worker_thread.h"

namespace weave::internal {

namespace {

thread_local WorkerThread* tl_worker = nullptr;

// fail_next_thread_creations_for_testing: relaxed, the test sets it before
// the start it means on the same thread.
std::atomic<int> g_fail_error{0};
std::atomic<int> g_fail_count{0};

std::string demangle(const char* mangled) {
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> name(
      abi::__cxa_demangle(mangled, nullptr, nullptr, &status), &std::free);
  return status == 0 && name ? std::string(name.get()) : std::string(mangled);
}

}  // namespace

WorkerThread* current_worker_thread() noexcept { return tl_worker; }

std::string current_exception_type_name() {
  std::type_info* type = abi::__cxa_current_exception_type();
  return type ? demangle(type->name()) : std::string("unknown");
}

void request_terminate(WorkerShared& s) noexcept {
  s.terminating.store(true, std::memory_order_seq_cst);  // see WorkerShared: the Dekker pair
  s.stop.request_stop();
  s.interruptor.interrupt();  // wakes an atomics::wait in progress, and any later one
  if (s.loop_published.load(std::memory_order_seq_cst)) s.loop.stop();
}

void fail_next_thread_creations_for_testing(int error, int count) noexcept {
  g_fail_error.store(error, std::memory_order_relaxed);
  g_fail_count.store(error != 0 ? count : 0, std::memory_order_relaxed);
}

int create_thread(pthread_t* thread, const pthread_attr_t* attr, void* (*fn)(void*), void* arg) {
  if (g_fail_count.load(std::memory_order_relaxed) > 0 &&
      g_fail_count.fetch_sub(1, std::memory_order_relaxed) > 0) {
    return g_fail_error.load(std::memory_order_relaxed);
  }
  return pthread_create(thread, attr, fn, arg);
}

namespace {

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

void report_error(WorkerThread& self, WorkerError error) noexcept {
  post_to_parent(self, [error = std::move(error)](WorkerParent& p) { p.handle_error(error); });
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

// Posts the `error` event describing `e`. A nested Worker's unlistened error
// (UnhandledWorkerError) travels on unchanged, as Node rethrows the same
// error object.
void report_exception(WorkerThread& self, const std::exception_ptr& e) noexcept {
  try {
    try {
      std::rethrow_exception(e);
    } catch (const UnhandledWorkerError& u) {
      report_error(self, u.error());
    } catch (const ArenaOutOfMemory& oom) {
      report_error(self, WorkerError{"ERR_WORKER_OUT_OF_MEMORY", type_name_of(oom), oom.what()});
    } catch (const std::exception& x) {
      report_error(self, WorkerError{"ERR_UNCAUGHT_EXCEPTION", type_name_of(x), x.what()});
    } catch (...) {
      report_error(self, WorkerError{"ERR_UNCAUGHT_EXCEPTION", current_type_name(), ""});
    }
  } catch (...) {
    // Out of memory while describing the error: the exit code still says it.
  }
}

// Node's exit code when an uncaughtException handler itself throws.
constexpr int kHandlerFailedExitCode = 7;

// Runs the worker's loop until it ends; the exit code of an end without an
// exception.
int run_loop_to_end(WorkerThread& self, EventLoop& loop) {
  WorkerShared& s = *self.shared;
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
      if (s.terminating.load(std::memory_order_acquire)) return 1;
      return self.exit_code_set ? self.exit_code : 0;  // Node: process.exitCode ?? 0
    }
  }
}

// The worker's life up to its exit code: online, the entry, the loop.
int run_worker(WorkerThread& self, Worker::Entry& entry, EventLoop& loop, bool init_posted) {
  WorkerShared& s = *self.shared;
  s.loop = loop.handle();
  s.loop_start_ns.store(now_ns(), std::memory_order_relaxed);
  s.loop_published.store(true, std::memory_order_seq_cst);  // see WorkerShared: the Dekker pair
  // The constructor's post on the port carries worker_data and the
  // transferred ports; it is in the port before the gate opened.
  if (init_posted) {
    if (std::optional<MessageEvent> init = receive_message_on_port(self.port)) {
      self.data = std::move(init->data);
      self.ports = std::move(init->ports);
    }
  }
  if (s.terminating.load(std::memory_order_seq_cst)) return 1;  // before it began: no online
  post_to_parent(self, [](WorkerParent& p) { p.handle_online(); });
  bool entry_ran = false;
  for (;;) {
    std::exception_ptr uncaught;
    try {
      if (!entry_ran) {
        entry_ran = true;
        entry();
      }
      return run_loop_to_end(self, loop);
    } catch (const WorkerExit&) {
      return self.exit_code;
    } catch (const atomics::WaitInterrupted&) {
      return 1;  // terminate() woke an atomics::wait: ended as terminated
    } catch (const ArenaOutOfMemory&) {
      report_exception(self, std::current_exception());  // never offered to the handler
      return 1;
    } catch (...) {
      uncaught = std::current_exception();
    }
    if (!self.on_uncaught_exception) {
      report_exception(self, uncaught);
      return 1;
    }
    // Node's process.on('uncaughtException'): if the handler returns, the
    // worker carries on with its loop.
    try {
      // A reference held while it runs: it may replace itself.
      std::shared_ptr<std::function<void(std::exception_ptr)>> handler = self.on_uncaught_exception;
      (*handler)(uncaught);
    } catch (const WorkerExit&) {
      return self.exit_code;
    } catch (const atomics::WaitInterrupted&) {
      return 1;
    } catch (...) {
      report_exception(self, std::current_exception());
      return kHandlerFailedExitCode;
    }
  }
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

}  // namespace

void* worker_main(void* raw) {
  auto* start = static_cast<StartArgs*>(raw);
  // The first thread_local this thread makes, before its EventLoop: so it is
  // destroyed after the loop, and its destructor reports the exit once
  // everything the loop held is gone (see WorkerThread). Empty until the
  // gate opens: a cancelled start leaves it so, and it then reports nothing.
  static thread_local WorkerThread self;
  // Named and its loop made while the parent commits the start, so the two
  // overlap; a cancelled start destroys the loop unused at thread exit (no
  // user code has run).
  set_thread_name(*start->shared);
  EventLoop* loop = nullptr;
  try {
    loop = &EventLoop::current();
  } catch (...) {
    // Out of memory: reported below once the start is committed (an
    // exception must not leave a thread's start routine).
  }
  {
    // Parked until the parent committed the start or gave it up; until then
    // nothing of StartArgs but `shared` is touched. acquire: pairs with the
    // parent's release store, so its post (worker_data) is in the port.
    std::atomic<std::uint32_t>& gate = start->shared->start_gate;
    std::uint32_t g = gate.load(std::memory_order_acquire);
    while (g == StartArgs::kWait) {
      gate.wait(g, std::memory_order_acquire);
      g = gate.load(std::memory_order_acquire);
    }
    if (g == StartArgs::kCancel) return nullptr;  // the parent keeps StartArgs and joins
  }
  std::unique_ptr<StartArgs> args(start);
  self.shared = std::move(args->shared);
  self.parent = std::move(args->parent);
  self.parent_loop = std::move(args->parent_loop);
  self.port = std::move(args->port);
  self.env = std::move(args->env);
  self.environment_data = std::move(args->environment_data);
  Worker::Entry entry = std::move(args->entry);
  const bool init_posted = args->init_posted;
  args.reset();
  tl_worker = &self;

  set_thread_interruptor(&self.shared->interruptor);
  if (loop) {
    self.final_code = run_worker(self, entry, *loop, init_posted);
  } else {
    try {
      report_error(self, WorkerError{"ERR_WORKER_OUT_OF_MEMORY", "std::bad_alloc",
                                     "the worker's event loop could not be made"});
    } catch (...) {
      // Out of memory describing it: the exit code still says 1.
    }
    self.final_code = 1;
  }
  self.ending = true;
  // Teardown (the loop's destructor may still run tasks) must not be
  // interrupted: a throw there would have nowhere to go.
  set_thread_interruptor(nullptr);

  // Let go of the worker's own objects while its loop still exists.
  entry = nullptr;
  self.on_uncaught_exception = nullptr;
  self.port.close();
  self.port = MessagePort();
  self.data = Value();
  self.ports.clear();
  return nullptr;
}

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
  // Last: this_worker::exit outside a worker waits for the list to empty.
  unlist_live_worker(*shared);
}

}  // namespace weave::internal
