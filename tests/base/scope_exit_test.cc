#include "base/internal/scope_exit.h"

#include <gtest/gtest.h>

#include <stdexcept>

namespace weave::internal {
namespace {

TEST(ScopeExitTest, RunsAtTheEndOfTheScope) {
  int runs = 0;
  {
    ScopeExit guard{[&]() noexcept { ++runs; }};
    EXPECT_EQ(runs, 0);
  }
  EXPECT_EQ(runs, 1);
}

TEST(ScopeExitTest, RunsWhenAnExceptionLeaves) {
  int runs = 0;
  EXPECT_THROW(
      {
        ScopeExit guard{[&]() noexcept { ++runs; }};
        throw std::runtime_error("x");
      },
      std::runtime_error);
  EXPECT_EQ(runs, 1);
}

TEST(ScopeExitTest, ReleasedGuardDoesNotRun) {
  int runs = 0;
  {
    ScopeExit guard{[&]() noexcept { ++runs; }};
    guard.release();
  }
  EXPECT_EQ(runs, 0);
}

}  // namespace
}  // namespace weave::internal
