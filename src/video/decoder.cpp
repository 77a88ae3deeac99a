#include "glimpse/video/decoder.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/dict.h>
#include <libavutil/imgutils.h>
#include <libavutil/log.h>
#include <libswscale/swscale.h>
}

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>

#include "glimpse/core/error.h"
#include "glimpse/core/logging.h"
#include "video/ffmpeg_handles.h"

namespace glimpse::video {
namespace {

struct FormatCloser {
  void operator()(AVFormatContext* p) const { avformat_close_input(&p); }
};
using FormatPtr = std::unique_ptr<AVFormatContext, FormatCloser>;

// An opened file with its best video stream.
struct Source {
  FormatPtr format;
  int stream = -1;
  const AVCodec* decoder = nullptr;
  AVStream* av_stream() const { return format->streams[stream]; }
};

Source open_source(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec || !fs::exists(status)) throw InputError("'" + path + "': no such video file");
  if (!fs::is_regular_file(status)) throw InputError("'" + path + "': not a regular file");
  if (fs::file_size(path, ec) == 0) throw FormatError("'" + path + "': empty video file");

  AVFormatContext* raw = nullptr;
  // Local files only: a playlist (HLS, concat) must not make FFmpeg open network URLs.
  AVDictionary* opts = nullptr;
  av_dict_set(&opts, "protocol_whitelist", "file", 0);
  int r = avformat_open_input(&raw, path.c_str(), nullptr, &opts);
  av_dict_free(&opts);
  if (r < 0) {
    throw FormatError("'" + path + "': cannot open as a video: " + av_error(r));
  }
  Source s;
  s.format.reset(raw);
  r = avformat_find_stream_info(raw, nullptr);
  if (r < 0) throw FormatError("'" + path + "': cannot read stream information: " + av_error(r));
  const AVCodec* decoder = nullptr;
  r = av_find_best_stream(raw, AVMEDIA_TYPE_VIDEO, -1, -1, &decoder, 0);
  if (r == AVERROR_STREAM_NOT_FOUND) throw FormatError("'" + path + "': no video stream");
  if (r == AVERROR_DECODER_NOT_FOUND || (r >= 0 && decoder == nullptr)) {
    int index = -1;
    for (unsigned i = 0; i < raw->nb_streams; ++i) {
      if (raw->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_VIDEO) index = static_cast<int>(i);
    }
    const char* name =
        index >= 0 ? avcodec_get_name(raw->streams[index]->codecpar->codec_id) : "unknown";
    throw UnsupportedError("'" + path + "': no decoder for video codec '" + name + "'");
  }
  if (r < 0) throw FormatError("'" + path + "': cannot select a video stream: " + av_error(r));
  s.stream = r;
  s.decoder = decoder;
  return s;
}

double frame_rate(const AVStream* st) {
  for (AVRational q : {st->avg_frame_rate, st->r_frame_rate}) {
    if (q.num > 0 && q.den > 0) return av_q2d(q);
  }
  return 0.0;
}

std::string dims(std::int64_t w, std::int64_t h) {
  return std::to_string(w) + "x" + std::to_string(h);
}

void check_frame_size(const std::string& path, std::int64_t w, std::int64_t h,
                      const VideoLimits& limits) {
  if (w <= 0 || h <= 0) {
    throw FormatError("'" + path + "': not a decodable video (frame size " + dims(w, h) + ")");
  }
  if (w > limits.max_frame_pixels / h) {
    throw InputError("'" + path + "': video frames of " + dims(w, h) +
                     " pixels exceed the limit of " + std::to_string(limits.max_frame_pixels) +
                     " pixels");
  }
}

// Converts decoded frames to packed RGB24 through an aligned scratch buffer.
class RgbConverter {
 public:
  ~RgbConverter() {
    if (buffer_[0] != nullptr) av_freep(&buffer_[0]);
  }

  vision::Image convert(const AVFrame* f, const std::string& path) {
    const auto fmt = static_cast<AVPixelFormat>(f->format);
    if (fmt == AV_PIX_FMT_NONE || f->width <= 0 || f->height <= 0) {
      throw FormatError("'" + path + "': decoder returned a frame without a pixel format or size");
    }
    sws_.reset(sws_getCachedContext(
        sws_.release(), f->width, f->height, fmt, f->width, f->height, AV_PIX_FMT_RGB24,
        SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, nullptr, nullptr, nullptr));
    if (!sws_) {
      throw UnsupportedError(
          "'" + path + "': cannot convert pixel format '" +
          std::string(av_get_pix_fmt_name(fmt) ? av_get_pix_fmt_name(fmt) : "?") + "' to RGB");
    }
    // YUV to RGB with the frame's matrix and range (BT.601 when unspecified).
    const bool full_range = f->color_range == AVCOL_RANGE_JPEG || fmt == AV_PIX_FMT_YUVJ420P ||
                            fmt == AV_PIX_FMT_YUVJ422P || fmt == AV_PIX_FMT_YUVJ444P;
    const int* coeffs = sws_getCoefficients(f->colorspace);
    sws_setColorspaceDetails(sws_.get(), coeffs, full_range ? 1 : 0,
                             sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16);
    if (f->width != width_ || f->height != height_) {
      if (buffer_[0] != nullptr) av_freep(&buffer_[0]);
      if (av_image_alloc(buffer_, linesize_, f->width, f->height, AV_PIX_FMT_RGB24, 64) < 0) {
        throw InputError("'" + path + "': out of memory for a " + dims(f->width, f->height) +
                         " frame");
      }
      width_ = f->width;
      height_ = f->height;
    }
    sws_scale(sws_.get(), f->data, f->linesize, 0, f->height, buffer_, linesize_);
    vision::Image img(f->width, f->height);
    for (int y = 0; y < f->height; ++y) {
      std::memcpy(img.row(y), buffer_[0] + static_cast<std::ptrdiff_t>(y) * linesize_[0],
                  img.row_bytes());
    }
    return img;
  }

 private:
  SwsPtr sws_;
  std::uint8_t* buffer_[4] = {nullptr, nullptr, nullptr, nullptr};
  int linesize_[4] = {0, 0, 0, 0};
  int width_ = 0;
  int height_ = 0;
};

}  // namespace

VideoInfo probe_video(const std::string& path, const VideoLimits& limits) {
  Source src = open_source(path);
  const AVStream* st = src.av_stream();
  VideoInfo info;
  info.width = st->codecpar->width;
  info.height = st->codecpar->height;
  info.codec = avcodec_get_name(st->codecpar->codec_id);
  check_frame_size(path, info.width, info.height, limits);
  if (src.format->duration != AV_NOPTS_VALUE && src.format->duration > 0) {
    info.duration = static_cast<double>(src.format->duration) / AV_TIME_BASE;
  }
  PacketPtr pkt(av_packet_alloc());
  if (!pkt) throw InputError("'" + path + "': out of memory");
  std::int64_t count = 0;
  int r = 0;
  while ((r = av_read_frame(src.format.get(), pkt.get())) >= 0) {
    if (pkt->stream_index == src.stream) ++count;
    av_packet_unref(pkt.get());
    if (count > limits.max_frames) {
      throw InputError("'" + path + "': video has more than " + std::to_string(limits.max_frames) +
                       " frames");
    }
  }
  if (r != AVERROR_EOF && count == 0) {
    throw FormatError("'" + path + "': cannot read video packets: " + av_error(r));
  }
  if (count == 0) throw FormatError("'" + path + "': video stream has no frames");
  info.frame_count = count;
  info.fps = frame_rate(st);
  if (info.fps <= 0.0 && info.duration > 0.0) info.fps = static_cast<double>(count) / info.duration;
  if (info.duration <= 0.0 && info.fps > 0.0) info.duration = static_cast<double>(count) / info.fps;
  return info;
}

std::vector<vision::Image> read_frames(const std::string& path,
                                       const std::vector<std::int64_t>& indices,
                                       const FrameTransform& transform, const VideoLimits& limits) {
  if (indices.empty()) return {};
  std::map<std::int64_t, std::vector<std::size_t>> wanted;  // frame -> positions in the output
  for (std::size_t i = 0; i < indices.size(); ++i) {
    if (indices[i] < 0 || indices[i] >= limits.max_frames) {
      throw InputError("'" + path + "': frame index " + std::to_string(indices[i]) +
                       " is out of range");
    }
    wanted[indices[i]].push_back(i);
  }
  const std::int64_t last_wanted = wanted.rbegin()->first;

  Source src = open_source(path);
  const AVStream* st = src.av_stream();
  check_frame_size(path, st->codecpar->width, st->codecpar->height, limits);
  CodecPtr codec(avcodec_alloc_context3(src.decoder));
  if (!codec) throw InputError("'" + path + "': out of memory");
  int r = avcodec_parameters_to_context(codec.get(), st->codecpar);
  if (r < 0) throw FormatError("'" + path + "': bad codec parameters: " + av_error(r));
  codec->thread_count = 0;  // FFmpeg picks
  r = avcodec_open2(codec.get(), src.decoder, nullptr);
  if (r < 0) {
    throw UnsupportedError("'" + path + "': cannot open the '" + std::string(src.decoder->name) +
                           "' decoder: " + av_error(r));
  }

  std::vector<vision::Image> out(indices.size());
  std::vector<bool> filled(indices.size(), false);
  PacketPtr pkt(av_packet_alloc());
  FramePtr frame(av_frame_alloc());
  FramePtr last(av_frame_alloc());
  if (!pkt || !frame || !last) throw InputError("'" + path + "': out of memory");
  RgbConverter converter;
  std::int64_t frame_no = 0;
  std::int64_t packets = 0;
  std::int64_t errors = 0;
  bool have_last = false;

  auto keep = [&](const AVFrame* f, const std::vector<std::size_t>& positions) {
    check_frame_size(path, f->width, f->height, limits);
    vision::Image img = converter.convert(f, path);
    if (transform) img = transform(std::move(img));
    for (std::size_t k = 0; k < positions.size(); ++k) {
      out[positions[k]] = (k + 1 == positions.size()) ? std::move(img) : img;
      filled[positions[k]] = true;
    }
  };
  // Drains decoded frames; returns false once every wanted frame is in.
  auto drain = [&]() {
    while (true) {
      const int rr = avcodec_receive_frame(codec.get(), frame.get());
      if (rr == AVERROR(EAGAIN) || rr == AVERROR_EOF) return true;
      if (rr < 0) {
        ++errors;
        return true;
      }
      const auto it = wanted.find(frame_no);
      if (it != wanted.end()) keep(frame.get(), it->second);
      av_frame_unref(last.get());
      av_frame_move_ref(last.get(), frame.get());
      have_last = true;
      if (++frame_no > last_wanted) return false;
    }
  };

  bool more = true;
  while (more && (r = av_read_frame(src.format.get(), pkt.get())) >= 0) {
    if (pkt->stream_index == src.stream) {
      if (++packets > limits.max_frames) {
        av_packet_unref(pkt.get());
        throw InputError("'" + path + "': video has more than " +
                         std::to_string(limits.max_frames) + " frames");
      }
      // Every packet is consumed: after EAGAIN, drain and send it again once.
      int sent = avcodec_send_packet(codec.get(), pkt.get());
      if (sent == AVERROR(EAGAIN)) {
        more = drain();
        if (more) sent = avcodec_send_packet(codec.get(), pkt.get());
      }
      if (sent < 0 && sent != AVERROR(EAGAIN)) ++errors;  // corrupt packet: skip it
      if (more) more = drain();
    }
    av_packet_unref(pkt.get());
  }
  if (more) {
    avcodec_send_packet(codec.get(), nullptr);  // flush delayed frames
    drain();
  }
  if (!have_last) {
    throw FormatError("'" + path + "': no decodable video frame" +
                      (errors > 0 ? " (" + std::to_string(errors) + " decoding errors)" : ""));
  }
  // Indices past the last decodable frame: the last frame, unless past the stream's end.
  bool used_last = false;
  for (std::size_t i = 0; i < indices.size(); ++i) {
    if (filled[i]) continue;
    if (indices[i] >= std::max(packets, frame_no)) {
      throw InputError("'" + path + "': frame index " + std::to_string(indices[i]) +
                       " is past the end of the video (" + std::to_string(frame_no) + " frames)");
    }
    if (!used_last) {
      GLIMPSE_LOG(Warn) << "'" << path << "': only " << frame_no
                        << " frames decode; later frames repeat the last one";
    }
    used_last = true;
    keep(last.get(), {i});
  }
  return out;
}

SampledVideo read_video(const std::string& path, const FrameSampling& sampling,
                        const FrameTransform& transform, const VideoLimits& limits) {
  SampledVideo v;
  v.info = probe_video(path, limits);
  try {
    v.indices = sample_frame_indices(sampling, v.info.frame_count, v.info.fps);
  } catch (const InputError& e) {
    throw InputError("'" + path + "': " + e.what());
  }
  v.frames = read_frames(path, v.indices, transform, limits);
  v.sample_fps =
      static_cast<double>(v.indices.size()) / static_cast<double>(v.info.frame_count) * v.info.fps;
  return v;
}

}  // namespace glimpse::video
