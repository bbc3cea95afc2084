// The process's list of live workers: every worker whose thread got past its
// start, until its thread has finished. What this_worker::exit outside a
// worker ends before std::exit (Node's process.exit ends the workers first).
// Private to //workers.
//
// Threading: Any thread; a mutex inside. Never allocates, except
// terminate_all_and_wait (a snapshot of the list).
#pragma once

#include <chrono>

#include "workers/internal/worker_thread.h"

namespace weave::internal {

// Listed by the parent once the start is committed; unlisted by the worker's
// thread as its very last act with the shared state. May block (briefly).
void list_live_worker(WorkerShared& s) noexcept;
void unlist_live_worker(WorkerShared& s) noexcept;

// Asks every live worker to stop (as terminate() does) and waits until the
// list is empty or `grace` has passed. True if it emptied. May block (up to
// `grace`). Allocates.
bool terminate_all_and_wait(std::chrono::steady_clock::duration grace);

}  // namespace weave::internal
