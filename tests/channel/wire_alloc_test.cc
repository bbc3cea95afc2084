// The wire decoder's allocations follow the input it has read, not the
// counts it declares (review 2.1: an 'A' count of n used to reserve n x 48
// bytes up front, an 'o' count n x 80 plus a hash set of n). This binary
// replaces the global operator new to see the largest single request made
// while deserialize() runs; it is its own test target so that the
// replacement touches nothing else.
#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <vector>

#include "channel/status.h"
#include "channel/value.h"
#include "channel/wire.h"
#include "tests/test_util.h"

namespace {

std::atomic<bool> g_armed{false};
std::atomic<std::size_t> g_largest{0};

void note(std::size_t n) noexcept {
  if (!g_armed.load(std::memory_order_relaxed)) return;
  std::size_t seen = g_largest.load(std::memory_order_relaxed);
  while (n > seen && !g_largest.compare_exchange_weak(seen, n, std::memory_order_relaxed)) {
  }
}

}  // namespace

void* operator new(std::size_t n) {
  note(n);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace weave {
namespace {

class WireAllocationTest : public testing::CleanShutdownTest {};

void put_varint(std::vector<std::byte>& out, std::uint64_t u) {
  while (u >= 0x80) {
    out.push_back(static_cast<std::byte>(u | 0x80));
    u >>= 7;
  }
  out.push_back(static_cast<std::byte>(u));
}

void put(std::vector<std::byte>& out, char c) { out.push_back(static_cast<std::byte>(c)); }

std::vector<std::byte> header() { return {std::byte{kWireMagic}, std::byte{kWireVersion}}; }

// The largest single allocation deserialize(bytes) asks for, and its result.
std::size_t largest_allocation(const std::vector<std::byte>& bytes, Result<Value>& out) {
  g_largest.store(0);
  g_armed.store(true);
  out = deserialize(bytes);
  g_armed.store(false);
  return g_largest.load();
}

constexpr std::size_t kCount = 1'000'000;
// Far below what a declared count of kCount would cost reserved up front
// (48 MB for an array, 80 MB for an object), far above what the few items
// the hostile inputs below really hold need.
constexpr std::size_t kBound = 64 << 10;

TEST_F(WireAllocationTest, HugeArrayCountWithABadSecondItemIsRefusedWithoutALargeAllocation) {
  std::vector<std::byte> bytes = header();
  put(bytes, 'A');
  put_varint(bytes, kCount);
  put(bytes, 'T');
  bytes.resize(bytes.size() + kCount - 1, std::byte{0xFF});  // 0xFF: not a tag
  Result<Value> v = Value();
  const std::size_t largest = largest_allocation(bytes, v);
  EXPECT_EQ(v.code(), ErrorCode::kMalformedInput);
  EXPECT_NE(v.status().message().find("unknown tag"), std::string::npos) << v.status().to_string();
  EXPECT_LT(largest, kBound) << "an allocation the input read does not justify";
}

TEST_F(WireAllocationTest, HugeObjectCountWithABadSecondEntryIsRefusedWithoutALargeAllocation) {
  std::vector<std::byte> bytes = header();
  put(bytes, 'o');
  put_varint(bytes, kCount);
  put(bytes, '\x01');
  put(bytes, 'a');
  put(bytes, 'T');
  bytes.resize(bytes.size() + 2 * kCount, std::byte{0xFF});  // 0xFF: no key is that long
  Result<Value> v = Value();
  const std::size_t largest = largest_allocation(bytes, v);
  EXPECT_EQ(v.code(), ErrorCode::kMalformedInput);
  EXPECT_LT(largest, kBound) << "an allocation the input read does not justify";
}

TEST_F(WireAllocationTest, NestedHugeCountsAreRefusedWithoutALargeAllocation) {
  std::vector<std::byte> bytes = header();
  for (int i = 0; i < 8; ++i) {
    put(bytes, 'A');
    put_varint(bytes, kCount / 16);
  }
  bytes.resize(bytes.size() + kCount, std::byte{0xFF});
  Result<Value> v = Value();
  const std::size_t largest = largest_allocation(bytes, v);
  EXPECT_EQ(v.code(), ErrorCode::kMalformedInput);
  EXPECT_LT(largest, kBound);
}

// A large array that really holds its items still decodes (the vector grows
// as they are read).
TEST_F(WireAllocationTest, LargeArrayThatHoldsItsItemsStillDecodes) {
  std::vector<std::byte> bytes = header();
  put(bytes, 'A');
  put_varint(bytes, kCount);
  bytes.resize(bytes.size() + kCount, std::byte{'T'});
  Result<Value> v = deserialize(bytes);
  ASSERT_TRUE(v.ok()) << v.status().to_string();
  ASSERT_TRUE(v->is_array());
  EXPECT_EQ(v->if_array()->size(), kCount);
  EXPECT_EQ(*v->at(kCount - 1), Value(true));
  auto again = serialize(*v);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, bytes);
}

}  // namespace
}  // namespace weave
