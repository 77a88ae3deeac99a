#pragma once

// Image decoding: PNG, JPEG, WebP and BMP, from a file or from memory, to 8-bit RGB the way
// transformers' load_image gives it: PIL's Image.open, ImageOps.exif_transpose, convert("RGB").
// JPEG goes through libjpeg and PNG through libpng with PIL's settings; WebP and BMP through
// OpenCV. Nothing is printed: codec warnings go to the debug log.
//   - grey (and grey + alpha) is replicated to R = G = B; 1-, 2- and 4-bit grey PNGs are scaled
//     to 0..255 (x255, x85, x17); palette images map through PLTE (missing entries are black);
//   - alpha (RGBA, grey + alpha, palette or tRNS transparency) is dropped, not composited. This
//     is transformers' convert_to_rgb (a plain PIL convert). qwen-vl-utils' to_rgb composites
//     on white instead; we follow the HF processor path;
//   - 16-bit RGB(A) and grey + alpha keep the high byte (PIL's ";16B" raw modes); 16-bit grey
//     opens in PIL as mode "I" and converts with clipping to 0..255, and we do the same;
//   - CMYK and YCCK JPEGs convert as PIL does: samples read as Adobe-inverted "CMYK;I", then
//     r = nk - c * nk / 255 with nk = 255 - k, in PIL's integer rounding;
//   - the EXIF orientation (IFD0 tag 0x0112 of a JPEG's APP1 Exif segment, a PNG's eXIf chunk),
//     else XMP's tiff:Orientation, is applied as exif_transpose does, unless
//     DecodeOptions::apply_exif_orientation is false. Malformed EXIF is ignored, not an error.
//     WebP and BMP orientation is not read;
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
  // Rotate or flip by the EXIF (or XMP) orientation, as transformers' load_image does.
  bool apply_exif_orientation = true;
};

// `name` is used in error messages (a path, a URL, "<memory>").
Image decode_image(const std::uint8_t* data, std::size_t size, const std::string& name = "<memory>",
                   const DecodeOptions& options = {});

// Reads and decodes a file. Missing or unreadable files throw InputError.
Image load_image(const std::string& path, const DecodeOptions& options = {});

// Writes a PNG (lossless); for tests and debugging. Throws InputError when it cannot write.
void save_png(const Image& image, const std::string& path);

}  // namespace glimpse::vision
