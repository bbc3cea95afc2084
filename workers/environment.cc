// Env (environment variables) and environment data: what a worker inherits
// from the thread that started it.
#include <string>
#include <utility>

#include "workers/internal/worker_thread.h"
#include "workers/worker.h"

extern char** environ;  // NOLINT: POSIX

namespace weave {

// --- Env ---------------------------------------------------------------------------

std::optional<std::string> Env::get(std::string_view name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = vars_->find(name);
  if (it == vars_->end()) return std::nullopt;
  return it->second;
}

void Env::set(std::string name, std::string value) {
  std::lock_guard<std::mutex> lock(mu_);
  auto changed = std::make_shared<Map>(*vars_);
  changed->insert_or_assign(std::move(name), std::move(value));
  vars_ = std::move(changed);
}

bool Env::unset(std::string_view name) {
  std::lock_guard<std::mutex> lock(mu_);
  if (vars_->find(name) == vars_->end()) return false;
  auto changed = std::make_shared<Map>(*vars_);
  changed->erase(changed->find(name));
  vars_ = std::move(changed);
  return true;
}

Env::Map Env::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return *vars_;
}

std::shared_ptr<Env> Env::fork() const {
  auto copy = std::make_shared<Env>();
  std::lock_guard<std::mutex> lock(mu_);
  copy->vars_ = vars_;
  return copy;
}

namespace internal {

namespace {
Env::Map environ_snapshot() {
  Env::Map vars;
  for (char** e = environ; e && *e; ++e) {
    std::string_view entry(*e);
    const std::size_t eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    vars.emplace(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
  }
  return vars;
}
}  // namespace

std::shared_ptr<Env> current_env() {
  if (WorkerThread* self = current_worker_thread()) return self->env;
  // The main thread's (and any non-worker thread's): made once, at first use.
  static const std::shared_ptr<Env> process_env = std::make_shared<Env>(environ_snapshot());
  return process_env;
}

EnvironmentData& current_environment_data() {
  if (WorkerThread* self = current_worker_thread()) return self->environment_data;
  thread_local EnvironmentData data;  // the main thread's, or a plain thread's
  return data;
}

}  // namespace internal

Env& env() {
  if (internal::WorkerThread* self = internal::current_worker_thread()) return *self->env;
  return *internal::current_env();
}

// --- environment data ----------------------------------------------------------------

Status set_environment_data(std::string key, Value value) {
  internal::EnvironmentData& data = internal::current_environment_data();
  if (value.is_undefined()) {
    auto it = data.find(key);
    if (it != data.end()) data.erase(it);
    return Status();
  }
  // A private copy: nothing the caller does to `value` later reaches it.
  Result<Value> copy = structured_clone(value);
  if (!copy) return copy.status();
  data.insert_or_assign(std::move(key), std::move(*copy));
  return Status();
}

std::optional<Value> get_environment_data(std::string_view key) {
  internal::EnvironmentData& data = internal::current_environment_data();
  auto it = data.find(key);
  if (it == data.end()) return std::nullopt;
  // A clone, so that transferring a buffer in it cannot detach the stored one.
  Result<Value> copy = structured_clone(it->second);
  if (!copy) return std::nullopt;  // cannot happen: it cloned when it was set
  return std::move(*copy);
}

}  // namespace weave
