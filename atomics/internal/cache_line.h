// weave::internal::kFalseSharingSpan: how far apart to keep data that
// different threads write.
//
// 128 bytes, not the 64 of a cache line: the L2 spatial prefetchers of
// current x86 cores (Intel since Sandy Bridge, AMD Zen) fetch lines in
// aligned 128-byte pairs, so a line written by one core drags its pair
// partner along; measured here, a port's control word sharing a 128-byte
// pair with the consumer's counters cost a streaming producer a cache miss
// per post. (std::hardware_destructive_interference_size says 64 on x86.)
#pragma once

#include <cstddef>

namespace weave::internal {

inline constexpr std::size_t kFalseSharingSpan = 128;

}  // namespace weave::internal
