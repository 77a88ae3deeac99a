#include "vision/exif.h"

#include <cstring>
#include <string_view>

namespace glimpse::vision {
namespace {

constexpr std::uint32_t kOrientationTag = 0x0112;

class TiffReader {
 public:
  TiffReader(const std::uint8_t* d, std::size_t n, bool little) : d_(d), n_(n), little_(little) {}
  std::uint64_t read(std::size_t at, int bytes) const {
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) {
      const std::uint64_t b = d_[at + (little_ ? i : bytes - 1 - i)];
      v |= b << (8 * i);
    }
    return v;
  }
  // True when [at, at + bytes) lies inside the data.
  bool holds(std::uint64_t at, std::uint64_t bytes) const { return at <= n_ && n_ - at >= bytes; }

 private:
  const std::uint8_t* d_;
  std::size_t n_;
  bool little_;
};

// Size of one value of a TIFF field type PIL can load (TiffImagePlugin: _load_dispatch); 0 for
// types it skips.
int type_size(std::uint32_t type) {
  switch (type) {
    case 1:  // BYTE
    case 2:  // ASCII
    case 6:  // SBYTE
    case 7:  // UNDEFINED
      return 1;
    case 3:  // SHORT
    case 8:  // SSHORT
      return 2;
    case 4:   // LONG
    case 9:   // SLONG
    case 11:  // FLOAT
    case 13:  // IFD
      return 4;
    case 5:   // RATIONAL
    case 10:  // SRATIONAL
    case 12:  // DOUBLE
    case 16:  // LONG8
      return 8;
    default:
      return 0;
  }
}

// The first value as an integer; 0 (no transpose) for the types that are not integers.
int first_value(const TiffReader& r, std::uint32_t type, std::size_t at) {
  switch (type) {
    case 1:
    case 3:
    case 4:
    case 13:
    case 16: {
      const std::uint64_t v = r.read(at, type_size(type));
      return v <= 8 ? static_cast<int>(v) : 0;
    }
    case 6:
      return static_cast<std::int8_t>(r.read(at, 1));
    case 8:
      return static_cast<std::int16_t>(r.read(at, 2));
    case 9:
      return static_cast<std::int32_t>(r.read(at, 4));
    default:
      return 0;
  }
}

}  // namespace

std::optional<int> exif_orientation(const std::uint8_t* d, std::size_t n) {
  if (d == nullptr) return std::nullopt;
  // PIL/Image.py: Exif.load strips any number of leading "Exif\0\0".
  while (n >= 6 && std::memcmp(d, "Exif\0\0", 6) == 0) {
    d += 6;
    n -= 6;
  }
  if (n < 8) return std::nullopt;
  // TiffImagePlugin.PREFIXES: "II" or "MM" sets the byte order; the magic 42 may come in either
  // order. BigTIFF headers are not EXIF and are ignored.
  bool little = false;
  if (d[0] == 'I' && d[1] == 'I') {
    little = true;
  } else if (!(d[0] == 'M' && d[1] == 'M')) {
    return std::nullopt;
  }
  if (!((d[2] == 0x2A && d[3] == 0) || (d[2] == 0 && d[3] == 0x2A))) return std::nullopt;
  const TiffReader r(d, n, little);
  const std::uint64_t ifd = r.read(4, 4);
  if (!r.holds(ifd, 2)) return std::nullopt;
  const std::uint64_t count = r.read(ifd, 2);
  std::optional<int> found;
  // TiffImagePlugin: ImageFileDirectory_v2.load. An entry that cannot be read ends the IFD
  // (tags already read are kept); a value outside the data skips that tag; later duplicates win.
  for (std::uint64_t i = 0; i < count; ++i) {
    const std::uint64_t entry = ifd + 2 + 12 * i;
    if (!r.holds(entry, 12)) break;
    const std::uint64_t tag = r.read(entry, 2);
    const std::uint32_t type = static_cast<std::uint32_t>(r.read(entry + 2, 2));
    const std::uint64_t values = r.read(entry + 4, 4);
    const int unit = type_size(type);
    if (tag != kOrientationTag || unit == 0 || values == 0) continue;
    const std::uint64_t bytes = values * static_cast<std::uint64_t>(unit);
    std::uint64_t at = entry + 8;
    if (bytes > 4) {
      at = r.read(entry + 8, 4);
      if (!r.holds(at, bytes)) continue;
    }
    // A tag PIL specifies with one value takes the first of several (TiffImagePlugin: _setitem).
    found = first_value(r, type, static_cast<std::size_t>(at));
  }
  return found;
}

std::optional<int> xmp_orientation(const std::uint8_t* data, std::size_t size) {
  if (data == nullptr) return std::nullopt;
  // PIL/Image.py: Image.getexif searches r'tiff:Orientation(="|>)([0-9])'.
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  constexpr std::string_view kKey = "tiff:Orientation";
  for (std::size_t at = text.find(kKey); at != std::string_view::npos;
       at = text.find(kKey, at + 1)) {
    std::size_t v = at + kKey.size();
    if (text.substr(v, 2) == "=\"") {
      v += 2;
    } else if (text.substr(v, 1) == ">") {
      v += 1;
    } else {
      continue;
    }
    if (v < text.size() && text[v] >= '0' && text[v] <= '9') return text[v] - '0';
  }
  return std::nullopt;
}

int image_orientation(const ImageMetadata& metadata) {
  if (!metadata.exif.empty()) {
    if (const auto o = exif_orientation(metadata.exif.data(), metadata.exif.size())) return *o;
  }
  if (!metadata.xmp.empty()) {
    if (const auto o = xmp_orientation(metadata.xmp.data(), metadata.xmp.size())) return *o;
  }
  return 1;
}

Image apply_orientation(Image image, int orientation) {
  if (orientation < 2 || orientation > 8 || image.empty()) return image;
  const int w = image.width;
  const int h = image.height;
  const bool swap = orientation >= 5;  // transpose, rotations by 90 and transverse
  Image out(swap ? h : w, swap ? w : h);
  for (int oy = 0; oy < out.height; ++oy) {
    std::uint8_t* o = out.row(oy);
    for (int ox = 0; ox < out.width; ++ox, o += 3) {
      int sx = ox;
      int sy = oy;
      switch (orientation) {
        case 2:  // FLIP_LEFT_RIGHT
          sx = w - 1 - ox;
          break;
        case 3:  // ROTATE_180
          sx = w - 1 - ox;
          sy = h - 1 - oy;
          break;
        case 4:  // FLIP_TOP_BOTTOM
          sy = h - 1 - oy;
          break;
        case 5:  // TRANSPOSE
          sx = oy;
          sy = ox;
          break;
        case 6:  // ROTATE_270 (counter-clockwise), i.e. 90 clockwise
          sx = oy;
          sy = h - 1 - ox;
          break;
        case 7:  // TRANSVERSE
          sx = w - 1 - oy;
          sy = h - 1 - ox;
          break;
        case 8:  // ROTATE_90 (counter-clockwise)
          sx = w - 1 - oy;
          sy = ox;
          break;
      }
      const std::uint8_t* s = image.pixel(sx, sy);
      o[0] = s[0];
      o[1] = s[1];
      o[2] = s[2];
    }
  }
  return out;
}

}  // namespace glimpse::vision
