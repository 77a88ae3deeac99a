#include "glimpse/core/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <random>

#include "glimpse/core/error.h"
#include "test_util.h"

namespace glimpse::core {
namespace {

using test::TempDir;

// A file made of an 8-byte little-endian length, the header text and the data bytes.
std::string make_file(const std::string& header, const std::string& data,
                      std::uint64_t length_override = UINT64_MAX) {
  std::uint64_t n = length_override == UINT64_MAX ? header.size() : length_override;
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

SafetensorsHeader parse(const std::string& bytes) {
  return parse_safetensors(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(),
                           "t.safetensors");
}

// Expects a FormatError whose message contains `needle`.
void expect_format_error(const std::string& bytes, const std::string& needle) {
  try {
    parse(bytes);
    ADD_FAILURE() << "accepted, expected an error containing '" << needle << "'";
  } catch (const FormatError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(needle), std::string::npos) << what;
    EXPECT_EQ(what.rfind("t.safetensors: ", 0), 0u) << "message must name the file: " << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << "message must be one line";
  }
}

const std::string kOneF32 = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";

TEST(SafetensorsParseTest, AcceptsValidHeaderAndMetadata) {
  const auto h = parse(make_file(
      R"({"__metadata__":{"format":"pt"},"b":{"dtype":"I64","shape":[1],"data_offsets":[8,16]},)"
      R"("a":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]}}   )",
      std::string(16, '\1')));
  ASSERT_EQ(h.tensors.size(), 2u);
  EXPECT_EQ(h.tensors[0].name, "a");  // sorted by offset
  EXPECT_EQ(h.tensors[0].dtype, DType::BF16);
  EXPECT_EQ(h.tensors[0].shape, (std::vector<std::int64_t>{2, 2}));
  EXPECT_EQ(h.tensors[1].name, "b");
  EXPECT_EQ(h.metadata.at("format"), "pt");
}

TEST(SafetensorsParseTest, AcceptsEmptyAndScalarTensors) {
  const auto h = parse(make_file(R"({"e":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},)"
                                 R"("s":{"dtype":"U8","shape":[],"data_offsets":[0,1]}})",
                                 "\x07"));
  ASSERT_EQ(h.tensors.size(), 2u);
  EXPECT_EQ(h.tensors[0].numel(), 0);
  EXPECT_EQ(h.tensors[1].numel(), 1);
}

// One malformed input per validation rule of the reference implementation.
TEST(SafetensorsParseTest, RejectsEachMalformedCase) {
  expect_format_error("abc", "too small");
  expect_format_error(make_file("{}", "", 200'000'000), "exceeds the limit");
  expect_format_error(make_file("{}", "", 64), "runs past the end");
  expect_format_error(make_file("{\"x\xff\":1}", ""), "not valid UTF-8");
  expect_format_error(make_file(" {}", ""), "must start with '{'");
  expect_format_error(make_file("[1]", ""), "must start with '{'");
  expect_format_error(make_file("{\"x\":", ""), "invalid JSON");
  expect_format_error(make_file("{}x", ""), "invalid JSON");
  expect_format_error(
      make_file("{\"a\":" + std::string(100, '[') + std::string(100, ']') + "}", ""),
      "nested deeper");
  expect_format_error(make_file(R"({"x":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},)"
                                R"("x":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}})",
                                ""),
                      "duplicate key 'x'");
  expect_format_error(make_file(R"({"x":[1,2]})", ""), "tensor 'x': expected an object");
  expect_format_error(make_file(R"({"x":{"shape":[2],"data_offsets":[0,8]}})", std::string(8, 0)),
                      "missing key 'dtype'");
  expect_format_error(
      make_file(R"({"x":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})", "ab"),
      "unknown dtype");
  expect_format_error(make_file(R"({"x":{"dtype":7,"shape":[2],"data_offsets":[0,2]}})", "ab"),
                      "'dtype' must be a string");
  expect_format_error(make_file(R"({"x":{"dtype":"F32","data_offsets":[0,8]}})", std::string(8, 0)),
                      "missing key 'shape'");
  expect_format_error(
      make_file(R"({"x":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", std::string(8, 0)),
      "'shape' must be an array");
  expect_format_error(
      make_file(R"({"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", std::string(8, 0)),
      "shape[0]: expected a non-negative integer, found -2");
  expect_format_error(
      make_file(R"({"x":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", std::string(8, 0)),
      "shape[0]: expected a non-negative integer");
  expect_format_error(
      make_file(R"({"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})",
                std::string(8, 0)),
      "overflows");
  expect_format_error(
      make_file(R"({"x":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,8]}})",
                std::string(8, 0)),
      "shape[0]");
  expect_format_error(
      make_file(R"({"x":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,8]}})",
                std::string(8, 0)),
      "byte count overflows");
  expect_format_error(make_file(R"({"x":{"dtype":"F32","shape":[2]}})", std::string(8, 0)),
                      "missing key 'data_offsets'");
  expect_format_error(
      make_file(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", std::string(8, 0)),
      "'data_offsets' must be an array [begin, end]");
  expect_format_error(
      make_file(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", std::string(8, 0)),
      "end before begin");
  expect_format_error(
      make_file(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,12]}})", std::string(12, 0)),
      "span 12 bytes, expected 8");
  expect_format_error(
      make_file(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", std::string(12, 0)),
      "gap after the previous tensor");
  expect_format_error(make_file(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                R"("y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                std::string(12, 0)),
                      "overlaps the previous tensor");
  expect_format_error(make_file(kOneF32, std::string(12, 0)), "after the header");
  expect_format_error(make_file(kOneF32, std::string(4, 0)), "after the header");
  expect_format_error(make_file(R"({"__metadata__":{"k":1}})", ""), "'__metadata__' key 'k'");
  expect_format_error(make_file(R"({"__metadata__":[1]})", ""), "'__metadata__' must be an object");
}

// Deterministic mutations of a valid file: every result is accepted or rejected with a
// FormatError, never anything else (the fuzz target explores further).
TEST(SafetensorsParseTest, MutationsNeverEscapeAsOtherErrors) {
  const std::string valid = make_file(
      R"({"__metadata__":{"a":"b"},"w":{"dtype":"F16","shape":[3,2],"data_offsets":[0,12]},)"
      R"("v":{"dtype":"I32","shape":[1],"data_offsets":[12,16]}})",
      std::string(16, '\x3c'));
  std::mt19937 rng(1234);
  for (int i = 0; i < 3000; ++i) {
    std::string m = valid;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const std::size_t pos = rng() % m.size();
      switch (rng() % 3) {
        case 0:
          m[pos] = static_cast<char>(rng() & 0xff);
          break;
        case 1:
          m.erase(pos, 1 + rng() % 3);
          break;
        default:
          m.insert(pos, 1, "{}[]\",:0-9e"[rng() % 11]);
          break;
      }
      if (m.empty()) m = "x";
    }
    try {
      parse(m);
    } catch (const FormatError&) {
    }
  }
}

TEST(SafetensorsFileTest, WriterReaderRoundTripEveryDType) {
  TempDir dir;
  const DType all[] = {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64,
                       DType::I32, DType::I16, DType::I8,  DType::U8,   DType::Bool};
  std::vector<std::vector<std::uint8_t>> buffers;
  std::vector<NamedView> views;
  for (const DType d : all) {
    const std::vector<std::int64_t> shape{2, 3};
    std::vector<std::uint8_t> bytes(6 * dtype_size(d));
    for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::uint8_t>(i * 7 + 1);
    if (d == DType::Bool) {
      for (auto& b : bytes) b &= 1;
    }
    buffers.push_back(bytes);
    views.push_back({"t_" + std::string(dtype_name(d)), {d, shape, nullptr, bytes.size()}});
  }
  for (std::size_t i = 0; i < views.size(); ++i) views[i].view.data = buffers[i].data();
  views.push_back({"empty", {DType::F32, {0}, nullptr, 0}});
  const std::string path = dir.file("all.safetensors");
  write_safetensors(path, views, {{"format", "pt"}});

  const auto file = SafetensorsFile::open(path);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  ASSERT_EQ(file.tensors().size(), views.size());
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    const auto v = file.view(views[i].name);
    EXPECT_EQ(v.dtype, views[i].view.dtype);
    EXPECT_EQ(v.shape, views[i].view.shape);
    ASSERT_EQ(v.nbytes, buffers[i].size());
    EXPECT_EQ(std::memcmp(v.data, buffers[i].data(), v.nbytes), 0) << views[i].name;
  }
  EXPECT_EQ(file.view("empty").nbytes, 0u);
  // The header is padded so that data starts 8-byte aligned.
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(file.view(views[0].name).data) % 8, 0u);
}

TEST(SafetensorsFileTest, WriterRejectsBadViews) {
  TempDir dir;
  const float x[2] = {1, 2};
  EXPECT_THROW(write_safetensors(dir.file("a"), {{"x", {DType::F32, {3}, x, 8}}}), InputError);
  EXPECT_THROW(write_safetensors(dir.file("b"),
                                 {{"x", {DType::F32, {2}, x, 8}}, {"x", {DType::F32, {2}, x, 8}}}),
               InputError);
  EXPECT_THROW(write_safetensors(dir.file("c"), {{"__metadata__", {DType::F32, {2}, x, 8}}}),
               InputError);
}

TEST(SafetensorsFileTest, OpenErrorsNameThePath) {
  TempDir dir;
  try {
    SafetensorsFile::open(dir.file("missing.safetensors"));
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("missing.safetensors"), std::string::npos);
  }
  EXPECT_THROW(SafetensorsFile::open(dir.path().string()), InputError);  // a folder
  std::ofstream(dir.file("empty.safetensors")).close();
  EXPECT_THROW(SafetensorsFile::open(dir.file("empty.safetensors")), FormatError);
  const float x[2] = {1, 2};
  write_safetensors(dir.file("ok.safetensors"), {{"x", {DType::F32, {2}, x, 8}}});
  const auto f = SafetensorsFile::open(dir.file("ok.safetensors"));
  EXPECT_EQ(f.find("nope"), nullptr);
  EXPECT_THROW(f.info("nope"), InputError);
}

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    write_safetensors(dir_.file("a.safetensors"),
                      {{"w1", {DType::F32, {2}, x_, 8}}, {"w2", {DType::F32, {2}, x_, 8}}});
    write_safetensors(dir_.file("b.safetensors"), {{"w3", {DType::F32, {1}, x_, 4}}});
  }
  void write_index(const std::string& text) {
    std::ofstream(dir_.file("model.safetensors.index.json")) << text;
  }
  TempDir dir_;
  const float x_[2] = {3, 4};
};

TEST_F(CheckpointTest, OpensShardsThroughTheIndex) {
  write_index(R"({"metadata":{"total_size":20},"weight_map":{"w1":"a.safetensors",)"
              R"("w2":"a.safetensors","w3":"b.safetensors"}})");
  const auto ckpt = Checkpoint::open(dir_.path().string());
  EXPECT_EQ(ckpt.files().size(), 2u);
  EXPECT_EQ(ckpt.names(), (std::vector<std::string>{"w1", "w2", "w3"}));
  EXPECT_TRUE(ckpt.contains("w3"));
  EXPECT_EQ(ckpt.info("w3").shape, (std::vector<std::int64_t>{1}));
  EXPECT_EQ(*static_cast<const float*>(ckpt.view("w3").data), 3.0f);
  EXPECT_THROW(ckpt.view("w4"), InputError);
}

TEST_F(CheckpointTest, RejectsBadIndexes) {
  const std::string dir = dir_.path().string();
  write_index(R"({"metadata":{}})");
  EXPECT_THROW(Checkpoint::open(dir), FormatError);
  write_index(R"({"weight_map":{"w1":"../a.safetensors"}})");
  EXPECT_THROW(Checkpoint::open(dir), FormatError);
  write_index(R"({"weight_map":{"w1":"b.safetensors"}})");
  EXPECT_THROW(Checkpoint::open(dir), FormatError);
  write_index(R"({"weight_map":{"w1":"c.safetensors"}})");
  EXPECT_THROW(Checkpoint::open(dir), InputError);
  write_index(R"({"weight_map":{"w1":3}})");
  EXPECT_THROW(Checkpoint::open(dir), FormatError);
  write_index(R"({"weight_map":)");
  EXPECT_THROW(Checkpoint::open(dir), FormatError);
}

TEST(CheckpointOpenTest, FolderWithoutWeightsIsAnInputError) {
  TempDir dir;
  EXPECT_THROW(Checkpoint::open(dir.path().string()), InputError);
}

}  // namespace
}  // namespace glimpse::core
