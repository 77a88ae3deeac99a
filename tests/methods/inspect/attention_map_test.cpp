// AttentionMap and heatmaps driven by hand-set attention probes on a hand-made token layout:
// two images and a video between text, so that every map must land on its own medium and cell.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "glimpse/core/error.h"
#include "glimpse/methods/inspect/attention_map.h"
#include "glimpse/methods/inspect/heatmap.h"
#include "glimpse/models/clip/image_processing.h"
#include "glimpse/pipeline/pipeline.h"
#include "glimpse/vision/image_io.h"
#include "test_util.h"

namespace glimpse::methods::inspect {
namespace {

using model::Modality;

// text x2 | image0 grid (1,2,3) | text | image1 grid (1,3,2) | video0 grid (2,2,2) | text x2
struct HandLayout {
  model::TokenLayout layout;
  std::int64_t image0 = 2, image1 = 9, video0 = 15, length = 25;

  HandLayout() {
    const auto i64 = at::TensorOptions().dtype(at::kLong);
    layout.modality = at::zeros({1, length}, at::TensorOptions().dtype(at::kChar));
    layout.media_index = at::full({1, length}, -1, i64);
    layout.grid = at::full({1, length, 3}, -1, i64);
    layout.positions = at::arange(length, i64).view({1, 1, length});
    layout.original_index = at::arange(length, i64).view({1, length});
    fill(image0, Modality::Image, 0, 1, 2, 3);
    fill(image1, Modality::Image, 1, 1, 3, 2);
    fill(video0, Modality::Video, 0, 2, 2, 2);
  }
  void fill(std::int64_t start, Modality m, std::int64_t index, std::int64_t t, std::int64_t h,
            std::int64_t w) {
    std::int64_t k = start;
    for (std::int64_t a = 0; a < t; ++a)
      for (std::int64_t b = 0; b < h; ++b)
        for (std::int64_t c = 0; c < w; ++c, ++k) {
          layout.modality[0][k] = static_cast<int>(m);
          layout.media_index[0][k] = index;
          layout.grid[0][k][0] = a;
          layout.grid[0][k][1] = b;
          layout.grid[0][k][2] = c;
        }
  }
};

model::DecoderShape shape() {
  model::DecoderShape s;
  s.num_layers = 3;
  s.num_heads = 4;
  s.num_kv_heads = 2;
  s.hidden_size = 8;
  s.head_dim = 2;
  return s;
}

// Runs the prefill hook sequence the decoder runs (pre, probe, attention probe) with `fill`
// choosing the probe's probabilities [1, 4, rows, keys] per layer.
template <typename Fill>
void run_prefill(AttentionMap& m, const HandLayout& hl, Fill&& fill) {
  const model::DecoderShape sh = shape();
  for (std::int64_t layer = 0; layer < sh.num_layers; ++layer) {
    model::BlockPre pre;
    pre.layer = layer;
    pre.prefill = true;
    pre.shape = &sh;
    pre.hidden = at::zeros({1, hl.length, 8});
    pre.layout = &hl.layout;
    m.on_block_pre(pre);
    const auto request = m.probe(model::ProbeSite{layer, true, model::ProbeStage::Attention});
    if (!request) continue;
    model::AttentionProbe probe;
    probe.layer = layer;
    probe.prefill = true;
    probe.rows = request->rows.resolve(hl.length, "test");
    probe.probs =
        at::zeros({1, 4, static_cast<std::int64_t>(probe.rows.size()), hl.length}, at::kFloat);
    fill(layer, probe.probs);
    m.on_attention_probe(probe);
  }
}

const MediaMap& find(const std::vector<MediaMap>& maps, Modality m, std::int64_t index) {
  for (const auto& x : maps) {
    if (x.modality == m && x.index == index) return x;
  }
  throw std::runtime_error("medium not found");
}

TEST(AttentionMapTest, AllMassOnOnePatchPeaksOnThatCell) {
  HandLayout hl;
  AttentionMapOptions o;
  o.layers = {1};
  AttentionMap m(o);
  std::vector<std::int64_t> probed;
  // Image 0, cell (h 1, w 2): key image0 + 1 * 3 + 2.
  const std::int64_t key = hl.image0 + 5;
  run_prefill(m, hl, [&](std::int64_t layer, at::Tensor& p) {
    probed.push_back(layer);
    p.select(3, key).fill_(1.0f);
  });
  EXPECT_EQ(probed, std::vector<std::int64_t>{1});
  EXPECT_EQ(m.query_indices(), std::vector<std::int64_t>{hl.length - 1});
  const auto maps = m.maps();
  ASSERT_EQ(maps.size(), 3u);
  EXPECT_EQ(maps[0].name(), "image0");
  EXPECT_EQ(maps[1].name(), "image1");
  EXPECT_EQ(maps[2].name(), "video0");
  const MediaMap& img = maps[0];
  EXPECT_EQ(img.maps.sizes(), (at::IntArrayRef{1, 4, 1, 2, 3}));
  for (std::int64_t h = 0; h < 4; ++h) {
    const at::Tensor grid = img.maps[0][h][0];
    EXPECT_FLOAT_EQ(grid[1][2].item<float>(), 1.0f);
    EXPECT_FLOAT_EQ(grid.sum().item<float>(), 1.0f);
    EXPECT_EQ(grid.argmax().item<std::int64_t>(), 1 * 3 + 2);
  }
  EXPECT_EQ(maps[1].maps.abs().sum().item<float>(), 0.0f);
  EXPECT_EQ(maps[2].maps.abs().sum().item<float>(), 0.0f);
}

TEST(AttentionMapTest, TwoImagesAndVideoFramesLandOnTheirOwnMedia) {
  HandLayout hl;
  AttentionMapOptions o;
  o.query = QuerySelector::parse("span:3-5");
  o.heads = {2, 0, 1};  // sorted: 0, 1, 2
  AttentionMap m(o);
  const std::int64_t img1_cell = hl.image1 + 2 * 2 + 1;           // (t0, h2, w1)
  const std::int64_t vid_cell = hl.video0 + (1 * 2 + 0) * 2 + 1;  // (t1, h0, w1)
  run_prefill(m, hl, [&](std::int64_t layer, at::Tensor& p) {
    ASSERT_EQ(p.size(2), 3);
    // head 0: row 0 on image0 (0,0,0), rows 1-2 on image1's cell; head 1: the video cell;
    // head 2: half on image0 (0,0,0), half on text; head 3 (not chosen): image1 only.
    p[0][0][0][hl.image0] = 1.0f;
    p[0][0][1][img1_cell] = 1.0f;
    p[0][0][2][img1_cell] = 1.0f;
    p[0][1].select(1, vid_cell).fill_(static_cast<float>(layer + 1) / 4.0f);
    p[0][1].select(1, 0).fill_(1.0f - static_cast<float>(layer + 1) / 4.0f);
    p[0][2].select(1, hl.image0).fill_(0.5f);
    p[0][2].select(1, 1).fill_(0.5f);
    p[0][3].select(1, hl.image1).fill_(1.0f);
  });
  EXPECT_EQ(m.heads(), (std::vector<std::int64_t>{0, 1, 2}));
  EXPECT_EQ(m.layers(), (std::vector<std::int64_t>{0, 1, 2}));
  EXPECT_EQ(m.query_indices(), (std::vector<std::int64_t>{3, 4, 5}));
  const auto maps = m.maps();
  const MediaMap& i0 = find(maps, Modality::Image, 0);
  const MediaMap& i1 = find(maps, Modality::Image, 1);
  const MediaMap& v0 = find(maps, Modality::Video, 0);
  EXPECT_EQ(i1.maps.sizes(), (at::IntArrayRef{3, 3, 1, 3, 2}));
  EXPECT_EQ(v0.maps.sizes(), (at::IntArrayRef{3, 3, 2, 2, 2}));
  for (std::int64_t l = 0; l < 3; ++l) {
    EXPECT_NEAR(i0.maps[l][0][0][0][0].item<float>(), 1.0 / 3, 1e-6);
    EXPECT_NEAR(i1.maps[l][0][0][2][1].item<float>(), 2.0 / 3, 1e-6);
    EXPECT_NEAR(i0.maps[l][0].sum().item<float>() + i1.maps[l][0].sum().item<float>(), 1.0, 1e-6);
    EXPECT_EQ(v0.maps[l][0].sum().item<float>(), 0.0f);
    // The video head: only step t = 1, cell (0, 1), with the layer's mass.
    EXPECT_NEAR(v0.maps[l][1][1][0][1].item<float>(), (l + 1) / 4.0, 1e-6);
    EXPECT_NEAR(v0.maps[l][1].sum().item<float>(), (l + 1) / 4.0, 1e-6);
    EXPECT_EQ(v0.maps[l][1][0].sum().item<float>(), 0.0f);
    EXPECT_EQ(i0.maps[l][1].sum().item<float>() + i1.maps[l][1].sum().item<float>(), 0.0f);
    // Head 2: half on image0, the text half nowhere.
    EXPECT_NEAR(i0.maps[l][2][0][0][0].item<float>(), 0.5, 1e-6);
    EXPECT_EQ(i1.maps[l][2].sum().item<float>(), 0.0f);
  }
  // Head mean of image0 at (0,0,0): (1/3 + 0 + 1/2) / 3.
  EXPECT_NEAR(i0.head_mean()[0][0][0][0].item<float>(), (1.0 / 3 + 0.5) / 3, 1e-6);
}

TEST(AttentionMapTest, GeneratedQueriesAverageTheDecodeSteps) {
  HandLayout hl;
  AttentionMapOptions o;
  o.query = QuerySelector::parse("generated");
  o.layers = {2};
  AttentionMap m(o);
  run_prefill(m, hl, [&](std::int64_t, at::Tensor&) { FAIL() << "no prefill probe expected"; });
  const model::DecoderShape sh = shape();
  const auto i64 = at::TensorOptions().dtype(at::kLong);
  for (std::int64_t step = 0; step < 2; ++step) {
    const std::int64_t past = hl.length + step;
    model::TokenLayout dl;
    dl.modality = at::zeros({1, 1}, at::TensorOptions().dtype(at::kChar));
    dl.media_index = at::full({1, 1}, -1, i64);
    dl.grid = at::full({1, 1, 3}, -1, i64);
    dl.positions = at::full({1, 1, 1}, past, i64);
    dl.original_index = at::full({1, 1}, past, i64);
    for (std::int64_t layer = 0; layer < 3; ++layer) {
      model::BlockPre pre;
      pre.layer = layer;
      pre.shape = &sh;
      pre.hidden = at::zeros({1, 1, 8});
      pre.layout = &dl;
      m.on_block_pre(pre);
      const auto request = m.probe(model::ProbeSite{layer, false, model::ProbeStage::Attention});
      ASSERT_EQ(request.has_value(), layer == 2);
      if (!request) continue;
      EXPECT_EQ(request->rows, model::RowSelection::last_row());
      model::AttentionProbe probe;
      probe.layer = layer;
      probe.rows = {0};
      // keys: the prompt, then the tokens generated so far (which are never visual)
      probe.probs = at::zeros({1, 4, 1, past + 1});
      probe.probs.select(3, step == 0 ? hl.video0 : hl.video0 + 7).fill_(0.75f);
      probe.probs.select(3, past).fill_(0.25f);
      m.on_attention_probe(probe);
    }
  }
  EXPECT_EQ(m.query_indices(), (std::vector<std::int64_t>{hl.length, hl.length + 1}));
  EXPECT_EQ(m.rows_seen(), 2);
  const auto maps = m.maps();
  const MediaMap& v0 = find(maps, Modality::Video, 0);
  EXPECT_NEAR(v0.maps[0][3][0][0][0].item<float>(), 0.375, 1e-6);
  EXPECT_NEAR(v0.maps[0][3][1][1][1].item<float>(), 0.375, 1e-6);
  EXPECT_NEAR(v0.maps.sum().item<float>(), 4 * 0.75, 1e-5);
}

TEST(AttentionMapTest, BadSelectorsLayersAndHeadsAreOneLineErrors) {
  for (const char* bad : {"first", "token:", "token:-1", "token:x", "span:5-3", "span:4",
                          "span:a-b", "generated:1", ""}) {
    EXPECT_THROW(QuerySelector::parse(bad), InputError) << bad;
  }
  EXPECT_EQ(QuerySelector::parse("span:2-7").to_string(), "span:2-7");
  EXPECT_EQ(QuerySelector::parse("token:12").last, 12);
  const auto message = [](AttentionMapOptions o) {
    HandLayout hl;
    AttentionMap m(o);
    try {
      run_prefill(m, hl, [](std::int64_t, at::Tensor&) {});
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  AttentionMapOptions o;
  o.layers = {1, 3};
  EXPECT_NE(message(o).find("layer 3 out of range"), std::string::npos) << message(o);
  o.layers = {};
  o.heads = {4};
  EXPECT_NE(message(o).find("head 4 out of range"), std::string::npos);
  o.heads = {};
  o.query = QuerySelector::parse("token:25");
  EXPECT_NE(message(o).find("outside the prompt of 25 tokens"), std::string::npos);
  o.layers = {-1};
  EXPECT_THROW(AttentionMap{o}, InputError);
  // Through the pipeline registry: errors name the key.
  auto error = [](const std::string& spec) {
    try {
      pipeline::Pipeline::from_json(spec, "p.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(error(R"({"methods": [{"type": "attention_map", "query": "middle"}]})").find("'query'"),
            std::string::npos);
  EXPECT_NE(error(R"({"methods": [{"type": "attention_map", "layers": [-2]}]})").find("'layers'"),
            std::string::npos);
  EXPECT_NE(error(R"({"methods": [{"type": "attention_map", "rows": 1}]})").find("'rows'"),
            std::string::npos);
  EXPECT_EQ(error(R"({"methods": [{"type": "attention_map", "layers": [0], "query": "token:3"}]})"),
            "accepted");
}

// JET at full scale blended over grey: the colour of the hottest cell.
std::array<int, 3> hottest_colour(double alpha, int grey) {
  // COLORMAP_JET(255) is BGR (0, 0, 128): dark red.
  return {static_cast<int>(std::lround(grey * (1 - alpha) + 128 * alpha)),
          static_cast<int>(std::lround(grey * (1 - alpha))),
          static_cast<int>(std::lround(grey * (1 - alpha)))};
}

TEST(HeatmapTest, ThePngPeaksOverThePatchOfTheMass) {
  HandLayout hl;
  AttentionMapOptions o;
  o.layers = {0};
  o.heads = {1};
  AttentionMap m(o);
  run_prefill(m, hl, [&](std::int64_t, at::Tensor& p) {
    p.select(3, hl.image0 + 5).fill_(0.9f);  // image0 cell (1, 2)
    p.select(3, hl.image0).fill_(0.1f);      // and a little on (0, 0)
  });
  const MediaMap img = m.maps()[0];
  // A 60 x 40 grey picture: cells of the 2 x 3 grid are 20 x 20 pixels.
  vision::Image picture(60, 40);
  std::fill(picture.rgb.begin(), picture.rgb.end(), 100);
  test::TempDir dir;
  const auto files =
      write_heatmaps(dir.path().string(), img, m.layers(), m.heads(), {picture}, std::nullopt);
  EXPECT_EQ(files, (std::vector<std::string>{"image0/layer0_head1.png", "image0/layer0_mean.png",
                                             "image0/mean.png"}));
  const vision::Image png = vision::load_image(dir.file("image0/layer0_head1.png"));
  ASSERT_EQ(png.width, 60);
  ASSERT_EQ(png.height, 40);
  const auto hot = hottest_colour(0.5, 100);
  int best = -1000, bx = -1, by = -1;
  for (int y = 0; y < 40; ++y) {
    for (int x = 0; x < 60; ++x) {
      const auto* px = png.pixel(x, y);
      const bool in_patch = x >= 40 && y >= 20;
      const bool is_hot = std::abs(px[0] - hot[0]) <= 1 && std::abs(px[1] - hot[1]) <= 1 &&
                          std::abs(px[2] - hot[2]) <= 1;
      EXPECT_EQ(is_hot, in_patch) << x << "," << y;
      // "Heat" as red minus blue: JET runs blue -> red.
      const int heat = px[0] - px[2];
      if (heat > best) best = heat, bx = x, by = y;
    }
  }
  EXPECT_GE(bx, 40);
  EXPECT_GE(by, 20);
  // The cell with a ninth of the peak is blue-ish, unlike the rest (value 0: JET's dark blue).
  const auto* low = png.pixel(5, 5);
  const auto* zero = png.pixel(25, 5);
  EXPECT_NE(std::vector<int>(low, low + 3), std::vector<int>(zero, zero + 3));
  EXPECT_GT(zero[2], zero[0]);
}

TEST(HeatmapTest, PlacementLimitsTheOverlayAndBilinearKeepsThePeak) {
  at::Tensor map = at::zeros({4, 4});
  map[2][1] = 1.0f;
  vision::Image picture(40, 40);
  std::fill(picture.rgb.begin(), picture.rgb.end(), 50);
  // The grid covers only x in [10, 30), y in [0, 40): outside it the picture is untouched.
  const GridPlacement p{10, 0, 30, 40};
  const vision::Image out = render_heatmap(picture, map, {}, p);
  for (int y = 0; y < 40; ++y) {
    for (int x : {0, 9, 30, 39}) EXPECT_EQ(out.pixel(x, y)[1], 50) << x << "," << y;
  }
  // Cell (2, 1): x in [15, 20), y in [20, 30).
  EXPECT_EQ(out.pixel(17, 25)[0], hottest_colour(0.5, 50)[0]);
  HeatmapOptions smooth;
  smooth.interpolation = Interpolation::Bilinear;
  const vision::Image b = render_heatmap(picture, map, smooth, p);
  int best = -1000, bx = 0, by = 0;
  for (int y = 0; y < 40; ++y) {
    for (int x = 0; x < 40; ++x) {
      const int heat = b.pixel(x, y)[0] - b.pixel(x, y)[2];
      if (heat > best) best = heat, bx = x, by = y;
    }
  }
  EXPECT_TRUE(bx >= 15 && bx < 20 && by >= 20 && by < 30) << bx << "," << by;
  EXPECT_THROW(render_heatmap(picture, at::zeros({4})), InputError);
}

TEST(HeatmapTest, ClipPlacementMapsTheCentreCropBack) {
  models::clip::ImageProcessorConfig c;
  c.shortest_edge = 56;
  c.crop_height = c.crop_width = 56;
  // 64 x 48 -> resized to 74 x 56 (int(56 * 64 / 48)), crop left (74 - 56) // 2 = 9.
  GridPlacement p = models::clip::grid_placement(64, 48, c);
  EXPECT_NEAR(p.x0, 9 * 64.0 / 74, 1e-9);
  EXPECT_NEAR(p.x1, 65 * 64.0 / 74, 1e-9);
  EXPECT_NEAR(p.y0, 0, 1e-9);
  EXPECT_NEAR(p.y1, 48, 1e-9);
  // Pad to a square first: the grid covers the 64 x 64 square, 8 pixels above and below.
  c.pad_mode = models::clip::PadMode::MeanColor;
  p = models::clip::grid_placement(64, 48, c);
  EXPECT_NEAR(p.x0, 0, 1e-9);
  EXPECT_NEAR(p.x1, 64, 1e-9);
  EXPECT_NEAR(p.y0, -8, 1e-9);
  EXPECT_NEAR(p.y1, 56, 1e-9);
}

}  // namespace
}  // namespace glimpse::methods::inspect
