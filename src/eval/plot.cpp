#include "glimpse/eval/plot.h"

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "glimpse/core/error.h"

namespace glimpse::eval {
namespace {

const cv::Scalar kInk(40, 40, 40), kGrid(225, 225, 225), kLine(70, 120, 200), kMarker(200, 60, 40);

std::string format(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

void text(cv::Mat& img, const std::string& s, int x, int y, double scale = 0.45) {
  cv::putText(img, s, cv::Point(x, y), cv::FONT_HERSHEY_SIMPLEX, scale, kInk, 1, cv::LINE_AA);
}

}  // namespace

PlotFrame PlotFrame::fit(const std::vector<PlotPoint>& points, const PlotOptions& options) {
  PlotFrame f;
  f.width = options.width;
  f.height = options.height;
  double lo = points.front().x, hi = lo;
  for (const auto& p : points) {
    lo = std::min(lo, p.x);
    hi = std::max(hi, p.x);
  }
  const double pad = hi > lo ? 0.08 * (hi - lo) : std::max(0.1, std::abs(lo) * 0.1);
  f.x_min = lo - pad;
  f.x_max = hi + pad;
  return f;
}

int PlotFrame::px(double x) const {
  const double t = (x - x_min) / (x_max - x_min);
  return left + static_cast<int>(std::lround(t * (width - left - right)));
}

int PlotFrame::py(double y) const {
  return height - bottom - static_cast<int>(std::lround(y * (height - top - bottom)));
}

vision::Image plot_tradeoff(const std::vector<PlotPoint>& points, const PlotOptions& options) {
  if (points.empty()) throw InputError("plot: no points");
  if (options.width < 200 || options.height < 150 || options.width > 8192 || options.height > 8192)
    throw InputError("plot: size must be between 200 x 150 and 8192 x 8192");
  for (const auto& p : points) {
    if (!std::isfinite(p.x) || !std::isfinite(p.y))
      throw InputError("plot: point '" + p.label + "' is not finite");
  }
  const PlotFrame f = PlotFrame::fit(points, options);
  cv::Mat img(f.height, f.width, CV_8UC3, cv::Scalar(255, 255, 255));
  // Grid and ticks: accuracy every 0.1, x at five places.
  for (int i = 0; i <= 10; ++i) {
    const int y = f.py(i / 10.0);
    cv::line(img, {f.left, y}, {f.width - f.right, y}, kGrid, 1);
    if (i % 2 == 0) text(img, format(i / 10.0), 8, y + 5, 0.4);
  }
  for (int i = 0; i <= 4; ++i) {
    const double x = f.x_min + (f.x_max - f.x_min) * i / 4;
    const int px = f.px(x);
    cv::line(img, {px, f.top}, {px, f.height - f.bottom}, kGrid, 1);
    text(img, format(x), px - 14, f.height - f.bottom + 18, 0.4);
  }
  cv::rectangle(img, {f.left, f.top}, {f.width - f.right, f.height - f.bottom}, kInk, 1);
  for (std::size_t i = 1; i < points.size(); ++i) {
    cv::line(img, {f.px(points[i - 1].x), f.py(points[i - 1].y)},
             {f.px(points[i].x), f.py(points[i].y)}, kLine, 2, cv::LINE_AA);
  }
  for (const auto& p : points) {
    const cv::Point c(f.px(p.x), f.py(std::clamp(p.y, 0.0, 1.0)));
    cv::circle(img, c, 5, kMarker, cv::FILLED, cv::LINE_AA);
    text(img, p.label, c.x + 7, c.y - 7, 0.4);
  }
  text(img, options.title, f.left, 25, 0.55);
  text(img, options.x_label, f.left, f.height - 18);
  text(img, options.y_label, 8, 15, 0.4);
  vision::Image out(f.width, f.height);
  for (int y = 0; y < f.height; ++y)
    std::memcpy(out.row(y), img.ptr<std::uint8_t>(y), out.row_bytes());
  return out;
}

}  // namespace glimpse::eval
