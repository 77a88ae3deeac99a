#pragma once

// An 8-bit RGB image: the common currency of image decoding, resizing and the image processors.
// Deliberately plain (no OpenCV, no torch) so that any layer can include it.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace glimpse::vision {

struct Image {
  int width = 0;
  int height = 0;
  // Rows top to bottom, pixels interleaved R, G, B: width * height * 3 bytes (HWC, like numpy).
  std::vector<std::uint8_t> rgb;

  Image() = default;
  Image(int w, int h) : width(w), height(h), rgb(static_cast<std::size_t>(w) * h * 3, 0) {}

  bool empty() const { return width <= 0 || height <= 0; }
  std::size_t row_bytes() const { return static_cast<std::size_t>(width) * 3; }
  std::uint8_t* row(int y) { return rgb.data() + static_cast<std::size_t>(y) * row_bytes(); }
  const std::uint8_t* row(int y) const {
    return rgb.data() + static_cast<std::size_t>(y) * row_bytes();
  }
  std::uint8_t* pixel(int x, int y) { return row(y) + static_cast<std::size_t>(x) * 3; }
  const std::uint8_t* pixel(int x, int y) const { return row(y) + static_cast<std::size_t>(x) * 3; }

  friend bool operator==(const Image& a, const Image& b) {
    return a.width == b.width && a.height == b.height && a.rgb == b.rgb;
  }
  friend bool operator!=(const Image& a, const Image& b) { return !(a == b); }
};

}  // namespace glimpse::vision
