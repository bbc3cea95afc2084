#include "base/deadline.h"

#include <gtest/gtest.h>

#include <chrono>
#include <limits>

namespace weave {
namespace {

using namespace std::chrono_literals;
using Tp = std::chrono::steady_clock::time_point;

TEST(DeadlineTest, ForeverAndItsThreshold) {
  EXPECT_TRUE(is_forever(kForever));
  EXPECT_TRUE(is_forever(std::chrono::hours::max()));
  EXPECT_TRUE(is_forever(std::chrono::nanoseconds::max()));
  EXPECT_TRUE(is_forever(std::chrono::duration<double>(1e10)));
  EXPECT_TRUE(is_forever(std::chrono::duration<double>(std::numeric_limits<double>::infinity())));
  EXPECT_TRUE(is_forever(std::chrono::duration<double>(std::numeric_limits<double>::quiet_NaN())));
  EXPECT_FALSE(is_forever(std::chrono::hours(24 * 365 * 99)));
  EXPECT_FALSE(is_forever(0s));
  EXPECT_FALSE(is_forever(-std::chrono::hours::max()));
  EXPECT_FALSE(is_forever(std::chrono::duration<double>(-std::numeric_limits<double>::infinity())));
}

TEST(DeadlineTest, ForeverSaturatesInsteadOfOverflowing) {
  const Tp now = std::chrono::steady_clock::now();
  EXPECT_EQ(deadline_after(now, kForever), Tp::max());
  EXPECT_EQ(deadline_after(now, std::chrono::seconds::max()), Tp::max());
  EXPECT_TRUE(is_forever(deadline_after(now, std::chrono::hours::max())));
  // Not forever, but now is so late that adding it would overflow.
  const Tp late = Tp::max() - 1h;
  EXPECT_EQ(deadline_after(late, 2h), Tp::max());
}

TEST(DeadlineTest, NonPositiveMeansNow) {
  const Tp now = std::chrono::steady_clock::now();
  EXPECT_EQ(deadline_after(now, 0s), now);
  EXPECT_EQ(deadline_after(now, -5s), now);
  EXPECT_EQ(deadline_after(now, -std::chrono::hours::max()), now);
  EXPECT_EQ(deadline_after(now, std::chrono::duration<double>(-1.5)), now);
}

TEST(DeadlineTest, OrdinaryDurationsAreExactOrRoundedUp) {
  const Tp now = std::chrono::steady_clock::now();
  EXPECT_EQ(deadline_after(now, 250ms), now + 250ms);
  // A fraction of a tick rounds up: never early.
  EXPECT_EQ(deadline_after(now, std::chrono::duration<double, std::nano>(0.25)), now + 1ns);
  EXPECT_FALSE(is_forever(deadline_after(now, std::chrono::hours(24 * 365 * 99))));
}

}  // namespace
}  // namespace weave
