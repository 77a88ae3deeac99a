#include "models/qwen2_vl/rope_index.h"

#include <algorithm>

#include "glimpse/core/error.h"

namespace glimpse::models::qwen2_vl {
namespace {

using Grid = std::array<std::int64_t, 3>;

std::vector<Grid> grids_of(const at::Tensor& t) {
  std::vector<Grid> out;
  if (!t.defined()) return out;
  const at::Tensor c = t.to(at::kLong).contiguous();
  const auto* p = c.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < c.size(0); ++i)
    out.push_back({p[3 * i], p[3 * i + 1], p[3 * i + 2]});
  return out;
}

}  // namespace

RopeIndex get_rope_index(const Qwen2VLConfig& config, const at::Tensor& input_ids,
                         const at::Tensor& image_grid_thw, const at::Tensor& video_grid_thw,
                         const at::Tensor& second_per_grid_ts, const at::Tensor& attention_mask) {
  const std::int64_t b = input_ids.size(0), s = input_ids.size(1);
  const auto i64 = at::TensorOptions().dtype(at::kLong);
  const at::Tensor ids = input_ids.to(at::kLong).contiguous();
  const at::Tensor mask =
      attention_mask.defined() ? attention_mask.to(at::kLong).contiguous() : at::ones({b, s}, i64);
  RopeIndex out;
  out.position_ids = at::ones({3, b, s}, i64);
  out.rope_deltas = at::zeros({b, 1}, i64);
  auto& lay = out.layout;
  lay.modality = at::zeros({b, s}, at::TensorOptions().dtype(at::kChar));
  lay.media_index = at::full({b, s}, -1, i64);
  lay.grid = at::full({b, s, 3}, -1, i64);
  lay.original_index = at::arange(s, i64).view({1, s}).repeat({b, 1});
  auto* modality = lay.modality.data_ptr<std::int8_t>();
  auto* media = lay.media_index.data_ptr<std::int64_t>();
  auto* grid_out = lay.grid.data_ptr<std::int64_t>();
  auto* pos = out.position_ids.data_ptr<std::int64_t>();
  auto* deltas = out.rope_deltas.data_ptr<std::int64_t>();
  const auto* idp = ids.data_ptr<std::int64_t>();
  const auto* mp = mask.data_ptr<std::int64_t>();

  const std::vector<Grid> images = grids_of(image_grid_thw), videos = grids_of(video_grid_thw);
  std::vector<double> seconds;
  if (second_per_grid_ts.defined()) {
    const at::Tensor sp = second_per_grid_ts.to(at::kDouble).contiguous();
    seconds.assign(sp.data_ptr<double>(), sp.data_ptr<double>() + sp.numel());
  }
  const bool text_only = images.empty() && videos.empty();
  const std::int64_t m = config.vision.spatial_merge_size;
  std::size_t image_index = 0, video_index = 0;

  for (std::int64_t row = 0; row < b; ++row) {
    // The reference works on the unpadded tokens of the row.
    std::vector<std::int64_t> tokens, slots;
    for (std::int64_t j = 0; j < s; ++j) {
      if (mp[row * s + j] == 1) {
        tokens.push_back(idp[row * s + j]);
        slots.push_back(j);
      }
    }
    std::vector<std::array<std::int64_t, 3>> p;  // (t, h, w) per unpadded token
    p.reserve(tokens.size());
    // Per unpadded token: modality, media index and grid cell (-1 for text).
    std::vector<std::array<std::int64_t, 5>> meta;
    meta.reserve(tokens.size());
    std::int64_t next = 0;  // st_idx: previous max + 1
    auto add_text = [&](std::int64_t count) {
      for (std::int64_t k = 0; k < count; ++k) {
        p.push_back({next + k, next + k, next + k});
        meta.push_back({0, -1, -1, -1, -1});
      }
      if (count > 0) next += count;
    };
    if (!text_only) {
      std::int64_t image_nums = 0, video_nums = 0;
      for (std::size_t j = 0; j + 1 < tokens.size(); ++j) {
        if (tokens[j] != config.vision_start_token_id) continue;
        image_nums += tokens[j + 1] == config.image_token_id;
        video_nums += tokens[j + 1] == config.video_token_id;
      }
      std::size_t st = 0;
      std::int64_t remain_images = image_nums, remain_videos = video_nums;
      for (std::int64_t n = 0; n < image_nums + video_nums; ++n) {
        auto find_from = [&](std::int64_t id, std::int64_t remain) {
          if (remain <= 0) return tokens.size() + 1;
          const auto it =
              std::find(tokens.begin() + static_cast<std::ptrdiff_t>(st), tokens.end(), id);
          return it == tokens.end() ? tokens.size() + 1
                                    : static_cast<std::size_t>(it - tokens.begin());
        };
        const std::size_t ed_image = find_from(config.image_token_id, remain_images);
        const std::size_t ed_video = find_from(config.video_token_id, remain_videos);
        Grid grid{};
        double second = 0.0;
        bool is_video = false;
        std::size_t ed = 0;
        if (ed_image < ed_video) {
          if (image_index >= images.size()) {
            throw InputError("input_ids: more images than rows of image_grid_thw (" +
                             std::to_string(images.size()) + ")");
          }
          grid = images[image_index++];
          --remain_images;
          ed = ed_image;
        } else {
          if (ed_video > tokens.size() || video_index >= videos.size()) {
            throw InputError("input_ids: more videos than rows of video_grid_thw (" +
                             std::to_string(videos.size()) + ")");
          }
          second = video_index < seconds.size() ? seconds[video_index] : 1.0;
          grid = videos[video_index++];
          is_video = true;
          --remain_videos;
          ed = ed_video;
        }
        const std::int64_t gt = grid[0], gh = grid[1] / m, gw = grid[2] / m;
        add_text(static_cast<std::int64_t>(ed - st));
        const std::int64_t base = next;
        std::int64_t block_max = base - 1;
        for (std::int64_t t = 0; t < gt; ++t) {
          std::int64_t tp = t;
          if (config.vision.is_2_5) {
            // Qwen2.5-VL: (arange(t) * second_per_grid_t * tokens_per_second).long(), in fp32;
            // images use second_per_grid_t = 0.
            const float scaled = static_cast<float>(t) *
                                 static_cast<float>(is_video ? second : 0.0) *
                                 static_cast<float>(config.vision.tokens_per_second);
            tp = static_cast<std::int64_t>(scaled);
          }
          for (std::int64_t y = 0; y < gh; ++y) {
            for (std::int64_t x = 0; x < gw; ++x) {
              p.push_back({base + tp, base + y, base + x});
              meta.push_back({is_video ? 2 : 1,
                              static_cast<std::int64_t>(is_video ? video_index : image_index) - 1,
                              t, y, x});
              block_max = std::max({block_max, base + tp, base + y, base + x});
            }
          }
        }
        next = block_max + 1;
        st = ed + static_cast<std::size_t>(gt * gh * gw);
        if (st > tokens.size()) {
          throw InputError("input_ids: a vision block has fewer placeholder tokens than its grid");
        }
      }
      add_text(static_cast<std::int64_t>(tokens.size() - st));
    } else {
      add_text(static_cast<std::int64_t>(tokens.size()));
    }
    std::int64_t max_pos = 0;
    for (std::size_t j = 0; j < p.size(); ++j) {
      for (int a = 0; a < 3; ++a) {
        pos[(a * b + row) * s + slots[j]] = p[j][a];
        max_pos = std::max(max_pos, p[j][a]);
      }
      const std::int64_t at_slot = row * s + slots[j];
      modality[at_slot] = static_cast<std::int8_t>(meta[j][0]);
      media[at_slot] = meta[j][1];
      for (int a = 0; a < 3; ++a) grid_out[at_slot * 3 + a] = meta[j][2 + a];
    }
    // The reference's text-only path fills padding with 1 and takes max over all slots.
    if (text_only && p.size() < static_cast<std::size_t>(s))
      max_pos = std::max<std::int64_t>(max_pos, 1);
    deltas[row] = max_pos + 1 - s;
  }
  lay.positions = out.position_ids;
  return out;
}

std::pair<at::Tensor, at::Tensor> mrope_cos_sin(const Qwen2VLConfig& config,
                                                const at::Tensor& position_ids,
                                                c10::ScalarType dtype) {
  const std::int64_t d = config.text.head_dim;
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  const at::Tensor inv_freq =
      1.0 / at::pow(config.rope_theta, at::arange(0, d, 2, f32) / static_cast<double>(d));
  // freqs [3, B, S, d/2]; band j takes stream 0 (t), 1 (h) or 2 (w) by mrope_section.
  const at::Tensor freqs = position_ids.to(at::kFloat).unsqueeze(-1) * inv_freq;
  std::vector<at::Tensor> bands;
  std::int64_t start = 0;
  for (std::size_t i = 0; i < config.mrope_section.size(); ++i) {
    bands.push_back(freqs[static_cast<std::int64_t>(i)].narrow(-1, start, config.mrope_section[i]));
    start += config.mrope_section[i];
  }
  const at::Tensor half = at::cat(bands, -1);
  const at::Tensor emb = at::cat({half, half}, -1);
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

}  // namespace glimpse::models::qwen2_vl
