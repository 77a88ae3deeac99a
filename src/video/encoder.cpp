#include "glimpse/video/encoder.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}

#include <memory>

#include "glimpse/core/error.h"
#include "video/ffmpeg_handles.h"

namespace glimpse::video {
namespace {

struct OutputCloser {
  void operator()(AVFormatContext* p) const {
    if (p->pb != nullptr && !(p->oformat->flags & AVFMT_NOFILE)) avio_closep(&p->pb);
    avformat_free_context(p);
  }
};

// The first pixel format of the encoder's list from our preference order (lossless RGB first).
AVPixelFormat pick_format(const AVCodec* codec) {
  const AVPixelFormat preferred[] = {AV_PIX_FMT_RGB24,  AV_PIX_FMT_BGR0, AV_PIX_FMT_0RGB32,
                                     AV_PIX_FMT_GBRP,   AV_PIX_FMT_RGBA, AV_PIX_FMT_YUV444P,
                                     AV_PIX_FMT_YUV420P};
  if (codec->pix_fmts == nullptr) return AV_PIX_FMT_YUV420P;
  for (AVPixelFormat want : preferred) {
    for (const AVPixelFormat* p = codec->pix_fmts; *p != AV_PIX_FMT_NONE; ++p) {
      if (*p == want) return want;
    }
  }
  return codec->pix_fmts[0];
}

}  // namespace

void write_video(const std::string& path, const std::vector<vision::Image>& frames,
                 const EncodeOptions& options, int empty_width, int empty_height) {
  const std::string where = "write_video('" + path + "')";
  const int width = frames.empty() ? empty_width : frames[0].width;
  const int height = frames.empty() ? empty_height : frames[0].height;
  if (width <= 0 || height <= 0) throw InputError(where + ": frames have no pixels");
  for (const auto& f : frames) {
    if (f.width != width || f.height != height || f.rgb.size() != f.row_bytes() * f.height) {
      throw InputError(where + ": all frames must have the same size and a full buffer");
    }
  }
  if (!(options.fps > 0.0)) throw InputError(where + ": fps must be positive");
  const AVCodec* codec = avcodec_find_encoder_by_name(options.codec.c_str());
  if (codec == nullptr) throw UnsupportedError(where + ": no encoder '" + options.codec + "'");

  AVFormatContext* raw = nullptr;
  int r = avformat_alloc_output_context2(&raw, nullptr, nullptr, path.c_str());
  if (r < 0 || raw == nullptr) {
    throw UnsupportedError(where + ": no container for this file extension: " + av_error(r));
  }
  std::unique_ptr<AVFormatContext, OutputCloser> out(raw);
  AVStream* stream = avformat_new_stream(raw, nullptr);
  CodecPtr enc(avcodec_alloc_context3(codec));
  if (stream == nullptr || !enc) throw InputError(where + ": out of memory");
  const AVRational rate = av_d2q(options.fps, 100000);
  enc->width = width;
  enc->height = height;
  enc->pix_fmt = pick_format(codec);
  enc->time_base = av_inv_q(rate);
  enc->framerate = rate;
  enc->gop_size = 12;
  if (raw->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  r = avcodec_open2(enc.get(), codec, nullptr);
  if (r < 0) throw UnsupportedError(where + ": cannot open encoder: " + av_error(r));
  r = avcodec_parameters_from_context(stream->codecpar, enc.get());
  if (r < 0) throw InputError(where + ": " + av_error(r));
  stream->time_base = enc->time_base;
  stream->avg_frame_rate = rate;
  if (!(raw->oformat->flags & AVFMT_NOFILE)) {
    r = avio_open(&raw->pb, path.c_str(), AVIO_FLAG_WRITE);
    if (r < 0) throw InputError(where + ": cannot create file: " + av_error(r));
  }
  r = avformat_write_header(raw, nullptr);
  if (r < 0) throw InputError(where + ": cannot write header: " + av_error(r));

  FramePtr frame(av_frame_alloc());
  PacketPtr pkt(av_packet_alloc());
  if (!frame || !pkt) throw InputError(where + ": out of memory");
  frame->format = enc->pix_fmt;
  frame->width = width;
  frame->height = height;
  if (av_frame_get_buffer(frame.get(), 0) < 0) throw InputError(where + ": out of memory");
  SwsPtr sws(sws_getContext(width, height, AV_PIX_FMT_RGB24, width, height, enc->pix_fmt,
                            SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, nullptr, nullptr,
                            nullptr));
  if (!sws) throw UnsupportedError(where + ": cannot convert RGB to the encoder's pixel format");

  auto drain = [&]() {
    while ((r = avcodec_receive_packet(enc.get(), pkt.get())) >= 0) {
      av_packet_rescale_ts(pkt.get(), enc->time_base, stream->time_base);
      pkt->stream_index = stream->index;
      const int w = av_interleaved_write_frame(raw, pkt.get());
      if (w < 0) throw InputError(where + ": cannot write packet: " + av_error(w));
    }
    if (r != AVERROR(EAGAIN) && r != AVERROR_EOF) {
      throw InputError(where + ": encoder error: " + av_error(r));
    }
  };
  for (std::size_t i = 0; i < frames.size(); ++i) {
    if (av_frame_make_writable(frame.get()) < 0) throw InputError(where + ": out of memory");
    const std::uint8_t* src[4] = {frames[i].rgb.data(), nullptr, nullptr, nullptr};
    const int src_stride[4] = {static_cast<int>(frames[i].row_bytes()), 0, 0, 0};
    sws_scale(sws.get(), src, src_stride, 0, height, frame->data, frame->linesize);
    frame->pts = static_cast<std::int64_t>(i);
    r = avcodec_send_frame(enc.get(), frame.get());
    if (r < 0) throw InputError(where + ": encoder refused a frame: " + av_error(r));
    drain();
  }
  avcodec_send_frame(enc.get(), nullptr);
  drain();
  r = av_write_trailer(raw);
  if (r < 0) throw InputError(where + ": cannot write trailer: " + av_error(r));
}

}  // namespace glimpse::video
