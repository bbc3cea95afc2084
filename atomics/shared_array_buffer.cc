#include "atomics/shared_array_buffer.h"

#include <sys/mman.h>
#include <unistd.h>

#include <mutex>
#include <new>
#include <stdexcept>
#include <string>

namespace weave {
namespace {

std::size_t page_size() noexcept {
  static const std::size_t size = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

std::size_t round_up_to_page(std::size_t n) noexcept {
  const std::size_t p = page_size();
  return (n + p - 1) / p * p;
}

// The data() of a buffer that maps nothing (length and max 0): a valid,
// aligned address that is never dereferenced.
alignas(SharedArrayBuffer::kAlignment) std::byte g_empty[SharedArrayBuffer::kAlignment];

}  // namespace

struct SharedArrayBuffer::Block {
  std::byte* base = nullptr;  // g_empty when reserved == 0
  std::size_t reserved = 0;   // bytes mapped (page multiple)
  std::size_t max_length = 0;
  bool growable = false;
  std::atomic<std::size_t> length{0};
  std::mutex grow_mu;         // serialises grow(); readers never take it
  std::size_t committed = 0;  // bytes readable and writable; under grow_mu

  ~Block() {
    if (reserved != 0) ::munmap(base, reserved);
  }
};

SharedArrayBuffer::SharedArrayBuffer(std::size_t byte_length)
    : SharedArrayBuffer(byte_length, SharedArrayBufferOptions{}) {}

SharedArrayBuffer::SharedArrayBuffer(std::size_t byte_length, SharedArrayBufferOptions options) {
  if (byte_length > kMaxByteLength) {
    throw std::invalid_argument("weave::SharedArrayBuffer: byte_length " +
                                std::to_string(byte_length) + " is out of range 0.." +
                                std::to_string(kMaxByteLength));
  }
  const bool growable = options.max_byte_length.has_value();
  const std::size_t max_length = growable ? *options.max_byte_length : byte_length;
  if (growable && (max_length < byte_length || max_length > kMaxByteLength)) {
    throw std::invalid_argument("weave::SharedArrayBuffer: max_byte_length " +
                                std::to_string(max_length) + " is out of range " +
                                std::to_string(byte_length) + ".." +
                                std::to_string(kMaxByteLength) + " (byte_length..kMaxByteLength)");
  }
  auto block = std::make_shared<Block>();
  block->growable = growable;
  block->max_length = max_length;
  block->reserved = round_up_to_page(max_length);
  block->committed = round_up_to_page(byte_length);
  if (block->reserved == 0) {
    block->base = g_empty;
  } else {
    // Anonymous pages read as zero. A growable buffer reserves its maximum
    // without committing it (PROT_NONE, MAP_NORESERVE); grow() opens pages.
    const int prot = block->committed == block->reserved ? PROT_READ | PROT_WRITE : PROT_NONE;
    void* p =
        ::mmap(nullptr, block->reserved, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    block->base = static_cast<std::byte*>(p);
    if (prot == PROT_NONE && block->committed != 0 &&
        ::mprotect(p, block->committed, PROT_READ | PROT_WRITE) != 0) {
      throw std::bad_alloc();  // ~Block unmaps
    }
  }
  block->length.store(byte_length,
                      std::memory_order_relaxed);  // published by make_shared's handoff
  data_ = block->base;
  length_ = &block->length;
  block_ = std::move(block);
}

std::size_t SharedArrayBuffer::max_byte_length() const noexcept {
  return block_->growable ? block_->max_length : byte_length();
}

bool SharedArrayBuffer::growable() const noexcept { return block_->growable; }

void SharedArrayBuffer::grow(std::size_t new_byte_length) {
  Block& b = *block_;
  if (!b.growable) {
    throw std::logic_error("weave::SharedArrayBuffer::grow: the buffer is not growable");
  }
  std::lock_guard lock(b.grow_mu);
  // relaxed: only grow() writes the length, and we hold grow_mu.
  const std::size_t current = b.length.load(std::memory_order_relaxed);
  if (new_byte_length < current || new_byte_length > b.max_length) {
    throw std::out_of_range("weave::SharedArrayBuffer::grow: new_byte_length " +
                            std::to_string(new_byte_length) + " is out of range " +
                            std::to_string(current) + ".." + std::to_string(b.max_length) +
                            " (byte_length..max_byte_length)");
  }
  const std::size_t want = round_up_to_page(new_byte_length);
  if (want > b.committed) {
    if (::mprotect(b.base + b.committed, want - b.committed, PROT_READ | PROT_WRITE) != 0) {
      throw std::bad_alloc();
    }
    b.committed = want;
  }
  // release: pairs with byte_length()'s acquire, so a reader that sees the
  // new length finds the pages open.
  b.length.store(new_byte_length, std::memory_order_release);
}

}  // namespace weave
