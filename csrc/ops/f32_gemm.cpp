#include "ops/f32_gemm.h"

#include <algorithm>

#include "cpu/by_level.h"
#include "ops/int_math.h"
#include "ops/panel_runs.h"
#include "runtime/aligned_buffer.h"
#include "runtime/thread_scratch.h"

namespace pyengine::ops {

using kernels::GemmEpilogue;

const F32GemmKernels& f32_gemm_kernels(cpu::IsaLevel level) {
  return cpu::by_level(level, &kernels::generic::f32_gemm_kernels, &kernels::avx2::f32_gemm_kernels,
                       &kernels::avx512::f32_gemm_kernels, /*amx=*/nullptr);
}

size_t f32_packed_b_size(int64_t n, int64_t k, int nr) {
  const int64_t panels = (n + nr - 1) / nr;
  return size_t(panels) * size_t(k) * size_t(nr);
}

void f32_pack_b(const float* src, int64_t stride_n, int64_t stride_k, int64_t n, int64_t k, int nr,
                float* packed, runtime::ThreadPool& pool) {
  const int64_t panels = (n + nr - 1) / nr;
  pool.parallel_for(panels, [&](int64_t j) {
    float* dst = packed + j * k * nr;
    const int64_t cols = std::min<int64_t>(nr, n - j * nr);
    const float* col0 = src + j * nr * stride_n;
    // Walk K in blocks so both the source rows and the destination stay in L1.
    constexpr int64_t kKBlock = 64;
    for (int64_t k0 = 0; k0 < k; k0 += kKBlock) {
      const int64_t k1 = std::min(k, k0 + kKBlock);
      for (int64_t c = 0; c < cols; ++c) {
        const float* s = col0 + c * stride_n;
        for (int64_t p = k0; p < k1; ++p) dst[p * nr + c] = s[p * stride_k];
      }
      for (int64_t c = cols; c < nr; ++c)
        for (int64_t p = k0; p < k1; ++p) dst[p * nr + c] = 0.f;
    }
  });
}

namespace {

// Few rows: every thread streams a contiguous run of whole panels over all of K, once.
void gemv_path(const F32GemmKernels& kt, const F32GemmArgs& g, runtime::ThreadPool& pool) {
  parallel_panel_runs(ceil_div(g.n, kt.nr), pool, [&](int64_t j) {
    const int64_t col = j * kt.nr;
    const GemmEpilogue ep{g.bias ? g.bias + col : nullptr, g.residual ? g.residual + col : nullptr,
                          g.ldr};
    const bool has_ep = g.bias != nullptr || g.residual != nullptr;
    kt.gemv_panel(int(g.m), int(std::min<int64_t>(kt.nr, g.n - col)), int(g.k), g.a, g.lda,
                  g.b_packed + j * g.k * kt.nr, g.c + col, g.ldc, has_ep ? &ep : nullptr);
  });
}

// Packs A[m0:m1, p0:p0+kc] into micro-panels of mr rows, each [kc][mr], so the micro-kernel reads
// one sequential stream of A. Rows past m1 in the last micro-panel are left unset (never read).
void pack_a_block(const float* a, size_t lda, int64_t rows, int kc, int mr, float* dst) {
  for (int64_t i0 = 0; i0 < rows; i0 += mr) {
    const int h = int(std::min<int64_t>(mr, rows - i0));
    float* panel = dst + i0 * kc;
    const float* src = a + i0 * lda;
    // p outer: each packed row of the panel is written once, contiguously.
    for (int p = 0; p < kc; ++p) {
      for (int i = 0; i < h; ++i) panel[p * mr + i] = src[i * lda + p];
    }
  }
}

// Many rows: tasks are (M block, N block) pairs. Inside one, K is walked in kc blocks; the M
// block's rows are packed (mc x kc, kept in L2), then for each packed B panel (kc x nr, kept in
// L1) they are swept in mr-row tiles. The blocking depends on the kernel table only, never on the
// thread count, so every element is computed the same way for any number of threads.
void gemm_path(const F32GemmKernels& kt, const F32GemmArgs& g, const F32PanelSource& src,
               runtime::ThreadPool& pool) {
  const int64_t panels = ceil_div(g.n, kt.nr);
  const int64_t m_blocks = ceil_div(g.m, kt.mc);
  // Split N only as far as needed to give every thread a few tasks (the packed B panels stream
  // from L3 either way).
  const int64_t wanted = ceil_div(8 * int64_t(pool.num_threads()), m_blocks);
  const int64_t n_blocks = std::min(panels, pool.num_threads() == 1 ? 1 : wanted);
  const int64_t panels_per_block = ceil_div(panels, n_blocks);
  const int64_t k_blocks = std::max<int64_t>(1, ceil_div(g.k, kt.kc));
  // C == residual (an in-place residual add): accumulate into C from the first K block instead,
  // since the first block's store would overwrite the residual before the epilogue reads it.
  const bool in_place = g.residual == g.c && g.ldr == g.ldc;
  const float* residual = in_place ? nullptr : g.residual;
  const bool has_ep = g.bias != nullptr || residual != nullptr;

  const int64_t n_block_count = ceil_div(panels, panels_per_block);
  // With several N blocks per M block, pack all of A once, up front, instead of once per N
  // block: block (mb, kb) at mb * mc * K + mc * p0, in the layout pack_a_block writes.
  float* shared = nullptr;
  if (n_block_count > 1) {
    shared = runtime::thread_scratch<runtime::kScratchF32SharedA>(size_t(m_blocks) * size_t(kt.mc) *
                                                                  size_t(g.k));
    pool.parallel_for(m_blocks * k_blocks, [&](int64_t t) {
      const int64_t mb = t / k_blocks, p0 = (t % k_blocks) * kt.kc;
      const int64_t m0 = mb * kt.mc, m1 = std::min(g.m, m0 + kt.mc);
      pack_a_block(g.a + m0 * g.lda + p0, g.lda, m1 - m0, int(std::min<int64_t>(kt.kc, g.k - p0)),
                   kt.mr, shared + mb * kt.mc * g.k + kt.mc * p0);
    });
  }

  pool.parallel_for(m_blocks * n_block_count, [&](int64_t t) {
    const int64_t mb = t / n_block_count, nb = t % n_block_count;
    const int64_t m0 = mb * kt.mc, m1 = std::min(g.m, m0 + kt.mc);
    const int64_t j0 = nb * panels_per_block, j1 = std::min(panels, j0 + panels_per_block);
    float* own =
        shared == nullptr
            ? runtime::thread_scratch<runtime::kScratchF32BlockA>(size_t(kt.mc) * size_t(kt.kc))
            : nullptr;
    for (int64_t kb = 0; kb < k_blocks; ++kb) {
      const int64_t p0 = kb * kt.kc;
      const int kc = int(std::min<int64_t>(kt.kc, g.k - p0));
      const bool last = kb + 1 == k_blocks;
      const float* a_packed = own;
      if (own != nullptr) {
        pack_a_block(g.a + m0 * g.lda + p0, g.lda, m1 - m0, kc, kt.mr, own);
      } else {
        a_packed = shared + mb * kt.mc * g.k + kt.mc * p0;
      }
      for (int64_t j = j0; j < j1; ++j) {
        const int64_t col = j * kt.nr;
        const int n = int(std::min<int64_t>(kt.nr, g.n - col));
        const float* b = src.fn != nullptr ? src.fn(src.ctx, j, p0, kc)
                                           : g.b_packed + j * g.k * kt.nr + p0 * kt.nr;
        for (int64_t i = m0; i < m1; i += kt.mr) {
          const GemmEpilogue ep{g.bias ? g.bias + col : nullptr,
                                residual ? residual + i * g.ldr + col : nullptr, g.ldr};
          kt.tile(int(std::min<int64_t>(kt.mr, m1 - i)), n, kc, a_packed + (i - m0) * kc, b,
                  g.c + i * g.ldc + col, g.ldc, kb > 0 || in_place, last && has_ep ? &ep : nullptr);
        }
      }
    }
  });
}

}  // namespace

void f32_gemm_packed(const F32GemmKernels& kt, const F32GemmArgs& g, runtime::ThreadPool& pool,
                     bool batch_invariant) {
  if (g.m <= 0 || g.n <= 0) return;
  if (g.m <= kt.gemv_max_m && !batch_invariant) {
    gemv_path(kt, g, pool);
  } else {
    gemm_path(kt, g, F32PanelSource{}, pool);
  }
}

void f32_gemm_blocked(const F32GemmKernels& kt, const F32GemmArgs& g, const F32PanelSource& src,
                      runtime::ThreadPool& pool) {
  if (g.m <= 0 || g.n <= 0) return;
  gemm_path(kt, g, src, pool);
}

void f32_matmul(cpu::IsaLevel level, int64_t m, int64_t n, int64_t k, const float* a, size_t lda,
                const float* b, size_t ldb, float* c, size_t ldc) {
  const F32GemmKernels& kt = f32_gemm_kernels(level);
  runtime::ThreadPool& pool = runtime::ThreadPool::instance();
  runtime::AlignedBuffer packed(f32_packed_b_size(n, k, kt.nr));
  f32_pack_b(b, /*stride_n=*/1, /*stride_k=*/int64_t(ldb), n, k, kt.nr, packed.data(), pool);
  f32_gemm_packed(kt, F32GemmArgs{m, n, k, a, lda, packed.data(), c, ldc}, pool);
}

}  // namespace pyengine::ops
