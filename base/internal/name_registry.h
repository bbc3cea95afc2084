// internal::NameRegistry<T>: a process-wide map from names to values (task
// bodies, worker entries), filled by static registration and read at run time.
// The one registry shape of the library: the first value registered under a
// name is kept.
//
// Threading: every member is Any thread; a mutex guards the map (lookups are
// rare: at a worker's start or a named task's submission). Instances are
// meant to be function-local statics, leaked on purpose so that lookups from
// static destructors or late threads stay valid.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace weave::internal {

template <class T>
class NameRegistry {
 public:
  // Registers `value` under `name`; false (the first kept) if it is taken.
  // May block (briefly). Allocates.
  bool add(std::string_view name, T value) {
    std::lock_guard<std::mutex> lock(mu_);
    return map_.emplace(std::string(name), std::move(value)).second;
  }
  // The value under `name`, or nullopt. May block (briefly). Never allocates.
  [[nodiscard]] std::optional<T> find(std::string_view name) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(name);
    if (it == map_.end()) return std::nullopt;
    return it->second;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, T, std::less<>> map_;
};

}  // namespace weave::internal
