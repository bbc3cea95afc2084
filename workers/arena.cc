#include "workers/arena.h"

#include <cstdio>
#include <unordered_map>
#include <utility>

namespace weave {

ArenaOutOfMemory::ArenaOutOfMemory(std::size_t requested, std::size_t in_use,
                                   std::size_t limit) noexcept
    : requested_(requested), limit_(limit) {
  std::snprintf(what_, sizeof what_,
                "weave::Arena: %zu more bytes would exceed max_arena_bytes (%zu); %zu in use",
                requested, limit, in_use);
}

// Built with WEAVE_ASAN, blocks bypass the pool; release() then needs to know
// which are still live.
struct Arena::AsanBlocks {
  struct Block {
    std::size_t bytes;
    std::size_t align;
  };
  std::unordered_map<void*, Block> live;
};

Arena::Arena(std::size_t limit_bytes) : limit_(limit_bytes) {
#if defined(WEAVE_ASAN)
  asan_blocks_ = std::make_unique<AsanBlocks>();
#else
  pool_.emplace(&upstream_);
#endif
}

Arena::~Arena() { release(); }

ArenaStats Arena::stats() const noexcept {
  ArenaStats s;
  s.bytes_in_use = in_use_.load(std::memory_order_relaxed);
  s.peak_bytes_in_use = peak_.load(std::memory_order_relaxed);
  s.bytes_reserved = reserved_.load(std::memory_order_relaxed);
  s.limit_bytes = limit_;
  s.allocations = allocations_.load(std::memory_order_relaxed);
  s.refused = refused_.load(std::memory_order_relaxed);
  return s;
}

void* Arena::Upstream::do_allocate(std::size_t bytes, std::size_t align) {
  void* p = ::operator new(bytes, std::align_val_t(align));
  add(arena_.reserved_, bytes);
  return p;
}

void Arena::Upstream::do_deallocate(void* p, std::size_t bytes, std::size_t align) {
  ::operator delete(p, bytes, std::align_val_t(align));
  sub(arena_.reserved_, bytes);
}

void* Arena::do_allocate(std::size_t bytes, std::size_t align) {
  const std::size_t in_use = in_use_.load(std::memory_order_relaxed);
  if (limit_ != 0 && (bytes > limit_ || in_use > limit_ - bytes)) {
    add(refused_, std::uint64_t{1});
    throw ArenaOutOfMemory(bytes, in_use, limit_);
  }
  void* p;
  if (asan_blocks_) {
    p = upstream_.allocate(bytes, align);
    try {
      asan_blocks_->live.emplace(p, AsanBlocks::Block{bytes, align});
    } catch (...) {
      upstream_.deallocate(p, bytes, align);
      throw;
    }
  } else {
    p = pool_->allocate(bytes, align);
  }
  add(in_use_, bytes);
  if (in_use + bytes > peak_.load(std::memory_order_relaxed)) {
    peak_.store(in_use + bytes, std::memory_order_relaxed);
  }
  add(allocations_, std::uint64_t{1});
  return p;
}

void Arena::do_deallocate(void* p, std::size_t bytes, std::size_t align) {
  if (asan_blocks_) {
    asan_blocks_->live.erase(p);
    upstream_.deallocate(p, bytes, align);
  } else {
    pool_->deallocate(p, bytes, align);
  }
  sub(in_use_, bytes);
}

void Arena::release() noexcept {
  if (asan_blocks_) {
    for (auto& [p, block] : asan_blocks_->live) upstream_.deallocate(p, block.bytes, block.align);
    asan_blocks_->live.clear();
  } else {
    pool_->release();
  }
  in_use_.store(0, std::memory_order_relaxed);
}

}  // namespace weave
