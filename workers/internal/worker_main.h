// The worker thread's side of a start: what the parent hands the new thread
// (StartArgs), the gate the thread waits at until the parent has committed
// the start, and the thread's main. Private to //workers.
//
// The start protocol (Worker::start, workers/worker.cc), so that a failure
// never loses the caller's data: the parent makes every allocation, then
// creates the thread, which parks at the gate before it touches anything in
// StartArgs; only then does the parent post worker_data with the transfer
// list (the commit: buffers detached, ports handed over). If that post fails
// the parent opens the gate with kCancel, joins the thread and keeps
// StartArgs; otherwise it gives StartArgs to the thread and opens the gate
// with kGo.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "channel/message_port.h"
#include "loop/event_loop.h"
#include "workers/internal/worker_thread.h"
#include "workers/worker.h"

namespace weave::internal {

struct StartArgs {
  enum Gate : std::uint32_t { kWait = 0, kGo = 1, kCancel = 2 };

  std::shared_ptr<WorkerShared> shared;
  std::weak_ptr<WorkerParent> parent;
  LoopHandle parent_loop;
  Worker::Entry entry;
  MessagePort port;
  std::shared_ptr<Env> env;
  EnvironmentData environment_data;
  // The parent posted worker_data (and the transfer list) on the port as its
  // first message; not when both are empty, which saves the start a clone,
  // a post and a receive.
  bool init_posted = false;
  // The gate is shared->start_gate. With kGo the thread owns this object
  // from then on; with kCancel the parent keeps it and joins the thread,
  // which touched nothing here but `shared`.
};

// The thread's start routine; `raw` is a StartArgs*.
void* worker_main(void* raw);

// pthread_create, unless a test asked the next one to fail
// (workers/internal/testing_hooks.h). Any thread. Never blocks.
int create_thread(pthread_t* thread, const pthread_attr_t* attr, void* (*fn)(void*), void* arg);

}  // namespace weave::internal
