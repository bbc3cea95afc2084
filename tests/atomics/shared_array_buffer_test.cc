// SharedArrayBuffer and the typed views: sizes, sharing, growth, bounds.
#include "atomics/shared_array_buffer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "atomics/atomics.h"
#include "atomics/shared_view.h"
#include "tests/test_util.h"

namespace weave {
namespace {

using ::testing::HasSubstr;

class SharedArrayBufferTest : public testing::CleanShutdownTest {};

// The message of the exception `fn` throws as E; fails if it throws nothing.
template <class E, class Fn>
std::string message_of(Fn&& fn) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "no exception thrown";
  return {};
}

TEST_F(SharedArrayBufferTest, NewBufferIsZeroedAndAligned) {
  SharedArrayBuffer sab(100);
  EXPECT_EQ(sab.byte_length(), 100u);
  EXPECT_EQ(sab.max_byte_length(), 100u);
  EXPECT_FALSE(sab.growable());
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(sab.data()) % SharedArrayBuffer::kAlignment, 0u);
  for (std::size_t i = 0; i < 100; ++i) EXPECT_EQ(sab.data()[i], std::byte{0}) << i;
}

TEST_F(SharedArrayBufferTest, ZeroLengthBufferIsValid) {
  SharedArrayBuffer sab;
  EXPECT_EQ(sab.byte_length(), 0u);
  EXPECT_NE(sab.data(), nullptr);
  Int32View v(sab);
  EXPECT_EQ(v.length(), 0u);
  EXPECT_THROW((void)v.load(0), std::out_of_range);
}

TEST_F(SharedArrayBufferTest, TooLargeByteLengthIsRejectedNamingTheArgument) {
  const std::string msg = message_of<std::invalid_argument>(
      [] { SharedArrayBuffer sab(SharedArrayBuffer::kMaxByteLength + 1); });
  EXPECT_THAT(msg, HasSubstr("byte_length"));
  EXPECT_THAT(msg, HasSubstr(std::to_string(SharedArrayBuffer::kMaxByteLength)));
}

TEST_F(SharedArrayBufferTest, MaxByteLengthBelowByteLengthIsRejected) {
  const std::string msg = message_of<std::invalid_argument>(
      [] { SharedArrayBuffer sab(64, SharedArrayBufferOptions{.max_byte_length = 32}); });
  EXPECT_THAT(msg, HasSubstr("max_byte_length 32"));
  EXPECT_THAT(msg, HasSubstr("64.."));
}

TEST_F(SharedArrayBufferTest, MaxByteLengthAboveLimitIsRejected) {
  EXPECT_THROW(
      SharedArrayBuffer(
          0, SharedArrayBufferOptions{.max_byte_length = SharedArrayBuffer::kMaxByteLength + 1}),
      std::invalid_argument);
}

TEST_F(SharedArrayBufferTest, CopiesShareTheSameMemory) {
  SharedArrayBuffer a(16);
  SharedArrayBuffer b = a;
  SharedArrayBuffer c = std::move(b);  // a "move" copies: b stays valid
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, c);
  EXPECT_EQ(a.data(), c.data());
  EXPECT_EQ(a.use_count_approx(), 3);
  Uint8View(c).store(3, 42);
  EXPECT_EQ(Uint8View(a).load(3), 42);
  EXPECT_EQ(Uint8View(b).load(3), 42);
  EXPECT_NE(a, SharedArrayBuffer(16));
}

TEST_F(SharedArrayBufferTest, MemoryOutlivesTheOriginalHandle) {
  Int32View view(SharedArrayBuffer(64));  // the view's handle is the last one
  atomics::store(view, 15, 7);
  EXPECT_EQ(atomics::load(view, 15), 7);
  EXPECT_EQ(view.buffer().use_count_approx(), 1);
}

TEST_F(SharedArrayBufferTest, CopiesOnSeveralThreadsSeeEachOthersWrites) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 1000;
  SharedArrayBuffer sab(kThreads * kPerThread * sizeof(std::int32_t));
  testing::StartBarrier start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([copy = sab, t, &start] {  // each thread holds its own handle
      start.arrive_and_wait();
      Int32View v(copy);
      for (int k = 0; k < kPerThread; ++k) atomics::store(v, t * kPerThread + k, t * 10000 + k);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(sab.use_count_approx(), 1);  // the threads' handles are gone
  Int32View v(sab);
  for (int t = 0; t < kThreads; ++t) {
    for (int k = 0; k < kPerThread; ++k) {
      ASSERT_EQ(atomics::load(v, t * kPerThread + k), t * 10000 + k);
    }
  }
}

TEST_F(SharedArrayBufferTest, GrowableBufferGrowsInPlaceUpToMax) {
  SharedArrayBuffer sab(10, SharedArrayBufferOptions{.max_byte_length = 3 * 4096 + 5});
  EXPECT_TRUE(sab.growable());
  EXPECT_EQ(sab.byte_length(), 10u);
  EXPECT_EQ(sab.max_byte_length(), 3u * 4096 + 5);
  std::byte* const before = sab.data();
  Uint8View(sab).store(9, 99);
  sab.grow(10);  // same length: nothing happens
  EXPECT_EQ(sab.byte_length(), 10u);
  sab.grow(5000);
  EXPECT_EQ(sab.byte_length(), 5000u);
  EXPECT_EQ(sab.data(), before);
  Uint8View v(sab);
  EXPECT_EQ(v.load(9), 99);                                              // old data kept
  for (std::size_t i = 10; i < 5000; ++i) ASSERT_EQ(v.load(i), 0) << i;  // new bytes zero
  v.store(4999, 1);
  sab.grow(3 * 4096 + 5);
  EXPECT_EQ(sab.data(), before);
  EXPECT_EQ(v.load(3 * 4096 + 4), 0);
  v.store(3 * 4096 + 4, 7);
  EXPECT_EQ(v.load(3 * 4096 + 4), 7);
}

TEST_F(SharedArrayBufferTest, GrowNeverShrinksAndNeverPassesMax) {
  SharedArrayBuffer sab(100, SharedArrayBufferOptions{.max_byte_length = 200});
  const std::string shrink = message_of<std::out_of_range>([&] { sab.grow(99); });
  EXPECT_THAT(shrink, HasSubstr("new_byte_length 99"));
  EXPECT_THAT(shrink, HasSubstr("100..200"));
  EXPECT_THROW(sab.grow(201), std::out_of_range);
  EXPECT_EQ(sab.byte_length(), 100u);
  sab.grow(150);
  EXPECT_THROW(sab.grow(120), std::out_of_range);
  EXPECT_EQ(sab.byte_length(), 150u);
}

TEST_F(SharedArrayBufferTest, GrowOnFixedLengthBufferIsALogicError) {
  SharedArrayBuffer sab(8);
  EXPECT_THROW(sab.grow(16), std::logic_error);
  EXPECT_EQ(sab.byte_length(), 8u);
}

TEST_F(SharedArrayBufferTest, GrowIsSeenByOtherHandles) {
  SharedArrayBuffer a(0, SharedArrayBufferOptions{.max_byte_length = 64});
  SharedArrayBuffer b = a;
  a.grow(32);
  EXPECT_EQ(b.byte_length(), 32u);
}

TEST_F(SharedArrayBufferTest, ConcurrentGrowsEndAtTheLargest) {
  SharedArrayBuffer sab(0, SharedArrayBufferOptions{.max_byte_length = 1 << 20});
  constexpr int kThreads = 4;
  testing::StartBarrier start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([sab, t, &start]() mutable {
      start.arrive_and_wait();
      for (std::size_t n = 4096; n <= (1u << 20); n += 4096 * kThreads) {
        try {
          sab.grow(n + 4096 * t);
        } catch (const std::out_of_range&) {
          // another thread already grew past it: allowed to fail, never to shrink
        }
        Uint8View v(sab);  // length-tracking: whatever we see is accessible
        v.store(v.length() - 1, 1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(sab.byte_length(), std::size_t{1} << 20);
}

// ---- views -------------------------------------------------------------

TEST_F(SharedArrayBufferTest, ViewLengthAndOffset) {
  SharedArrayBuffer sab(64);
  EXPECT_EQ(Int32View(sab).length(), 16u);
  EXPECT_EQ(Int32View(sab, 8).length(), 14u);
  Int64View v(sab, 16, 3);
  EXPECT_EQ(v.length(), 3u);
  EXPECT_EQ(v.byte_offset(), 16u);
  EXPECT_EQ(v.byte_length(), 24u);
  EXPECT_FALSE(v.length_tracking());
  EXPECT_EQ(Uint8View(sab, 64).length(), 0u);  // offset == length is allowed
}

TEST_F(SharedArrayBufferTest, ViewsWithDifferentOffsetsShareElements) {
  SharedArrayBuffer sab(64);
  Int32View whole(sab);
  Int32View tail(sab, 8);
  tail.store(0, 1234);
  EXPECT_EQ(whole.load(2), 1234);
}

TEST_F(SharedArrayBufferTest, MisalignedOffsetIsRejectedNamingTheView) {
  SharedArrayBuffer sab(64);
  const std::string msg = message_of<std::invalid_argument>([&] { Int32View v(sab, 6); });
  EXPECT_THAT(msg, HasSubstr("weave::Int32View"));
  EXPECT_THAT(msg, HasSubstr("byte_offset 6"));
  EXPECT_THAT(msg, HasSubstr("element size 4"));
  EXPECT_THROW(Int16View(sab, 1), std::invalid_argument);
  EXPECT_THROW(Float64View(sab, 4, 1), std::invalid_argument);
  EXPECT_THROW(Uint64View(sab, 12), std::invalid_argument);
}

TEST_F(SharedArrayBufferTest, OffsetOrLengthPastTheEndIsRejected) {
  SharedArrayBuffer sab(64);
  EXPECT_THAT(message_of<std::out_of_range>([&] { Int32View v(sab, 68); }),
              HasSubstr("byte_offset 68 is out of range 0..64"));
  EXPECT_THAT(message_of<std::out_of_range>([&] { Int32View v(sab, 8, 15); }),
              HasSubstr("length 15 is out of range 0..14"));
  EXPECT_NO_THROW(Int32View(sab, 8, 14));
}

TEST_F(SharedArrayBufferTest, FixedBufferRestNotAMultipleNeedsALength) {
  SharedArrayBuffer sab(10);
  EXPECT_THROW(Int32View{sab}, std::invalid_argument);
  EXPECT_EQ(Int32View(sab, 0, 2).length(), 2u);
  EXPECT_EQ(Int16View(sab).length(), 5u);
}

TEST_F(SharedArrayBufferTest, OutOfRangeIndexThrowsAndWritesNothing) {
  SharedArrayBuffer sab(32);
  Int32View inner(sab, 4, 4);  // bytes 4..19 of a 32-byte buffer
  const std::string msg = message_of<std::out_of_range>([&] { inner.store(4, -1); });
  EXPECT_THAT(msg, HasSubstr("weave::Int32View: index 4 is out of range for length 4"));
  EXPECT_THROW((void)inner.load(4), std::out_of_range);
  EXPECT_THROW(inner.store(static_cast<std::size_t>(-1), -1), std::out_of_range);
  for (std::size_t i = 0; i < 32; ++i) ASSERT_EQ(sab.data()[i], std::byte{0}) << i;
}

TEST_F(SharedArrayBufferTest, FloatViewsLoadAndStore) {
  SharedArrayBuffer sab(64);
  Float32View f(sab, 0, 4);
  Float64View d(sab, 16);
  f.store(3, 1.5f);
  d.store(5, -2.25);
  EXPECT_EQ(f.load(3), 1.5f);
  EXPECT_EQ(d.load(5), -2.25);
  EXPECT_EQ(d.length(), 6u);
  EXPECT_THROW(f.store(4, 0.f), std::out_of_range);
  EXPECT_THROW((void)d.load(6), std::out_of_range);
}

TEST_F(SharedArrayBufferTest, LengthTrackingViewFollowsGrow) {
  SharedArrayBuffer sab(8, SharedArrayBufferOptions{.max_byte_length = 64});
  Int32View tracking(sab, 4);
  Int32View fixed(sab, 0, 2);
  EXPECT_TRUE(tracking.length_tracking());
  EXPECT_EQ(tracking.length(), 1u);
  EXPECT_THROW(tracking.store(1, 5), std::out_of_range);
  sab.grow(30);
  EXPECT_EQ(tracking.length(), 6u);  // (30 - 4) / 4, rounded down
  tracking.store(5, 5);
  EXPECT_EQ(Int32View(sab, 0, 7).load(6), 5);
  EXPECT_EQ(fixed.length(), 2u);
}

}  // namespace
}  // namespace weave
