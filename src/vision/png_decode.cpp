#include "vision/png_decode.h"

#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <vector>

#include "glimpse/core/error.h"
#include "glimpse/core/logging.h"

namespace glimpse::vision {
namespace {

// Plain C data: libpng's handles, the bounded input and the last error. Nothing here has a
// destructor, so libpng's longjmp skips nothing.
struct PngSession {
  png_structp png;
  png_infop info;
  const std::uint8_t* data;
  std::size_t size;
  std::size_t pos;
  const char* name;
  char message[256];
};

// libpng's error callback must not return: keep the message and jump back to the step that
// called libpng.
void on_error(png_structp png, png_const_charp message) {
  auto* s = static_cast<PngSession*>(png_get_error_ptr(png));
  std::snprintf(s->message, sizeof(s->message), "%s", message != nullptr ? message : "error");
  png_longjmp(png, 1);
}

// Warnings (CRC errors in ancillary chunks, benign errors) go to the debug log, never stderr.
void on_warning(png_structp png, png_const_charp message) {
  auto* s = static_cast<PngSession*>(png_get_error_ptr(png));
  try {
    GLIMPSE_LOG(Debug) << "'" << s->name << "': libpng: " << (message != nullptr ? message : "");
  } catch (...) {
  }
}

// Reads from the buffer and never past its end.
void on_read(png_structp png, png_bytep out, png_size_t length) {
  auto* s = static_cast<PngSession*>(png_get_io_ptr(png));
  if (length > s->size - s->pos) png_error(png, "file ends inside the PNG data");
  std::memcpy(out, s->data + s->pos, length);
  s->pos += length;
}

// The steps below each call libpng under their own setjmp and hold no C++ object with a
// destructor. They return false after an error, with libpng's message in s->message.

bool png_open(PngSession* s) {
  if (setjmp(png_jmpbuf(s->png))) return false;
  png_set_read_fn(s->png, s, on_read);
  // The pixel limit was checked from the header; libpng's own default of 1e6 per side would
  // refuse long thin images that PIL opens.
  png_set_user_limits(s->png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
  png_set_benign_errors(s->png, 1);  // warnings, not errors, as PIL is lenient there too
  png_read_info(s->png, s->info);
  return true;
}

bool png_prepare(PngSession* s, int bit_depth, int* passes) {
  if (setjmp(png_jmpbuf(s->png))) return false;
  if (bit_depth < 8) png_set_packing(s->png);  // one byte a pixel, values unscaled
  const int n = png_set_interlace_handling(s->png);
  png_read_update_info(s->png, s->info);
  *passes = n;
  return true;
}

bool png_row(PngSession* s, std::uint8_t* row) {
  if (setjmp(png_jmpbuf(s->png))) return false;
  png_read_row(s->png, row, nullptr);
  return true;
}

// Owns libpng's structures; png_destroy_read_struct runs on every path, errors included.
class PngDecoder {
 public:
  explicit PngDecoder(const std::string& name) : name_(name) {
    std::memset(&s_, 0, sizeof(s_));
    s_.name = name_.c_str();
    s_.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &s_, on_error, on_warning);
    if (s_.png != nullptr) s_.info = png_create_info_struct(s_.png);
    if (s_.png == nullptr || s_.info == nullptr) {
      std::snprintf(s_.message, sizeof(s_.message), "cannot set up libpng");
      destroy();
      fail();
    }
  }
  ~PngDecoder() { destroy(); }
  PngDecoder(const PngDecoder&) = delete;
  PngDecoder& operator=(const PngDecoder&) = delete;

  PngSession* session() { return &s_; }
  [[noreturn]] void fail() const {
    throw FormatError("'" + name_ + "': cannot decode PNG data: " + std::string(s_.message));
  }

 private:
  void destroy() {
    if (s_.png != nullptr) png_destroy_read_struct(&s_.png, s_.info ? &s_.info : nullptr, nullptr);
    s_.png = nullptr;
    s_.info = nullptr;
  }
  std::string name_;
  PngSession s_;
};

std::uint32_t be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         p[3];
}

// PIL/PngImagePlugin.py reads metadata chunks before IDAT when opening and after it when loading
// (PngImageFile.load_end), so the last one wins: chunk_eXIf sets info["exif"] to "Exif\0\0" + data;
// chunk_iTXt sets info["xmp"] for the keyword "XML:com.adobe.xmp". Compressed iTXt and the
// "Raw profile type exif" text chunks are not read here.
void collect_metadata(const std::uint8_t* d, std::size_t n, ImageMetadata* metadata) {
  static const char kXmpKey[] = "XML:com.adobe.xmp";  // with its NUL
  std::size_t pos = 8;
  while (n - pos >= 8) {
    const std::uint32_t length = be32(d + pos);
    const std::uint8_t* type = d + pos + 4;
    const std::uint8_t* body = d + pos + 8;
    if (length > 0x7FFFFFFFu || n - pos - 8 < length) break;
    if (std::memcmp(type, "IEND", 4) == 0) break;
    if (std::memcmp(type, "eXIf", 4) == 0) {
      metadata->exif.assign({'E', 'x', 'i', 'f', 0, 0});
      metadata->exif.insert(metadata->exif.end(), body, body + length);
    } else if (std::memcmp(type, "iTXt", 4) == 0 && length >= sizeof(kXmpKey) + 2 &&
               std::memcmp(body, kXmpKey, sizeof(kXmpKey)) == 0 && body[sizeof(kXmpKey)] == 0) {
      // keyword NUL, compression flag (0), method, language NUL, translated keyword NUL, text.
      const std::string_view rest(reinterpret_cast<const char*>(body) + sizeof(kXmpKey) + 2,
                                  length - sizeof(kXmpKey) - 2);
      const std::size_t lang_end = rest.find('\0');
      const std::size_t key_end =
          lang_end == std::string_view::npos ? lang_end : rest.find('\0', lang_end + 1);
      if (key_end != std::string_view::npos) {
        const auto* text = reinterpret_cast<const std::uint8_t*>(rest.data()) + key_end + 1;
        metadata->xmp.assign(text, text + (rest.size() - key_end - 1));
      }
    }
    if (n - pos - 8 - length < 4) break;  // no room for the CRC
    pos += std::size_t{12} + length;
  }
}

// 16-bit samples to 8 bits as PIL gets them: grey opens as mode "I" (or "I;16") and converts to
// RGB with clipping (Convert.c: i2rgb, I16_RGB); colour and grey + alpha keep the most significant
// byte (Unpack.c: the ";16B" raw modes).
std::uint8_t grey16(const std::uint8_t* p) {
  const unsigned v = (unsigned{p[0]} << 8) | p[1];
  return static_cast<std::uint8_t>(v > 255 ? 255 : v);
}

}  // namespace

Image decode_png(const std::uint8_t* data, std::size_t size, const std::string& name,
                 const ImageHeader& header, ImageMetadata* metadata) {
  PngDecoder decoder(name);
  PngSession* s = decoder.session();
  s->data = data;
  s->size = size;
  s->pos = 0;
  if (!png_open(s)) decoder.fail();
  png_uint_32 width = 0;
  png_uint_32 height = 0;
  int bit_depth = 0;
  int colour = 0;
  int interlace = 0;
  png_get_IHDR(s->png, s->info, &width, &height, &bit_depth, &colour, &interlace, nullptr, nullptr);
  if (width != header.width || height != header.height) {
    throw FormatError("'" + name + "': libpng reads " + std::to_string(width) + "x" +
                      std::to_string(height) + " pixels but the header says " +
                      std::to_string(header.width) + "x" + std::to_string(header.height));
  }
  // Palette entries PLTE leaves out are black (PIL's palette starts zeroed: Palette.c:
  // ImagingPaletteNew); transparency is ignored (Convert.c: p2rgb).
  std::uint8_t palette[256 * 3] = {};
  if (colour == PNG_COLOR_TYPE_PALETTE) {
    png_colorp entries = nullptr;
    int count = 0;
    if (png_get_PLTE(s->png, s->info, &entries, &count) == 0) count = 0;
    for (int i = 0; i < count && i < 256; ++i) {
      palette[i * 3 + 0] = entries[i].red;
      palette[i * 3 + 1] = entries[i].green;
      palette[i * 3 + 2] = entries[i].blue;
    }
  }
  int passes = 1;
  if (!png_prepare(s, bit_depth, &passes)) decoder.fail();
  const int channels = png_get_channels(s->png, s->info);
  const std::size_t sample_bytes = bit_depth == 16 ? 2 : 1;
  const std::size_t row_bytes = png_get_rowbytes(s->png, s->info);
  if (row_bytes != std::size_t{width} * channels * sample_bytes) {
    throw FormatError("'" + name + "': unexpected PNG row layout (" + std::to_string(row_bytes) +
                      " bytes a row)");
  }
  if (metadata != nullptr) collect_metadata(data, size, metadata);

  const int w = static_cast<int>(width);
  const int h = static_cast<int>(height);
  // Interlaced images need every row for each pass; others are read one row at a time.
  std::vector<std::uint8_t> raw(row_bytes * (passes > 1 ? h : 1));
  if (passes > 1) {
    for (int pass = 0; pass < passes; ++pass) {
      for (int y = 0; y < h; ++y) {
        if (!png_row(s, raw.data() + row_bytes * y)) decoder.fail();
      }
    }
  }
  Image image(w, h);
  for (int y = 0; y < h; ++y) {
    const std::uint8_t* p = raw.data();
    if (passes > 1) {
      p += row_bytes * y;
    } else if (!png_row(s, raw.data())) {
      decoder.fail();
    }
    std::uint8_t* o = image.row(y);
    const std::size_t step = channels * sample_bytes;
    for (int x = 0; x < w; ++x, p += step, o += 3) {
      switch (colour) {
        case PNG_COLOR_TYPE_GRAY:
          // PIL's "1" is 0/255, "L;2" x85 and "L;4" x17 (Unpack.c: unpack1, unpackL2, unpackL4).
          if (bit_depth == 16) {
            o[0] = o[1] = o[2] = grey16(p);
          } else {
            const int scale = bit_depth == 1 ? 255 : bit_depth == 2 ? 85 : bit_depth == 4 ? 17 : 1;
            o[0] = o[1] = o[2] = static_cast<std::uint8_t>(p[0] * scale);
          }
          break;
        case PNG_COLOR_TYPE_GRAY_ALPHA:  // alpha dropped (Convert.c: la2rgb)
          o[0] = o[1] = o[2] = p[0];
          break;
        case PNG_COLOR_TYPE_PALETTE:
          std::memcpy(o, palette + 3 * p[0], 3);
          break;
        default:  // RGB, RGBA: alpha dropped, 16-bit keeps the high byte
          o[0] = p[0];
          o[1] = p[sample_bytes];
          o[2] = p[2 * sample_bytes];
          break;
      }
    }
  }
  return image;
}

}  // namespace glimpse::vision
