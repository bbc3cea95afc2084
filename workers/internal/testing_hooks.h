// Test-only controls of //workers: make a Worker's start fail where the
// kernel could make it fail, without putting the test runner under a real
// limit. Not for users; Bazel visibility limits this header to the tests.
//
// Threading: Any thread. Never blocks. Never allocates.
#pragma once

namespace weave::internal {

// The next `count` thread creations of Worker starts report `error` (an
// errno value such as EAGAIN) instead of creating a thread. 0 clears it.
void fail_next_thread_creations_for_testing(int error, int count = 1) noexcept;

}  // namespace weave::internal
