// libFuzzer target: arbitrary bytes through the in-memory image decoder. Any input must either
// decode to a consistent RGB image or throw glimpse::Error; crashes, leaks and hangs are bugs.
#include <cstddef>
#include <cstdint>

#include "glimpse/core/error.h"
#include "glimpse/vision/image_io.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  glimpse::vision::DecodeOptions options;
  options.max_pixels = 1 << 22;  // keep the fuzzer's memory bounded; the header check still runs
  try {
    const auto image = glimpse::vision::decode_image(data, size, "<fuzz>", options);
    if (image.rgb.size() != image.row_bytes() * static_cast<std::size_t>(image.height)) {
      __builtin_trap();
    }
  } catch (const glimpse::Error&) {
  }
  return 0;
}
