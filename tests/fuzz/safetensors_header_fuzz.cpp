// libFuzzer target: the safetensors header parser on arbitrary bytes. Every input must either
// parse or raise glimpse::FormatError; anything else (a crash, another exception, a sanitizer
// report) is a bug.
#include <cstddef>
#include <cstdint>

#include "glimpse/core/error.h"
#include "glimpse/core/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto header = glimpse::core::parse_safetensors(data, size, "fuzz");
    // Valid headers describe tensors that lie inside the buffer: touch their first and last byte.
    volatile std::uint8_t sink = 0;
    for (const auto& t : header.tensors) {
      if (t.nbytes() > 0) {
        sink = sink + data[header.data_offset + t.begin] + data[header.data_offset + t.end - 1];
      }
    }
  } catch (const glimpse::FormatError&) {
  }
  return 0;
}
