// The CPU-bound job of weave's demo and pool benchmark: CRC-32 as zlib's
// crc32() and gzip compute it (reflected, polynomial 0xEDB88320), a byte per
// step through a 256-entry table — a real checksum, and CPU-bound, since each
// step waits for the one before. Any thread. Never allocates.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace weave::demo {

inline constexpr std::array<std::uint32_t, 256> kCrc32Table = [] {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}();

// Any range of byte-sized elements (std::span<std::byte>, std::string_view, ...).
template <class Bytes>
constexpr std::uint32_t crc32(const Bytes& bytes) {
  std::uint32_t c = 0xFFFFFFFFu;
  for (auto b : bytes) c = kCrc32Table[(c ^ static_cast<std::uint8_t>(b)) & 0xFFu] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}
static_assert(crc32(std::string_view("123456789")) == 0xCBF43926u, "CRC-32's check value");

}  // namespace weave::demo
