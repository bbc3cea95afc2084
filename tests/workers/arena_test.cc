// Pins down weave::Arena (workers/arena.h) on its own: byte counts, the cap
// and what a refused allocation leaves behind, release(). Within a worker the
// same arena is reached through this_worker::arena() (worker_test.cc).
#include "workers/arena.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory_resource>
#include <new>
#include <vector>

#include "tests/test_util.h"

namespace weave {
namespace {

using ArenaTest = ::weave::testing::CleanShutdownTest;

TEST_F(ArenaTest, CountsBytesInUseAndThePeak) {
  Arena arena;
  void* a = arena.allocate(100);
  void* b = arena.allocate(1000, 64);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b) % 64, 0u) << "alignment is honoured";
  ArenaStats s = arena.stats();
  EXPECT_EQ(s.bytes_in_use, 1100u);
  EXPECT_EQ(s.peak_bytes_in_use, 1100u);
  EXPECT_GE(s.bytes_reserved, s.bytes_in_use);
  EXPECT_EQ(s.allocations, 2u);
  EXPECT_EQ(s.limit_bytes, 0u);
  arena.deallocate(a, 100);
  s = arena.stats();
  EXPECT_EQ(s.bytes_in_use, 1000u);
  EXPECT_EQ(s.peak_bytes_in_use, 1100u);
  arena.deallocate(b, 1000, 64);
  EXPECT_EQ(arena.stats().bytes_in_use, 0u);
}

TEST_F(ArenaTest, AllocationPastTheLimitThrowsArenaOutOfMemoryAndChangesNothing) {
  Arena arena(4096);
  void* a = arena.allocate(4000);
  const ArenaStats before = arena.stats();
  try {
    (void)arena.allocate(100);
    FAIL() << "an allocation past the limit succeeded";
  } catch (const ArenaOutOfMemory& e) {
    EXPECT_EQ(e.requested(), 100u);
    EXPECT_EQ(e.limit(), 4096u);
  }
  const ArenaStats after = arena.stats();
  EXPECT_EQ(after.bytes_in_use, before.bytes_in_use);
  EXPECT_EQ(after.allocations, before.allocations);
  EXPECT_EQ(after.refused, 1u);
  void* b = arena.allocate(96);  // exactly up to the limit still fits
  EXPECT_EQ(arena.stats().bytes_in_use, 4096u);
  arena.deallocate(b, 96);
  arena.deallocate(a, 4000);
}

TEST_F(ArenaTest, OutOfMemoryIsABadAllocAndSaysWhichLimit) {
  Arena arena(1024);
  try {
    (void)arena.allocate(std::size_t{1} << 40);
    FAIL() << "a huge allocation succeeded";
  } catch (const std::bad_alloc& e) {
    EXPECT_NE(std::string(e.what()).find("max_arena_bytes (1024)"), std::string::npos) << e.what();
  }
}

TEST_F(ArenaTest, PmrContainersUseItAndReleaseFreesWhatWasNeverGivenBack) {
  Arena arena;
  {
    std::pmr::vector<std::uint64_t> v(&arena);
    v.resize(1000);
    EXPECT_GE(arena.stats().bytes_in_use, 8000u);
  }
  EXPECT_EQ(arena.stats().bytes_in_use, 0u);
  for (int i = 0; i < 100; ++i) (void)arena.allocate(64);  // never deallocated
  EXPECT_EQ(arena.stats().bytes_in_use, 6400u);
  arena.release();  // LeakSanitizer (--config=asan) proves these are freed
  const ArenaStats s = arena.stats();
  EXPECT_EQ(s.bytes_in_use, 0u);
  EXPECT_EQ(s.bytes_reserved, 0u);
  EXPECT_GE(s.peak_bytes_in_use, 8000u);
}

TEST_F(ArenaTest, IsEqualOnlyToItself) {
  Arena a, b;
  EXPECT_TRUE(a.is_equal(a));
  EXPECT_FALSE(a.is_equal(b));
  EXPECT_FALSE(a.is_equal(*std::pmr::new_delete_resource()));
}

}  // namespace
}  // namespace weave
