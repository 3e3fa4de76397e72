#include "ops/bf16_gemm.h"

#include <algorithm>
#include <bit>

#include "cpu/by_level.h"
#include "ops/f32_gemm.h"
#include "ops/int_math.h"
#include "ops/panel_runs.h"
#include "runtime/thread_scratch.h"

namespace pyengine::ops {

using kernels::GemmEpilogue;
using kernels::kBf16KBlock;
using kernels::kBf16PanelWidth;

const Bf16GemmKernels& bf16_gemm_kernels(cpu::IsaLevel level) {
#if PYENGINE_HAVE_AMX
  constexpr auto amx = &kernels::amx::bf16_gemm_kernels;
#else
  constexpr const Bf16GemmKernels& (*amx)() = nullptr;  // not built (see setup.py)
#endif
  return cpu::by_level(level, &kernels::generic::bf16_gemm_kernels,
                       &kernels::avx2::bf16_gemm_kernels, &kernels::avx512::bf16_gemm_kernels, amx);
}

uint16_t f32_to_bf16(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40u);  // quiet NaN
  const uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return uint16_t((bits + rounding) >> 16);
}

namespace {

int64_t padded_k(int64_t k) { return ceil_div(k, kBf16KBlock) * kBf16KBlock; }
size_t panel_elems(int64_t k) { return size_t(padded_k(k)) * kBf16PanelWidth; }

bool has_epilogue(const Bf16GemmArgs& g) { return g.bias != nullptr || g.residual != nullptr; }

GemmEpilogue epilogue_at(const Bf16GemmArgs& g, int64_t row, int64_t col) {
  return {g.bias ? g.bias + col : nullptr, g.residual ? g.residual + row * g.ldr + col : nullptr,
          g.ldr};
}

// Few rows: tasks are runs of whole panels; each panel is swept by row groups of gemv_max_m (one
// pass over the weights when rows <= gemv_max_m).
void gemv_path(const Bf16GemmKernels& kt, const Bf16GemmArgs& g, runtime::ThreadPool& pool) {
  parallel_panel_runs(ceil_div(g.n, kBf16PanelWidth), pool, [&](int64_t j) {
    const int64_t col = j * kBf16PanelWidth;
    const int n = int(std::min<int64_t>(kBf16PanelWidth, g.n - col));
    const uint16_t* panel = g.b_packed + size_t(j) * panel_elems(g.k);
    for (int64_t i = 0; i < g.m; i += kt.gemv_max_m) {
      const int rows = int(std::min<int64_t>(kt.gemv_max_m, g.m - i));
      const GemmEpilogue ep = epilogue_at(g, i, col);
      kt.gemv_panel(rows, n, int(g.k), g.a + i * g.lda, g.lda, panel, g.c + i * g.ldc + col, g.ldc,
                    has_epilogue(g) ? &ep : nullptr);
    }
  });
}

// Matrix engine: A is rounded to bf16 once, into blocks of tile_rows rows (shared by the
// tasks), then tasks are (row chunk, run of panels) pairs; a chunk of A stays in L2 while the
// run's panels stream past it.
void tile_path(const Bf16GemmKernels& kt, const Bf16GemmArgs& g, runtime::ThreadPool& pool) {
  const kernels::Bf16TileKernels& tk = *kt.tiles;
  const int64_t kp = padded_k(g.k);
  const int64_t blocks = ceil_div(g.m, tk.tile_rows);
  const size_t block_elems = size_t(tk.tile_rows) * size_t(kp);
  // Kept at its largest size per calling thread (a long prefill: rows x K x 2 bytes).
  uint16_t* a16 = reinterpret_cast<uint16_t*>(runtime::thread_scratch<runtime::kScratchBf16A>(
      std::max<size_t>(1, (size_t(blocks) * block_elems + 1) / 2)));
  pool.parallel_for(blocks, [&](int64_t b) {
    const int64_t row = b * tk.tile_rows;
    const int rows = int(std::min<int64_t>(tk.tile_rows, g.m - row));
    tk.convert_a(rows, int(g.k), g.a + row * g.lda, g.lda, a16 + size_t(b) * block_elems, int(kp));
  });

  const int64_t panels = ceil_div(g.n, kBf16PanelWidth);
  // Rows per chunk: A's chunk (chunk x kp bf16) should stay well inside L2.
  const int64_t block_bytes = std::max<int64_t>(1, int64_t(block_elems) * 2);  // K = 0: empty
  const int64_t chunk_blocks = std::max<int64_t>(1, (256 * 1024) / block_bytes);
  const int64_t chunks = ceil_div(blocks, chunk_blocks);
  const int64_t wanted = ceil_div(4 * int64_t(pool.num_threads()), chunks);
  const int64_t runs = std::min(panels, pool.num_threads() == 1 ? 1 : wanted);
  const int64_t per_run = ceil_div(panels, runs);
  const int64_t run_count = ceil_div(panels, per_run);
  pool.parallel_for(chunks * run_count, [&](int64_t t) {
    tk.begin_thread();
    const int64_t chunk = t / run_count, run = t % run_count;
    const int64_t b0 = chunk * chunk_blocks, b1 = std::min(blocks, b0 + chunk_blocks);
    const int64_t j0 = run * per_run, j1 = std::min(panels, j0 + per_run);
    for (int64_t j = j0; j < j1; ++j) {
      const int64_t col = j * kBf16PanelWidth;
      const int n = int(std::min<int64_t>(kBf16PanelWidth, g.n - col));
      const uint16_t* panel = g.b_packed + size_t(j) * panel_elems(g.k);
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t row = b * tk.tile_rows;
        const int rows = int(std::min<int64_t>(tk.tile_rows, g.m - row));
        const GemmEpilogue ep = epilogue_at(g, row, col);
        tk.block(rows, n, int(kp), a16 + size_t(b) * block_elems, panel, g.c + row * g.ldc + col,
                 g.ldc, has_epilogue(g) ? &ep : nullptr);
      }
    }
    tk.end_thread();
  });
}

struct WidenContext {
  const Bf16GemmKernels* kt;
  const uint16_t* b_packed;
  int64_t k;
  int nr;
};

// F32PanelSource over bf16 panels: fp32 panel j is columns [j*nr, j*nr + nr) of bf16 panel
// j*nr / 32, widened into this thread's scratch (one extra row for an odd kc).
const float* widened_slice(const void* ctx, int64_t j, int64_t p0, int kc) {
  const auto& w = *static_cast<const WidenContext*>(ctx);
  const int64_t col = j * w.nr;
  float* dst = runtime::thread_scratch<runtime::kScratchBf16Widened>(size_t(kc + 1) * size_t(w.nr));
  const uint16_t* panel = w.b_packed + size_t(col / kBf16PanelWidth) * panel_elems(w.k);
  w.kt->widen(panel, int(p0), kc, int(col % kBf16PanelWidth), w.nr, dst);
  return dst;
}

void widened_path(const Bf16GemmKernels& kt, const Bf16GemmArgs& g, runtime::ThreadPool& pool) {
  const F32GemmKernels& fk = *kt.widened_kernels;
  const WidenContext ctx{&kt, g.b_packed, g.k, fk.nr};
  f32_gemm_blocked(fk, g.with_b<float>(nullptr), F32PanelSource{&widened_slice, &ctx}, pool);
}

}  // namespace

size_t bf16_packed_b_size(int64_t n, int64_t k) {
  return size_t(ceil_div(n, kBf16PanelWidth)) * panel_elems(k);
}

void bf16_pack_b(const float* src, int64_t stride_n, int64_t stride_k, int64_t n, int64_t k,
                 uint16_t* packed, runtime::ThreadPool& pool) {
  const int64_t panels = ceil_div(n, kBf16PanelWidth);
  const int64_t kp = padded_k(k);
  pool.parallel_for(panels, [&](int64_t j) {
    uint16_t* dst = packed + size_t(j) * panel_elems(k);
    const int64_t cols = std::min<int64_t>(kBf16PanelWidth, n - j * kBf16PanelWidth);
    const float* col0 = src + j * kBf16PanelWidth * stride_n;
    for (int64_t p = 0; p < kp; ++p) {
      uint16_t* line = dst + (p / 2) * 2 * kBf16PanelWidth + p % 2;
      for (int64_t c = 0; c < kBf16PanelWidth; ++c) {
        line[2 * c] = c < cols && p < k ? f32_to_bf16(col0[c * stride_n + p * stride_k]) : 0;
      }
    }
  });
}

Bf16Path bf16_gemm_path(const Bf16GemmKernels& kt, int64_t rows, bool batch_invariant) {
  if (batch_invariant) return kt.tiles != nullptr ? Bf16Path::kTiles : Bf16Path::kWidened;
  if (rows <= kt.gemv_max_m) return Bf16Path::kGemv;
  if (kt.tiles != nullptr) return Bf16Path::kTiles;
  return rows >= kt.widen_min_m ? Bf16Path::kWidened : Bf16Path::kGemv;
}

const char* bf16_path_name(Bf16Path path) {
  switch (path) {
    case Bf16Path::kGemv:
      return "gemv";
    case Bf16Path::kWidened:
      return "widened";
    case Bf16Path::kTiles:
      return "tiles";
  }
  return "?";
}

void bf16_gemm_packed(const Bf16GemmKernels& kt, const Bf16GemmArgs& g, runtime::ThreadPool& pool,
                      bool batch_invariant) {
  if (g.m <= 0 || g.n <= 0) return;
  switch (bf16_gemm_path(kt, g.m, batch_invariant)) {
    case Bf16Path::kTiles:
      tile_path(kt, g, pool);
      return;
    case Bf16Path::kWidened:
      widened_path(kt, g, pool);
      return;
    case Bf16Path::kGemv:
      gemv_path(kt, g, pool);
      return;
  }
}

}  // namespace pyengine::ops
