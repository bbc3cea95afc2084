// Deep values on small worker stacks (issue 12, review D6): a worker with the
// smallest stack the options allow (ResourceLimits::kMinStackBytes) posts a
// value nested to the accepted clone depth (kMaxCloneDepth), and receives
// one. The process must never die on an accepted value.
//
// With the recursive cloner of da0e920 posting such a value overflowed the
// 64 KiB stack and killed the process (SIGSEGV); channel/ now walks values
// with an explicit stack.
#include <gtest/gtest.h>

#include <cstddef>
#include <optional>
#include <utility>

#include "channel/message_port.h"
#include "channel/value.h"
#include "loop/event_loop.h"
#include "tests/test_util.h"
#include "tests/workers/worker_test_util.h"
#include "workers/worker.h"

namespace weave {
namespace {

using WorkerTest = ::weave::testing::WorkerTest;

// [[[...]]] nested `depth` arrays deep, built without recursion.
Value nested(std::size_t depth) {
  Value v;
  for (std::size_t i = 0; i < depth; ++i) {
    Array a;
    a.push_back(std::move(v));
    v = Value(std::move(a));
  }
  return v;
}

// How many arrays deep `v` is, walked without recursion.
std::size_t depth_of(const Value& v) {
  std::size_t d = 0;
  for (const Value* p = &v; const Array* a = p->if_array(); p = &(*a)[0], ++d) {
    if (a->empty()) return d + 1;
  }
  return d;
}

WorkerOptions smallest_stack() {
  WorkerOptions o;
  o.resource_limits.stack_size_bytes = ResourceLimits::kMinStackBytes;
  return o;
}

TEST_F(WorkerTest, AWorkerOnTheSmallestStackPostsAValueAtTheAcceptedCloneDepth) {
  Worker w(
      [] {
        Value v = nested(kMaxCloneDepth - 1);
        Status s = parent_port()->post_message(v);
        (void)parent_port()->post_message(s.ok() ? "posted" : s.to_string());
      },
      smallest_stack());
  std::optional<std::size_t> depth;
  std::optional<Value> verdict;
  w.on_message([&](MessageEvent& e) {
    if (!depth) {
      depth = depth_of(e.data);
    } else {
      verdict = std::move(e.data);
    }
  });
  std::optional<int> code;
  w.on_exit([&](int c) { code = c; });
  run_loop();
  EXPECT_EQ(code, 0);
  EXPECT_EQ(depth, kMaxCloneDepth - 1);
  EXPECT_EQ(verdict, Value("posted"));
}

TEST_F(WorkerTest, AWorkerOnTheSmallestStackReceivesAValueAtTheAcceptedCloneDepth) {
  Worker w(
      [] {
        parent_port()->on_message([](MessageEvent& e) {
          // Reading it, echoing it and dropping it all happen on the small stack.
          (void)parent_port()->post_message(e.data);
          parent_port()->close();
        });
      },
      smallest_stack());
  ASSERT_TRUE(w.post_message(nested(kMaxCloneDepth - 1)).ok());
  std::optional<std::size_t> depth;
  w.on_message([&](MessageEvent& e) { depth = depth_of(e.data); });
  std::optional<int> code;
  w.on_exit([&](int c) { code = c; });
  run_loop();
  EXPECT_EQ(code, 0);
  EXPECT_EQ(depth, kMaxCloneDepth - 1);
}

TEST_F(WorkerTest, AWorkerOnTheSmallestStackIsRefusedAValueTooDeepWithoutDying) {
  Worker w(
      [] {
        Value v = nested(kMaxCloneDepth + 10);
        Status s = parent_port()->post_message(v);
        (void)parent_port()->post_message(std::string(error_code_name(s.code())));
      },
      smallest_stack());
  std::optional<Value> verdict;
  w.on_message([&](MessageEvent& e) { verdict = std::move(e.data); });
  run_loop();
  EXPECT_EQ(verdict, Value("DataCloneError"));
}

}  // namespace
}  // namespace weave
