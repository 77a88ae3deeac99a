#pragma once

// EXIF orientation as PIL.ImageOps.exif_transpose applies it: the Orientation tag (0x0112) of
// IFD0, else tiff:Orientation in XMP (PIL/Image.py: Image.getexif), then the transpose that
// maps each value to (PIL/ImageOps.py: exif_transpose). Private to the decoders.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "glimpse/vision/image.h"

namespace glimpse::vision {

// What a decoder found, as PIL keeps it in Image.info: "exif" (TIFF data, with or without the
// "Exif\0\0" prefix) and "xmp" (the XMP packet).
struct ImageMetadata {
  std::vector<std::uint8_t> exif;
  std::vector<std::uint8_t> xmp;
};

// The Orientation tag of IFD0, when IFD0 holds one PIL would read (any integer type, count >= 1:
// its first value). Both byte orders. Malformed data is never an error: what lies outside the
// buffer is skipped as PIL's TiffImagePlugin does (tags read before the damage still count).
std::optional<int> exif_orientation(const std::uint8_t* data, std::size_t size);

// The digit after `tiff:Orientation="` or `tiff:Orientation>` in an XMP packet (PIL's regex).
std::optional<int> xmp_orientation(const std::uint8_t* data, std::size_t size);

// EXIF first; XMP only when the EXIF has no Orientation tag. 1 (none) when neither says.
int image_orientation(const ImageMetadata& metadata);

// The image as exif_transpose leaves it: 2 flip left-right, 3 rotate 180, 4 flip top-bottom,
// 5 transpose, 6 rotate 90 clockwise, 7 transverse, 8 rotate 90 counter-clockwise; any other
// value returns the image unchanged.
Image apply_orientation(Image image, int orientation);

}  // namespace glimpse::vision
