// White-box views of a Pool for weave's own tests: the accounting checker
// and the sizes of structures that must not grow. Not for applications
// (Bazel target //pool:inspect, visible to //pool and //tests/pool only).
//
// Threading: every member is Any thread. May block (briefly: the pool's
// locks). Allocates only the result.
#pragma once

#include <cstddef>
#include <string>

namespace weave {
class Pool;
}  // namespace weave

namespace weave::internal {

struct PoolInspector {
  // The accounting invariants at quiescence (pool/internal/pool_core.h):
  // "" when they hold, else what differs. Call it only while the pool is
  // quiescent: drained (or destroyed), with nobody submitting.
  static std::string accounting_report(Pool& pool);
  // Timed tasks whose deadline the pool still lists (unsettled ones only,
  // once the pool is quiescent: 0).
  static std::size_t pending_deadlines(Pool& pool);
  // Producer tokens the pool keeps for submitting threads.
  static std::size_t producer_tokens(Pool& pool);
};

}  // namespace weave::internal
