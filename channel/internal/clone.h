// Structured clone in two phases, so that a failed post changes nothing:
// clone_value() validates the transfer list and builds the copy (transferred
// buffers get fresh, still-empty storage in the copy); commit_transfers() then
// moves the bytes and detaches the sources. Owner thread only.
#pragma once

#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "channel/value.h"

namespace weave::internal {

struct TransferPlan {
  // source storage -> storage the clone refers to; bytes move at commit.
  std::vector<std::pair<std::shared_ptr<BufferStorage>, std::shared_ptr<BufferStorage>>> moves;
};

Result<Value> clone_value(const Value& value, std::span<ArrayBuffer> transfer, TransferPlan& plan);
// Cannot fail: everything was checked by clone_value. Never allocates.
void commit_transfers(TransferPlan& plan) noexcept;
// Undoes a commit_transfers(plan) whose message could not be sent: the bytes
// go back to their sources, attached again. Never allocates.
void undo_transfers(TransferPlan& plan) noexcept;

}  // namespace weave::internal
