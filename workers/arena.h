// weave::Arena: the memory resource a worker owns for its state
// (this_worker::arena(), workers/worker.h), with byte counts any thread can
// read and an optional cap.
//
//   std::pmr::vector<int> v(weave::this_worker::arena());
//   v.resize(1000);                       // counted; refused past the cap
//
// An Arena is a std::pmr::memory_resource: a std::pmr::unsynchronized_pool_
// resource over a counting upstream that takes whole chunks from operator
// new. Built with WEAVE_ASAN (--config=asan), every allocation goes straight
// to operator new / delete instead, so AddressSanitizer sees each block on its
// own; the counts and the cap behave the same.
//
// Cap: with a limit, an allocation that would take the bytes in live
// allocations (bytes_in_use) past it throws ArenaOutOfMemory (a std::bad_alloc)
// and changes nothing. The cap counts the bytes asked for, not the pool's
// chunks, so whether an allocation fits does not depend on how the pool
// happens to be carved up; bytes_reserved shows what the pool holds from the
// system for them.
//
// Lifetime: release() — and the destructor — frees every block at once,
// including those never deallocated. A worker's arena is released when the
// worker's thread ends, so memory from it must not outlive the worker
// (messages that leave a worker are cloned or transferred out and never use
// it).
//
// Threading: allocate and deallocate are "Owner thread only" (the worker's
// thread; the pool is unsynchronized). stats() is "Any thread": the counters
// have one writer, the owner, and are read relaxed, so a reader may see one
// counter a moment ahead of another, never a torn value.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <memory_resource>
#include <new>
#include <optional>

namespace weave {

struct ArenaStats {
  std::size_t bytes_in_use = 0;       // in live allocations; what the limit caps
  std::size_t peak_bytes_in_use = 0;  // the most bytes_in_use has been
  std::size_t bytes_reserved = 0;     // held from the system for them (pool chunks)
  std::size_t limit_bytes = 0;        // 0: unlimited
  std::uint64_t allocations = 0;      // allocations made
  std::uint64_t refused = 0;          // allocations refused by the limit
};

// Thrown by an Arena allocation that would go past the arena's limit. A
// std::bad_alloc, so code that copes with running out of memory copes with
// it; escaping a worker it ends that worker with an "ERR_WORKER_OUT_OF_MEMORY"
// error event. Never allocates (what() is kept inline).
class ArenaOutOfMemory : public std::bad_alloc {
 public:
  ArenaOutOfMemory(std::size_t requested, std::size_t in_use, std::size_t limit) noexcept;
  [[nodiscard]] const char* what() const noexcept override { return what_; }
  [[nodiscard]] std::size_t requested() const noexcept { return requested_; }
  [[nodiscard]] std::size_t limit() const noexcept { return limit_; }

 private:
  std::size_t requested_;
  std::size_t limit_;
  char what_[160];
};

class Arena final : public std::pmr::memory_resource {
 public:
  // `limit_bytes`: the most bytes live allocations may hold at once; 0 means
  // unlimited. Allocates (the pool's bookkeeping, counted in bytes_reserved).
  explicit Arena(std::size_t limit_bytes = 0);
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  // Frees every block. Owner thread only (or once the owner has ended).
  // Never blocks.
  ~Arena() override;

  // The counters. Any thread. Never blocks. Never allocates.
  [[nodiscard]] ArenaStats stats() const noexcept;
  [[nodiscard]] std::size_t limit_bytes() const noexcept { return limit_; }

  // Frees every block at once, also those never deallocated; bytes_in_use
  // drops to 0, the peak stays. Nothing allocated before may be used after.
  // Owner thread only. Never blocks.
  void release() noexcept;

 private:
  // Counts the chunks the pool takes from operator new.
  class Upstream final : public std::pmr::memory_resource {
   public:
    explicit Upstream(Arena& arena) : arena_(arena) {}

   private:
    void* do_allocate(std::size_t bytes, std::size_t align) override;
    void do_deallocate(void* p, std::size_t bytes, std::size_t align) override;
    bool do_is_equal(const std::pmr::memory_resource& o) const noexcept override {
      return this == &o;
    }
    Arena& arena_;
  };
  struct AsanBlocks;  // the live blocks, when built with WEAVE_ASAN

  void* do_allocate(std::size_t bytes, std::size_t align) override;
  void do_deallocate(void* p, std::size_t bytes, std::size_t align) override;
  bool do_is_equal(const std::pmr::memory_resource& o) const noexcept override {
    return this == &o;
  }
  // One writer (the owner thread): a relaxed load and store, no RMW.
  template <class T>
  static void add(std::atomic<T>& c, T n) noexcept {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  template <class T>
  static void sub(std::atomic<T>& c, T n) noexcept {
    c.store(c.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
  }

  const std::size_t limit_;
  // Written by the owner only, read by any thread (relaxed: they are counts,
  // nothing is published through them). Declared before the pool: its
  // constructor already takes memory from upstream_, and its destructor
  // gives it back.
  std::atomic<std::size_t> in_use_{0};
  std::atomic<std::size_t> peak_{0};
  std::atomic<std::size_t> reserved_{0};
  std::atomic<std::uint64_t> allocations_{0};
  std::atomic<std::uint64_t> refused_{0};
  Upstream upstream_{*this};
  // One of the two: the pool, or (WEAVE_ASAN) the live blocks.
  std::optional<std::pmr::unsynchronized_pool_resource> pool_;
  std::unique_ptr<AsanBlocks> asan_blocks_;
};

}  // namespace weave
