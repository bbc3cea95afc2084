// What a worker asks about itself, and the calling-thread queries: its parent
// port, worker data and identity (parent_port, worker_data, thread_id, ...),
// and in namespace this_worker its exit (exit, set_exit_code), the hook for
// its uncaught exceptions (on_uncaught_exception), its stop token and its
// arena. Included by workers/worker.h.
//
// Threading: every function answers for the calling thread — a worker, or
// the main thread (any thread that is not a weave worker answers as the main
// thread does). "Owner thread only" means the calling thread's own objects.
// Memory ordering: see workers/worker.h (worker_data is visible to the
// worker's entry as every write made before the Worker was constructed).
#pragma once

#include <chrono>
#include <exception>
#include <functional>
#include <memory_resource>
#include <optional>
#include <stop_token>
#include <string_view>
#include <vector>

#include "channel/message_port.h"
#include "channel/value.h"
#include "workers/arena.h"

namespace weave {

// The worker's end of the channel to its parent; nullptr outside a worker.
// Owner thread only (the worker's). Never blocks. Never allocates.
[[nodiscard]] MessagePort* parent_port() noexcept;
// The worker's clone of WorkerOptions::worker_data; undefined outside a
// worker. Owner thread only. Never blocks. Never allocates.
[[nodiscard]] const Value& worker_data() noexcept;
// The ports from WorkerOptions::transfer_list, in order, for the worker to
// take; empty outside a worker. Owner thread only. Never blocks. Never
// allocates.
[[nodiscard]] std::vector<MessagePort>& worker_data_ports() noexcept;
// 0 on the main thread; the Worker's thread_id() in a worker. Any thread.
// Never blocks. Never allocates.
[[nodiscard]] int thread_id() noexcept;
// WorkerOptions::name in a worker; "" on the main thread. Any thread. Never
// blocks. Never allocates.
[[nodiscard]] std::string_view worker_name() noexcept;
// False in a worker. Any thread. Never blocks. Never allocates.
[[nodiscard]] bool is_main_thread() noexcept;

namespace this_worker {

// How long exit() outside a worker waits, in all, for the live workers to
// finish before it ends the process anyway.
inline constexpr std::chrono::milliseconds kExitGrace{1000};

// Ends the calling worker with `code` (Node's process.exit in a worker). It
// unwinds the worker's stack with an exception of an internal type that is
// not a std::exception; destructors run on the way out. Code that catches
// everything (catch (...)) without rethrowing swallows the unwinding, but not
// the exit: the worker still ends with `code` at its next loop turn or when
// its entry returns. Must not be called from a destructor.
//
// Outside a worker it ends the process as process.exit does on Node's main
// thread: it asks every live worker of the process to stop (as terminate()
// does, nested and pool workers included) and waits until each has finished,
// at most kExitGrace in all, then calls std::exit(code). A worker that
// neither returns to its loop nor checks stop_requested() within that time
// is still running while static destructors run (the classic detached-thread
// hazard): end such workers yourself before exiting. Owner thread only.
// May block (outside a worker, up to kExitGrace). Allocates.
[[noreturn]] void exit(int code);
// exit(exit_code().value_or(0)), as process.exit() with no argument.
[[noreturn]] void exit();
// Node's process.exitCode: the code the calling worker ends with when it ends
// on its own (its loop has nothing left, or exit() with no argument). An
// uncaught exception or terminate() still ends it with 1, exit(code) with
// code. std::nullopt until set. Outside a worker it is only recorded for
// exit_code() and exit(): the process's status is what main returns. Owner
// thread only. Never blocks. Never allocates.
void set_exit_code(int code) noexcept;
[[nodiscard]] std::optional<int> exit_code() noexcept;

// Node's process.on('uncaughtException'). In a worker, the handler sees each
// exception that escapes the entry or a callback of the worker's loop —
// including an UnhandledWorkerError, the `error` event of a Worker this
// worker owns that no on_error handler took — before it becomes the worker's
// `error` event. Not offered to it: this_worker::exit's unwinding, the
// interruption terminate() causes, and ArenaOutOfMemory (as Node's
// ERR_WORKER_OUT_OF_MEMORY, it always ends the worker).
//   - The handler returns: the worker carries on, as Node's does — after an
//     exception from the entry, with its loop; after one from a callback,
//     with the loop's next callback. No `error` event.
//   - The handler throws: the worker ends with exit code 7 (Node's "internal
//     exception handler run-time failure") and its `error` event describes
//     the handler's exception. this_worker::exit(c) in it ends it with c.
// On a thread that is not a worker, the handler takes the unlistened `error`
// events of the Workers that thread owns (as an UnhandledWorkerError), which
// otherwise go to stderr; an exception it throws leaves that thread's run().
// Replaces the handler set before; nullptr removes it. Owner thread only.
// Never blocks. Allocates.
using UncaughtExceptionHandler = std::function<void(std::exception_ptr)>;
void on_uncaught_exception(UncaughtExceptionHandler handler);

// Requested by Worker::terminate(): long computations poll it (or register a
// std::stop_callback, which then runs on the terminating thread). Outside a
// worker, a token that is never requested. Any thread (answers for the
// caller). Never blocks. Never allocates.
[[nodiscard]] std::stop_token stop_token() noexcept;
[[nodiscard]] bool stop_requested() noexcept;
// The worker's arena (workers/arena.h), capped by max_arena_bytes; outside a
// worker, std::pmr::new_delete_resource(). Never allocates.
[[nodiscard]] std::pmr::memory_resource* arena() noexcept;
// Its counters; zeros outside a worker. Never blocks. Never allocates.
[[nodiscard]] ArenaStats arena_stats() noexcept;

}  // namespace this_worker
}  // namespace weave
