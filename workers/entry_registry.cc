// The registry of named worker entries (WEAVE_WORKER_ENTRY, Worker("name")).
#include <cassert>
#include <optional>
#include <string_view>

#include "base/internal/name_registry.h"
#include "workers/worker.h"

namespace weave::internal {

namespace {
NameRegistry<EntryFunction>& entry_registry() {
  // Leaked on purpose (see NameRegistry): registrations run during static
  // initialisation and lookups may come from late threads.
  static NameRegistry<EntryFunction>* const registry = new NameRegistry<EntryFunction>;
  return *registry;
}
}  // namespace

bool register_worker_entry(std::string_view name, EntryFunction entry) {
  const bool inserted = entry_registry().add(name, entry);
  assert(inserted && "WEAVE_WORKER_ENTRY: two entries have the same name");
  return inserted;
}

EntryFunction find_worker_entry(std::string_view name) noexcept {
  std::optional<EntryFunction> entry = entry_registry().find(name);
  return entry ? *entry : nullptr;
}

}  // namespace weave::internal
