#pragma once

// Accuracy-against-compute plots of a sweep (glimpse eval --sweep): one marker per setting,
// joined in sweep order, each labelled with its value, on axes with ticks. Drawn with OpenCV into
// an RGB image, so that no plotting package is needed.

#include <string>
#include <vector>

#include "glimpse/vision/image.h"

namespace glimpse::eval {

struct PlotPoint {
  double x = 0, y = 0;  // x: compute (relative to the baseline), y: accuracy in [0, 1]
  std::string label;
};

struct PlotOptions {
  std::string title, x_label = "prefill FLOPs (relative to the plain model)", y_label = "accuracy";
  int width = 720, height = 480;
};

// Where a data point lands in an image of `options`' size, given the data's x range (the y
// range is always [0, 1]): for tests and for drawing.
struct PlotFrame {
  double x_min = 0, x_max = 1;
  int left = 70, right = 20, top = 40, bottom = 60;
  int width = 720, height = 480;
  static PlotFrame fit(const std::vector<PlotPoint>& points, const PlotOptions& options);
  int px(double x) const;
  int py(double y) const;
};

// Throws InputError for no points, non-finite values or a size below 200 x 150.
vision::Image plot_tradeoff(const std::vector<PlotPoint>& points, const PlotOptions& options);

}  // namespace glimpse::eval
