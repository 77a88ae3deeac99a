#include "glimpse/vision/image_io.h"

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "glimpse/core/error.h"
#include "glimpse/vision/image_header.h"
#include "vision/exif.h"
#include "vision/jpeg_decode.h"
#include "vision/png_decode.h"

namespace glimpse::vision {
namespace {

// Files larger than this are refused before reading (a compressed image of the maximum pixel
// count is far smaller).
constexpr std::uintmax_t kMaxFileBytes = std::uintmax_t{2} << 30;

std::string dims(std::int64_t w, std::int64_t h) {
  return std::to_string(w) + "x" + std::to_string(h);
}

// 16-bit samples to 8 bits as PIL gets them: grey opens as mode "I" and converts to RGB with
// clipping (Convert.c: i2rgb); colour keeps the most significant byte ("RGB;16B" raw modes).
std::uint8_t grey16(std::uint16_t v) {
  return static_cast<std::uint8_t>(std::min<int>(v, 255));
}
std::uint8_t colour16(std::uint16_t v) {
  return static_cast<std::uint8_t>(v >> 8);
}

// OpenCV gives 1 (grey), 2 (grey + alpha), 3 (BGR) or 4 (BGRA) channels, 8 or 16 bits.
Image to_rgb(const cv::Mat& m, const std::string& name) {
  const int channels = m.channels();
  const int depth = m.depth();
  if ((depth != CV_8U && depth != CV_16U) || channels < 1 || channels > 4) {
    throw UnsupportedError("'" + name + "': unsupported decoded pixel layout (" +
                           std::to_string(channels) + " channels, OpenCV depth " +
                           std::to_string(depth) + ")");
  }
  Image out(m.cols, m.rows);
  for (int y = 0; y < m.rows; ++y) {
    std::uint8_t* o = out.row(y);
    if (depth == CV_8U) {
      const std::uint8_t* p = m.ptr<std::uint8_t>(y);
      for (int x = 0; x < m.cols; ++x, p += channels, o += 3) {
        if (channels <= 2) {
          o[0] = o[1] = o[2] = p[0];
        } else {
          o[0] = p[2];
          o[1] = p[1];
          o[2] = p[0];
        }
      }
    } else {
      const std::uint16_t* p = m.ptr<std::uint16_t>(y);
      for (int x = 0; x < m.cols; ++x, p += channels, o += 3) {
        if (channels == 1) {
          o[0] = o[1] = o[2] = grey16(p[0]);
        } else if (channels == 2) {
          o[0] = o[1] = o[2] = colour16(p[0]);  // PIL "LA;16B" keeps the high byte
        } else {
          o[0] = colour16(p[2]);
          o[1] = colour16(p[1]);
          o[2] = colour16(p[0]);
        }
      }
    }
  }
  return out;
}

// WebP and BMP stay with OpenCV: their decoders report errors through exceptions or an empty
// result, not by printing.
Image decode_with_opencv(const std::uint8_t* data, std::size_t size, const std::string& name,
                         const ImageHeader& header) {
  const std::string format(image_format_name(header.format));
  cv::Mat decoded;
  try {
    // IMREAD_UNCHANGED keeps 16-bit samples and alpha and ignores EXIF orientation.
    const cv::Mat buffer(1, static_cast<int>(size), CV_8UC1, const_cast<std::uint8_t*>(data));
    decoded = cv::imdecode(buffer, cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception& e) {
    throw FormatError("'" + name + "': cannot decode " + format +
                      " data: " + std::string(e.err.empty() ? "OpenCV error" : e.err));
  }
  if (decoded.empty()) {
    throw FormatError("'" + name + "': cannot decode " + format +
                      " data (corrupt or truncated file)");
  }
  if (decoded.cols != header.width || decoded.rows != header.height) {
    throw FormatError("'" + name + "': decoded " + dims(decoded.cols, decoded.rows) +
                      " pixels but the header says " + dims(header.width, header.height));
  }
  return to_rgb(decoded, name);
}

}  // namespace

Image decode_image(const std::uint8_t* data, std::size_t size, const std::string& name,
                   const DecodeOptions& options) {
  const ImageHeader header = read_image_header(data, size, name);
  const std::string format(image_format_name(header.format));
  if (header.width > options.max_pixels / header.height) {
    throw InputError("'" + name + "': " + format + " image of " +
                     dims(header.width, header.height) + " pixels exceeds the limit of " +
                     std::to_string(options.max_pixels) + " pixels");
  }
  if (header.format == ImageFormat::Jpeg && !jpeg_has_end_of_image(data, size)) {
    throw FormatError("'" + name + "': JPEG data is truncated (no end-of-image marker)");
  }
  if (size > static_cast<std::size_t>(INT32_MAX)) {
    throw InputError("'" + name + "': image data of " + std::to_string(size) +
                     " bytes is too large");
  }
  ImageMetadata metadata;
  Image image;
  switch (header.format) {
    case ImageFormat::Jpeg:
      image = decode_jpeg(data, size, name, header, &metadata);
      break;
    case ImageFormat::Png:
      image = decode_png(data, size, name, header, &metadata);
      break;
    case ImageFormat::WebP:
    case ImageFormat::Bmp:
      image = decode_with_opencv(data, size, name, header);
      break;
  }
  if (options.apply_exif_orientation) {
    image = apply_orientation(std::move(image), image_orientation(metadata));
  }
  return image;
}

Image load_image(const std::string& path, const DecodeOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec || !fs::exists(status)) throw InputError("'" + path + "': no such image file");
  if (!fs::is_regular_file(status)) throw InputError("'" + path + "': not a regular file");
  const auto bytes = fs::file_size(path, ec);
  if (ec) throw InputError("'" + path + "': cannot read image file: " + ec.message());
  if (bytes == 0) throw FormatError("'" + path + "': empty image file");
  if (bytes > kMaxFileBytes) {
    throw InputError("'" + path + "': image file of " + std::to_string(bytes) +
                     " bytes is larger than the limit of " + std::to_string(kMaxFileBytes));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("'" + path + "': cannot open image file: " + std::strerror(errno));
  std::vector<std::uint8_t> data(static_cast<std::size_t>(bytes));
  in.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(data.size()));
  if (static_cast<std::uintmax_t>(in.gcount()) != bytes) {
    throw InputError("'" + path + "': short read from image file");
  }
  return decode_image(data.data(), data.size(), path, options);
}

void save_png(const Image& image, const std::string& path) {
  if (image.empty() || image.rgb.size() != image.row_bytes() * image.height) {
    throw InputError("save_png('" + path + "'): image is empty or its buffer has the wrong size");
  }
  cv::Mat bgr(image.height, image.width, CV_8UC3);
  for (int y = 0; y < image.height; ++y) {
    const std::uint8_t* s = image.row(y);
    std::uint8_t* d = bgr.ptr<std::uint8_t>(y);
    for (int x = 0; x < image.width; ++x, s += 3, d += 3) {
      d[0] = s[2];
      d[1] = s[1];
      d[2] = s[0];
    }
  }
  bool ok = false;
  try {
    ok = cv::imwrite(path, bgr);
  } catch (const cv::Exception&) {
    ok = false;
  }
  if (!ok) throw InputError("'" + path + "': cannot write PNG");
}

}  // namespace glimpse::vision
