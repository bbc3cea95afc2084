// Helpers shared by the channel tests: a fixture that adds "no channel
// endpoint outlives the test" to the clean-shutdown check, and int_of().
#pragma once

#include <cstddef>
#include <cstdint>

#include <gtest/gtest.h>

#include "channel/message_port.h"
#include "channel/value.h"
#include "tests/test_util.h"

namespace weave::testing {

class PortLeakCheckedTest : public CleanShutdownTest {
 protected:
  void SetUp() override {
    CleanShutdownTest::SetUp();
    ports_ = live_port_count_approx();
  }
  void TearDown() override {
    EXPECT_EQ(live_port_count_approx(), ports_) << "a channel endpoint outlived the test";
    CleanShutdownTest::TearDown();
  }

 private:
  std::size_t ports_ = 0;
};

// The int a message carries, or -1 when it carries something else.
inline std::int64_t int_of(const Value& v) {
  const std::int64_t* i = v.if_int();
  return i ? *i : -1;
}

}  // namespace weave::testing
