// The checks of a Worker's options: ResourceLimits::validate (shared with the
// pool) and the Worker's own (name), in validate_worker_options.
#include "workers/worker_options.h"

#include <stdexcept>
#include <string>
#include <string_view>

#include "workers/internal/worker_options_check.h"

namespace weave {

namespace {
[[noreturn]] void out_of_range(std::string_view option_name, std::string_view rest) {
  std::string what(option_name);
  what += rest;
  throw std::invalid_argument(what);
}
}  // namespace

void ResourceLimits::validate(std::string_view option_name) const {
  if (stack_size_bytes != 0 &&
      (stack_size_bytes < kMinStackBytes || stack_size_bytes > kMaxStackBytes)) {
    out_of_range(option_name, ".stack_size_bytes must be 0 (the default) or between " +
                                  std::to_string(kMinStackBytes) + " and " +
                                  std::to_string(kMaxStackBytes) + "; got " +
                                  std::to_string(stack_size_bytes));
  }
  if (max_arena_bytes > kMaxArenaBytes) {
    out_of_range(option_name, ".max_arena_bytes must be 0 (unlimited) or at most " +
                                  std::to_string(kMaxArenaBytes) + "; got " +
                                  std::to_string(max_arena_bytes));
  }
}

namespace internal {

void validate_worker_options(const WorkerOptions& o) {
  if (o.name.size() > WorkerOptions::kMaxNameBytes) {
    throw std::invalid_argument("weave::Worker: options.name is " + std::to_string(o.name.size()) +
                                " bytes; at most " + std::to_string(WorkerOptions::kMaxNameBytes) +
                                " are allowed");
  }
  if (o.name.find('\0') != std::string::npos) {
    throw std::invalid_argument("weave::Worker: options.name must not contain a NUL byte");
  }
  o.resource_limits.validate("weave::Worker: options.resource_limits");
}

}  // namespace internal
}  // namespace weave
