// What weave's pool needs of a Worker beyond its public API: giving a stuck
// worker up without joining it, and telling how a worker thread is ending.
// Not for users; Bazel visibility limits this header to //workers and //pool.
//
// Threading: as each function says.
#pragma once

#include <future>
#include <optional>
#include <string>
#include <utility>

#include "workers/worker.h"

namespace weave::internal {

// The one friend of Worker: reaches its parent-side state for abandon_worker.
struct WorkerAccess {
  static std::future<std::optional<int>> abandon(Worker&& worker);
};

// Gives the worker up without waiting for it. It is asked to stop (as by
// terminate()), no event of it runs any more, and its thread is detached
// rather than joined: it ends on its own when the code it is stuck in
// returns. The future holds the exit code once the thread has finished
// (std::nullopt if it already had). Owner thread only. Never blocks.
//
// At process exit, the hazard of every detached thread: an abandoned worker
// that is still stuck may run user code (and its own teardown) while static
// destructors run, and nothing joins it. It stays on the process's list of
// live workers until its thread finishes, so this_worker::exit on the main
// thread waits for it (at most this_worker::kExitGrace) before std::exit; a
// plain return from main does not wait. Callers that abandon workers should
// say so to their users (the pool's README does: abandonment is the
// cancel_grace escape hatch, not a clean shutdown).
inline std::future<std::optional<int>> abandon_worker(Worker&& worker) {
  return WorkerAccess::abandon(std::move(worker));
}
// True on a worker thread while this_worker::exit() unwinds its stack: code
// that catches everything (a pool running a task) rethrows then. Never blocks.
[[nodiscard]] bool worker_exit_in_progress() noexcept;
// True on a worker thread once its entry and loop are done and it is
// tearing down (its loop's remaining callbacks being destroyed). Never blocks.
[[nodiscard]] bool worker_ending() noexcept;
// Inside a catch block: the demangled type of the exception being handled
// ("std::runtime_error", "int"). Allocates.
[[nodiscard]] std::string current_exception_type_name();

}  // namespace weave::internal
