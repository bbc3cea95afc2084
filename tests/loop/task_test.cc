// Tests for weave::internal::Task (loop/internal/task.h): a move-only void()
// callable with a 48-byte inline buffer, so posting a small lambda does not
// allocate. Allocations are counted by replacing the global operator new for
// this binary (per thread, so gtest's own bookkeeping cannot interfere).
#include "loop/internal/task.h"

#include <gtest/gtest.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <stdexcept>
#include <thread>
#include <utility>

#include "tests/test_util.h"

namespace {
thread_local std::size_t tls_allocations = 0;
}  // namespace

// noinline: keeps GCC from pairing an inlined `free` with `new` at call sites
// (-Wmismatched-new-delete); the pair is consistent, both sides use malloc.
__attribute__((noinline)) void* operator new(std::size_t n) {
  ++tls_allocations;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
__attribute__((noinline)) void operator delete(void* p) noexcept { std::free(p); }
__attribute__((noinline)) void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace weave::internal {
namespace {

using ::weave::testing::CleanShutdownTest;

class TaskTest : public CleanShutdownTest {};

// Allocations made on this thread while `fn` runs.
template <class F>
std::size_t allocations_during(F&& fn) {
  const std::size_t before = tls_allocations;
  fn();
  return tls_allocations - before;
}

// Counts live instances and calls; nothrow-movable unless told otherwise.
struct Probe {
  int* live;
  int* calls;
  explicit Probe(int* l, int* c) : live(l), calls(c) { ++*live; }
  Probe(const Probe& o) : live(o.live), calls(o.calls) { ++*live; }
  Probe(Probe&& o) noexcept : live(o.live), calls(o.calls) { ++*live; }
  ~Probe() { --*live; }
  void operator()() { ++*calls; }
};

// A callable exactly `Bytes` big.
template <std::size_t Bytes>
struct Sized {
  int* calls;
  unsigned char pad[Bytes - sizeof(int*)]{};
  void operator()() { ++*calls; }
};
static_assert(sizeof(Sized<Task::kInlineBytes>) == Task::kInlineBytes);
static_assert(sizeof(Sized<Task::kInlineBytes + 8>) == Task::kInlineBytes + 8);

TEST_F(TaskTest, DefaultAndNullTasksAreEmpty) {
  Task a;
  Task b(nullptr);
  EXPECT_FALSE(a);
  EXPECT_FALSE(b);
  a.reset();  // resetting an empty task does nothing
  EXPECT_FALSE(a);
}

TEST_F(TaskTest, CallableUpToTheInlineSizeDoesNotAllocate) {
  int calls = 0;
  std::size_t n = allocations_during([&] {
    Task t(Sized<Task::kInlineBytes>{&calls});
    EXPECT_TRUE(t);
    Task moved(std::move(t));
    moved();
  });
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(calls, 1);
}

TEST_F(TaskTest, CallableLargerThanTheInlineSizeAllocatesOnceAndMovesWithoutAllocating) {
  int calls = 0;
  Task t;
  EXPECT_EQ(allocations_during([&] { t = Task(Sized<Task::kInlineBytes + 8>{&calls}); }), 1u);
  Task moved;
  EXPECT_EQ(allocations_during([&] { moved = std::move(t); }), 0u);
  EXPECT_FALSE(t);  // NOLINT(bugprone-use-after-move): moved-from state is specified
  moved();
  moved();
  EXPECT_EQ(calls, 2);
}

TEST_F(TaskTest, CallableWithAThrowingMoveIsStoredOnTheHeap) {
  struct ThrowingMove {
    int* calls;
    ThrowingMove(int* c) : calls(c) {}
    ThrowingMove(ThrowingMove&& o) : calls(o.calls) {}  // not noexcept
    void operator()() { ++*calls; }
  };
  int calls = 0;
  Task t;
  EXPECT_EQ(allocations_during([&] { t = Task(ThrowingMove(&calls)); }), 1u);
  Task moved(std::move(t));  // must not run the throwing move: moves the pointer
  moved();
  EXPECT_EQ(calls, 1);
}

TEST_F(TaskTest, OverAlignedCallableRunsAtItsAlignment) {
  struct alignas(64) Aligned {
    bool* aligned;
    void operator()() { *aligned = reinterpret_cast<std::uintptr_t>(this) % 64 == 0; }
  };
  bool aligned = false;
  Task t(Aligned{&aligned});
  Task moved(std::move(t));
  moved();
  EXPECT_TRUE(aligned);
}

TEST_F(TaskTest, DestroysTheCallableExactlyOnceWhetherInlineOrOnTheHeap) {
  int live = 0;
  int calls = 0;
  {
    Task inline_task(Probe(&live, &calls));
    Task heap_task([p = Probe(&live, &calls), pad = std::array<std::uint64_t, 8>{}]() mutable {
      static_assert(sizeof(p) + sizeof(pad) > Task::kInlineBytes);
      p();
      EXPECT_EQ(pad[7], 0u);
    });
    EXPECT_EQ(live, 2);
    Task a(std::move(inline_task));
    Task b(std::move(heap_task));
    EXPECT_EQ(live, 2) << "a move left a copy behind";
    a();
    b();
    EXPECT_EQ(calls, 2);
  }
  EXPECT_EQ(live, 0) << "a callable leaked or was destroyed twice";
}

TEST_F(TaskTest, MoveAssignmentDestroysTheOldCallable) {
  int live = 0;
  int calls = 0;
  Task t(Probe(&live, &calls));
  Task other(Probe(&live, &calls));
  EXPECT_EQ(live, 2);
  t = std::move(other);
  EXPECT_EQ(live, 1);
  t = Task();
  EXPECT_EQ(live, 0);
  EXPECT_FALSE(t);
}

TEST_F(TaskTest, SelfMoveAssignmentKeepsTheCallable) {
  int live = 0;
  int calls = 0;
  Task t(Probe(&live, &calls));
  Task& alias = t;
  t = std::move(alias);
  EXPECT_TRUE(t);
  EXPECT_EQ(live, 1);
  t();
  EXPECT_EQ(calls, 1);
}

TEST_F(TaskTest, ResetDestroysTheCallable) {
  int live = 0;
  int calls = 0;
  Task t(Probe(&live, &calls));
  t.reset();
  EXPECT_FALSE(t);
  EXPECT_EQ(live, 0);
  EXPECT_EQ(calls, 0);
}

TEST_F(TaskTest, MoveOnlyAndMutableCallablesWork) {
  auto owned = std::make_unique<int>(0);
  int* raw = owned.get();
  Task t([p = std::move(owned)]() mutable { ++*p; });
  t();
  t();
  EXPECT_EQ(*raw, 2) << "a mutable callable must keep its state between calls";
  t.reset();  // frees the unique_ptr (LeakSanitizer would report it otherwise)
}

TEST_F(TaskTest, ExceptionFromTheCallablePropagatesAndTheTaskStaysUsable) {
  int calls = 0;
  Task t([&calls] {
    if (++calls == 1) throw std::runtime_error("first call");
  });
  EXPECT_THROW(t(), std::runtime_error);
  t();
  EXPECT_EQ(calls, 2);
}

TEST_F(TaskTest, ATaskBuiltOnOneThreadRunsAndDiesOnAnother) {
  int live = 0;
  int calls = 0;
  Task t(Probe(&live, &calls));
  std::thread([task = std::move(t)]() mutable {
    task();
    task.reset();
  }).join();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(live, 0);
}

}  // namespace
}  // namespace weave::internal
