#pragma once

// Pillow-exact resampling of 8-bit RGB images: the result equals PIL's
// Image.resize((width, height), resample) (Pillow 9.4, reducing_gap=None, no box) byte for byte.
// This is what Hugging Face's PIL-backed image processors run. OpenCV's INTER_CUBIC differs
// (a = -0.75 and no antialiasing on downscale).

#include <optional>

#include "glimpse/vision/image.h"

namespace glimpse::vision {

// Pillow's convolution filters (NEAREST is not a convolution and is not supported).
enum class ResampleFilter { Box, Bilinear, Hamming, Bicubic, Lanczos };

// From PIL's Image.Resampling numbers as stored in preprocessor_config.json ("resample": 3):
// LANCZOS 1, BILINEAR 2, BICUBIC 3, BOX 4, HAMMING 5. nullopt for NEAREST (0) and unknown values.
std::optional<ResampleFilter> resample_filter_from_pil(int value);

// Throws InputError for an empty image or a non-positive target size. Returns a copy when the
// size does not change, as PIL does.
Image resize(const Image& image, int width, int height,
             ResampleFilter filter = ResampleFilter::Bicubic);

}  // namespace glimpse::vision
