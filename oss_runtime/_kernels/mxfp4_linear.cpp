// Fused MXFP4 dequantize + multiply for a few tokens (decode): y = x @ dequant(blocks, scales).T + b
//
// blocks [R, G, 16] uint8 (two e2m1 codes per byte, low nibble = even element), scales [R, G]
// uint8 (e8m0, bias 127), x [T, K = 32 G] float32, bias [R] float32 or empty -> y [T, R] float32.
// Every weight is rebuilt exactly (e2m1 value times a power of two); only the summation order
// differs from dequantize-then-matmul. Rows are split over threads with at::parallel_for; the
// inner loop uses AVX-512 or AVX2 when the CPU has them (checked at run time), else plain C++.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define OSS_X86 1
#endif

namespace {

const float kE2M1[16] = {0.f, .5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f,
                         -0.f, -.5f, -1.f, -1.5f, -2.f, -3.f, -4.f, -6.f};

struct Args {
  const float* x;   // [T, K]
  const float* xe;  // [T, K/2] even elements of x
  const float* xo;  // [T, K/2] odd elements of x
  const float* xp;  // [T, K] x in the exact AVX2 kernel's pair layout (see exact_tile), or null
  const uint8_t* blocks;
  const uint8_t* scales;
  const float* bias;
  float* y;
  int64_t T, G, R;
};

struct ScaleTable {
  float v[256];
  ScaleTable() {
    for (int s = 0; s < 256; ++s) v[s] = std::ldexp(1.0f, s - 127);  // 255 -> inf, special-cased
  }
};
const ScaleTable kScale;

struct HalfScaleTable {  // 2^(s-128): the scale of a code table holding twice each e2m1 value
  float v[256];
  HalfScaleTable() {
    for (int s = 0; s < 256; ++s) v[s] = std::ldexp(1.0f, s - 128);
  }
};
const HalfScaleTable kHalfScale;

inline float scale_of(uint8_t s) { return kScale.v[s]; }

// ``base + offset`` for a prefetch, which may point past the end of the array (a prefetch never
// faults); computed on integers, as pointer arithmetic past the end is undefined.
inline const char* ahead(const void* base, int64_t offset) {
  return reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(base) + uintptr_t(offset));
}

// One 32-value block rebuilt exactly into lo[16] (even elements) and hi[16] (odd elements).
inline void decode_block(const uint8_t* b, uint8_t s, float* lo, float* hi) {
  if (s == 255) {  // 2^128 overflows float: scale each value in two steps, as ldexp does
    for (int j = 0; j < 16; ++j) {
      lo[j] = std::ldexp(kE2M1[b[j] & 15], 128);
      hi[j] = std::ldexp(kE2M1[b[j] >> 4], 128);
    }
    return;
  }
  const float f = scale_of(s);
  for (int j = 0; j < 16; ++j) {
    lo[j] = kE2M1[b[j] & 15] * f;
    hi[j] = kE2M1[b[j] >> 4] * f;
  }
}

void rows_scalar(const Args& a, int64_t r0, int64_t r1) {
  const int64_t K2 = a.G * 16;
  float lo[16], hi[16];
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t t = 0; t < a.T; ++t) {
      const float* xe = a.xe + t * K2;
      const float* xo = a.xo + t * K2;
      float acc = 0.f;
      for (int64_t g = 0; g < a.G; ++g) {
        decode_block(a.blocks + (r * a.G + g) * 16, a.scales[r * a.G + g], lo, hi);
        for (int j = 0; j < 16; ++j) acc += lo[j] * xe[g * 16 + j] + hi[j] * xo[g * 16 + j];
      }
      a.y[t * a.R + r] = acc + (a.bias ? a.bias[r] : 0.f);
    }
  }
}

#ifdef OSS_X86
// One token, four rows at a time: independent accumulator chains keep the FMA units busy.
__attribute__((target("avx512f"))) int64_t rows_avx512_t1(const Args& a, int64_t r0, int64_t r1) {
  constexpr int RB = 4;
  const __m512 table = _mm512_loadu_ps(kE2M1);
  const __m512i low4 = _mm512_set1_epi32(15);
  int64_t r = r0;
  for (; r + RB <= r1; r += RB) {
    __m512 acc0[RB], acc1[RB];
    for (int k = 0; k < RB; ++k) acc0[k] = acc1[k] = _mm512_setzero_ps();
    for (int64_t g = 0; g < a.G; ++g) {
      const __m512 xe = _mm512_loadu_ps(a.xe + g * 16);
      const __m512 xo = _mm512_loadu_ps(a.xo + g * 16);
      for (int k = 0; k < RB; ++k) {
        const int64_t i = (r + k) * a.G + g;
        __m512 lo, hi;
        if (a.scales[i] == 255) {
          alignas(64) float l[16], h[16];
          decode_block(a.blocks + i * 16, a.scales[i], l, h);
          lo = _mm512_load_ps(l);
          hi = _mm512_load_ps(h);
        } else {
          const __m512i codes = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(a.blocks + i * 16)));
          const __m512 f = _mm512_set1_ps(scale_of(a.scales[i]));
          lo = _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_and_si512(codes, low4), table), f);
          hi = _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(codes, 4), table), f);
        }
        acc0[k] = _mm512_fmadd_ps(lo, xe, acc0[k]);
        acc1[k] = _mm512_fmadd_ps(hi, xo, acc1[k]);
      }
    }
    for (int k = 0; k < RB; ++k) {
      a.y[r + k] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[k], acc1[k])) + (a.bias ? a.bias[r + k] : 0.f);
    }
  }
  return r;  // rows left over are done by the general loop
}

__attribute__((target("avx512f"))) void rows_avx512(const Args& a, int64_t r0, int64_t r1) {
  constexpr int TB = 8;  // tokens per pass: each block is decoded once per pass
  const int64_t K2 = a.G * 16;
  const __m512 table = _mm512_loadu_ps(kE2M1);
  const __m512i low4 = _mm512_set1_epi32(15);
  if (a.T == 1) r0 = rows_avx512_t1(a, r0, r1);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* rb = a.blocks + r * a.G * 16;
    const uint8_t* rs = a.scales + r * a.G;
    for (int64_t t0 = 0; t0 < a.T; t0 += TB) {
      const int nt = int(std::min<int64_t>(TB, a.T - t0));
      __m512 acc0[TB], acc1[TB];
      for (int t = 0; t < TB; ++t) acc0[t] = acc1[t] = _mm512_setzero_ps();
      for (int64_t g = 0; g < a.G; ++g) {
        __m512 lo, hi;
        if (rs[g] == 255) {
          alignas(64) float l[16], h[16];
          decode_block(rb + g * 16, rs[g], l, h);
          lo = _mm512_load_ps(l);
          hi = _mm512_load_ps(h);
        } else {
          const __m512i codes = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(rb + g * 16)));
          const __m512 f = _mm512_set1_ps(scale_of(rs[g]));
          lo = _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_and_si512(codes, low4), table), f);
          hi = _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(codes, 4), table), f);
        }
        for (int t = 0; t < nt; ++t) {
          const int64_t off = (t0 + t) * K2 + g * 16;
          acc0[t] = _mm512_fmadd_ps(lo, _mm512_loadu_ps(a.xe + off), acc0[t]);
          acc1[t] = _mm512_fmadd_ps(hi, _mm512_loadu_ps(a.xo + off), acc1[t]);
        }
      }
      for (int t = 0; t < nt; ++t) {
        const float s = _mm512_reduce_add_ps(_mm512_add_ps(acc0[t], acc1[t]));
        a.y[(t0 + t) * a.R + r] = s + (a.bias ? a.bias[r] : 0.f);
      }
    }
  }
}

__attribute__((target("avx2,fma"))) inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// Twice each e2m1 value (0, 1, 2, 3, 4, 6, 8, 12 and their negatives) is a bfloat16, so a code
// becomes its exact float32 with two byte shuffles (the bfloat16's high and low byte) and a shift
// into the top half of a 32-bit lane; no integer-to-float conversion.
//
// Blocks go in pairs: 32 weight bytes in one 256-bit register (block 2p in the low 128 bits,
// 2p + 1 in the high). Their low nibbles and their high nibbles each give 32 codes; interleaving
// the two shuffles' bytes gives 16-bit words (bytes 0-7 of each half, then bytes 8-15), and the
// even words shifted up and the odd words masked give 4 vectors of 8 floats per nibble half.
// `pair_element` says which element of the pair each float lands on; x is stored in that order
// (the pair layout), so the products need no shuffles. An odd last block and any block with scale
// 255 (2^128, which overflows the sum-then-scale order) take the exact per-element route.
inline int pair_element(int v, int lane) {  // v: vector 0-7, lane: 0-7 -> element 0-63
  const int nibble = v / 4, word = 2 * (lane % 4) + v % 2, byte = (v % 4 >= 2 ? 8 : 0) + word;
  return (lane / 4) * 32 + 2 * byte + nibble;
}

void to_pair_layout(const float* x, float* xp, int64_t T, int64_t G) {
  int map[64];
  for (int v = 0; v < 8; ++v)
    for (int lane = 0; lane < 8; ++lane) map[v * 8 + lane] = pair_element(v, lane);
  const int64_t K = G * 32;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t p = 0; p < G / 2; ++p) {
      const float* src = x + t * K + p * 64;
      float* dst = xp + t * K + p * 64;
      for (int i = 0; i < 64; ++i) dst[i] = src[map[i]];
    }
}

// Block g of row r times x (token t), exactly, one element at a time.
inline float block_dot(const Args& a, int64_t r, int64_t g, int64_t t) {
  float lo[16], hi[16];
  decode_block(a.blocks + (r * a.G + g) * 16, a.scales[r * a.G + g], lo, hi);
  const float* xt = a.x + t * a.G * 32 + g * 32;
  float s = 0.f;
  for (int j = 0; j < 16; ++j) s += lo[j] * xt[2 * j] + hi[j] * xt[2 * j + 1];
  return s;
}

// RB rows by up to TB tokens; each pair of blocks is decoded once into 8 vectors of exact values,
// whose 64 products with a token's x are summed before the pair's two scales apply.
template <int RB, int TB>
__attribute__((target("avx2,fma"))) void exact_tile(const Args& a, int64_t r, int64_t t0, int nt) {
  const __m256i hi_byte = _mm256_broadcastsi128_si256(_mm_setr_epi8(
      0x00, 0x3F, 0x40, 0x40, 0x40, 0x40, 0x41, 0x41, -0x80, -0x41, -0x40, -0x40, -0x40, -0x40, -0x3F, -0x3F));
  const __m256i lo_byte = _mm256_broadcastsi128_si256(_mm_setr_epi8(
      0x00, -0x80, 0x00, 0x40, -0x80, -0x40, 0x00, 0x40, 0x00, -0x80, 0x00, 0x40, -0x80, -0x40, 0x00, 0x40));
  const __m256i low4 = _mm256_set1_epi8(15), top16 = _mm256_set1_epi32(int(0xFFFF0000u));
  const int64_t G = a.G, K = G * 32, pairs = G / 2;
  const uint8_t* wb[RB];
  const uint8_t* ws[RB];
  for (int k = 0; k < RB; ++k) {
    wb[k] = a.blocks + (r + k) * G * 16;
    ws[k] = a.scales + (r + k) * G;
  }
  __m256 acc[RB][TB];
  for (int k = 0; k < RB; ++k)
    for (int t = 0; t < TB; ++t) acc[k][t] = _mm256_setzero_ps();
  float rest[RB][TB] = {};  // the per-element route's sums
  // One token reads each weight once, from memory: the next tile's bytes are fetched at the pace
  // this tile is read (as q8_tile does); a few tokens fetch ahead within each row.
  const char* next = ahead(a.blocks, (r + RB) * G * 16);
  for (int64_t p = 0; p < pairs; ++p) {
    if (TB == 1) {
      for (int l = 0; l < RB * 32; l += 64) _mm_prefetch(next + p * RB * 32 + l, _MM_HINT_T0);
    }
    for (int k = 0; k < RB; ++k) {
      if (TB > 1) _mm_prefetch((const char*)(wb[k] + p * 32 + 768), _MM_HINT_T0);
      const uint8_t s0 = ws[k][2 * p], s1 = ws[k][2 * p + 1];
      if (s0 == 255 || s1 == 255) {
        for (int t = 0; t < nt && t < TB; ++t)
          rest[k][t] += block_dot(a, r + k, 2 * p, t0 + t) + block_dot(a, r + k, 2 * p + 1, t0 + t);
        continue;
      }
      const __m256i bytes = _mm256_loadu_si256((const __m256i*)(wb[k] + p * 32));
      __m256 f[8];
      for (int h = 0; h < 2; ++h) {
        const __m256i c = _mm256_and_si256(h ? _mm256_srli_epi16(bytes, 4) : bytes, low4);
        const __m256i hb = _mm256_shuffle_epi8(hi_byte, c), lb = _mm256_shuffle_epi8(lo_byte, c);
        const __m256i w0 = _mm256_unpacklo_epi8(lb, hb), w1 = _mm256_unpackhi_epi8(lb, hb);
        f[4 * h] = _mm256_castsi256_ps(_mm256_slli_epi32(w0, 16));
        f[4 * h + 1] = _mm256_castsi256_ps(_mm256_and_si256(w0, top16));
        f[4 * h + 2] = _mm256_castsi256_ps(_mm256_slli_epi32(w1, 16));
        f[4 * h + 3] = _mm256_castsi256_ps(_mm256_and_si256(w1, top16));
      }
      const __m256 hs = _mm256_set_m128(_mm_broadcast_ss(kHalfScale.v + s1), _mm_broadcast_ss(kHalfScale.v + s0));
      for (int t = 0; t < TB; ++t) {
        if (TB > 1 && t >= nt) break;
        const float* xq = a.xp + (t0 + t) * K + p * 64;
        __m256 u = _mm256_mul_ps(f[0], _mm256_loadu_ps(xq));
        __m256 v = _mm256_mul_ps(f[1], _mm256_loadu_ps(xq + 8));
        for (int i = 2; i < 8; i += 2) {
          u = _mm256_fmadd_ps(f[i], _mm256_loadu_ps(xq + 8 * i), u);
          v = _mm256_fmadd_ps(f[i + 1], _mm256_loadu_ps(xq + 8 * i + 8), v);
        }
        acc[k][t] = _mm256_fmadd_ps(_mm256_add_ps(u, v), hs, acc[k][t]);
      }
    }
  }
  for (int k = 0; k < RB; ++k)
    for (int t = 0; t < nt && t < TB; ++t) {
      float sum = hsum256(acc[k][t]) + rest[k][t];
      if (G % 2) sum += block_dot(a, r + k, G - 1, t0 + t);
      a.y[(t0 + t) * a.R + r + k] = sum + (a.bias ? a.bias[r + k] : 0.f);
    }
}

__attribute__((target("avx2,fma"))) void rows_avx2(const Args& a, int64_t r0, int64_t r1) {
  if (a.T == 1) {  // decode: four rows share each load of x
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) exact_tile<4, 1>(a, r, 0, 1);
    for (; r < r1; ++r) exact_tile<1, 1>(a, r, 0, 1);
    return;
  }
  // a few tokens: each pair of blocks is decoded once per 8 tokens, then per 4 for the rest
  // (8 at a time measured 1.05-1.2x the rate of 4 at a time for 8-64 tokens)
  for (int64_t r = r0; r < r1; ++r) {
    int64_t t0 = 0;
    for (; t0 + 8 <= a.T; t0 += 8) exact_tile<1, 8>(a, r, t0, 8);
    for (; t0 < a.T; t0 += 4) exact_tile<1, 4>(a, r, t0, int(std::min<int64_t>(4, a.T - t0)));
  }
}

// Dequantize blocks [i0, i1) (each 16 bytes -> 32 values) into fp32 or bf16 rows, AVX-512.
__attribute__((target("avx512f"))) void dequant_avx512(const uint8_t* pb, const uint8_t* ps, float* of,
                                                       uint16_t* oh, int64_t i0, int64_t i1) {
  const __m512 table = _mm512_loadu_ps(kE2M1);
  const __m512i low4 = _mm512_set1_epi32(15);
  const __m512i even = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i odd = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  for (int64_t i = i0; i < i1; ++i) {
    __m512 lo, hi;
    if (ps[i] == 255) {
      alignas(64) float l[16], h[16];
      decode_block(pb + i * 16, ps[i], l, h);
      lo = _mm512_load_ps(l);
      hi = _mm512_load_ps(h);
    } else {
      const __m512i codes = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(pb + i * 16)));
      const __m512 f = _mm512_set1_ps(scale_of(ps[i]));
      lo = _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_and_si512(codes, low4), table), f);
      hi = _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(codes, 4), table), f);
    }
    const __m512 v0 = _mm512_permutex2var_ps(lo, even, hi);  // elements 0..15
    const __m512 v1 = _mm512_permutex2var_ps(lo, odd, hi);   // elements 16..31
    if (of) {
      _mm512_storeu_ps(of + i * 32, v0);
      _mm512_storeu_ps(of + i * 32 + 16, v1);
    } else {  // exact values: the top 16 bits of each float are its bfloat16
      _mm256_storeu_si256((__m256i*)(oh + i * 32), _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_castps_si512(v0), 16)));
      _mm256_storeu_si256((__m256i*)(oh + i * 32 + 16), _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_castps_si512(v1), 16)));
    }
  }
}
#endif

inline float bf16_to_float(uint16_t h) {
  const uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// y [T, R] = x [T, K] (float32) @ w [R, K] (bfloat16).T + bias, rows [r0, r1), plain C++.
void bf16_rows_scalar(const float* x, const uint16_t* w, const float* bias, float* y, int64_t T,
                      int64_t K, int64_t R, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t t = 0; t < T; ++t) {
      float acc = 0.f;
      for (int64_t k = 0; k < K; ++k) acc += bf16_to_float(w[r * K + k]) * x[t * K + k];
      y[t * R + r] = acc + (bias ? bias[r] : 0.f);
    }
  }
}

#ifdef OSS_X86
__attribute__((target("avx2,fma"))) inline __m256 bf16x8(const uint16_t* p) {
  const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));  // a bfloat16 is a float's top half
}

// RB rows at a time; each product is exact in float32, only the order of the additions differs
// from torch's bf16 matmul. One token: 8 rows of one accumulator chain each (eight chains keep
// the FMA units busy with more reads in flight: 1.15-1.2x four rows of two chains each). A few
// tokens: 4 rows of two chains each, which stay in L1 while each token passes over them.
template <int RB>
__attribute__((target("avx2,fma"))) void bf16_tile(const float* x, const uint16_t* w,
                                                   const float* bias, float* y, int64_t T,
                                                   int64_t K, int64_t R, int64_t r) {
  constexpr bool two = RB < 8;
  const int64_t K16 = K - K % 16;
  for (int64_t t = 0; t < T; ++t) {
    const float* xt = x + t * K;
    __m256 a0[RB], a1[RB];
    for (int j = 0; j < RB; ++j) a0[j] = a1[j] = _mm256_setzero_ps();
    for (int64_t k = 0; k < K16; k += 16) {
      const __m256 x0 = _mm256_loadu_ps(xt + k), x1 = _mm256_loadu_ps(xt + k + 8);
      for (int j = 0; j < RB; ++j) {
        const uint16_t* wr = w + (r + j) * K + k;
        a0[j] = _mm256_fmadd_ps(bf16x8(wr), x0, a0[j]);
        if (two) {
          a1[j] = _mm256_fmadd_ps(bf16x8(wr + 8), x1, a1[j]);
        } else {
          a0[j] = _mm256_fmadd_ps(bf16x8(wr + 8), x1, a0[j]);
        }
      }
    }
    for (int j = 0; j < RB; ++j) {
      float sum = hsum256(two ? _mm256_add_ps(a0[j], a1[j]) : a0[j]);
      for (int64_t k = K16; k < K; ++k) sum += bf16_to_float(w[(r + j) * K + k]) * xt[k];
      y[t * R + r + j] = sum + (bias ? bias[r + j] : 0.f);
    }
  }
}

__attribute__((target("avx2,fma"))) void bf16_rows_avx2(const float* x, const uint16_t* w,
                                                       const float* bias, float* y, int64_t T,
                                                       int64_t K, int64_t R, int64_t r0, int64_t r1) {
  int64_t r = r0;
  if (T == 1) {
    for (; r + 8 <= r1; r += 8) bf16_tile<8>(x, w, bias, y, T, K, R, r);
  }
  for (; r + 4 <= r1; r += 4) bf16_tile<4>(x, w, bias, y, T, K, R, r);
  bf16_rows_scalar(x, w, bias, y, T, K, R, r, r1);
}
#endif

// -- int8 activations: an explicit option (llama.cpp's MXFP4 x Q8_0 dot product) -------------
// Each token's x is quantized per 32-value block to int8 with one float32 scale
// (d = max|x| / 127, q = round-to-nearest-even(x / d)). A block's 32 products are then exact
// integers (twice the e2m1 value times q), summed in int32 and scaled once by d * 2^(e - 128).
// The only error is x's rounding (at most d / 2 per element); the weights stay exact.
//
// Blocks go in pairs, as 32 weight bytes decode in one 256-bit register: the low nibbles of
// blocks g and g+1 are their even elements, the high nibbles their odd ones. So a pair of x blocks
// is stored as the 16 even values of g, those of g+1, the 16 odd values of g, those of g+1 (an odd
// last block: its 16 even then 16 odd values). The weights enter maddubs as unsigned w + 12; the
// 12 * sum(q) that adds to each int32 lane is computed once per token (corr) and subtracted.
struct Q8Args {
  const int8_t* q;     // [T, 32 G] in the pair layout above
  const float* d;      // [T, P, 8]: each block's scale, once per int32 lane of its pair
  const int32_t* c;    // [T, P, 8]: the offset's contribution per int32 lane
  const uint8_t* blocks;
  const uint8_t* scales;
  const float* bias;
  float* y;
  int64_t T, G, R;
  int64_t P() const { return (G + 1) / 2; }
};

const int8_t kE2M1x2[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// Where block g's 16 even (odd = false) or odd values start in one token's pair layout.
inline int64_t q8_offset(int64_t G, int64_t g, bool odd) {
  if (g == G - 1 && G % 2) return g * 32 + (odd ? 16 : 0);
  return (g / 2) * 64 + (odd ? 32 : 0) + (g % 2) * 16;
}

void quantize_q8(const float* x, int64_t T, int64_t G, int8_t* q, float* d, int32_t* c) {
  const int64_t P = (G + 1) / 2;
  for (int64_t t = 0; t < T; ++t) {
    int8_t* qt = q + t * G * 32;
    for (int64_t g = 0; g < G; ++g) {
      const float* v = x + (t * G + g) * 32;
      float amax = 0.f;
      for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(v[j]));
      const float dd = amax / 127.f;
      const float id = dd > 0.f ? 1.f / dd : 0.f;
      int8_t* qe = qt + q8_offset(G, g, false);
      int8_t* qo = qt + q8_offset(G, g, true);
      for (int j = 0; j < 16; ++j) {
        qe[j] = int8_t(std::max(-127.f, std::min(127.f, std::nearbyint(v[2 * j] * id))));
        qo[j] = int8_t(std::max(-127.f, std::min(127.f, std::nearbyint(v[2 * j + 1] * id))));
      }
      // lane k of the pair's int32 lanes (k < 4: block 2p, else 2p+1; an odd last block: all 8)
      // sums the even and odd values 4k..4k+3 of its 128-bit half
      const int64_t p = g / 2;
      float* dp = d + (t * P + p) * 8;
      int32_t* cp = c + (t * P + p) * 8;
      const bool single = (g == G - 1 && G % 2);
      for (int k = 0; k < 8; ++k) {
        if (!single && (k / 4) != (g % 2)) continue;
        int32_t s = 0;
        for (int b = 0; b < 4; ++b) {
          const int i = single ? (4 * k + b) : (4 * (k % 4) + b);  // byte in the block's half
          s += single ? (i < 16 ? qe[i] : qo[i - 16]) : (qe[i] + qo[i]);
        }
        cp[k] = 12 * s;
        dp[k] = dd;
      }
    }
  }
}

void rows_q8_scalar(const Q8Args& a, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t t = 0; t < a.T; ++t) {
      float acc = 0.f;
      for (int64_t g = 0; g < a.G; ++g) {
        const uint8_t* b = a.blocks + (r * a.G + g) * 16;
        const int8_t* qe = a.q + t * a.G * 32 + q8_offset(a.G, g, false);
        const int8_t* qo = a.q + t * a.G * 32 + q8_offset(a.G, g, true);
        int32_t s = 0;
        for (int j = 0; j < 16; ++j) s += kE2M1x2[b[j] & 15] * qe[j] + kE2M1x2[b[j] >> 4] * qo[j];
        const float dd = a.d[(t * a.P() + g / 2) * 8 + (g % 2) * 4];
        acc += float(s) * (dd * kHalfScale.v[a.scales[r * a.G + g]]);
      }
      a.y[t * a.R + r] = acc + (a.bias ? a.bias[r] : 0.f);
    }
  }
}

#ifdef OSS_X86
// RB rows by up to TB tokens. Each pair of weight blocks is decoded once (two byte shuffles give
// the 64 values as unsigned w + 12) and multiplied with every token's pair by maddubs.
template <int RB, int TB>
__attribute__((target("avx2,fma"))) void q8_tile(const Q8Args& a, int64_t r, int64_t t0, int nt) {
  const __m256i table = _mm256_broadcastsi128_si256(
      _mm_setr_epi8(12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0));
  const __m256i low4 = _mm256_set1_epi8(15);
  const __m256i ones = _mm256_set1_epi16(1);
  const int64_t G = a.G, P = a.P(), pairs = G / 2;
  const uint8_t* wb[RB];
  const uint8_t* ws[RB];
  for (int k = 0; k < RB; ++k) {
    wb[k] = a.blocks + (r + k) * G * 16;
    ws[k] = a.scales + (r + k) * G;
  }
  const int8_t* xq = a.q + t0 * G * 32;
  const float* xd = a.d + t0 * P * 8;
  const int32_t* xc = a.c + t0 * P * 8;
  const float* half = kHalfScale.v;
  __m256 acc[RB][TB];
  for (int k = 0; k < RB; ++k)
    for (int t = 0; t < TB; ++t) acc[k][t] = _mm256_setzero_ps();
  // Decode (one token) reads each weight once, from memory: the RB rows are one contiguous
  // run, read at RB * 32 bytes a pair, and the next tile's run is fetched at that pace (1.6-1.8x
  // the rate of a fetch ahead within each row, on the expert matrices). A few tokens pass over
  // a row several times; there each row fetches its own bytes ahead.
  const char* next = ahead(a.blocks, (r + RB) * G * 16);
  for (int64_t p = 0; p < pairs; ++p) {
    __m256i wl[RB], wh[RB];
    __m256 hs[RB];
    if (TB == 1) {
      for (int l = 0; l < RB * 32; l += 64) _mm_prefetch(next + p * RB * 32 + l, _MM_HINT_T0);
    }
    for (int k = 0; k < RB; ++k) {
      if (TB > 1) _mm_prefetch((const char*)(wb[k] + p * 32 + 768), _MM_HINT_T0);
      const __m256i v = _mm256_loadu_si256((const __m256i*)(wb[k] + p * 32));
      wl[k] = _mm256_shuffle_epi8(table, _mm256_and_si256(v, low4));
      wh[k] = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(v, 4), low4));
      hs[k] = _mm256_set_m128(_mm_broadcast_ss(half + ws[k][2 * p + 1]), _mm_broadcast_ss(half + ws[k][2 * p]));
    }
    for (int t = 0; t < TB; ++t) {
      if (TB > 1 && t >= nt) break;
      const int8_t* qp = xq + t * G * 32 + p * 64;
      const __m256i e = _mm256_loadu_si256((const __m256i*)qp);
      const __m256i o = _mm256_loadu_si256((const __m256i*)(qp + 32));
      const __m256i corr = _mm256_loadu_si256((const __m256i*)(xc + (t * P + p) * 8));
      const __m256 dx = _mm256_loadu_ps(xd + (t * P + p) * 8);
      for (int k = 0; k < RB; ++k) {
        const __m256i p16 = _mm256_add_epi16(_mm256_maddubs_epi16(wl[k], e), _mm256_maddubs_epi16(wh[k], o));
        const __m256i p32 = _mm256_sub_epi32(_mm256_madd_epi16(p16, ones), corr);
        acc[k][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p32), _mm256_mul_ps(dx, hs[k]), acc[k][t]);
      }
    }
  }
  if (G % 2) {  // the odd last block: even values in the low half, odd ones in the high half
    const int64_t g = G - 1;
    for (int k = 0; k < RB; ++k) {
      const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)(wb[k] + g * 16)));
      const __m256i idx = _mm256_and_si256(_mm256_blend_epi32(v, _mm256_srli_epi16(v, 4), 0xF0), low4);
      const __m256i w = _mm256_shuffle_epi8(table, idx);
      const __m256 hs = _mm256_broadcast_ss(half + ws[k][g]);
      for (int t = 0; t < nt && t < TB; ++t) {
        const __m256i q = _mm256_loadu_si256((const __m256i*)(xq + t * G * 32 + g * 32));
        const __m256i corr = _mm256_loadu_si256((const __m256i*)(xc + (t * P + P - 1) * 8));
        const __m256 dx = _mm256_loadu_ps(xd + (t * P + P - 1) * 8);
        const __m256i p32 = _mm256_sub_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(w, q), ones), corr);
        acc[k][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p32), _mm256_mul_ps(dx, hs), acc[k][t]);
      }
    }
  }
  for (int k = 0; k < RB; ++k)
    for (int t = 0; t < nt && t < TB; ++t)
      a.y[(t0 + t) * a.R + r + k] = hsum256(acc[k][t]) + (a.bias ? a.bias[r + k] : 0.f);
}

__attribute__((target("avx2,fma"))) void rows_q8_avx2(const Q8Args& a, int64_t r0, int64_t r1) {
  if (a.T == 1) {  // decode: four rows share each load of x
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) q8_tile<4, 1>(a, r, 0, 1);
    for (; r < r1; ++r) q8_tile<1, 1>(a, r, 0, 1);
    return;
  }
  constexpr int TB = 4;  // a few tokens: each pair of blocks is decoded once per four tokens
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t t0 = 0; t0 < a.T; t0 += TB) q8_tile<1, TB>(a, r, t0, int(std::min<int64_t>(TB, a.T - t0)));
}
#endif

int pick_isa(int64_t want) {
#ifdef OSS_X86
  __builtin_cpu_init();
  const int best = __builtin_cpu_supports("avx512f") ? 2
                   : (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 1
                                                                                          : 0;
  return want < 0 ? best : int(std::min<int64_t>(want, best));
#else
  (void)want;
  return 0;
#endif
}

// The shapes and dtypes both MXFP4 entry points take; returns whether there is a bias.
bool check_mxfp4_args(const torch::Tensor& x, const torch::Tensor& blocks, const torch::Tensor& scales,
                      const torch::Tensor& bias) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == torch::kFloat32, "x must be float32 [T, K]");
  TORCH_CHECK(blocks.dim() == 3 && blocks.size(2) == 16 && blocks.scalar_type() == torch::kUInt8,
              "blocks must be uint8 [R, G, 16]");
  TORCH_CHECK(scales.dim() == 2 && scales.size(0) == blocks.size(0) && scales.size(1) == blocks.size(1) &&
                  scales.scalar_type() == torch::kUInt8,
              "scales must be uint8 [R, G] matching blocks");
  TORCH_CHECK(x.size(1) == blocks.size(1) * 32, "x has ", x.size(1), " columns, the weights ",
              blocks.size(1) * 32);
  const bool has_bias = bias.numel() > 0;
  if (has_bias) {
    TORCH_CHECK(bias.numel() == blocks.size(0) && bias.scalar_type() == torch::kFloat32,
                "bias must be float32 [R]");
  }
  return has_bias;
}

}  // namespace

// isa: -1 = best available, 0 = scalar, 1 = AVX2, 2 = AVX-512 (capped at what the CPU has).
torch::Tensor mxfp4_linear(torch::Tensor x, torch::Tensor blocks, torch::Tensor scales,
                           torch::Tensor bias, int64_t isa) {
  const bool has_bias = check_mxfp4_args(x, blocks, scales, bias);
  const int64_t T = x.size(0), R = blocks.size(0), G = blocks.size(1);
  auto pairs = x.contiguous().view({T, G * 16, 2});
  auto xe = pairs.select(2, 0).contiguous();
  auto xo = pairs.select(2, 1).contiguous();
  auto b = blocks.contiguous();
  auto s = scales.contiguous();
  auto bb = has_bias ? bias.contiguous() : bias;
  auto y = torch::empty({T, R}, x.options());
  const int which = pick_isa(isa);
  auto xc = pairs.view({T, G * 32});
  torch::Tensor xp;
#ifdef OSS_X86
  if (which == 1) {
    xp = torch::empty({T, G * 32}, x.options());
    to_pair_layout(xc.data_ptr<float>(), xp.data_ptr<float>(), T, G);
  }
#endif
  Args a{xc.data_ptr<float>(), xe.data_ptr<float>(), xo.data_ptr<float>(), which == 1 ? xp.data_ptr<float>() : nullptr,
         b.data_ptr<uint8_t>(), s.data_ptr<uint8_t>(), has_bias ? bb.data_ptr<float>() : nullptr,
         y.data_ptr<float>(), T, G, R};
  at::parallel_for(0, R, 16, [&](int64_t r0, int64_t r1) {
#ifdef OSS_X86
    if (which == 2) return rows_avx512(a, r0, r1);
    if (which == 1) return rows_avx2(a, r0, r1);
#endif
    rows_scalar(a, r0, r1);
  });
  return y;
}

// Exact dequantization into a float32 or bfloat16 buffer: out [R, 32 G] (row-major, contiguous).
torch::Tensor mxfp4_dequant(torch::Tensor blocks, torch::Tensor scales, torch::Tensor out) {
  TORCH_CHECK(blocks.dim() == 3 && blocks.size(2) == 16 && blocks.scalar_type() == torch::kUInt8,
              "blocks must be uint8 [R, G, 16]");
  TORCH_CHECK(scales.dim() == 2 && scales.size(0) == blocks.size(0) && scales.size(1) == blocks.size(1) &&
                  scales.scalar_type() == torch::kUInt8,
              "scales must be uint8 [R, G] matching blocks");
  const int64_t R = blocks.size(0), G = blocks.size(1);
  TORCH_CHECK(out.is_contiguous() && out.dim() == 2 && out.size(0) == R && out.size(1) == G * 32,
              "out must be a contiguous [R, 32 G] tensor");
  const bool bf16 = out.scalar_type() == torch::kBFloat16;
  TORCH_CHECK(bf16 || out.scalar_type() == torch::kFloat32, "out must be float32 or bfloat16");
  auto b = blocks.contiguous();
  auto s = scales.contiguous();
  const uint8_t* pb = b.data_ptr<uint8_t>();
  const uint8_t* ps = s.data_ptr<uint8_t>();
  float* of = bf16 ? nullptr : out.data_ptr<float>();
  uint16_t* oh = bf16 ? reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>()) : nullptr;
  const int which = pick_isa(-1);
  at::parallel_for(0, R * G, 256, [&](int64_t i0, int64_t i1) {
#ifdef OSS_X86
    if (which == 2) return dequant_avx512(pb, ps, of, oh, i0, i1);
#endif
    float lo[16], hi[16];
    for (int64_t i = i0; i < i1; ++i) {
      decode_block(pb + i * 16, ps[i], lo, hi);
      if (of) {
        float* o = of + i * 32;
        for (int j = 0; j < 16; ++j) { o[2 * j] = lo[j]; o[2 * j + 1] = hi[j]; }
      } else {  // every MXFP4 value is exact in bfloat16: truncating the float bits is exact
        uint16_t* o = oh + i * 32;
        for (int j = 0; j < 16; ++j) {
          uint32_t a, c;
          std::memcpy(&a, &lo[j], 4);
          std::memcpy(&c, &hi[j], 4);
          o[2 * j] = uint16_t(a >> 16);
          o[2 * j + 1] = uint16_t(c >> 16);
        }
      }
    }
  });
  return out;
}

// y [T, R] = x [T, K] float32 @ w [R, K] bfloat16 .T + bias (float32 [R] or empty), for a few
// tokens (decode): reads each weight once, at the memory bandwidth, with AVX2 where present.
torch::Tensor bf16_linear(torch::Tensor x, torch::Tensor w, torch::Tensor bias, int64_t isa) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == torch::kFloat32, "x must be float32 [T, K]");
  TORCH_CHECK(w.dim() == 2 && w.scalar_type() == torch::kBFloat16 && w.size(1) == x.size(1),
              "w must be bfloat16 [R, K] with K = x.size(1)");
  const int64_t T = x.size(0), K = x.size(1), R = w.size(0);
  const bool has_bias = bias.numel() > 0;
  if (has_bias) TORCH_CHECK(bias.numel() == R && bias.scalar_type() == torch::kFloat32, "bias must be float32 [R]");
  auto xc = x.contiguous();
  auto wc = w.contiguous();
  auto bb = has_bias ? bias.contiguous() : bias;
  auto y = torch::empty({T, R}, x.options());
  const float* px = xc.data_ptr<float>();
  const uint16_t* pw = reinterpret_cast<const uint16_t*>(wc.data_ptr<at::BFloat16>());
  const float* pb = has_bias ? bb.data_ptr<float>() : nullptr;
  float* py = y.data_ptr<float>();
  const int which = pick_isa(isa);
  at::parallel_for(0, R, 64, [&](int64_t r0, int64_t r1) {
#ifdef OSS_X86
    if (which >= 1) return bf16_rows_avx2(px, pw, pb, py, T, K, R, r0, r1);
#endif
    bf16_rows_scalar(px, pw, pb, py, T, K, R, r0, r1);
  });
  return y;
}

// As mxfp4_linear, with x quantized to int8 per 32-value block (see Q8Args): llama.cpp's trade,
// asked for explicitly; the exact path is mxfp4_linear.
torch::Tensor mxfp4_linear_q8(torch::Tensor x, torch::Tensor blocks, torch::Tensor scales,
                              torch::Tensor bias, int64_t isa) {
  const bool has_bias = check_mxfp4_args(x, blocks, scales, bias);
  const int64_t T = x.size(0), R = blocks.size(0), G = blocks.size(1);
  auto xc = x.contiguous();
  const int64_t P = (G + 1) / 2;
  auto q = torch::empty({T, G * 32}, x.options().dtype(torch::kInt8));
  auto d = torch::empty({T, P, 8}, x.options());
  auto c = torch::empty({T, P, 8}, x.options().dtype(torch::kInt32));
  quantize_q8(xc.data_ptr<float>(), T, G, q.data_ptr<int8_t>(), d.data_ptr<float>(), c.data_ptr<int32_t>());
  auto b = blocks.contiguous();
  auto s = scales.contiguous();
  auto bb = has_bias ? bias.contiguous() : bias;
  auto y = torch::empty({T, R}, x.options());
  Q8Args a{q.data_ptr<int8_t>(), d.data_ptr<float>(), c.data_ptr<int32_t>(), b.data_ptr<uint8_t>(), s.data_ptr<uint8_t>(),
           has_bias ? bb.data_ptr<float>() : nullptr, y.data_ptr<float>(), T, G, R};
  const int which = pick_isa(isa);
  at::parallel_for(0, R, 16, [&](int64_t r0, int64_t r1) {
#ifdef OSS_X86
    if (which >= 1) return rows_q8_avx2(a, r0, r1);
#endif
    rows_q8_scalar(a, r0, r1);
  });
  return y;
}

// gpt-oss's clamped SwiGLU on one token's gate_up [1, 2I] (gate in the even columns, up in the
// odd ones) -> [1, I], float32, written as transformers' ``GptOssExperts._apply_gate``.
static torch::Tensor swiglu_one_token(const torch::Tensor& gate_up, float limit, float alpha) {
  const int64_t I = gate_up.size(1) / 2;
  auto out = torch::empty({1, I}, gate_up.options());
  const float* gu = gate_up.data_ptr<float>();
  float* o = out.data_ptr<float>();
  for (int64_t i = 0; i < I; ++i) {
    const float gate = std::min(gu[2 * i], limit);                    // clamp(max=limit)
    const float up = std::min(std::max(gu[2 * i + 1], -limit), limit);  // clamp(-limit, limit)
    const float glu = gate * (1.f / (1.f + std::exp(-(gate * alpha))));
    o[i] = (up + 1.f) * glu;
  }
  return out;
}

// One token through its routed experts in one call (decode), as `MappedExperts.forward` does in
// Python: in ascending expert order, the gate_up mat-vec, the SwiGLU, the down mat-vec; the
// expert's output in x's dtype times its routing weight is added to ``out`` (in place). Same
// sums in the same order with the same roundings; only the sigmoid's last bit may differ.
// x [1, H] (compute dtype), indices [1, k], weights [1, k], out [1, H]; the expert tensors are
// the layer's [E, ...] MXFP4 blocks and scales and float32 biases.
torch::Tensor mxfp4_experts_one_token(torch::Tensor x, torch::Tensor indices, torch::Tensor weights,
                                      torch::Tensor gu_blocks, torch::Tensor gu_scales,
                                      torch::Tensor gu_bias, torch::Tensor down_blocks,
                                      torch::Tensor down_scales, torch::Tensor down_bias,
                                      torch::Tensor out, double limit, double alpha, bool int8,
                                      int64_t isa) {
  TORCH_CHECK(x.dim() == 2 && x.size(0) == 1, "x must be one token [1, H]");
  TORCH_CHECK(indices.dim() == 2 && indices.size(0) == 1 && weights.sizes() == indices.sizes(),
              "indices and weights must be [1, k]");
  TORCH_CHECK(out.sizes() == x.sizes(), "out must be [1, H] like x");
  TORCH_CHECK(gu_bias.scalar_type() == torch::kFloat32 && down_bias.scalar_type() == torch::kFloat32,
              "the expert biases must be float32");
  auto ids = indices.to(torch::kInt64).contiguous();
  const int64_t* id = ids.data_ptr<int64_t>();
  const int64_t k = ids.size(1), E = gu_blocks.size(0);
  std::vector<int64_t> order(k);
  for (int64_t j = 0; j < k; ++j) {
    TORCH_CHECK(id[j] >= 0 && id[j] < E, "expert index ", id[j], " out of range for ", E, " experts");
    order[j] = j;
  }
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return id[a] < id[b]; });
  auto linear = int8 ? mxfp4_linear_q8 : mxfp4_linear;
  const auto xf = x.to(torch::kFloat32).contiguous();
  for (const int64_t j : order) {
    const int64_t e = id[j];
    auto gu = linear(xf, gu_blocks.select(0, e), gu_scales.select(0, e), gu_bias.select(0, e), isa);
    auto act = swiglu_one_token(gu, float(limit), float(alpha));
    auto y = linear(act, down_blocks.select(0, e), down_scales.select(0, e), down_bias.select(0, e), isa);
    out.add_((y.to(x.scalar_type()) * weights.narrow(1, j, 1)).to(out.scalar_type()));
  }
  return out;
}

int64_t mxfp4_best_isa() { return pick_isa(-1); }
