#pragma once

// Image decoding: PNG, JPEG, WebP and BMP, from a file or from memory, to 8-bit RGB the way PIL's
// Image.open(...).convert("RGB") gives it, which is what the Hugging Face processors see:
//   - grey (and grey + alpha) is replicated to R = G = B;
//   - alpha (RGBA, grey + alpha, palette or tRNS transparency) is dropped, not composited. This
//     is transformers' convert_to_rgb (a plain PIL convert). qwen-vl-utils' to_rgb composites
//     on white instead; we follow the HF processor path;
//   - 16-bit RGB(A) keeps the high byte (PIL's "RGB;16B" raw mode); 16-bit grey opens in PIL as
//     mode "I" and converts with clipping to 0..255, and we do the same;
//   - EXIF orientation is NOT applied (PIL applies it only through ImageOps.exif_transpose);
//   - ICC profiles and gamma are ignored, as PIL does.
// Bad input (unknown format, truncated or corrupt data, dimensions over the pixel limit) throws
// FormatError or InputError with a one-line message that names the file; it never crashes.

#include <cstddef>
#include <cstdint>
#include <string>

#include "glimpse/vision/image.h"

namespace glimpse::vision {

// PIL raises DecompressionBombError above 2 * Image.MAX_IMAGE_PIXELS = 2 * 89478485 pixels.
inline constexpr std::int64_t kMaxImagePixels = 178956970;

struct DecodeOptions {
  // Images with more pixels than this are refused from their header, before decoding.
  std::int64_t max_pixels = kMaxImagePixels;
};

// `name` is used in error messages (a path, a URL, "<memory>").
Image decode_image(const std::uint8_t* data, std::size_t size, const std::string& name = "<memory>",
                   const DecodeOptions& options = {});

// Reads and decodes a file. Missing or unreadable files throw InputError.
Image load_image(const std::string& path, const DecodeOptions& options = {});

// Writes a PNG (lossless); for tests and debugging. Throws InputError when it cannot write.
void save_png(const Image& image, const std::string& path);

}  // namespace glimpse::vision
