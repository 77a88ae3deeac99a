#include "glimpse/methods/inspect/heatmap.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "glimpse/core/error.h"
#include "glimpse/vision/image_io.h"

namespace glimpse::methods::inspect {

vision::Image render_heatmap(const vision::Image& picture, const at::Tensor& map,
                             const HeatmapOptions& options,
                             const std::optional<GridPlacement>& placement) {
  if (picture.empty()) throw InputError("heatmap: empty picture");
  if (map.dim() != 2 || map.size(0) <= 0 || map.size(1) <= 0) {
    throw InputError("heatmap: expected a map [h, w]");
  }
  if (!(options.alpha >= 0 && options.alpha <= 1)) {
    throw InputError("heatmap: alpha must be in [0, 1]");
  }
  const at::Tensor m = map.to(at::kFloat).contiguous();
  const double scale = options.scale ? *options.scale : m.max().item<double>();
  const GridPlacement p = placement ? *placement : GridPlacement::whole(picture);
  const std::int64_t gh = m.size(0), gw = m.size(1);
  const float* v = m.data_ptr<float>();
  const double pw = p.x1 - p.x0, ph = p.y1 - p.y0;
  if (!(pw > 0 && ph > 0)) throw InputError("heatmap: empty grid placement");

  const int W = picture.width, H = picture.height;
  cv::Mat heat(H, W, CV_8UC1, cv::Scalar(0));
  cv::Mat inside(H, W, CV_8UC1, cv::Scalar(0));
  const auto level = [&](double x) {
    const double u = scale > 0 ? std::clamp(x / scale, 0.0, 1.0) : 0.0;
    return static_cast<std::uint8_t>(std::lround(u * 255.0));
  };
  for (int y = 0; y < H; ++y) {
    // Pixel centres in grid units.
    const double gy = (y + 0.5 - p.y0) / ph * static_cast<double>(gh);
    if (gy < 0 || gy >= static_cast<double>(gh)) continue;
    for (int x = 0; x < W; ++x) {
      const double gx = (x + 0.5 - p.x0) / pw * static_cast<double>(gw);
      if (gx < 0 || gx >= static_cast<double>(gw)) continue;
      double value;
      if (options.interpolation == Interpolation::Nearest) {
        value = v[static_cast<std::int64_t>(gy) * gw + static_cast<std::int64_t>(gx)];
      } else {
        // Bilinear between cell centres, clamped at the border (align_corners=False).
        const double fy = std::clamp(gy - 0.5, 0.0, static_cast<double>(gh - 1));
        const double fx = std::clamp(gx - 0.5, 0.0, static_cast<double>(gw - 1));
        const auto y0 = static_cast<std::int64_t>(fy), x0 = static_cast<std::int64_t>(fx);
        const std::int64_t y1 = std::min(y0 + 1, gh - 1), x1 = std::min(x0 + 1, gw - 1);
        const double ay = fy - static_cast<double>(y0), ax = fx - static_cast<double>(x0);
        value = (1 - ay) * ((1 - ax) * v[y0 * gw + x0] + ax * v[y0 * gw + x1]) +
                ay * ((1 - ax) * v[y1 * gw + x0] + ax * v[y1 * gw + x1]);
      }
      heat.at<std::uint8_t>(y, x) = level(value);
      inside.at<std::uint8_t>(y, x) = 255;
    }
  }
  cv::Mat color;
  cv::applyColorMap(heat, color, cv::COLORMAP_JET);  // BGR
  cv::Mat rgb(H, W, CV_8UC3, const_cast<std::uint8_t*>(picture.rgb.data()));
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  cv::Mat blended;
  cv::addWeighted(bgr, 1.0 - options.alpha, color, options.alpha, 0.0, blended);
  blended.copyTo(bgr, inside);  // outside the grid the picture stays as it is
  vision::Image out(W, H);
  cv::Mat out_rgb(H, W, CV_8UC3, out.rgb.data());
  cv::cvtColor(bgr, out_rgb, cv::COLOR_BGR2RGB);
  return out;
}

std::vector<std::string> write_heatmaps(const std::string& dir, const MediaMap& map,
                                        const std::vector<std::int64_t>& layers,
                                        const std::vector<std::int64_t>& heads,
                                        const std::vector<vision::Image>& pictures,
                                        const std::optional<GridPlacement>& placement,
                                        const HeatmapFiles& options) {
  namespace fs = std::filesystem;
  if (!map.maps.defined() || map.maps.dim() != 5) {
    throw InputError("heatmap: " + map.name() + " has no maps [layers, heads, t, h, w]");
  }
  if (static_cast<std::int64_t>(layers.size()) != map.maps.size(0) ||
      static_cast<std::int64_t>(heads.size()) != map.maps.size(1)) {
    throw InputError("heatmap: " + map.name() + ": layers and heads do not match the maps");
  }
  if (static_cast<std::int64_t>(pictures.size()) != map.t) {
    throw InputError("heatmap: " + map.name() + " needs " + std::to_string(map.t) +
                     " picture(s), one per temporal grid step, found " +
                     std::to_string(pictures.size()));
  }
  const bool video = map.modality == model::Modality::Video;
  std::vector<std::string> written;
  const auto write = [&](const at::Tensor& thw, const std::string& stem) {
    // One scale for all steps of a video, so that the frames compare.
    HeatmapOptions o = options.heatmap;
    if (!o.scale) o.scale = thw.max().item<double>();
    for (std::int64_t t = 0; t < map.t; ++t) {
      const fs::path sub =
          video ? fs::path(map.name()) / ("t" + std::to_string(t)) : fs::path(map.name());
      std::error_code ec;
      fs::create_directories(fs::path(dir) / sub, ec);
      if (ec) {
        throw InputError("heatmap: cannot create '" + (fs::path(dir) / sub).string() +
                         "': " + ec.message());
      }
      const fs::path rel = sub / (stem + ".png");
      const auto& picture = pictures[static_cast<std::size_t>(t)];
      const GridPlacement p = placement ? *placement : GridPlacement::whole(picture);
      vision::save_png(render_heatmap(picture, thw[t], o, p), (fs::path(dir) / rel).string());
      written.push_back(rel.generic_string());
    }
  };
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const at::Tensor layer = map.maps[static_cast<std::int64_t>(l)];  // [heads, t, h, w]
    const std::string prefix = "layer" + std::to_string(layers[l]);
    if (options.per_head) {
      for (std::size_t h = 0; h < heads.size(); ++h) {
        write(layer[static_cast<std::int64_t>(h)], prefix + "_head" + std::to_string(heads[h]));
      }
    }
    write(layer.mean(0), prefix + "_mean");
  }
  write(map.maps.mean(at::IntArrayRef{0, 1}), "mean");
  return written;
}

}  // namespace glimpse::methods::inspect
