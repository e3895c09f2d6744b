// int8 linear weights (llama.cpp's Q8_0, asked for explicitly): y = x @ (q * d).T + b
//
// q [R, K] int8 and d [R, K/32] float16: each row rounded per 32-value block to d = max|w| / 127,
// q = round(w / d) (oss_runtime.q8weights writes them once and maps them). x [T, K] float32 is
// rounded the same way per token and block, with a float32 scale, so a block's 32 products are
// exact integers, summed in int32 and scaled once by d_w * d_x. Compiled after mxfp4_linear.cpp
// (one translation unit: pick_isa and hsum256 come from there).

namespace {

struct Int8Args {
  const int8_t* xq;   // [T, K] x rounded to int8
  const uint8_t* xa;  // [T, K] |xq|, the unsigned operand of maddubs
  const float* xd;    // [T, G] x's block scales
  const int8_t* w;    // [R, K]
  const at::Half* wd; // [R, G] float16 block scales
  const float* bias;
  float* y;
  int64_t T, G, R;
};

// Per token and 32-value block: d = max|x| / 127, q = round-to-nearest-even(x / d), |q| <= 127
// (so that maddubs, 2 * 127 * 127, never saturates).
void quantize_x_int8(const float* x, int64_t T, int64_t G, int8_t* q, uint8_t* a, float* d) {
  for (int64_t b = 0; b < T * G; ++b) {
    const float* v = x + b * 32;
    float amax = 0.f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(v[j]));
    const float dd = amax / 127.f;
    const float id = dd > 0.f ? 1.f / dd : 0.f;
    for (int j = 0; j < 32; ++j) {
      const int8_t qj = int8_t(std::max(-127.f, std::min(127.f, std::nearbyint(v[j] * id))));
      q[b * 32 + j] = qj;
      a[b * 32 + j] = uint8_t(qj < 0 ? -qj : qj);
    }
    d[b] = dd;
  }
}

void int8_rows_scalar(const Int8Args& a, int64_t r0, int64_t r1) {
  const int64_t K = a.G * 32;
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t t = 0; t < a.T; ++t) {
      float acc = 0.f;
      for (int64_t g = 0; g < a.G; ++g) {
        int32_t s = 0;
        for (int j = 0; j < 32; ++j) s += int32_t(a.w[r * K + g * 32 + j]) * a.xq[t * K + g * 32 + j];
        acc += float(s) * (float(a.wd[r * a.G + g]) * a.xd[t * a.G + g]);
      }
      a.y[t * a.R + r] = acc + (a.bias ? a.bias[r] : 0.f);
    }
  }
}

#ifdef OSS_X86
// RB rows by up to TB tokens. Per block: the weight takes x's sign (sign_epi8), maddubs multiplies
// it with |x| into int16 pairs, madd sums those into int32, and one fma applies d_w * d_x. The
// combined scales of CH blocks are made eight at a time (F16C) before the dot products use them.
template <int RB, int TB>
__attribute__((target("avx2,fma,f16c"))) void int8_tile(const Int8Args& a, int64_t r, int64_t t0, int nt) {
  constexpr int CH = 64;
  const int64_t G = a.G, K = G * 32;
  const __m256i ones = _mm256_set1_epi16(1);
  alignas(32) float sc[RB][TB][CH];
  __m256 acc[RB][TB];
  for (int k = 0; k < RB; ++k)
    for (int t = 0; t < TB; ++t) acc[k][t] = _mm256_setzero_ps();
  // decode: the next tile's rows (one contiguous run) are fetched at the pace this tile is
  // read (see q8_tile); a few tokens: each row fetches its own bytes ahead
  const char* next = ahead(a.w, (r + RB) * K);
  for (int64_t g0 = 0; g0 < G; g0 += CH) {
    const int n = int(std::min<int64_t>(CH, G - g0));
    for (int k = 0; k < RB; ++k) {
      const uint16_t* wd = reinterpret_cast<const uint16_t*>(a.wd + (r + k) * G + g0);
      for (int t = 0; t < TB && t < nt; ++t) {
        const float* xd = a.xd + (t0 + t) * G + g0;
        int j = 0;
        for (; j + 8 <= n; j += 8) {
          const __m256 w8 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(wd + j)));
          _mm256_store_ps(&sc[k][t][j], _mm256_mul_ps(w8, _mm256_loadu_ps(xd + j)));
        }
        for (; j < n; ++j) sc[k][t][j] = _cvtsh_ss(wd[j]) * xd[j];
      }
    }
    for (int j = 0; j < n; ++j) {
      const int64_t off = (g0 + j) * 32;
      __m256i w[RB];
      if (TB == 1) {
        for (int l = 0; l < RB * 32; l += 64) _mm_prefetch(next + off * RB + l, _MM_HINT_T0);
      }
      for (int k = 0; k < RB; ++k) {
        if (TB > 1) _mm_prefetch((const char*)(a.w + (r + k) * K + off + 512), _MM_HINT_T0);
        w[k] = _mm256_loadu_si256((const __m256i*)(a.w + (r + k) * K + off));
      }
      for (int t = 0; t < TB; ++t) {
        if (TB > 1 && t >= nt) break;
        const __m256i xs = _mm256_loadu_si256((const __m256i*)(a.xq + (t0 + t) * K + off));
        const __m256i xa = _mm256_loadu_si256((const __m256i*)(a.xa + (t0 + t) * K + off));
        for (int k = 0; k < RB; ++k) {
          const __m256i p16 = _mm256_maddubs_epi16(xa, _mm256_sign_epi8(w[k], xs));
          const __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));
          acc[k][t] = _mm256_fmadd_ps(p, _mm256_broadcast_ss(&sc[k][t][j]), acc[k][t]);
        }
      }
    }
  }
  for (int k = 0; k < RB; ++k)
    for (int t = 0; t < nt && t < TB; ++t)
      a.y[(t0 + t) * a.R + r + k] = hsum256(acc[k][t]) + (a.bias ? a.bias[r + k] : 0.f);
}

__attribute__((target("avx2,fma,f16c"))) void int8_rows_avx2(const Int8Args& a, int64_t r0, int64_t r1) {
  int64_t r = r0;
  if (a.T == 1) {  // decode: four rows share each load of x
    for (; r + 4 <= r1; r += 4) int8_tile<4, 1>(a, r, 0, 1);
    for (; r < r1; ++r) int8_tile<1, 1>(a, r, 0, 1);
    return;
  }
  constexpr int TB = 4;  // prefill: two rows stay in L1 while every token passes over them
  for (; r + 2 <= r1; r += 2)
    for (int64_t t0 = 0; t0 < a.T; t0 += TB) int8_tile<2, TB>(a, r, t0, int(std::min<int64_t>(TB, a.T - t0)));
  for (; r < r1; ++r)
    for (int64_t t0 = 0; t0 < a.T; t0 += TB) int8_tile<1, TB>(a, r, t0, int(std::min<int64_t>(TB, a.T - t0)));
}

bool has_f16c() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("f16c");
}
#endif

}  // namespace

// y [T, R] = x [T, K] float32 @ (q [R, K] int8 * d [R, K/32] float16).T + bias (float32 [R] or
// empty), x rounded to int8 per 32-value block first; see the top of this file.
torch::Tensor int8_linear(torch::Tensor x, torch::Tensor q, torch::Tensor d, torch::Tensor bias, int64_t isa) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == torch::kFloat32, "x must be float32 [T, K]");
  TORCH_CHECK(q.dim() == 2 && q.scalar_type() == torch::kInt8 && q.size(1) % 32 == 0,
              "q must be int8 [R, K] with K a multiple of 32");
  TORCH_CHECK(x.size(1) == q.size(1), "x has ", x.size(1), " columns, the weights ", q.size(1));
  const int64_t T = x.size(0), K = q.size(1), R = q.size(0), G = K / 32;
  TORCH_CHECK(d.dim() == 2 && d.size(0) == R && d.size(1) == G && d.scalar_type() == torch::kFloat16,
              "d must be float16 [R, K/32] matching q");
  const bool has_bias = bias.numel() > 0;
  if (has_bias) TORCH_CHECK(bias.numel() == R && bias.scalar_type() == torch::kFloat32, "bias must be float32 [R]");
  auto xc = x.contiguous();
  auto qc = q.contiguous();
  auto dc = d.contiguous();
  auto bb = has_bias ? bias.contiguous() : bias;
  auto xq = torch::empty({T, K}, x.options().dtype(torch::kInt8));
  auto xa = torch::empty({T, K}, x.options().dtype(torch::kUInt8));
  auto xd = torch::empty({T, G}, x.options());
  quantize_x_int8(xc.data_ptr<float>(), T, G, xq.data_ptr<int8_t>(), xa.data_ptr<uint8_t>(), xd.data_ptr<float>());
  auto y = torch::empty({T, R}, x.options());
  Int8Args a{xq.data_ptr<int8_t>(), xa.data_ptr<uint8_t>(), xd.data_ptr<float>(), qc.data_ptr<int8_t>(),
             dc.data_ptr<at::Half>(), has_bias ? bb.data_ptr<float>() : nullptr,
             y.data_ptr<float>(), T, G, R};
  const int which = pick_isa(isa);
#ifdef OSS_X86
  const bool avx2 = which >= 1 && has_f16c();
#endif
  at::parallel_for(0, R, 16, [&](int64_t r0, int64_t r1) {
#ifdef OSS_X86
    if (avx2) return int8_rows_avx2(a, r0, r1);
#endif
    int8_rows_scalar(a, r0, r1);
  });
  return y;
}
