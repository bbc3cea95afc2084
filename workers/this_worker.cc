// The calling-thread queries and this_worker::* (see this_worker.h), and
// where an unlistened `error` event goes on the thread that owns the Worker.
#include "workers/this_worker.h"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>
#include <utility>

#include "workers/internal/live_workers.h"
#include "workers/internal/worker_thread.h"
#include "workers/worker.h"

namespace weave {

namespace {

using internal::current_worker_thread;
using internal::WorkerThread;

// What this_worker::set_exit_code and on_uncaught_exception keep for a thread
// that is not a worker.
thread_local std::optional<int> tl_exit_code;
thread_local std::shared_ptr<this_worker::UncaughtExceptionHandler> tl_on_uncaught_exception;

}  // namespace

namespace internal {

void raise_unhandled_error(const WorkerError& error, const WorkerShared& who) {
  if (current_worker_thread()) {
    // An uncaught exception of this worker: its run offers it to its
    // on_uncaught_exception handler, else it becomes its error event.
    throw UnhandledWorkerError(error);
  }
  if (tl_on_uncaught_exception) {
    // A reference held while it runs: it may replace itself.
    std::shared_ptr<this_worker::UncaughtExceptionHandler> handler = tl_on_uncaught_exception;
    (*handler)(std::make_exception_ptr(UnhandledWorkerError(error)));
    return;
  }
  // Node would end the process here; a library does not (workers/worker.h).
  std::fprintf(stderr, "weave: unhandled error of worker %d (\"%s\"): %s: %s [%s]\n", who.thread_id,
               who.name.c_str(), error.type_name.c_str(), error.message.c_str(),
               error.code.c_str());
}

}  // namespace internal

MessagePort* parent_port() noexcept {
  WorkerThread* self = current_worker_thread();
  return self ? &self->port : nullptr;
}

const Value& worker_data() noexcept {
  static const Value kNone;
  WorkerThread* self = current_worker_thread();
  return self ? self->data : kNone;
}

std::vector<MessagePort>& worker_data_ports() noexcept {
  WorkerThread* self = current_worker_thread();
  if (self) return self->ports;
  thread_local std::vector<MessagePort> none;
  return none;
}

int thread_id() noexcept {
  WorkerThread* self = current_worker_thread();
  return self ? self->shared->thread_id : 0;
}

std::string_view worker_name() noexcept {
  WorkerThread* self = current_worker_thread();
  return self ? std::string_view(self->shared->name) : std::string_view();
}

bool is_main_thread() noexcept { return current_worker_thread() == nullptr; }

namespace this_worker {

void exit(int code) {
  WorkerThread* self = current_worker_thread();
  if (!self) {
    // Node's process.exit on the main thread: the workers end first.
    (void)internal::terminate_all_and_wait(kExitGrace);
    std::exit(code);
  }
  self->exit_requested = true;
  self->exit_code_set = true;
  self->exit_code = code;
  // If the unwinding is swallowed, the loop still stops at its next check.
  self->shared->loop.stop();
  throw internal::WorkerExit{code};
}

void exit() { exit(exit_code().value_or(0)); }

void set_exit_code(int code) noexcept {
  if (WorkerThread* self = current_worker_thread()) {
    self->exit_code_set = true;
    self->exit_code = code;
  } else {
    tl_exit_code = code;
  }
}

std::optional<int> exit_code() noexcept {
  if (WorkerThread* self = current_worker_thread()) {
    return self->exit_code_set ? std::optional<int>(self->exit_code) : std::nullopt;
  }
  return tl_exit_code;
}

void on_uncaught_exception(UncaughtExceptionHandler handler) {
  std::shared_ptr<UncaughtExceptionHandler> h =
      handler ? std::make_shared<UncaughtExceptionHandler>(std::move(handler)) : nullptr;
  if (WorkerThread* self = current_worker_thread()) {
    self->on_uncaught_exception = std::move(h);
  } else {
    tl_on_uncaught_exception = std::move(h);
  }
}

std::stop_token stop_token() noexcept {
  WorkerThread* self = current_worker_thread();
  return self ? self->shared->stop.get_token() : std::stop_token();
}

bool stop_requested() noexcept {
  WorkerThread* self = current_worker_thread();
  return self && self->shared->stop.stop_requested();
}

std::pmr::memory_resource* arena() noexcept {
  WorkerThread* self = current_worker_thread();
  return self ? &self->shared->arena : std::pmr::new_delete_resource();
}

ArenaStats arena_stats() noexcept {
  WorkerThread* self = current_worker_thread();
  return self ? self->shared->arena.stats() : ArenaStats{};
}

}  // namespace this_worker

}  // namespace weave
