#pragma once

// JPEG decoding through libjpeg(-turbo), as PIL decodes and converts it (private to image_io).

#include <cstddef>
#include <cstdint>
#include <string>

#include "glimpse/vision/image.h"
#include "glimpse/vision/image_header.h"
#include "vision/exif.h"

namespace glimpse::vision {

// Decodes to RGB the way PIL's Image.open(...).convert("RGB") does; fills `metadata` with the
// EXIF and XMP segments. `header` is what read_image_header found; libjpeg must agree with it.
// Errors throw FormatError naming `name`; libjpeg's warnings go to the debug log.
Image decode_jpeg(const std::uint8_t* data, std::size_t size, const std::string& name,
                  const ImageHeader& header, ImageMetadata* metadata);

}  // namespace glimpse::vision
