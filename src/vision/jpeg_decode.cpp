#include "vision/jpeg_decode.h"

// jpeglib.h needs size_t and FILE declared first.
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <vector>

#include <jpeglib.h>

#include "glimpse/core/error.h"
#include "glimpse/core/logging.h"

namespace glimpse::vision {
namespace {

// Real progressive files have about ten scans; a crafted one can have thousands, each a pass over
// the whole coefficient buffer (libjpeg-turbo's own fuzzers cap scans the same way).
constexpr int kMaxScans = 1000;

// Plain C data: the libjpeg state and where its errors jump to. Nothing here has a destructor, so
// a longjmp past it skips nothing.
struct JpegSession {
  jpeg_decompress_struct cinfo;
  jpeg_error_mgr err;
  jpeg_progress_mgr progress;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  const char* name;
  bool created;
};

JpegSession* session_of(j_common_ptr cinfo) {
  return static_cast<JpegSession*>(cinfo->client_data);
}

// libjpeg's error_exit must not return: keep the message and jump back to the step that called
// libjpeg.
void on_error(j_common_ptr cinfo) {
  JpegSession* s = session_of(cinfo);
  (*cinfo->err->format_message)(cinfo, s->message);
  std::longjmp(s->jump, 1);
}

// Warnings ("Corrupt JPEG data: ...") go to the debug log; libjpeg's default prints to stderr.
// PIL ignores them (JpegDecode.c: output).
void on_message(j_common_ptr cinfo) {
  char text[JMSG_LENGTH_MAX];
  (*cinfo->err->format_message)(cinfo, text);
  try {
    GLIMPSE_LOG(Debug) << "'" << session_of(cinfo)->name << "': libjpeg: " << text;
  } catch (...) {
  }
}

void on_progress(j_common_ptr cinfo) {
  JpegSession* s = session_of(cinfo);
  if (s->cinfo.input_scan_number > kMaxScans) {
    std::snprintf(s->message, sizeof(s->message), "more than %d scans", kMaxScans);
    std::longjmp(s->jump, 1);
  }
}

// The steps below each call libjpeg under their own setjmp and hold no C++ object with a
// destructor. They return false after an error, with libjpeg's message in s->message.

bool jpeg_open(JpegSession* s, const std::uint8_t* data, std::size_t size) {
  if (setjmp(s->jump)) return false;
  s->cinfo.err = jpeg_std_error(&s->err);
  s->err.error_exit = on_error;
  s->err.output_message = on_message;
  s->cinfo.client_data = s;
  s->created = true;
  jpeg_create_decompress(&s->cinfo);  // keeps err and client_data
  s->progress.progress_monitor = on_progress;
  s->cinfo.progress = &s->progress;
  jpeg_mem_src(&s->cinfo, data, static_cast<unsigned long>(size));
  jpeg_save_markers(&s->cinfo, JPEG_APP0 + 1, 0xFFFF);  // EXIF and XMP
  jpeg_read_header(&s->cinfo, TRUE);
  return true;
}

bool jpeg_start(JpegSession* s, J_COLOR_SPACE out) {
  if (setjmp(s->jump)) return false;
  // PIL leaves libjpeg's defaults (JDCT_ISLOW, fancy upsampling, block smoothing) unless draft()
  // is called, which transformers does not (JpegDecode.c: ImagingJpegDecode).
  s->cinfo.out_color_space = out;
  jpeg_start_decompress(&s->cinfo);
  return true;
}

bool jpeg_row(JpegSession* s, std::uint8_t* row) {
  if (setjmp(s->jump)) return false;
  JSAMPROW rows[1] = {row};
  if (jpeg_read_scanlines(&s->cinfo, rows, 1) != 1) {
    std::snprintf(s->message, sizeof(s->message), "libjpeg returned no row");
    return false;
  }
  return true;
}

bool jpeg_finish(JpegSession* s) {
  if (setjmp(s->jump)) return false;
  jpeg_finish_decompress(&s->cinfo);
  return true;
}

// Owns the session; jpeg_destroy_decompress runs on every path, errors included.
class JpegDecoder {
 public:
  explicit JpegDecoder(const std::string& name) : name_(name) {
    std::memset(&s_, 0, sizeof(s_));
    s_.name = name_.c_str();
  }
  ~JpegDecoder() {
    if (s_.created) jpeg_destroy_decompress(&s_.cinfo);
  }
  JpegDecoder(const JpegDecoder&) = delete;
  JpegDecoder& operator=(const JpegDecoder&) = delete;

  JpegSession* session() { return &s_; }
  [[noreturn]] void fail() const {
    throw FormatError("'" + name_ + "': cannot decode JPEG data: " + std::string(s_.message));
  }

 private:
  std::string name_;
  JpegSession s_;
};

bool starts_with(const jpeg_saved_marker_ptr m, const char* prefix, std::size_t n) {
  return m->data_length >= n && std::memcmp(m->data, prefix, n) == 0;
}

// PIL/JpegImagePlugin.py: APP. info["exif"] is the first "Exif\0\0" APP1 segment with later ones
// appended (their prefix removed); info["xmp"] is the last XMP packet.
void collect_metadata(const jpeg_decompress_struct& cinfo, ImageMetadata* metadata) {
  static const char kXmp[] = "http://ns.adobe.com/xap/1.0/";  // then a NUL
  for (jpeg_saved_marker_ptr m = cinfo.marker_list; m != nullptr; m = m->next) {
    if (m->marker != JPEG_APP0 + 1) continue;
    if (starts_with(m, "Exif\0\0", 6)) {
      const std::size_t skip = metadata->exif.empty() ? 0 : 6;
      metadata->exif.insert(metadata->exif.end(), m->data + skip, m->data + m->data_length);
    } else if (starts_with(m, kXmp, sizeof(kXmp))) {
      metadata->xmp.assign(m->data + sizeof(kXmp), m->data + m->data_length);
    }
  }
}

// PIL/ImagingUtils.h: MULDIV255.
int muldiv255(int a, int b) {
  const int t = a * b + 128;
  return (t + (t >> 8)) >> 8;
}
std::uint8_t clip8(int v) {
  return static_cast<std::uint8_t>(v <= 0 ? 0 : v < 256 ? v : 255);
}

}  // namespace

Image decode_jpeg(const std::uint8_t* data, std::size_t size, const std::string& name,
                  const ImageHeader& header, ImageMetadata* metadata) {
  JpegDecoder decoder(name);
  JpegSession* s = decoder.session();
  if (!jpeg_open(s, data, size)) decoder.fail();
  const jpeg_decompress_struct& cinfo = s->cinfo;
  if (cinfo.image_width != header.width || cinfo.image_height != header.height) {
    throw FormatError("'" + name + "': libjpeg reads " + std::to_string(cinfo.image_width) + "x" +
                      std::to_string(cinfo.image_height) + " pixels but the header says " +
                      std::to_string(header.width) + "x" + std::to_string(header.height));
  }
  // PIL/JpegImagePlugin.py: SOF maps 1, 3 and 4 components to "L", "RGB" and "CMYK" and refuses
  // the rest; the decoder then asks libjpeg for that colour space (JpegDecode.c).
  J_COLOR_SPACE out = JCS_UNKNOWN;
  switch (cinfo.num_components) {
    case 1:
      out = JCS_GRAYSCALE;
      break;
    case 3:
      out = JCS_RGB;
      break;
    case 4:
      out = JCS_CMYK;
      break;
    default:
      throw UnsupportedError("'" + name + "': JPEG with " + std::to_string(cinfo.num_components) +
                             " components is not supported (only 1, 3 or 4)");
  }
  if (metadata != nullptr) collect_metadata(cinfo, metadata);
  if (!jpeg_start(s, out)) decoder.fail();
  const int components = cinfo.output_components;
  if (cinfo.output_width != cinfo.image_width || cinfo.output_height != cinfo.image_height ||
      components != cinfo.num_components) {
    throw FormatError("'" + name + "': libjpeg output layout does not match the frame header");
  }

  const int w = static_cast<int>(cinfo.output_width);
  const int h = static_cast<int>(cinfo.output_height);
  Image image(w, h);
  std::vector<std::uint8_t> row(components == 3 ? 0 : static_cast<std::size_t>(w) * components);
  for (int y = 0; y < h; ++y) {
    std::uint8_t* o = image.row(y);
    if (components == 3) {
      if (!jpeg_row(s, o)) decoder.fail();
      continue;
    }
    if (!jpeg_row(s, row.data())) decoder.fail();
    const std::uint8_t* p = row.data();
    if (components == 1) {
      for (int x = 0; x < w; ++x, o += 3) o[0] = o[1] = o[2] = p[x];  // Convert.c: l2rgb
      continue;
    }
    // PIL reads every 4-component JPEG with raw mode "CMYK;I", inverting the samples
    // (JpegImagePlugin.py: _open; Unpack.c: unpackCMYKI), then converts with Convert.c: cmyk2rgb:
    // nk = 255 - k, r = CLIP8(nk - MULDIV255(c, nk)). libjpeg has already turned YCCK into CMYK.
    for (int x = 0; x < w; ++x, p += 4, o += 3) {
      const int nk = p[3];  // 255 - (255 - k)
      o[0] = clip8(nk - muldiv255(255 - p[0], nk));
      o[1] = clip8(nk - muldiv255(255 - p[1], nk));
      o[2] = clip8(nk - muldiv255(255 - p[2], nk));
    }
  }
  if (!jpeg_finish(s)) decoder.fail();
  return image;
}

}  // namespace glimpse::vision
