// A named task's record (its body clones the args in and the result out)
// and the registry lookup that finds it. Private to //pool.
#pragma once

#include <optional>
#include <string_view>
#include <utility>

#include "channel/value.h"
#include "pool/internal/pool_core.h"
#include "pool/internal/task_record.h"
#include "pool/task.h"

namespace weave::internal {

// A task found by name: its body clones the args in (prepare) and the result out.
class NamedTaskRecord final : public TaskRecord {
 public:
  NamedTaskRecord(std::string_view name, TaskFunction fn) : TaskRecord(name), fn_(fn) {}
  void invoke(TaskContext& ctx) override {
    Value r = fn_(ctx, std::move(args_));
    args_ = Value();
    if (ctx.deferred()) return;
    Result<Value> out = structured_clone(r, ctx.result_transfer());
    if (!out) throw ResultCloneError{out.status()};
    result_.emplace(std::move(*out));
  }
  void drop_payload() noexcept override { args_ = Value(); }
  void* result_slot() noexcept override { return &result_; }
  [[nodiscard]] bool returns_value() const noexcept override { return true; }
  Value& args() noexcept { return args_; }

 private:
  TaskFunction fn_;
  Value args_;
  std::optional<Value> result_;
};

// The registered task `name` with the registry's own copy of the name
// (stable for the program's life), or {"", nullptr}. Any thread. May block
// (briefly).
std::pair<std::string_view, TaskFunction> lookup_task(std::string_view name) noexcept;

}  // namespace weave::internal
