#include "base/internal/name_registry.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace weave::internal {
namespace {

TEST(NameRegistryTest, FirstRegistrationIsKept) {
  NameRegistry<int> r;
  EXPECT_TRUE(r.add("a", 1));
  EXPECT_FALSE(r.add("a", 2));
  ASSERT_TRUE(r.find("a").has_value());
  EXPECT_EQ(*r.find("a"), 1);
  EXPECT_FALSE(r.find("b").has_value());
  EXPECT_FALSE(r.find("").has_value());
}

TEST(NameRegistryTest, ConcurrentAddsOfOneNameHaveOneWinner) {
  NameRegistry<int> r;
  std::atomic<int> winners{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        if (r.add("n" + std::to_string(i), t)) winners.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(winners.load(), 100);
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(r.find("n" + std::to_string(i)).has_value());
}

}  // namespace
}  // namespace weave::internal
