#include "atomics/shared_view.h"

#include <stdexcept>
#include <string>

namespace weave::internal {

void throw_index_out_of_range(const char* view, std::size_t index, std::size_t length) {
  throw std::out_of_range(std::string(view) + ": index " + std::to_string(index) +
                          " is out of range for length " + std::to_string(length));
}

void throw_misaligned_offset(const char* view, std::size_t byte_offset, std::size_t element_size) {
  throw std::invalid_argument(std::string(view) + ": byte_offset " + std::to_string(byte_offset) +
                              " is not a multiple of the element size " +
                              std::to_string(element_size));
}

void throw_offset_out_of_range(const char* view, std::size_t byte_offset, std::size_t byte_length) {
  throw std::out_of_range(std::string(view) + ": byte_offset " + std::to_string(byte_offset) +
                          " is out of range 0.." + std::to_string(byte_length) +
                          " (the buffer's byte_length)");
}

void throw_length_out_of_range(const char* view, std::size_t length, std::size_t max_length) {
  throw std::out_of_range(std::string(view) + ": length " + std::to_string(length) +
                          " is out of range 0.." + std::to_string(max_length) +
                          " (elements between byte_offset and the buffer's end)");
}

void throw_length_not_multiple(const char* view, std::size_t bytes, std::size_t element_size) {
  throw std::invalid_argument(std::string(view) + ": the " + std::to_string(bytes) +
                              " bytes after byte_offset are not a multiple of the element size " +
                              std::to_string(element_size) + "; pass a length");
}

}  // namespace weave::internal
