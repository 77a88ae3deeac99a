#pragma once

// Heatmaps of attention maps over the original pictures: a merged-patch grid map is scaled to
// [0, 1] (divided by its maximum, as TAG does, so that zero stays zero and a uniform map reads as
// uniform), laid onto the picture region the grid covers, coloured with OpenCV's JET colour map
// and alpha-blended onto the picture. Upsampling is nearest by default: a merged patch is the
// finest unit the model attends to, so every cell is drawn as a solid block and a peak never
// bleeds into its neighbours; bilinear is available for smoother pictures.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "glimpse/methods/inspect/attention_map.h"
#include "glimpse/model/processor.h"
#include "glimpse/vision/image.h"

namespace glimpse::methods::inspect {

using model::GridPlacement;

enum class Interpolation { Nearest, Bilinear };

struct HeatmapOptions {
  double alpha = 0.5;  // weight of the colour map in the blend
  Interpolation interpolation = Interpolation::Nearest;
  // Divisor that maps values to [0, 1]; the map's maximum when unset.
  std::optional<double> scale;
};

// `map`: [h, w] values >= 0. Returns the picture with the heatmap blended over the placement
// (the picture itself where the grid does not reach).
vision::Image render_heatmap(const vision::Image& picture, const at::Tensor& map,
                             const HeatmapOptions& options = {},
                             const std::optional<GridPlacement>& placement = std::nullopt);

struct HeatmapFiles {
  bool per_head = true;  // layer{l}_head{h}.png besides layer{l}_mean.png and mean.png
  HeatmapOptions heatmap;
};

// Writes the PNGs of one medium under dir/<media name>/ (for videos dir/<name>/t{t}/):
// layer{l}_head{h}.png, layer{l}_mean.png (head mean) and mean.png (mean over the chosen layers
// and heads). `pictures` holds the picture of an image, or one picture per temporal grid step of a
// video (the first input frame of that step). A video is scaled per (layer, head) over all its
// steps, so that frames compare. Returns the written paths relative to `dir`.
std::vector<std::string> write_heatmaps(const std::string& dir, const MediaMap& map,
                                        const std::vector<std::int64_t>& layers,
                                        const std::vector<std::int64_t>& heads,
                                        const std::vector<vision::Image>& pictures,
                                        const std::optional<GridPlacement>& placement,
                                        const HeatmapFiles& options = {});

}  // namespace glimpse::methods::inspect
