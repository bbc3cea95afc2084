// What a worker inherits from the thread that starts it, besides its options:
// environment variables (Env, env(): Node's process.env, with SHARE_ENV) and
// environment data (set_environment_data / get_environment_data: Node's
// setEnvironmentData / getEnvironmentData). Included by workers/worker.h.
//
// Threading: Env is the one class of //workers that any thread may use (a
// mutex inside). The environment-data functions answer for the calling
// thread's own set (owner thread only). Memory ordering: a value set with
// set_environment_data before a Worker is constructed is seen by that worker;
// an Env change made under its mutex is seen by any later get() of that Env.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "channel/status.h"
#include "channel/value.h"

namespace weave {

// Node's setEnvironmentData / getEnvironmentData: per-thread values, cloned
// into every Worker this thread starts afterwards (a worker gets its parent's
// set as it was at construction). Setting undefined removes the key. A value
// that cannot be cloned is a kDataCloneError and changes nothing. Owner
// thread only. Never blocks. Allocates.
[[nodiscard]] Status set_environment_data(std::string key, Value value);
// A clone of the value under `key`, or std::nullopt. Owner thread only.
// Never blocks. Allocates.
[[nodiscard]] std::optional<Value> get_environment_data(std::string_view key);

// Environment variables as Node's process.env sees them: the main thread's is
// a snapshot of `environ` taken at first use; a worker's is a copy of its
// parent's made at construction (EnvMode::kCopy) or the parent's object
// itself (EnvMode::kShare). Changing one never calls setenv(): the process
// environment is not thread-safe to change. Every member: Any thread (a
// mutex inside). May block (briefly, on that mutex). Allocates.
//
// A kCopy worker's Env shares its parent's variables until either side
// changes one (copy on write), so starting a worker copies no strings.
class Env {
 public:
  using Map = std::map<std::string, std::string, std::less<>>;
  Env() : vars_(std::make_shared<const Map>()) {}
  explicit Env(Map vars) : vars_(std::make_shared<const Map>(std::move(vars))) {}

  // A new Env with the same variables, sharing them until one side writes.
  [[nodiscard]] std::shared_ptr<Env> fork() const;

  [[nodiscard]] std::optional<std::string> get(std::string_view name) const;
  void set(std::string name, std::string value);
  // True if it was set.
  bool unset(std::string_view name);
  [[nodiscard]] Map snapshot() const;

 private:
  mutable std::mutex mu_;
  // Never changed in place: a write installs a changed copy, so a fork may
  // keep reading the old one.
  std::shared_ptr<const Map> vars_;
};

// The calling thread's environment variables. Any thread. Never blocks.
// Allocates on first use.
[[nodiscard]] Env& env();

}  // namespace weave
