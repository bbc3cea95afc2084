// The process's list of live workers (see live_workers.h): an intrusive list
// under one mutex, so listing and unlisting never allocate.
#include "workers/internal/live_workers.h"

#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

namespace weave::internal {

namespace {

struct LiveWorkers {
  std::mutex mu;
  std::condition_variable emptied;
  WorkerShared* head = nullptr;  // guarded by mu
};

LiveWorkers& live_workers() {
  // Leaked on purpose: workers may still end during static destruction.
  static LiveWorkers* const list = new LiveWorkers;
  return *list;
}

}  // namespace

void list_live_worker(WorkerShared& s) noexcept {
  LiveWorkers& l = live_workers();
  std::lock_guard<std::mutex> lock(l.mu);
  s.live_prev = nullptr;
  s.live_next = l.head;
  if (l.head) l.head->live_prev = &s;
  l.head = &s;
  s.live_listed = true;
}

void unlist_live_worker(WorkerShared& s) noexcept {
  LiveWorkers& l = live_workers();
  std::lock_guard<std::mutex> lock(l.mu);
  if (!s.live_listed) return;
  if (s.live_prev) {
    s.live_prev->live_next = s.live_next;
  } else {
    l.head = s.live_next;
  }
  if (s.live_next) s.live_next->live_prev = s.live_prev;
  s.live_prev = s.live_next = nullptr;
  s.live_listed = false;
  if (!l.head) l.emptied.notify_all();
}

bool terminate_all_and_wait(std::chrono::steady_clock::duration grace) {
  LiveWorkers& l = live_workers();
  const auto deadline = std::chrono::steady_clock::now() + grace;
  std::vector<std::shared_ptr<WorkerShared>> live;
  {
    std::lock_guard<std::mutex> lock(l.mu);
    // A listed worker's thread still holds its WorkerShared: lock() succeeds.
    for (WorkerShared* s = l.head; s; s = s->live_next) live.push_back(s->shared_from_this());
  }
  // Outside the lock: request_stop() runs the workers' stop_callbacks here.
  for (const auto& s : live) request_terminate(*s);
  live.clear();
  std::unique_lock<std::mutex> lock(l.mu);
  return l.emptied.wait_until(lock, deadline, [&] { return l.head == nullptr; });
}

}  // namespace weave::internal
