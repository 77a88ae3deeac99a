#include "glimpse/vision/image_header.h"

#include <climits>
#include <cstring>

#include "glimpse/core/error.h"

namespace glimpse::vision {
namespace {

std::uint32_t be16(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 8) | p[1];
}
std::uint32_t be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         p[3];
}
std::uint32_t le16(const std::uint8_t* p) {
  return std::uint32_t{p[0]} | (std::uint32_t{p[1]} << 8);
}
std::uint32_t le24(const std::uint8_t* p) {
  return le16(p) | (std::uint32_t{p[2]} << 16);
}
std::uint32_t le32(const std::uint8_t* p) {
  return le24(p) | (std::uint32_t{p[3]} << 24);
}

[[noreturn]] void bad_header(const std::string& name, ImageFormat format, const std::string& what) {
  throw FormatError("'" + name + "': malformed " + std::string(image_format_name(format)) +
                    " header: " + what);
}

bool is_jpeg_sof(std::uint8_t m) {
  // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
  return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
}

bool is_jpeg_standalone(std::uint8_t m) {
  return m == 0x01 || (m >= 0xD0 && m <= 0xD8);  // TEM, RSTn, SOI: no length field
}

// Walks JPEG marker segments from just after SOI. Calls on_segment(marker, offset of the segment
// payload, payload length) for each; stops when it returns true, at SOS, or at the end. Returns
// the offset of the SOS payload, or 0 when there is none.
template <typename F>
std::size_t walk_jpeg(const std::uint8_t* data, std::size_t size, F on_segment) {
  std::size_t pos = 2;
  while (pos + 1 < size) {
    if (data[pos] != 0xFF) return 0;
    while (pos < size && data[pos] == 0xFF) ++pos;  // fill bytes
    if (pos >= size) return 0;
    const std::uint8_t marker = data[pos++];
    if (is_jpeg_standalone(marker)) continue;
    if (marker == 0xD9 || pos + 2 > size) return 0;  // EOI before a scan, or truncated
    const std::size_t length = be16(data + pos);
    if (length < 2 || pos + length > size) return 0;
    if (on_segment(marker, pos + 2, length - 2)) return 0;
    if (marker == 0xDA) return pos + length;
    pos += length;
  }
  return 0;
}

ImageHeader png_header(const std::uint8_t* d, std::size_t n, const std::string& name) {
  // Signature (8), IHDR length (4), "IHDR" (4), width (4), height (4).
  if (n < 24) bad_header(name, ImageFormat::Png, "file ends before IHDR");
  if (std::memcmp(d + 12, "IHDR", 4) != 0)
    bad_header(name, ImageFormat::Png, "first chunk is not IHDR");
  return {ImageFormat::Png, be32(d + 16), be32(d + 20)};
}

ImageHeader jpeg_header(const std::uint8_t* d, std::size_t n, const std::string& name) {
  ImageHeader h{ImageFormat::Jpeg, -1, -1};
  walk_jpeg(d, n, [&](std::uint8_t marker, std::size_t at, std::size_t len) {
    if (!is_jpeg_sof(marker)) return false;
    if (len < 5) bad_header(name, ImageFormat::Jpeg, "SOF segment too short");
    h.height = be16(d + at + 1);
    h.width = be16(d + at + 3);
    return true;
  });
  if (h.width < 0)
    bad_header(name, ImageFormat::Jpeg, "no frame header (SOF) before the data ends");
  return h;
}

ImageHeader webp_header(const std::uint8_t* d, std::size_t n, const std::string& name) {
  if (n < 30) bad_header(name, ImageFormat::WebP, "file ends inside the header");
  const std::uint8_t* c = d + 12;  // first chunk
  if (std::memcmp(c, "VP8 ", 4) == 0) {
    // Frame tag (3), start code 9d 01 2a, then 14-bit width and height.
    if (c[11] != 0x9D || c[12] != 0x01 || c[13] != 0x2A) {
      bad_header(name, ImageFormat::WebP, "bad VP8 start code");
    }
    return {ImageFormat::WebP, le16(c + 14) & 0x3FFF, le16(c + 16) & 0x3FFF};
  }
  if (std::memcmp(c, "VP8L", 4) == 0) {
    if (c[8] != 0x2F) bad_header(name, ImageFormat::WebP, "bad VP8L signature");
    const std::uint32_t bits = le32(c + 9);
    return {ImageFormat::WebP, (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1};
  }
  if (std::memcmp(c, "VP8X", 4) == 0) {
    return {ImageFormat::WebP, std::int64_t{le24(c + 12)} + 1, std::int64_t{le24(c + 15)} + 1};
  }
  bad_header(name, ImageFormat::WebP, "unknown first chunk");
}

ImageHeader bmp_header(const std::uint8_t* d, std::size_t n, const std::string& name) {
  if (n < 26) bad_header(name, ImageFormat::Bmp, "file ends inside the header");
  const std::uint32_t dib = le32(d + 14);
  if (dib == 12) return {ImageFormat::Bmp, le16(d + 18), le16(d + 20)};  // BITMAPCOREHEADER
  if (dib < 40 || n < 26)
    bad_header(name, ImageFormat::Bmp, "unknown DIB header size " + std::to_string(dib));
  const auto w = static_cast<std::int32_t>(le32(d + 18));
  const auto h = static_cast<std::int32_t>(le32(d + 22));  // negative: rows stored top-down
  if (w <= 0 || h == INT32_MIN) bad_header(name, ImageFormat::Bmp, "bad dimensions");
  return {ImageFormat::Bmp, w, h < 0 ? -std::int64_t{h} : h};
}

}  // namespace

std::string_view image_format_name(ImageFormat format) {
  switch (format) {
    case ImageFormat::Png:
      return "PNG";
    case ImageFormat::Jpeg:
      return "JPEG";
    case ImageFormat::WebP:
      return "WebP";
    case ImageFormat::Bmp:
      return "BMP";
  }
  return "unknown";
}

std::optional<ImageFormat> sniff_image_format(const std::uint8_t* d, std::size_t n) {
  static const std::uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (n >= 8 && std::memcmp(d, kPng, 8) == 0) return ImageFormat::Png;
  if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return ImageFormat::Jpeg;
  if (n >= 12 && std::memcmp(d, "RIFF", 4) == 0 && std::memcmp(d + 8, "WEBP", 4) == 0) {
    return ImageFormat::WebP;
  }
  if (n >= 2 && d[0] == 'B' && d[1] == 'M') return ImageFormat::Bmp;
  return std::nullopt;
}

ImageHeader read_image_header(const std::uint8_t* data, std::size_t size, const std::string& name) {
  if (data == nullptr || size == 0) throw FormatError("'" + name + "': empty image file");
  const auto format = sniff_image_format(data, size);
  if (!format) {
    throw FormatError("'" + name + "': not a PNG, JPEG, WebP or BMP image (unknown signature)");
  }
  ImageHeader h;
  switch (*format) {
    case ImageFormat::Png:
      h = png_header(data, size, name);
      break;
    case ImageFormat::Jpeg:
      h = jpeg_header(data, size, name);
      break;
    case ImageFormat::WebP:
      h = webp_header(data, size, name);
      break;
    case ImageFormat::Bmp:
      h = bmp_header(data, size, name);
      break;
  }
  if (h.width <= 0 || h.height <= 0) {
    bad_header(name, h.format,
               "dimensions " + std::to_string(h.width) + "x" + std::to_string(h.height));
  }
  return h;
}

bool jpeg_has_end_of_image(const std::uint8_t* data, std::size_t size) {
  const std::size_t scan =
      walk_jpeg(data, size, [](std::uint8_t, std::size_t, std::size_t) { return false; });
  if (scan == 0) return false;
  // Inside entropy-coded data every 0xFF is followed by 0x00 or a restart marker, so FF D9
  // after the first scan header is a real EOI (progressive files have several scans).
  for (std::size_t i = size; i-- > scan + 1;) {
    if (data[i] == 0xD9 && data[i - 1] == 0xFF) return true;
  }
  return false;
}

}  // namespace glimpse::vision
