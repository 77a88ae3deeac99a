#pragma once

// Raw-pointer CPU kernels with an AVX-512 implementation (kernels_avx512.cpp) chosen at run time.
// bf16 values are passed as their 16-bit patterns. Every function here works on a range of rows
// so that callers split the work with at::parallel_for; none allocates. Callers must check
// avx512_available() / avx512_bf16_available() first: the functions are compiled for those
// instruction sets and fault on CPUs without them.

#include <cstdint>

namespace glimpse::kernels {

// AVX512F + BW + DQ + VL (Skylake-X and later).
bool avx512_available();
// The above plus AVX512-BF16 (vdpbf16ps; Cooper Lake, Zen 4 and later).
bool avx512_bf16_available();

namespace avx512 {

// RMSNorm of `rows` rows of `dim` elements, rows `ld` apart, written densely (rows x dim) to out:
// transformers Qwen2RMSNorm.forward: variance in fp32, x * rsqrt(var + eps) rounded to the
// input dtype, then times weight (rounded again). out may alias x.
void rms_norm_bf16(const std::uint16_t* x, std::int64_t ld, const std::uint16_t* weight,
                   std::uint16_t* out, std::int64_t rows, std::int64_t dim, float eps);
void rms_norm_f32(const float* x, std::int64_t ld, const float* weight, float* out,
                  std::int64_t rows, std::int64_t dim, float eps);

// Rotary embedding in place on x [positions, heads, dim] (positions `ld` elements apart, heads
// dense) with per-position cos/sin rows [positions, dim] (dense): x * cos + rotate_half(x) * sin.
//   *_round: bf16 data and tables, every op rounded to bf16 as ATen's bf16 ops do (the decoder);
//   *_f32math: bf16 data, fp32 tables, fp32 arithmetic, one rounding at the end (the vision
//   tower's apply_rotary_pos_emb_vision).
void rope_bf16_round(std::uint16_t* x, std::int64_t ld, const std::uint16_t* cos,
                     const std::uint16_t* sin, std::int64_t positions, std::int64_t heads,
                     std::int64_t dim);
void rope_bf16_f32math(std::uint16_t* x, std::int64_t ld, const float* cos, const float* sin,
                       std::int64_t positions, std::int64_t heads, std::int64_t dim);
void rope_f32(float* x, std::int64_t ld, const float* cos, const float* sin, std::int64_t positions,
              std::int64_t heads, std::int64_t dim);

// Softmax in place over rows of `cols` values, rows `ld` apart: softmax(x * scale + mask) in
// fp32, written back in the row dtype. mask (nullable) is in the same dtype; row r reads the mask
// at offset (r / group) * batch_ld + (r % period) * ld (the mask of a batch broadcast over heads).
// `tmp` holds `cols` floats.
struct MaskSpec {
  const void* data = nullptr;
  std::int64_t ld = 0, batch_ld = 0, period = 1, group = 1;
  std::int64_t offset(std::int64_t r) const { return (r / group) * batch_ld + (r % period) * ld; }
};
void softmax_bf16(std::uint16_t* x, std::int64_t ld, std::int64_t row_begin, std::int64_t row_end,
                  std::int64_t cols, float scale, const MaskSpec& mask, float* tmp);
void softmax_f32(float* x, std::int64_t ld, std::int64_t row_begin, std::int64_t row_end,
                 std::int64_t cols, float scale, const MaskSpec& mask, float* tmp);

// Attention scores out[r, c] = sum_j q[r, j] k[c, j] for rows [0, rows) and keys [0, cols), in
// fp32. bf16: keys packed as pairs kp[j][c] = (k[c, 2j], k[c, 2j+1]) (`pairs` = D / 2, rows of kp
// `ldk` apart), needs AVX512-BF16. f32: keys transposed kt[j][c] (D rows `ldk` apart).
// Rows are computed in tiles of kQkRows (callers split work in multiples of it).
constexpr std::int64_t kQkRows = 8;
void qk_bf16(const std::uint16_t* q, std::int64_t ldq, std::int64_t rows, const std::uint32_t* kp,
             std::int64_t ldk, std::int64_t cols, std::int64_t pairs, float* out, std::int64_t ldo);
void qk_f32(const float* q, std::int64_t ldq, std::int64_t rows, const float* kt, std::int64_t ldk,
            std::int64_t cols, std::int64_t d, float* out, std::int64_t ldo);
// Softmax of fp32 rows `in` (ld_in apart) into `out` (ld_out apart) in bf16 or fp32, as
// softmax_*; rows [row_begin, row_end) are global row indices for the mask, `in` and `out` point
// at row_begin.
void softmax_rows_to_bf16(const float* in, std::int64_t ld_in, std::uint16_t* out,
                          std::int64_t ld_out, std::int64_t row_begin, std::int64_t row_end,
                          std::int64_t cols, float scale, const MaskSpec& mask, float* tmp);
void softmax_rows_to_f32(const float* in, std::int64_t ld_in, float* out, std::int64_t ld_out,
                         std::int64_t row_begin, std::int64_t row_end, std::int64_t cols,
                         float scale, const MaskSpec& mask, float* tmp);

// gate <- act(gate) * up elementwise (act: 0 silu), n values; bf16 rounds after silu and after
// the product as ATen does.
void silu_mul_bf16(std::uint16_t* gate, const std::uint16_t* up, std::int64_t n);
void silu_mul_f32(float* gate, const float* up, std::int64_t n);

// Matrix-vector rows [row_begin, row_end) of W [rows, k] (rows `ldw` apart) times x [k], plus
// bias (nullable), into out[row - row_begin] as fp32 (not rounded). The bf16 version needs
// AVX512-BF16.
void gemv_bf16(const std::uint16_t* w, std::int64_t ldw, const std::uint16_t* x, std::int64_t k,
               const std::uint16_t* bias, std::int64_t row_begin, std::int64_t row_end, float* out);
void gemv_f32(const float* w, std::int64_t ldw, const float* x, std::int64_t k, const float* bias,
              std::int64_t row_begin, std::int64_t row_end, float* out);
// The same for m inputs x[i] [k] (rows `ldx` apart, 1 <= m <= kGemvMaxInputs) into
// out[i * ldo + row - row_begin]: each weight row is read from memory once for all inputs. The
// result for x[i] is bitwise that of gemv_* on x[i] alone (same accumulators, same order).
constexpr std::int64_t kGemvMaxInputs = 8;
void gemv_batch_bf16(const std::uint16_t* w, std::int64_t ldw, const std::uint16_t* x,
                     std::int64_t ldx, std::int64_t m, std::int64_t k, const std::uint16_t* bias,
                     std::int64_t row_begin, std::int64_t row_end, float* out, std::int64_t ldo);
void gemv_batch_f32(const float* w, std::int64_t ldw, const float* x, std::int64_t ldx,
                    std::int64_t m, std::int64_t k, const float* bias, std::int64_t row_begin,
                    std::int64_t row_end, float* out, std::int64_t ldo);

// fp32 -> bf16 (round to nearest even, as c10::BFloat16), n values.
void round_to_bf16(const float* in, std::uint16_t* out, std::int64_t n);
// silu(g) * u on fp32 values with the dtype's roundings (bf16: g, u already rounded; silu and the
// product rounded), written as bf16 or fp32.
void silu_mul_rows_bf16(const float* g, const float* u, std::uint16_t* out, std::int64_t n);
void silu_mul_rows_f32(const float* g, const float* u, float* out, std::int64_t n);

}  // namespace avx512
}  // namespace glimpse::kernels
