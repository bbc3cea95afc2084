// The named tasks' registry (register_task, find_task, WEAVE_TASK), on the
// library's one registry shape (base/internal/name_registry.h).
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "base/internal/name_registry.h"
#include "pool/internal/named_task.h"
#include "pool/task.h"

namespace weave {

namespace {

// A task body and the registry's own copy of its name: a task record keeps a
// string_view of it, so it must live as long as the program (the registry
// is leaked, and holds it).
struct RegisteredTask {
  TaskFunction fn = nullptr;
  std::shared_ptr<const std::string> name;
};

internal::NameRegistry<RegisteredTask>& task_registry() {
  // Leaked on purpose: lookups from static destructors or late threads stay valid.
  static auto* registry = new internal::NameRegistry<RegisteredTask>();
  return *registry;
}

std::optional<RegisteredTask> lookup(std::string_view name) noexcept {
  try {
    return task_registry().find(name);
  } catch (...) {
    return std::nullopt;  // the mutex failed: as if unknown
  }
}

}  // namespace

bool register_task(std::string_view name, TaskFunction fn) {
  if (name.empty() || !fn) return false;
  return task_registry().add(name, RegisteredTask{fn, std::make_shared<const std::string>(name)});
}

TaskFunction find_task(std::string_view name) noexcept {
  const std::optional<RegisteredTask> r = lookup(name);
  return r ? r->fn : nullptr;
}

namespace internal {

std::pair<std::string_view, TaskFunction> lookup_task(std::string_view name) noexcept {
  const std::optional<RegisteredTask> r = lookup(name);
  if (!r) return {{}, nullptr};
  return {std::string_view(*r->name), r->fn};
}

}  // namespace internal

}  // namespace weave
