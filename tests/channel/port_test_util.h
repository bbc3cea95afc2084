// Helpers shared by the channel tests: a fixture that adds "no channel
// endpoint outlives the test" to the clean-shutdown check,
// run_loop_on_this_thread(), int_of() and detached_buffer().
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include <gtest/gtest.h>

#include "channel/array_buffer.h"
#include "channel/message_port.h"
#include "channel/value.h"
#include "loop/event_loop.h"
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

// Runs the calling thread's loop until nothing referenced is left.
inline void run_loop_on_this_thread() { (void)EventLoop::current().run(); }

// The int a message carries, or -1 when it carries something else.
inline std::int64_t int_of(const Value& v) {
  const std::int64_t* i = v.if_int();
  return i ? *i : -1;
}

// A buffer that was transferred away (detached).
inline ArrayBuffer detached_buffer() {
  ArrayBuffer b = ArrayBuffer::copy_of("gone");
  auto moved = structured_clone(Value(b), std::span<ArrayBuffer>(&b, 1));
  EXPECT_TRUE(moved.ok());
  EXPECT_TRUE(b.detached());
  return b;
}

}  // namespace weave::testing
