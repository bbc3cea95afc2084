// internal::BufferAccess: an ArrayBuffer's shared storage, for weave's own
// cloning, transfer and wire code (identity of buffers, the transfer plan).
// Not for users: ArrayBuffer's public API is its bytes and its JS semantics.
//
// Threading: as ArrayBuffer (owner thread only). Never blocks. Never
// allocates.
#pragma once

#include <memory>
#include <utility>

#include "channel/array_buffer.h"

namespace weave::internal {

struct BufferAccess {
  [[nodiscard]] static const std::shared_ptr<BufferStorage>& storage(
      const ArrayBuffer& buffer) noexcept {
    return buffer.s_;
  }
  [[nodiscard]] static ArrayBuffer make(std::shared_ptr<BufferStorage> storage) {
    return ArrayBuffer(std::move(storage));
  }
};

}  // namespace weave::internal
