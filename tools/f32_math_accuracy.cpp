// Measures the accuracy of csrc/kernels/common/f32_math.h on one ISA level: every fp32 input in
// each function's range (or every k-th, with --stride k) against float64 libm, as the maximum
// error in ulp of the exact result (ulp(y) = 2^(floor(log2 |y|) - 23), at least 2^-149) and in
// absolute terms. The claims at the top of f32_math.h come from its full runs.
//
//   g++ -O2 -std=c++20 -Icsrc -DLEVEL=avx512 -mavx2 -mfma -mavx512{f,dq,bw,vl} \
//       tools/f32_math_accuracy.cpp -o /tmp/acc_avx512 && /tmp/acc_avx512 [--stride 1]
//   (LEVEL=avx2 with -mavx2 -mfma; LEVEL=generic with no flags; --only exp: one function)
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#define STR2(x) #x
#define STR(x) STR2(x)
#if defined(__AVX512F__)
#include "kernels/avx512/vec_f32__avx512.h"
#elif defined(__AVX2__)
#include "kernels/avx2/vec_f32__avx2.h"
#else
#include "kernels/generic/vec_f32__generic.h"
#endif
#include "kernels/common/f32_elementwise.h"
#include "kernels/common/f32_math.h"

namespace {

using V = pyengine::kernels::LEVEL::VecF32;
using R = V::Reg;
namespace k = pyengine::kernels;

float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

double ulp_of(double y) {
  const double a = std::fabs(y);
  if (a < 0x1p-126) return 0x1p-149;
  return std::ldexp(1.0, std::ilogb(a) - 23);
}

struct Stats {
  double max_ulp = 0, at_ulp = 0, max_abs = 0, at_abs = 0;
  float got_ulp = 0;
  double want_ulp = 0;
  bool bad = false;  // NaN or inf for a finite input
  float at_bad = 0;
};

// Every fp32 of one sign whose magnitude lies in [lo, hi] (lo, hi >= 0), stride in bits.
template <class F, class Ref>
void sweep(Stats& st, float lo, float hi, bool negative, uint32_t stride, F f, Ref ref,
           double ulp_floor) {
  uint32_t a, b;
  std::memcpy(&a, &lo, 4);
  std::memcpy(&b, &hi, 4);
  const uint32_t sign = negative ? 0x80000000u : 0u;
  constexpr int W = V::kWidth;
  alignas(64) float in[W], out[W];
  uint64_t u = a;
  while (u <= b) {
    int m = 0;
    for (; m < W && u <= b; ++m, u += stride) in[m] = bits_to_float(uint32_t(u) | sign);
    for (int i = m; i < W; ++i) in[i] = in[0];
    V::store(out, f(V::load(in)));
    for (int i = 0; i < m; ++i) {
      const double want = ref(double(in[i]));
      const double got = out[i];
      if (!std::isfinite(got)) {
        if (!st.bad) st.at_bad = in[i];
        st.bad = true;
        continue;
      }
      const double err = std::fabs(got - want);
      const double ulps = err / std::max(ulp_of(want), ulp_floor);
      if (ulps > st.max_ulp) {
        st.max_ulp = ulps;
        st.at_ulp = in[i];
        st.got_ulp = out[i];
        st.want_ulp = want;
      }
      if (err > st.max_abs) {
        st.max_abs = err;
        st.at_abs = in[i];
      }
    }
  }
}

std::string g_only;  // --only PREFIX: just the lines whose name starts with PREFIX

enum Signs { kPositive = 1, kNegative = 2, kBoth = 3 };

// Inputs x with |x| in [lo, hi] and the given signs.
template <class F, class Ref>
void report(const char* name, float lo, float hi, Signs signs, uint32_t stride, F f, Ref ref,
            double ulp_floor = 0) {
  if (!g_only.empty() && std::string(name).rfind(g_only, 0) != 0) return;
  Stats st;
  if (signs & kPositive) sweep(st, lo, hi, false, stride, f, ref, ulp_floor);
  if (signs & kNegative) sweep(st, lo, hi, true, stride, f, ref, ulp_floor);
  std::printf("%-34s max %.4f ulp at %.9g (got %.9g want %.9g)  max abs %.3g at %.9g%s\n", name,
              st.max_ulp, st.at_ulp, double(st.got_ulp), st.want_ulp, st.max_abs, st.at_abs,
              st.bad ? "  NON-FINITE!" : "");
  if (st.bad) std::printf("   first non-finite at %.9g\n", double(st.at_bad));
}

double phi(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

// Negative inputs only; the error in units of ulp(x) instead of ulp(result).
template <class F, class Ref>
void report_rel_x(const char* name, float lo, float hi, uint32_t stride, F f, Ref ref) {
  if (!g_only.empty() && std::string(name).rfind(g_only, 0) != 0) return;
  double worst = 0, at = 0;
  uint32_t a, b;
  std::memcpy(&a, &lo, 4);
  std::memcpy(&b, &hi, 4);
  constexpr int W = V::kWidth;
  alignas(64) float in[W], out[W];
  for (uint64_t u = a; u <= b;) {
    int m = 0;
    for (; m < W && u <= b; ++m, u += stride) in[m] = -bits_to_float(uint32_t(u));
    for (int i = m; i < W; ++i) in[i] = in[0];
    V::store(out, f(V::load(in)));
    for (int i = 0; i < m; ++i) {
      const double e = std::fabs(out[i] - ref(double(in[i]))) / ulp_of(in[i]);
      if (e > worst) worst = e, at = in[i];
    }
  }
  std::printf("%-34s max %.4f ulp(x) at %.9g\n", name, worst, at);
}

}  // namespace

int main(int argc, char** argv) {
  uint32_t stride = 1;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--stride")
      stride = uint32_t(std::stoul(argv[i + 1]));
    else if (std::string(argv[i]) == "--only")
      g_only = argv[i + 1];
  std::printf("level %s, stride %u\n", STR(LEVEL), stride);
  const float big = 3.4e38f;
  auto exp_f = [](R x) { return k::f32_exp<V>(x); };
  auto exp_r = [](double x) { return std::exp(std::max(std::min(x, double(88.72283f)), -104.0)); };
  report("exp [0, 88.72]", 0.f, 88.72f, kPositive, stride, exp_f, exp_r);
  report("exp [-87.33, 0] (normal results)", 0.f, 87.33f, kNegative, stride, exp_f, exp_r);
  report("exp [-104, -87.33] (subnormal; in 2^-149)", 87.33f, 104.f, kNegative, stride, exp_f,
         exp_r, 0x1p-149);
  report("exp |x| in [88.72, 3.4e38] (clamped)", 88.72f, big, kBoth, stride, exp_f, exp_r,
         0x1p-149);
  auto tanh_f = [](R x) { return k::f32_tanh<V>(x); };
  report("tanh", 0.f, big, kBoth, stride, tanh_f, [](double x) { return std::tanh(x); });
  auto erf_f = [](R x) { return k::f32_erf<V>(x); };
  report("erf", 0.f, big, kBoth, stride, erf_f, [](double x) { return std::erf(x); });
  auto sig_f = [](R x) { return k::f32_sigmoid<V>(x); };
  auto sig_r = [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
  report("sigmoid x >= 0", 0.f, big, kPositive, stride, sig_f, sig_r);
  report("sigmoid x in [-87.33, 0]", 0.f, 87.33f, kNegative, stride, sig_f, sig_r);
  report("sigmoid x < -87.33 (in 2^-149)", 87.33f, big, kNegative, stride, sig_f, sig_r, 0x1p-149);
  // x Phi(x): ulp of the result for x >= -1.3; below, where x Phi(x) is far smaller than x,
  // the error relative to |x| as well ("ulp of |x|").
  auto gelu_f = [](R x) { return k::f32_x_normal_cdf<V>(x); };
  auto gelu_r = [](double x) { return x * phi(x); };
  report("x_normal_cdf x >= 0", 0.f, big, kPositive, stride, gelu_f, gelu_r);
  report("x_normal_cdf x in [-1.3, 0]", 0.f, 1.3f, kNegative, stride, gelu_f, gelu_r);
  report("x_normal_cdf x in [-2, -1.3]", 1.3f, 2.f, kNegative, stride, gelu_f, gelu_r);
  report("x_normal_cdf x in [-3, -2]", 2.f, 3.f, kNegative, stride, gelu_f, gelu_r);
  report("x_normal_cdf x in [-4, -3]", 3.f, 4.f, kNegative, stride, gelu_f, gelu_r);
  report("x_normal_cdf x in [-5.66, -4]", 4.f, 5.66f, kNegative, stride, gelu_f, gelu_r);
  report("x_normal_cdf x < -5.66 (in 2^-149)", 5.66f, big, kNegative, stride, gelu_f, gelu_r,
         0x1p-149);
  report_rel_x("x_normal_cdf x < 0, in ulp of |x|", 0.f, big, stride, gelu_f, gelu_r);
  // The two activations composed in f32_elementwise.h, against their float64 definitions.
  auto tanh_gelu_f = [](R x) { return k::GeluTanhOp::apply<V>(x); };
  auto tanh_gelu_r = [](double x) {
    return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
  };
  report("gelu_tanh x >= 0", 0.f, big, kPositive, stride, tanh_gelu_f, tanh_gelu_r);
  report_rel_x("gelu_tanh x < 0, in ulp of |x|", 0.f, big, stride, tanh_gelu_f, tanh_gelu_r);
  auto silu_f = [](R x) { return k::SiluMulOp::apply<V>(x, V::broadcast(1.0f)); };
  auto silu_r = [](double x) { return x / (1 + std::exp(-x)); };
  report("silu x >= -87.33", 0.f, big, kPositive, stride, silu_f, silu_r);
  report("silu x >= -87.33", 0.f, 87.33f, kNegative, stride, silu_f, silu_r);
  report("silu x < -87.33 (in 2^-149)", 87.33f, big, kNegative, stride, silu_f, silu_r, 0x1p-149);
  return 0;
}
