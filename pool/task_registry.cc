// The named tasks' registry (register_task, find_task, WEAVE_TASK).
#include <map>
#include <mutex>
#include <string>

#include "pool/internal/named_task.h"
#include "pool/task.h"

namespace weave {

namespace {
struct TaskRegistry {
  std::mutex mu;
  std::map<std::string, TaskFunction, std::less<>> tasks;
};
TaskRegistry& task_registry() {
  static TaskRegistry r;
  return r;
}
}  // namespace

bool register_task(std::string_view name, TaskFunction fn) {
  if (name.empty() || !fn) return false;
  TaskRegistry& r = task_registry();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.tasks.emplace(std::string(name), fn).second;
}

TaskFunction find_task(std::string_view name) noexcept {
  TaskRegistry& r = task_registry();
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.tasks.find(name);
  return it == r.tasks.end() ? nullptr : it->second;
}

namespace internal {

// The registered name's own storage (stable for the program's life).
std::pair<std::string_view, TaskFunction> lookup_task(std::string_view name) noexcept {
  TaskRegistry& r = task_registry();
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.tasks.find(name);
  if (it == r.tasks.end()) return {{}, nullptr};
  return {it->first, it->second};
}

}  // namespace internal

}  // namespace weave
