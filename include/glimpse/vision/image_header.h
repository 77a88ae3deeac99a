#pragma once

// Image format and dimensions read from the first bytes of a file, without decoding it. The
// decoder checks them against a pixel limit before it allocates anything (decompression bombs).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace glimpse::vision {

enum class ImageFormat { Png, Jpeg, WebP, Bmp };

std::string_view image_format_name(ImageFormat format);

struct ImageHeader {
  ImageFormat format = ImageFormat::Png;
  std::int64_t width = 0;
  std::int64_t height = 0;
};

// The format from its signature, or nullopt when the bytes start like none of the four formats.
std::optional<ImageFormat> sniff_image_format(const std::uint8_t* data, std::size_t size);

// Format and dimensions. `name` (a path, or "<memory>") appears in errors. Throws FormatError for
// an unknown signature and for a header that is truncated or malformed.
ImageHeader read_image_header(const std::uint8_t* data, std::size_t size, const std::string& name);

// True when a JPEG stream reaches an end-of-image marker after its first scan. libjpeg silently
// pads a truncated stream with grey; PIL refuses it ("image file is truncated"), and so do we.
bool jpeg_has_end_of_image(const std::uint8_t* data, std::size_t size);

}  // namespace glimpse::vision
