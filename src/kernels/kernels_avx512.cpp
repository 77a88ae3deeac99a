// AVX-512 kernels. Only functions marked with the target attributes below use AVX-512; nothing
// else in this file (no templates, no library calls inside them) so that no AVX-512 code can leak
// into a COMDAT shared with the rest of the library. Callers check the CPU first (cpu_kernels.h).
// GCC 12 warns about _mm512_undefined_* inside its own reduce intrinsics (a false positive; as
// -Wuninitialized where the reduction is not inside a loop).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu_kernels.h"

#define GLIMPSE_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma")))
#define GLIMPSE_AVX512_INLINE \
  static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512dq,avx512vl,fma")))
#define GLIMPSE_AVX512BF16 \
  __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma,avx512bf16")))
#define GLIMPSE_AVX512BF16_INLINE \
  static inline                   \
      __attribute__((always_inline, target("avx512f,avx512bw,avx512dq,avx512vl,fma,avx512bf16")))

namespace glimpse::kernels {

bool avx512_available() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("fma");
  }();
  return ok;
}

bool avx512_bf16_available() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return avx512_available() && __builtin_cpu_supports("avx512bf16");
  }();
  return ok;
}

namespace avx512 {
namespace {

// Lanes [0, n) of 16.
GLIMPSE_AVX512_INLINE __mmask16 tail16(std::int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1u);
}

GLIMPSE_AVX512_INLINE __m512 load_bf16(const std::uint16_t* p, __mmask16 m) {
  const __m256i h = _mm256_maskz_loadu_epi16(m, p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

GLIMPSE_AVX512_INLINE __m512 load_f32(const float* p, __mmask16 m) {
  return _mm512_maskz_loadu_ps(m, p);
}

// Round to nearest even as c10::BFloat16 (NaN -> 0x7FC0); returns the 32-bit patterns with the
// result in the upper half.
GLIMPSE_AVX512_INLINE __m512i round_bits(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF)));
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  r = _mm512_mask_mov_epi32(r, nan, _mm512_set1_epi32(0x7FC00000));
  return _mm512_and_si512(r, _mm512_set1_epi32(static_cast<int>(0xFFFF0000u)));
}

// The fp32 value of v rounded to bf16.
GLIMPSE_AVX512_INLINE __m512 rnd(__m512 v) {
  return _mm512_castsi512_ps(round_bits(v));
}

GLIMPSE_AVX512_INLINE void store_bf16(std::uint16_t* p, __m512 v, __mmask16 m) {
  const __m256i h = _mm512_cvtepi32_epi16(_mm512_srli_epi32(round_bits(v), 16));
  _mm256_mask_storeu_epi16(p, m, h);
}

// exp(x) in fp32 (Cephes expf: Cody-Waite reduction, degree-5 polynomial, about 1 ulp); 0 below
// -88 so that masked scores (finfo.min) give exactly zero weight.
GLIMPSE_AVX512_INLINE __m512 exp512(__m512 x) {
  const __mmask16 tiny = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-88.0f), _CMP_LT_OQ);
  x = _mm512_min_ps(x, _mm512_set1_ps(88.3762626647949f));
  x = _mm512_max_ps(x, _mm512_set1_ps(-88.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500E-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_maskz_mov_ps(static_cast<__mmask16>(~tiny), _mm512_scalef_ps(p, n));
}

// silu(x) = x / (1 + exp(-x)) as ATen computes it.
GLIMPSE_AVX512_INLINE __m512 silu512(__m512 x) {
  const __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), x));
  return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

GLIMPSE_AVX512_INLINE float inv_rms(float ss, std::int64_t dim, float eps) {
  const float var = ss / static_cast<float>(dim);
  __m128 v = _mm_set_ss(var + eps);
  v = _mm_sqrt_ss(v);
  return 1.0f / _mm_cvtss_f32(v);
}

}  // namespace

GLIMPSE_AVX512 void rms_norm_bf16(const std::uint16_t* x, std::int64_t ld,
                                  const std::uint16_t* weight, std::uint16_t* out,
                                  std::int64_t rows, std::int64_t dim, float eps) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::uint16_t* xr = x + r * ld;
    std::uint16_t* o = out + r * dim;
    __m512 acc = _mm512_setzero_ps();
    for (std::int64_t j = 0; j < dim; j += 16) {
      const __m512 v = load_bf16(xr + j, tail16(dim - j));
      acc = _mm512_fmadd_ps(v, v, acc);
    }
    const __m512 inv = _mm512_set1_ps(inv_rms(_mm512_reduce_add_ps(acc), dim, eps));
    for (std::int64_t j = 0; j < dim; j += 16) {
      const __mmask16 m = tail16(dim - j);
      const __m512 h = rnd(_mm512_mul_ps(load_bf16(xr + j, m), inv));
      store_bf16(o + j, _mm512_mul_ps(load_bf16(weight + j, m), h), m);
    }
  }
}

GLIMPSE_AVX512 void rms_norm_f32(const float* x, std::int64_t ld, const float* weight, float* out,
                                 std::int64_t rows, std::int64_t dim, float eps) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ld;
    float* o = out + r * dim;
    __m512 acc = _mm512_setzero_ps();
    for (std::int64_t j = 0; j < dim; j += 16) {
      const __m512 v = load_f32(xr + j, tail16(dim - j));
      acc = _mm512_fmadd_ps(v, v, acc);
    }
    const __m512 inv = _mm512_set1_ps(inv_rms(_mm512_reduce_add_ps(acc), dim, eps));
    for (std::int64_t j = 0; j < dim; j += 16) {
      const __mmask16 m = tail16(dim - j);
      const __m512 h = _mm512_mul_ps(load_f32(xr + j, m), inv);
      _mm512_mask_storeu_ps(o + j, m, _mm512_mul_ps(load_f32(weight + j, m), h));
    }
  }
}

GLIMPSE_AVX512 void rope_bf16_round(std::uint16_t* x, std::int64_t ld, const std::uint16_t* cos,
                                    const std::uint16_t* sin, std::int64_t positions,
                                    std::int64_t heads, std::int64_t dim) {
  const std::int64_t half = dim / 2;
  for (std::int64_t p = 0; p < positions; ++p) {
    const std::uint16_t* c = cos + p * dim;
    const std::uint16_t* s = sin + p * dim;
    for (std::int64_t h = 0; h < heads; ++h) {
      std::uint16_t* xr = x + p * ld + h * dim;
      for (std::int64_t j = 0; j < half; j += 16) {
        const __mmask16 m = tail16(half - j);
        const __m512 x1 = load_bf16(xr + j, m), x2 = load_bf16(xr + half + j, m);
        // q * cos + cat(-x2, x1) * sin, each product and the sum rounded to bf16.
        const __m512 a1 = rnd(_mm512_mul_ps(x1, load_bf16(c + j, m)));
        const __m512 b1 =
            rnd(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), x2), load_bf16(s + j, m)));
        const __m512 a2 = rnd(_mm512_mul_ps(x2, load_bf16(c + half + j, m)));
        const __m512 b2 = rnd(_mm512_mul_ps(x1, load_bf16(s + half + j, m)));
        store_bf16(xr + j, _mm512_add_ps(a1, b1), m);
        store_bf16(xr + half + j, _mm512_add_ps(a2, b2), m);
      }
    }
  }
}

GLIMPSE_AVX512 void rope_bf16_f32math(std::uint16_t* x, std::int64_t ld, const float* cos,
                                      const float* sin, std::int64_t positions, std::int64_t heads,
                                      std::int64_t dim) {
  const std::int64_t half = dim / 2;
  for (std::int64_t p = 0; p < positions; ++p) {
    const float* c = cos + p * dim;
    const float* s = sin + p * dim;
    for (std::int64_t h = 0; h < heads; ++h) {
      std::uint16_t* xr = x + p * ld + h * dim;
      for (std::int64_t j = 0; j < half; j += 16) {
        const __mmask16 m = tail16(half - j);
        const __m512 x1 = load_bf16(xr + j, m), x2 = load_bf16(xr + half + j, m);
        const __m512 a1 = _mm512_mul_ps(x1, load_f32(c + j, m));
        const __m512 b1 = _mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), x2), load_f32(s + j, m));
        const __m512 a2 = _mm512_mul_ps(x2, load_f32(c + half + j, m));
        const __m512 b2 = _mm512_mul_ps(x1, load_f32(s + half + j, m));
        store_bf16(xr + j, _mm512_add_ps(a1, b1), m);
        store_bf16(xr + half + j, _mm512_add_ps(a2, b2), m);
      }
    }
  }
}

GLIMPSE_AVX512 void rope_f32(float* x, std::int64_t ld, const float* cos, const float* sin,
                             std::int64_t positions, std::int64_t heads, std::int64_t dim) {
  const std::int64_t half = dim / 2;
  for (std::int64_t p = 0; p < positions; ++p) {
    const float* c = cos + p * dim;
    const float* s = sin + p * dim;
    for (std::int64_t h = 0; h < heads; ++h) {
      float* xr = x + p * ld + h * dim;
      for (std::int64_t j = 0; j < half; j += 16) {
        const __mmask16 m = tail16(half - j);
        const __m512 x1 = load_f32(xr + j, m), x2 = load_f32(xr + half + j, m);
        const __m512 a1 = _mm512_mul_ps(x1, load_f32(c + j, m));
        const __m512 b1 = _mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), x2), load_f32(s + j, m));
        const __m512 a2 = _mm512_mul_ps(x2, load_f32(c + half + j, m));
        const __m512 b2 = _mm512_mul_ps(x1, load_f32(s + half + j, m));
        _mm512_mask_storeu_ps(xr + j, m, _mm512_add_ps(a1, b1));
        _mm512_mask_storeu_ps(xr + half + j, m, _mm512_add_ps(a2, b2));
      }
    }
  }
}

namespace {

// Overloads so that one softmax body serves bf16 and fp32 rows and masks.
GLIMPSE_AVX512_INLINE __m512 load_any(const std::uint16_t* p, __mmask16 m) {
  return load_bf16(p, m);
}
GLIMPSE_AVX512_INLINE __m512 load_any(const float* p, __mmask16 m) {
  return load_f32(p, m);
}
GLIMPSE_AVX512_INLINE void store_any(std::uint16_t* p, __m512 v, __mmask16 m) {
  store_bf16(p, v, m);
}
GLIMPSE_AVX512_INLINE void store_any(float* p, __m512 v, __mmask16 m) {
  _mm512_mask_storeu_ps(p, m, v);
}

// out = softmax(in * scale + mask) over one row of cols values (mask may be null), in fp32 with
// the result rounded once to Out; in and out may be the same row (in is read whole into tmp
// before out is written).
template <typename In, typename Mask, typename Out>
GLIMPSE_AVX512_INLINE void softmax_row(const In* in, const Mask* mask, Out* out, std::int64_t cols,
                                       float scale, float* tmp) {
  const __m512 sc = _mm512_set1_ps(scale);
  __m512 mx = _mm512_set1_ps(-__builtin_inff());
  for (std::int64_t j = 0; j < cols; j += 16) {
    const __mmask16 m = tail16(cols - j);
    __m512 v = _mm512_mul_ps(load_any(in + j, m), sc);
    if (mask) v = _mm512_add_ps(v, load_any(mask + j, m));
    _mm512_mask_storeu_ps(tmp + j, m, v);
    mx = _mm512_mask_max_ps(mx, m, mx, v);
  }
  mx = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
  __m512 sum = _mm512_setzero_ps();
  for (std::int64_t j = 0; j < cols; j += 16) {
    const __mmask16 m = tail16(cols - j);
    const __m512 e = _mm512_maskz_mov_ps(m, exp512(_mm512_sub_ps(load_f32(tmp + j, m), mx)));
    _mm512_mask_storeu_ps(tmp + j, m, e);
    sum = _mm512_add_ps(sum, e);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
  for (std::int64_t j = 0; j < cols; j += 16) {
    const __mmask16 m = tail16(cols - j);
    store_any(out + j, _mm512_mul_ps(load_f32(tmp + j, m), inv), m);
  }
}

}  // namespace

GLIMPSE_AVX512 void softmax_bf16(std::uint16_t* x, std::int64_t ld, std::int64_t row_begin,
                                 std::int64_t row_end, std::int64_t cols, float scale,
                                 const MaskSpec& mask, float* tmp) {
  const auto* md = static_cast<const std::uint16_t*>(mask.data);
  for (std::int64_t r = row_begin; r < row_end; ++r) {
    softmax_row(x + r * ld, md ? md + mask.offset(r) : nullptr, x + r * ld, cols, scale, tmp);
  }
}

GLIMPSE_AVX512 void softmax_f32(float* x, std::int64_t ld, std::int64_t row_begin,
                                std::int64_t row_end, std::int64_t cols, float scale,
                                const MaskSpec& mask, float* tmp) {
  const auto* md = static_cast<const float*>(mask.data);
  for (std::int64_t r = row_begin; r < row_end; ++r) {
    softmax_row(x + r * ld, md ? md + mask.offset(r) : nullptr, x + r * ld, cols, scale, tmp);
  }
}

namespace {

// q.k^T micro-kernels: R query rows x up to kQkKeys keys, 3R accumulators held in registers (24
// of the 32 at R = 8), three key vectors and one query broadcast live. 8 x 48 measured ~1.25x the
// 6 x 32 block at the vision tower's shape (D = 80, 4096 keys): each key load feeds 8 rows.
constexpr std::int64_t kQkKeys = 48;

// Loads and stores of the three key vectors for n <= kQkKeys keys.
struct KeyMasks {
  __mmask16 m[3];
};
GLIMPSE_AVX512_INLINE KeyMasks key_masks(std::int64_t n) {
  KeyMasks km;
  for (int v = 0; v < 3; ++v) km.m[v] = n > 16 * v ? tail16(n - 16 * v) : 0;
  return km;
}

template <int R>
struct QkBlockBf16 {
  GLIMPSE_AVX512BF16 static void run(const std::uint16_t* q, std::int64_t ldq,
                                     const std::uint32_t* kp, std::int64_t ldk, std::int64_t n,
                                     std::int64_t pairs, float* out, std::int64_t ldo) {
    const KeyMasks km = key_masks(n);
    __m512 acc[R][3];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = acc[r][2] = _mm512_setzero_ps();
    for (std::int64_t j = 0; j < pairs; ++j) {
      const std::uint32_t* kr = kp + j * ldk;
      const __m512bh k0 = (__m512bh)_mm512_maskz_loadu_epi32(km.m[0], kr);
      const __m512bh k1 = (__m512bh)_mm512_maskz_loadu_epi32(km.m[1], kr + 16);
      const __m512bh k2 = (__m512bh)_mm512_maskz_loadu_epi32(km.m[2], kr + 32);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        std::uint32_t pair;
        __builtin_memcpy(&pair, q + r * ldq + 2 * j, 4);
        const __m512bh qb = (__m512bh)_mm512_set1_epi32(static_cast<int>(pair));
        acc[r][0] = _mm512_dpbf16_ps(acc[r][0], qb, k0);
        acc[r][1] = _mm512_dpbf16_ps(acc[r][1], qb, k1);
        acc[r][2] = _mm512_dpbf16_ps(acc[r][2], qb, k2);
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      for (int v = 0; v < 3; ++v) {
        if (km.m[v]) _mm512_mask_storeu_ps(out + r * ldo + 16 * v, km.m[v], acc[r][v]);
      }
    }
  }
};

template <int R>
struct QkBlockF32 {
  GLIMPSE_AVX512 static void run(const float* q, std::int64_t ldq, const float* kt,
                                 std::int64_t ldk, std::int64_t n, std::int64_t d, float* out,
                                 std::int64_t ldo) {
    const KeyMasks km = key_masks(n);
    __m512 acc[R][3];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = acc[r][2] = _mm512_setzero_ps();
    for (std::int64_t j = 0; j < d; ++j) {
      const float* kr = kt + j * ldk;
      const __m512 k0 = _mm512_maskz_loadu_ps(km.m[0], kr);
      const __m512 k1 = _mm512_maskz_loadu_ps(km.m[1], kr + 16);
      const __m512 k2 = _mm512_maskz_loadu_ps(km.m[2], kr + 32);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const __m512 qb = _mm512_set1_ps(q[r * ldq + j]);
        acc[r][0] = _mm512_fmadd_ps(qb, k0, acc[r][0]);
        acc[r][1] = _mm512_fmadd_ps(qb, k1, acc[r][1]);
        acc[r][2] = _mm512_fmadd_ps(qb, k2, acc[r][2]);
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      for (int v = 0; v < 3; ++v) {
        if (km.m[v]) _mm512_mask_storeu_ps(out + r * ldo + 16 * v, km.m[v], acc[r][v]);
      }
    }
  }
};

// Block<nr>::run(args...) for nr in [1, R]: the accumulators must stay in registers, so the row
// count is a template argument and the last rows of a call pick a smaller instance.
template <template <int> class Block, int R, typename... Args>
void run_rows(std::int64_t nr, Args... args) {
  if constexpr (R == 1) {
    Block<1>::run(args...);
  } else if (nr == R) {
    Block<R>::run(args...);
  } else {
    run_rows<Block, R - 1>(nr, args...);
  }
}

// All rows x cols through Block tiles of kQkRows x kQkKeys. No AVX-512 code of its own.
template <template <int> class Block, typename T, typename K>
void qk_tiles(const T* q, std::int64_t ldq, std::int64_t rows, const K* keys, std::int64_t ldk,
              std::int64_t cols, std::int64_t depth, float* out, std::int64_t ldo) {
  for (std::int64_t r = 0; r < rows; r += kQkRows) {
    const std::int64_t nr = rows - r < kQkRows ? rows - r : kQkRows;
    for (std::int64_t c = 0; c < cols; c += kQkKeys) {
      const std::int64_t n = cols - c < kQkKeys ? cols - c : kQkKeys;
      run_rows<Block, static_cast<int>(kQkRows)>(nr, q + r * ldq, ldq, keys + c, ldk, n, depth,
                                                 out + r * ldo + c, ldo);
    }
  }
}

}  // namespace

GLIMPSE_AVX512BF16 void qk_bf16(const std::uint16_t* q, std::int64_t ldq, std::int64_t rows,
                                const std::uint32_t* kp, std::int64_t ldk, std::int64_t cols,
                                std::int64_t pairs, float* out, std::int64_t ldo) {
  qk_tiles<QkBlockBf16>(q, ldq, rows, kp, ldk, cols, pairs, out, ldo);
}

GLIMPSE_AVX512 void qk_f32(const float* q, std::int64_t ldq, std::int64_t rows, const float* kt,
                           std::int64_t ldk, std::int64_t cols, std::int64_t d, float* out,
                           std::int64_t ldo) {
  qk_tiles<QkBlockF32>(q, ldq, rows, kt, ldk, cols, d, out, ldo);
}

GLIMPSE_AVX512 void softmax_rows_to_bf16(const float* in, std::int64_t ld_in, std::uint16_t* out,
                                         std::int64_t ld_out, std::int64_t row_begin,
                                         std::int64_t row_end, std::int64_t cols, float scale,
                                         const MaskSpec& mask, float* tmp) {
  const auto* md = static_cast<const std::uint16_t*>(mask.data);
  for (std::int64_t r = row_begin; r < row_end; ++r) {
    softmax_row(in + (r - row_begin) * ld_in, md ? md + mask.offset(r) : nullptr,
                out + (r - row_begin) * ld_out, cols, scale, tmp);
  }
}

GLIMPSE_AVX512 void softmax_rows_to_f32(const float* in, std::int64_t ld_in, float* out,
                                        std::int64_t ld_out, std::int64_t row_begin,
                                        std::int64_t row_end, std::int64_t cols, float scale,
                                        const MaskSpec& mask, float* tmp) {
  const auto* md = static_cast<const float*>(mask.data);
  for (std::int64_t r = row_begin; r < row_end; ++r) {
    softmax_row(in + (r - row_begin) * ld_in, md ? md + mask.offset(r) : nullptr,
                out + (r - row_begin) * ld_out, cols, scale, tmp);
  }
}

GLIMPSE_AVX512 void silu_mul_bf16(std::uint16_t* gate, const std::uint16_t* up, std::int64_t n) {
  for (std::int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = tail16(n - j);
    const __m512 s = rnd(silu512(load_bf16(gate + j, m)));
    store_bf16(gate + j, _mm512_mul_ps(s, load_bf16(up + j, m)), m);
  }
}

GLIMPSE_AVX512 void silu_mul_f32(float* gate, const float* up, std::int64_t n) {
  for (std::int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = tail16(n - j);
    const __m512 s = silu512(load_f32(gate + j, m));
    _mm512_mask_storeu_ps(gate + j, m, _mm512_mul_ps(s, load_f32(up + j, m)));
  }
}

GLIMPSE_AVX512 void round_to_bf16(const float* in, std::uint16_t* out, std::int64_t n) {
  for (std::int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = tail16(n - j);
    store_bf16(out + j, load_f32(in + j, m), m);
  }
}

GLIMPSE_AVX512 void silu_mul_rows_bf16(const float* g, const float* u, std::uint16_t* out,
                                       std::int64_t n) {
  for (std::int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = tail16(n - j);
    const __m512 s = rnd(silu512(rnd(load_f32(g + j, m))));
    store_bf16(out + j, _mm512_mul_ps(s, rnd(load_f32(u + j, m))), m);
  }
}

GLIMPSE_AVX512 void silu_mul_rows_f32(const float* g, const float* u, float* out, std::int64_t n) {
  for (std::int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = tail16(n - j);
    _mm512_mask_storeu_ps(out + j, m,
                          _mm512_mul_ps(silu512(load_f32(g + j, m)), load_f32(u + j, m)));
  }
}

// GEMV rows are read one at a time, front to back: a task is then one sequential stream, which
// the hardware prefetchers follow at close to the read bandwidth. Interleaving four rows (four
// short streams restarting at every row end) measured 15-20 % slower on Zen 5. Four accumulators
// per row hide the dot-product latency.
GLIMPSE_AVX512BF16 void gemv_bf16(const std::uint16_t* w, std::int64_t ldw, const std::uint16_t* x,
                                  std::int64_t k, const std::uint16_t* bias, std::int64_t row_begin,
                                  std::int64_t row_end, float* out) {
  // Each vdpbf16ps multiplies 32 bf16 pairs and adds them pairwise into 16 fp32 lanes.
  const std::int64_t k128 = k / 128 * 128, k32 = k / 32 * 32;
  const __mmask32 tail_mask =
      k - k32 == 0 ? 0 : static_cast<__mmask32>((std::uint64_t{1} << (k - k32)) - 1);
  for (std::int64_t r = row_begin; r < row_end; ++r) {
    const std::uint16_t* wr = w + r * ldw;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(),
           a3 = _mm512_setzero_ps();
    std::int64_t j = 0;
    for (; j < k128; j += 128) {
      a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_loadu_si512(wr + j),
                            (__m512bh)_mm512_loadu_si512(x + j));
      a1 = _mm512_dpbf16_ps(a1, (__m512bh)_mm512_loadu_si512(wr + j + 32),
                            (__m512bh)_mm512_loadu_si512(x + j + 32));
      a2 = _mm512_dpbf16_ps(a2, (__m512bh)_mm512_loadu_si512(wr + j + 64),
                            (__m512bh)_mm512_loadu_si512(x + j + 64));
      a3 = _mm512_dpbf16_ps(a3, (__m512bh)_mm512_loadu_si512(wr + j + 96),
                            (__m512bh)_mm512_loadu_si512(x + j + 96));
    }
    for (; j < k32; j += 32) {
      a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_loadu_si512(wr + j),
                            (__m512bh)_mm512_loadu_si512(x + j));
    }
    if (tail_mask) {
      a1 = _mm512_dpbf16_ps(a1, (__m512bh)_mm512_maskz_loadu_epi16(tail_mask, wr + k32),
                            (__m512bh)_mm512_maskz_loadu_epi16(tail_mask, x + k32));
    }
    out[r - row_begin] =
        _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
  }
  if (bias) {
    for (std::int64_t i = row_begin; i < row_end; ++i) {
      const std::uint32_t b = static_cast<std::uint32_t>(bias[i]) << 16;
      float bf;
      __builtin_memcpy(&bf, &b, 4);
      out[i - row_begin] += bf;
    }
  }
}

GLIMPSE_AVX512 void gemv_f32(const float* w, std::int64_t ldw, const float* x, std::int64_t k,
                             const float* bias, std::int64_t row_begin, std::int64_t row_end,
                             float* out) {
  const std::int64_t k64 = k / 64 * 64;
  for (std::int64_t r = row_begin; r < row_end; ++r) {
    const float* wr = w + r * ldw;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(),
           a3 = _mm512_setzero_ps();
    std::int64_t j = 0;
    for (; j < k64; j += 64) {
      a0 = _mm512_fmadd_ps(_mm512_loadu_ps(wr + j), _mm512_loadu_ps(x + j), a0);
      a1 = _mm512_fmadd_ps(_mm512_loadu_ps(wr + j + 16), _mm512_loadu_ps(x + j + 16), a1);
      a2 = _mm512_fmadd_ps(_mm512_loadu_ps(wr + j + 32), _mm512_loadu_ps(x + j + 32), a2);
      a3 = _mm512_fmadd_ps(_mm512_loadu_ps(wr + j + 48), _mm512_loadu_ps(x + j + 48), a3);
    }
    for (; j < k; j += 16) {
      const __mmask16 m = tail16(k - j);
      a0 = _mm512_fmadd_ps(load_f32(wr + j, m), load_f32(x + j, m), a0);
    }
    out[r - row_begin] =
        _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
  }
  if (bias) {
    for (std::int64_t i = row_begin; i < row_end; ++i) out[i - row_begin] += bias[i];
  }
}

namespace {

// Batched GEMV. Each result keeps the four accumulator chains of gemv_bf16 / gemv_f32 (chain c
// takes vector c of every block of four, chain 0 the remaining whole vectors, the tail goes to
// chain 1 in bf16 and chain 0 in fp32) and their final sum, so it is bitwise the one-input
// result. The chains are independent, so a block of R rows computes them one after the other in
// four passes: R x M accumulators (24 at 3 x 8) instead of 4 x R x M, each input vector loaded
// feeds R rows and each weight vector M inputs. One row at a time with all four chains (an input
// load per vdpbf16ps) ran at half the memory bandwidth at M = 8.

// The final sum of gemv_bf16 / gemv_f32's four accumulators, in their order.
GLIMPSE_AVX512_INLINE float gemv_sum(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

// Rows per block: R x M accumulators, R weight vectors and one input vector in registers.
constexpr int gemv_block_rows(int m) {
  return m <= 6 ? 4 : 3;
}

// Software prefetch for a step of pass c at byte offset g (a 256-byte group: one line per chain)
// of R rows `ldw` bytes apart. A pass reads one line in four, which the hardware prefetchers do
// not follow (a quarter of the bandwidth). Pass 0 asks for the group's other three lines (into
// L1, for passes 1-3) and for the next block's group (into L2); every pass asks again for the
// next block, in address order from `next`. Each of the three measured 10-25 % at M = 8 on
// Zen 4 (2 threads: 1.05 ms per [8960, 1536] bf16 matrix against 1.19 ms without the repeat).
template <int R>
GLIMPSE_AVX512_INLINE void gemv_prefetch(const char* w, std::int64_t ldw, std::int64_t g, int c,
                                         const char*& next) {
  if (c == 0) {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const char* cur = w + r * ldw + g;
      const char* nxt = w + (R + r) * ldw + g;
      _mm_prefetch(cur + 64, _MM_HINT_T0);
      _mm_prefetch(cur + 128, _MM_HINT_T0);
      _mm_prefetch(cur + 192, _MM_HINT_T0);
      _mm_prefetch(nxt, _MM_HINT_T1);
      _mm_prefetch(nxt + 64, _MM_HINT_T1);
      _mm_prefetch(nxt + 128, _MM_HINT_T1);
      _mm_prefetch(nxt + 192, _MM_HINT_T1);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) _mm_prefetch(next + 64 * r, _MM_HINT_T1);
  next += 64 * R;
}

template <int R, int M>
struct GemvBlockBf16 {
  // 32 values of R weight rows times the same 32 of M inputs, into acc.
  GLIMPSE_AVX512BF16_INLINE void step(__m512 (&acc)[R][M], const std::uint16_t* w, std::int64_t ldw,
                                      const std::uint16_t* x, std::int64_t ldx, __mmask32 m) {
    __m512bh wv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) wv[r] = (__m512bh)_mm512_maskz_loadu_epi16(m, w + r * ldw);
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      const __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(m, x + i * ldx);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r][i] = _mm512_dpbf16_ps(acc[r][i], wv[r], xv);
    }
  }

  GLIMPSE_AVX512BF16 static void run(const std::uint16_t* w, std::int64_t ldw,
                                     const std::uint16_t* x, std::int64_t ldx, std::int64_t k,
                                     float* out, std::int64_t ldo) {
    const std::int64_t k128 = k / 128 * 128, k32 = k / 32 * 32;
    const auto* bytes = reinterpret_cast<const char*>(w);
    const char* next = bytes + R * ldw * 2;
    __m512 chain[4][R][M];
#pragma GCC unroll 1
    for (int c = 0; c < 4; ++c) {
      __m512 acc[R][M];
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
        for (int i = 0; i < M; ++i) acc[r][i] = _mm512_setzero_ps();
      }
      for (std::int64_t g = 0; g < k128; g += 128) {
        step(acc, w + g + 32 * c, ldw, x + g + 32 * c, ldx, ~0u);
        gemv_prefetch<R>(bytes, ldw * 2, g * 2, c, next);
      }
      if (c == 0) {
        for (std::int64_t j = k128; j < k32; j += 32) step(acc, w + j, ldw, x + j, ldx, ~0u);
      } else if (c == 1 && k > k32) {
        step(acc, w + k32, ldw, x + k32, ldx,
             static_cast<__mmask32>((std::uint64_t{1} << (k - k32)) - 1));
      }
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
        for (int i = 0; i < M; ++i) chain[c][r][i] = acc[r][i];
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
      for (int i = 0; i < M; ++i) {
        out[i * ldo + r] = gemv_sum(chain[0][r][i], chain[1][r][i], chain[2][r][i], chain[3][r][i]);
      }
    }
  }
};

template <int R, int M>
struct GemvBlockF32 {
  GLIMPSE_AVX512_INLINE void step(__m512 (&acc)[R][M], const float* w, std::int64_t ldw,
                                  const float* x, std::int64_t ldx, __mmask16 m) {
    __m512 wv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) wv[r] = load_f32(w + r * ldw, m);
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      const __m512 xv = load_f32(x + i * ldx, m);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r][i] = _mm512_fmadd_ps(wv[r], xv, acc[r][i]);
    }
  }

  GLIMPSE_AVX512 static void run(const float* w, std::int64_t ldw, const float* x, std::int64_t ldx,
                                 std::int64_t k, float* out, std::int64_t ldo) {
    const std::int64_t k64 = k / 64 * 64;
    const auto* bytes = reinterpret_cast<const char*>(w);
    const char* next = bytes + R * ldw * 4;
    __m512 chain[4][R][M];
#pragma GCC unroll 1
    for (int c = 0; c < 4; ++c) {
      __m512 acc[R][M];
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
        for (int i = 0; i < M; ++i) acc[r][i] = _mm512_setzero_ps();
      }
      for (std::int64_t g = 0; g < k64; g += 64) {
        step(acc, w + g + 16 * c, ldw, x + g + 16 * c, ldx, 0xFFFF);
        gemv_prefetch<R>(bytes, ldw * 4, g * 4, c, next);
      }
      if (c == 0) {
        for (std::int64_t j = k64; j < k; j += 16) step(acc, w + j, ldw, x + j, ldx, tail16(k - j));
      }
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
        for (int i = 0; i < M; ++i) chain[c][r][i] = acc[r][i];
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
      for (int i = 0; i < M; ++i) {
        out[i * ldo + r] = gemv_sum(chain[0][r][i], chain[1][r][i], chain[2][r][i], chain[3][r][i]);
      }
    }
  }
};

// Block<n, M> for the last n < R rows.
template <template <int, int> class Block, int M, int R, typename T>
void gemv_last_rows(std::int64_t n, const T* w, std::int64_t ldw, const T* x, std::int64_t ldx,
                    std::int64_t k, float* out, std::int64_t ldo) {
  if constexpr (R > 1) {
    if (n < R) return gemv_last_rows<Block, M, R - 1>(n, w, ldw, x, ldx, k, out, ldo);
  }
  Block<R, M>::run(w, ldw, x, ldx, k, out, ldo);
}

// Rows [row_begin, row_end) in blocks of R = gemv_block_rows(M) for m = M inputs (M found from m
// from 2 up); no AVX-512 code of its own.
template <template <int, int> class Block, int M = 2, typename T>
void gemv_blocks(const T* w, std::int64_t ldw, const T* x, std::int64_t ldx, std::int64_t m,
                 std::int64_t k, std::int64_t row_begin, std::int64_t row_end, float* out,
                 std::int64_t ldo) {
  if constexpr (M < kGemvMaxInputs) {
    if (m > M) return gemv_blocks<Block, M + 1>(w, ldw, x, ldx, m, k, row_begin, row_end, out, ldo);
  }
  constexpr int R = gemv_block_rows(M);
  std::int64_t r = row_begin;
  for (; r + R <= row_end; r += R) {
    Block<R, M>::run(w + r * ldw, ldw, x, ldx, k, out + (r - row_begin), ldo);
  }
  if (r < row_end) {
    gemv_last_rows<Block, M, R - 1>(row_end - r, w + r * ldw, ldw, x, ldx, k, out + (r - row_begin),
                                    ldo);
  }
}

}  // namespace

GLIMPSE_AVX512BF16 void gemv_batch_bf16(const std::uint16_t* w, std::int64_t ldw,
                                        const std::uint16_t* x, std::int64_t ldx, std::int64_t m,
                                        std::int64_t k, const std::uint16_t* bias,
                                        std::int64_t row_begin, std::int64_t row_end, float* out,
                                        std::int64_t ldo) {
  if (m == 1) {
    gemv_bf16(w, ldw, x, k, bias, row_begin, row_end, out);
    return;
  }
  gemv_blocks<GemvBlockBf16>(w, ldw, x, ldx, m, k, row_begin, row_end, out, ldo);
  if (bias) {
    for (std::int64_t r = row_begin; r < row_end; ++r) {
      const std::uint32_t b = static_cast<std::uint32_t>(bias[r]) << 16;
      float bf;
      __builtin_memcpy(&bf, &b, 4);
      for (std::int64_t i = 0; i < m; ++i) out[i * ldo + r - row_begin] += bf;
    }
  }
}

GLIMPSE_AVX512 void gemv_batch_f32(const float* w, std::int64_t ldw, const float* x,
                                   std::int64_t ldx, std::int64_t m, std::int64_t k,
                                   const float* bias, std::int64_t row_begin, std::int64_t row_end,
                                   float* out, std::int64_t ldo) {
  if (m == 1) {
    gemv_f32(w, ldw, x, k, bias, row_begin, row_end, out);
    return;
  }
  gemv_blocks<GemvBlockF32>(w, ldw, x, ldx, m, k, row_begin, row_end, out, ldo);
  if (bias) {
    for (std::int64_t r = row_begin; r < row_end; ++r) {
      for (std::int64_t i = 0; i < m; ++i) out[i * ldo + r - row_begin] += bias[r];
    }
  }
}

}  // namespace avx512
}  // namespace glimpse::kernels
