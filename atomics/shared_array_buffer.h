// weave::SharedArrayBuffer: a block of zeroed memory shared between threads,
// as Node's SharedArrayBuffer — fixed-length, or growable up to a
// max_byte_length fixed at construction.
//
// Sharing: a SharedArrayBuffer is a handle. Copying it shares the same
// memory (reference-counted; the memory lives until the last handle goes);
// moving it copies, so no handle is ever empty. Any thread may use any
// handle, and handles may be copied and destroyed concurrently.
//
// Memory never moves: a growable buffer reserves max_byte_length of address
// space up front (PROT_NONE) and grow() makes more of it readable and
// writable in place, so data() is the same address for the buffer's life and
// pointers into it stay valid. The memory is page-aligned (at least 16 bytes,
// so every 8-byte element is naturally aligned for atomics) and zeroed.
//
// Memory ordering: byte_length() is an acquire load that pairs with the
// release store in grow(): a thread that sees the new length may access every
// byte below it. The bytes themselves carry no ordering: use weave::atomics
// (atomics/atomics.h) on a typed view to publish data between threads.
//
// Errors: sizes are checked when the buffer is built — a bad byte_length or
// max_byte_length throws std::invalid_argument naming the argument and the
// allowed range (as Node throws a RangeError); address space that cannot be
// reserved throws std::bad_alloc. grow() past max_byte_length or below the
// current length throws std::out_of_range, and on a fixed-length buffer
// std::logic_error (Node: RangeError / TypeError).
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <optional>

namespace weave {

struct SharedArrayBufferOptions {
  // When set, the buffer is growable up to this many bytes (Node's
  // { maxByteLength }); must be >= the initial byte_length.
  std::optional<std::size_t> max_byte_length;
};

class SharedArrayBuffer {
 public:
  // The largest byte_length or max_byte_length accepted: 1 TiB of address
  // space (reserved, not committed, for a growable buffer).
  static constexpr std::size_t kMaxByteLength = std::size_t{1} << 40;
  // data() is aligned to at least this (in fact to a page).
  static constexpr std::size_t kAlignment = 16;

  // A fixed-length buffer of `byte_length` zero bytes, 0..kMaxByteLength.
  // Any thread. Never blocks. Allocates (maps memory).
  explicit SharedArrayBuffer(std::size_t byte_length);
  // An empty one (as SharedArrayBuffer(0)); not explicit, so that a struct
  // holding one can be value-initialised with `{}`.
  SharedArrayBuffer() : SharedArrayBuffer(std::size_t{0}) {}

  // A buffer of `byte_length` zero bytes, growable up to
  // options.max_byte_length if that is set (byte_length <= max_byte_length
  // <= kMaxByteLength). Any thread. Never blocks. Allocates (maps memory).
  SharedArrayBuffer(std::size_t byte_length, SharedArrayBufferOptions options);

  // Copies share the memory. No move operations are declared, so a "moved"
  // handle is copied and stays valid. Any thread. Never blocks. Never allocates.
  SharedArrayBuffer(const SharedArrayBuffer&) noexcept = default;
  SharedArrayBuffer& operator=(const SharedArrayBuffer&) noexcept = default;
  ~SharedArrayBuffer() = default;

  // The current length in bytes (acquire; see the header comment).
  // Any thread. Never blocks. Never allocates.
  // Inline, through a pointer cached at construction: a view's bounds check
  // then compiles to a load, with nothing that makes the view escape.
  [[nodiscard]] std::size_t byte_length() const noexcept {
    return length_->load(std::memory_order_acquire);
  }

  // For a growable buffer, the max_byte_length it was built with; for a
  // fixed-length one, byte_length(). Any thread. Never blocks. Never allocates.
  [[nodiscard]] std::size_t max_byte_length() const noexcept;

  // Whether grow() may be called. Any thread. Never blocks. Never allocates.
  [[nodiscard]] bool growable() const noexcept;

  // Grows the buffer to `new_byte_length` bytes; the new bytes read as zero.
  // Equal to the current length: nothing happens. Below it, or above
  // max_byte_length(): std::out_of_range. On a fixed-length buffer:
  // std::logic_error. Concurrent grows are serialised; the memory does not
  // move. Any thread. May block (briefly, on other grows). Allocates (commits
  // pages).
  void grow(std::size_t new_byte_length);

  // The first byte; the same address for the buffer's life, aligned to at
  // least kAlignment. Any thread. Never blocks. Never allocates.
  [[nodiscard]] std::byte* data() const noexcept { return data_; }

  // How many handles share this memory right now (racy: for tests and
  // diagnostics). Any thread. Never blocks. Never allocates.
  [[nodiscard]] long use_count_approx() const noexcept { return block_.use_count(); }

  // Whether two handles share the same memory. Any thread. Never blocks.
  // Never allocates.
  friend bool operator==(const SharedArrayBuffer& a, const SharedArrayBuffer& b) noexcept {
    return a.block_ == b.block_;
  }

 private:
  struct Block;
  std::shared_ptr<Block> block_;
  std::byte* data_ = nullptr;                         // cached from block_: never changes
  const std::atomic<std::size_t>* length_ = nullptr;  // &block_->length, likewise
};

}  // namespace weave
