// Example: a bounded producer/consumer ring buffer that lives entirely in one
// SharedArrayBuffer — two counting semaphores and the slots — so the two
// sides need nothing but the buffer to talk. (Compiled and run as a test so
// that the README's copy of it cannot go stale.)
//
//   bytes  0..7    SharedSemaphore free   slots the producer may fill
//   bytes  8..15   SharedSemaphore used   slots the consumer may read
//   bytes 16..     Int64View       slots  kCapacity items
//
// The producer takes a free slot, writes it, and releases a used one; the
// consumer does the reverse. Each side keeps its own index, so the slots are
// plain writes: release() publishes the slot to the acquire() that takes it.
#include <gtest/gtest.h>

#include <cstdint>
#include <thread>

#include "atomics/shared_array_buffer.h"
#include "atomics/shared_view.h"
#include "atomics/sync.h"
#include "tests/test_util.h"

namespace weave {
namespace {

constexpr std::size_t kCapacity = 8;
constexpr std::int64_t kItems = 100'000;

void produce(SharedArrayBuffer sab) {
  const SharedSemaphore free_slots(sab, 0);
  const SharedSemaphore used_slots(sab, 8);
  const Int64View slots(sab, 16, kCapacity);
  for (std::int64_t item = 1; item <= kItems; ++item) {
    free_slots.acquire();                       // wait for room
    slots.store((item - 1) % kCapacity, item);  // fill the next slot
    used_slots.release();                       // hand it to the consumer
  }
}

std::int64_t consume(SharedArrayBuffer sab) {
  const SharedSemaphore free_slots(sab, 0);
  const SharedSemaphore used_slots(sab, 8);
  const Int64View slots(sab, 16, kCapacity);
  std::int64_t out_of_order = 0;
  for (std::int64_t expected = 1; expected <= kItems; ++expected) {
    used_slots.acquire();                                              // wait for an item
    const std::int64_t item = slots.load((expected - 1) % kCapacity);  // read it
    free_slots.release();                                              // give the slot back
    if (item != expected) ++out_of_order;
  }
  return out_of_order;
}

class RingBufferExampleTest : public testing::CleanShutdownTest {};

TEST_F(RingBufferExampleTest, EveryItemArrivesOnceAndInOrder) {
  SharedArrayBuffer sab(16 + kCapacity * sizeof(std::int64_t));
  SharedSemaphore(sab, 0).init(kCapacity);  // all slots free; `used` starts at 0 (zero bytes)

  std::int64_t out_of_order = -1;
  std::thread consumer([sab, &out_of_order] { out_of_order = consume(sab); });
  std::thread producer([sab] { produce(sab); });
  producer.join();
  consumer.join();

  EXPECT_EQ(out_of_order, 0);
  EXPECT_EQ(SharedSemaphore(sab, 0).count_approx(), static_cast<std::int32_t>(kCapacity));
  EXPECT_EQ(SharedSemaphore(sab, 8).count_approx(), 0);
}

}  // namespace
}  // namespace weave
