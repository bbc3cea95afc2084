// What a worker's thread and its parent share (WorkerShared), and what the
// worker's thread keeps about itself (WorkerThread). Private to //workers.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "atomics/internal/cache_line.h"
#include "atomics/internal/counter.h"  // bump
#include "atomics/internal/waiter_list.h"
#include "channel/message_port.h"
#include "channel/value.h"
#include "loop/event_loop.h"
#include "workers/arena.h"
#include "workers/worker.h"

namespace weave::internal {

class WorkerParent;

// Per-thread environment data (set_environment_data).
using EnvironmentData = std::map<std::string, Value, std::less<>>;

// Owned jointly by the parent's Worker and the worker's thread, so either may
// outlive the other; everything in it is safe to touch from both.
struct WorkerShared : std::enable_shared_from_this<WorkerShared> {
  WorkerShared(int id, std::string worker_name, std::size_t arena_limit)
      : thread_id(id), name(std::move(worker_name)), arena(arena_limit) {}

  const int thread_id;
  const std::string name;
  // Allocated from by the worker's thread only; stats() from any thread.
  Arena arena;
  // request_stop() from the parent; tokens polled by the worker.
  std::stop_source stop;
  // Installed on the worker's thread while its entry and loop run: terminate()
  // interrupts an atomics::wait there (it throws atomics::WaitInterrupted).
  internal::WaitInterruptor interruptor;

  // --- written by the worker's thread --------------------------------------------
  // `loop` is written once, before loop_published is set; any thread may
  // copy it after seeing loop_published true.
  LoopHandle loop;
  std::atomic<std::int64_t> loop_start_ns{0};  // steady clock, set before publishing
  std::atomic<std::int64_t> loop_end_ns{0};    // 0 while the worker runs
  // The Dekker pair of terminate(): the parent stores `terminating` then
  // loads `loop_published`; the worker stores `loop_published` then loads
  // `terminating`. seq_cst on all four, so at least one side sees the other:
  // either the parent stops the loop, or the worker sees the flag.
  std::atomic<bool> loop_published{false};
  std::atomic<bool> terminating{false};
  // The start's gate (StartArgs::Gate, workers/internal/worker_main.h): set
  // once by the parent (release), waited on by the new thread (acquire).
  // Here rather than in StartArgs, which the thread may free as soon as it
  // sees kGo, so that the parent's notify touches memory it still owns.
  std::atomic<std::uint32_t> start_gate{0};

  // Set once when the worker's thread has finished its work (release), with
  // exit_code; read by any thread (acquire).
  std::atomic<bool> finished{false};
  std::atomic<int> exit_code{0};
  // terminate() futures waiting for the exit code; filled under `mu`.
  std::mutex mu;
  std::vector<std::promise<std::optional<int>>> waiters;  // guarded by mu

  // --- written by the parent thread (relaxed counts, read by any thread) ---------
  // On their own line: the parent bumps them per message, other threads read.
  alignas(kFalseSharingSpan) std::atomic<std::uint64_t> messages_in{0};
  std::atomic<std::uint64_t> messages_out{0};

  // --- the process's list of live workers (workers/internal/live_workers.h) -----
  // Guarded by that list's mutex.
  WorkerShared* live_prev = nullptr;
  WorkerShared* live_next = nullptr;
  bool live_listed = false;
};

// Asks the worker to stop: its stop token, an atomics::wait in progress, its
// loop. What terminate() does after noting its future. Any thread. Never
// blocks. Never allocates.
void request_terminate(WorkerShared& s) noexcept;

// Raised by this_worker::exit() to unwind the worker's stack. Deliberately
// not a std::exception, so `catch (const std::exception&)` lets it pass.
struct WorkerExit {
  int code;
};

// The worker thread's own state: reached through current_worker_thread() on
// that thread only. It is a thread_local made before the thread's EventLoop,
// so it is destroyed after it: by then every callback the loop held (and
// whatever they captured from the arena) is gone, and its destructor can
// free the arena and report the exit.
struct WorkerThread {
  WorkerThread() = default;
  WorkerThread(const WorkerThread&) = delete;
  WorkerThread& operator=(const WorkerThread&) = delete;
  ~WorkerThread();

  std::shared_ptr<WorkerShared> shared;
  // Copied into the tasks posted to the parent; locked only on the parent's
  // thread, so the parent's objects are only ever destroyed there.
  std::weak_ptr<WorkerParent> parent;
  LoopHandle parent_loop;
  MessagePort port;
  Value data;
  std::vector<MessagePort> ports;
  std::shared_ptr<Env> env;
  EnvironmentData environment_data;
  // this_worker::exit() was called: the code wins over how the loop ended.
  bool exit_requested = false;
  // this_worker::set_exit_code (or exit) set it: the code of a natural end.
  bool exit_code_set = false;
  int exit_code = 0;
  // this_worker::on_uncaught_exception's handler. Shared, so that a handler
  // that replaces itself keeps running safely (and keeps its state).
  std::shared_ptr<std::function<void(std::exception_ptr)>> on_uncaught_exception;
  // Decided when the work ends; reported by the destructor.
  int final_code = 0;
  // The entry and loop are done: the thread is tearing down.
  bool ending = false;
};

// The calling thread's WorkerThread, or nullptr outside a worker.
WorkerThread* current_worker_thread() noexcept;
// Reports `error` on the calling thread as an `error` event nobody listened
// to: to its on_uncaught_exception handler if one is set (in a worker, by
// throwing UnhandledWorkerError from here, which that worker's run then
// offers its handler), else on stderr (not a worker). `who` names the
// worker whose event it was. Owner thread only. Allocates.
void raise_unhandled_error(const WorkerError& error, const WorkerShared& who);
// The Env object the calling thread uses (a worker's, or the process one).
std::shared_ptr<Env> current_env();
// The calling thread's environment data.
EnvironmentData& current_environment_data();

}  // namespace weave::internal
