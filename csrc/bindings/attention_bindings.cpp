// pyengine._C: attention over a KV cache, and the cache writer.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bindings/array_checks.h"
#include "bindings/kernel_clock.h"
#include "bindings/register.h"
#include "ops/f32_attention.h"
#include "ops/f32_paged_attention.h"

namespace pyengine::bindings {
namespace {

// The kernels index keys with int (and step past the last key by a block): stay well clear.
constexpr int64_t kMaxIndex = int64_t(1) << 30;

// A float32, C-contiguous, 4-D array.
py::array require_4d(const py::object& obj, const char* name) {
  py::array a = require_f32_array(obj, name);
  require_ndim(a, name, 4, 4);
  require_c_contiguous(a, name);
  return a;
}

// The two caches: same shape [batch, n_kv_heads, max_ctx, head_dim], small enough for the
// kernels' int key indices.
void check_caches(const py::array& k_cache, const py::array& v_cache) {
  require_shape(v_cache, "v_cache",
                std::vector<py::ssize_t>(k_cache.shape(), k_cache.shape() + k_cache.ndim()));
  if (k_cache.shape(2) > kMaxIndex || k_cache.shape(3) > kMaxIndex) {
    throw py::value_error("k_cache's max_ctx and head_dim must be at most 2^30, got shape " +
                          shape_str(k_cache));
  }
  if (k_cache.shape(3) == 0) throw py::value_error("head_dim must be >= 1, got 0");
}

void check_context(int64_t start_pos, int64_t q_len, int64_t max_ctx) {
  if (start_pos < 0) {
    throw py::value_error("start_pos must be >= 0, got " + std::to_string(start_pos));
  }
  if (start_pos + q_len > max_ctx) {
    throw py::value_error("context overflow: start_pos + q_len = " + std::to_string(start_pos) +
                          " + " + std::to_string(q_len) + " exceeds the context length max_ctx = " +
                          std::to_string(max_ctx) + " of the cache");
  }
}

// None -> `fallback` for every batch row; else a numpy int32/int64 array of shape [batch].
std::vector<int64_t> key_bounds_arg(const py::object& obj, const char* name, py::ssize_t batch,
                                    int64_t fallback) {
  if (obj.is_none()) return std::vector<int64_t>(size_t(batch), fallback);
  py::array a = require_index_array(obj, name);
  const py::dtype dt = a.dtype();
  require_shape(a, name, {batch});
  std::vector<int64_t> values(static_cast<size_t>(batch));
  const char* base = static_cast<const char*>(a.data());
  for (py::ssize_t i = 0; i < batch; ++i) {
    const char* p = base + i * a.strides(0);
    values[size_t(i)] = dt.itemsize() == 4 ? *reinterpret_cast<const int32_t*>(p)
                                           : *reinterpret_cast<const int64_t*>(p);
  }
  return values;
}

// A sliding window (keys per query, 0: none) and a score soft-cap (0: none).
int64_t window_arg(int64_t window) {
  if (window < 0 || window > kMaxIndex) {
    throw py::value_error("window must be in [0, 2^30] (0: no window), got " +
                          std::to_string(window));
  }
  return window;
}
float softcap_arg(double softcap) {
  if (!std::isfinite(softcap) || softcap < 0.0) {
    throw py::value_error("softcap must be a finite number >= 0 (0: none), got " +
                          std::string(py::repr(py::float_(softcap))));
  }
  return float(softcap);
}

// The scale of the scores: default 1/sqrt(head_dim); must be finite.
float scale_arg(std::optional<double> scale, int64_t head_dim) {
  const double value = scale.value_or(1.0 / std::sqrt(double(head_dim)));
  if (!std::isfinite(value)) throw py::value_error("scale must be finite");
  return float(value);
}

// `out` when given (float32, q's shape, overlapping neither q nor the caches), else a new array.
py::array attention_out(const py::object& out_obj, const py::array& q, const py::array& k,
                        const char* k_name, const py::array& v, const char* v_name) {
  py::array out = f32_output(out_obj, std::vector<py::ssize_t>(q.shape(), q.shape() + q.ndim()));
  if (!out_obj.is_none()) {
    require_no_overlap(out, "out", q, "q");
    require_no_overlap(out, "out", k, k_name);
    require_no_overlap(out, "out", v, v_name);
  }
  return out;
}

void kv_cache_write(const py::object& k_obj, const py::object& v_obj, const py::object& kc_obj,
                    const py::object& vc_obj, int64_t start_pos) {
  py::array k = require_4d(k_obj, "k");
  py::array v = require_4d(v_obj, "v");
  py::array k_cache = require_4d(kc_obj, "k_cache");
  py::array v_cache = require_4d(vc_obj, "v_cache");
  require_writeable(k_cache, "k_cache");
  require_writeable(v_cache, "v_cache");
  check_caches(k_cache, v_cache);
  const int64_t batch = k_cache.shape(0), n_kv = k_cache.shape(1);
  const int64_t max_ctx = k_cache.shape(2), d = k_cache.shape(3);
  const int64_t q_len = k.shape(1);
  if (k.shape(0) != batch || k.shape(2) != n_kv || k.shape(3) != d) {
    throw py::value_error("k must have shape (batch, q_len, n_kv_heads, head_dim) = (" +
                          std::to_string(batch) + ", q_len, " + std::to_string(n_kv) + ", " +
                          std::to_string(d) + ") to match k_cache " + shape_str(k_cache) +
                          ", got " + shape_str(k));
  }
  require_shape(v, "v", std::vector<py::ssize_t>(k.shape(), k.shape() + k.ndim()));
  check_context(start_pos, q_len, max_ctx);
  require_no_overlap(k_cache, "k_cache", v_cache, "v_cache");
  for (const auto& [cache, cache_name] : {std::pair(k_cache, "k_cache"), {v_cache, "v_cache"}}) {
    require_no_overlap(cache, cache_name, k, "k");
    require_no_overlap(cache, cache_name, v, "v");
  }
  const ops::F32KvCacheWriteArgs args{batch,
                                      q_len,
                                      n_kv,
                                      d,
                                      max_ctx,
                                      start_pos,
                                      static_cast<const float*>(k.data()),
                                      static_cast<const float*>(v.data()),
                                      static_cast<float*>(k_cache.mutable_data()),
                                      static_cast<float*>(v_cache.mutable_data())};
  KernelScope scope;
  ops::f32_kv_cache_write(args, runtime::ThreadPool::instance());
}

py::array attention(const py::object& q_obj, const py::object& kc_obj, const py::object& vc_obj,
                    int64_t start_pos, const py::object& key_begin_obj,
                    const py::object& key_end_obj, bool causal, std::optional<double> scale,
                    int64_t window, double softcap, const py::object& out_obj,
                    const py::object& isa) {
  py::array q = require_4d(q_obj, "q");
  py::array k_cache = require_4d(kc_obj, "k_cache");
  py::array v_cache = require_4d(vc_obj, "v_cache");
  check_caches(k_cache, v_cache);
  const int64_t batch = k_cache.shape(0), n_kv = k_cache.shape(1);
  const int64_t max_ctx = k_cache.shape(2), d = k_cache.shape(3);
  const int64_t q_len = q.shape(1), n_heads = q.shape(2);
  if (q.shape(0) != batch || q.shape(3) != d) {
    throw py::value_error("q must have shape (batch, q_len, n_heads, head_dim) = (" +
                          std::to_string(batch) + ", q_len, n_heads, " + std::to_string(d) +
                          ") to match k_cache " + shape_str(k_cache) + ", got " + shape_str(q));
  }
  if (n_kv == 0 || n_heads % n_kv != 0) {
    throw py::value_error("n_heads (" + std::to_string(n_heads) +
                          ", q's axis 2) must be a multiple of n_kv_heads (" +
                          std::to_string(n_kv) + ", k_cache's axis 1)");
  }
  if (q_len > kMaxIndex) throw py::value_error("q_len must be at most 2^30");
  check_context(start_pos, q_len, max_ctx);
  const auto key_begin = key_bounds_arg(key_begin_obj, "key_begin", batch, 0);
  const auto key_end = key_bounds_arg(key_end_obj, "key_end", batch, start_pos + q_len);
  for (py::ssize_t b = 0; b < batch; ++b) {
    const auto i = std::to_string(b);
    if (key_begin[b] < 0) {
      throw py::value_error("key_begin[" + i + "] must be >= 0, got " +
                            std::to_string(key_begin[b]));
    }
    if (key_end[b] < 0 || key_end[b] > max_ctx) {
      throw py::value_error("key_end[" + i + "] = " + std::to_string(key_end[b]) +
                            " must be in [0, max_ctx], max_ctx = " + std::to_string(max_ctx) +
                            " (the cache's context length)");
    }
  }
  const float scale_value = scale_arg(scale, d);
  const auto level = isa_level_arg(isa);
  py::array out = attention_out(out_obj, q, k_cache, "k_cache", v_cache, "v_cache");
  ops::F32AttentionArgs args;
  args.batch = batch;
  args.q_len = q_len;
  args.n_heads = n_heads;
  args.n_kv_heads = n_kv;
  args.head_dim = d;
  args.max_ctx = max_ctx;
  args.q = static_cast<const float*>(q.data());
  args.k_cache = static_cast<const float*>(k_cache.data());
  args.v_cache = static_cast<const float*>(v_cache.data());
  args.out = static_cast<float*>(out.mutable_data());
  args.start_pos = start_pos;
  args.key_begin = key_begin.data();
  args.key_end = key_end.data();
  args.causal = causal;
  args.scale = scale_value;
  args.window = window_arg(window);
  args.softcap = softcap_arg(softcap);
  if (args.window > 0 && !causal) {
    throw py::value_error("a sliding window (window > 0) needs causal=True");
  }
  {
    KernelScope scope;
    ops::f32_attention(ops::f32_attention_kernels(level), args, runtime::ThreadPool::instance());
  }
  return out;
}

// ---- paged cache (the serving engine) ----------------------------------------------------------

// A C-contiguous int32 array of `shape` (native byte order): the engine's index arrays.
const int32_t* int32_arg(const py::object& obj, const char* name,
                         const std::vector<py::ssize_t>& shape) {
  py::array a = require_index_array(obj, name);
  if (a.itemsize() != 4) {
    throw py::type_error(std::string(name) + " must have dtype int32, got " +
                         std::string(py::str(a.dtype())));
  }
  require_shape(a, name, shape);
  require_c_contiguous(a, name);
  return static_cast<const int32_t*>(a.data());
}

// Both pools: float32 C-contiguous [n_blocks, n_kv_heads, block_size, head_dim], same shape.
void check_pools(const py::array& k_pool, const py::array& v_pool) {
  require_shape(v_pool, "v_pool",
                std::vector<py::ssize_t>(k_pool.shape(), k_pool.shape() + k_pool.ndim()));
  if (k_pool.shape(2) == 0 || k_pool.shape(3) == 0) {
    throw py::value_error("k_pool's block_size and head_dim must be >= 1, got shape " +
                          shape_str(k_pool));
  }
  if (k_pool.shape(2) > kMaxIndex || k_pool.shape(3) > kMaxIndex) {
    throw py::value_error("k_pool's block_size and head_dim must be at most 2^30");
  }
}

// A float32 C-contiguous 3-D array [tokens, heads, head_dim].
py::array require_3d(const py::object& obj, const char* name) {
  py::array a = require_f32_array(obj, name);
  require_ndim(a, name, 3, 3);
  require_c_contiguous(a, name);
  return a;
}

void paged_kv_write(const py::object& k_obj, const py::object& v_obj, const py::object& kp_obj,
                    const py::object& vp_obj, const py::object& slots_obj) {
  py::array k = require_3d(k_obj, "k");
  py::array v = require_3d(v_obj, "v");
  py::array k_pool = require_4d(kp_obj, "k_pool");
  py::array v_pool = require_4d(vp_obj, "v_pool");
  require_writeable(k_pool, "k_pool");
  require_writeable(v_pool, "v_pool");
  check_pools(k_pool, v_pool);
  const int64_t n_blocks = k_pool.shape(0), n_kv = k_pool.shape(1);
  const int64_t bs = k_pool.shape(2), d = k_pool.shape(3);
  const int64_t tokens = k.shape(0);
  if (k.shape(1) != n_kv || k.shape(2) != d) {
    throw py::value_error("k must have shape (tokens, n_kv_heads, head_dim) = (tokens, " +
                          std::to_string(n_kv) + ", " + std::to_string(d) + ") to match k_pool " +
                          shape_str(k_pool) + ", got " + shape_str(k));
  }
  require_shape(v, "v", std::vector<py::ssize_t>(k.shape(), k.shape() + k.ndim()));
  const int32_t* slots = int32_arg(slots_obj, "slots", {tokens});
  for (int64_t t = 0; t < tokens; ++t) {
    if (slots[t] < 0 || slots[t] >= n_blocks * bs) {
      throw py::value_error("slots[" + std::to_string(t) + "] = " + std::to_string(slots[t]) +
                            " is outside the pool's " + std::to_string(n_blocks * bs) + " slots");
    }
  }
  require_no_overlap(k_pool, "k_pool", v_pool, "v_pool");
  for (const auto& [p, p_name] : {std::pair(k_pool, "k_pool"), {v_pool, "v_pool"}}) {
    require_no_overlap(p, p_name, k, "k");
    require_no_overlap(p, p_name, v, "v");
  }
  const ops::F32PagedKvWriteArgs args{tokens,
                                      n_kv,
                                      d,
                                      bs,
                                      static_cast<const float*>(k.data()),
                                      static_cast<const float*>(v.data()),
                                      static_cast<float*>(k_pool.mutable_data()),
                                      static_cast<float*>(v_pool.mutable_data()),
                                      slots};
  KernelScope scope;
  ops::f32_paged_kv_write(args, runtime::ThreadPool::instance());
}

py::array paged_attention(const py::object& q_obj, const py::object& kp_obj,
                          const py::object& vp_obj, const py::object& q_start_obj,
                          const py::object& first_pos_obj, const py::object& table_obj,
                          std::optional<double> scale, int64_t window, double softcap,
                          const py::object& out_obj, const py::object& isa) {
  py::array q = require_3d(q_obj, "q");
  py::array k_pool = require_4d(kp_obj, "k_pool");
  py::array v_pool = require_4d(vp_obj, "v_pool");
  check_pools(k_pool, v_pool);
  const int64_t n_blocks = k_pool.shape(0), n_kv = k_pool.shape(1);
  const int64_t bs = k_pool.shape(2), d = k_pool.shape(3);
  const int64_t tokens = q.shape(0), n_heads = q.shape(1);
  if (q.shape(2) != d) {
    throw py::value_error("q's head_dim (axis 2) must be k_pool's " + std::to_string(d) + ", got " +
                          shape_str(q));
  }
  if (n_kv == 0 || n_heads % n_kv != 0) {
    throw py::value_error("n_heads (" + std::to_string(n_heads) +
                          ", q's axis 1) must be a multiple of n_kv_heads (" +
                          std::to_string(n_kv) + ", k_pool's axis 1)");
  }
  if (!py::isinstance<py::array>(table_obj)) {
    throw py::type_error("block_table must be a numpy.ndarray of int32");
  }
  py::array table_arr = py::reinterpret_borrow<py::array>(table_obj);
  require_ndim(table_arr, "block_table", 2, 2);
  const int64_t n_seqs = table_arr.shape(0), stride = table_arr.shape(1);
  const int32_t* table = int32_arg(table_obj, "block_table", {n_seqs, stride});
  const int32_t* q_start = int32_arg(q_start_obj, "q_start", {n_seqs + 1});
  const int32_t* first_pos = int32_arg(first_pos_obj, "first_pos", {n_seqs});
  window = window_arg(window);
  if (q_start[0] != 0 || q_start[n_seqs] != tokens) {
    throw py::value_error("q_start must run from 0 to q's token count " + std::to_string(tokens));
  }
  for (int64_t s = 0; s < n_seqs; ++s) {
    const auto i = std::to_string(s);
    if (q_start[s + 1] < q_start[s]) throw py::value_error("q_start must be nondecreasing");
    if (first_pos[s] < 0) throw py::value_error("first_pos[" + i + "] must be >= 0");
    const int64_t keys = int64_t(first_pos[s]) + (q_start[s + 1] - q_start[s]);
    if (keys > kMaxIndex) throw py::value_error("sequence " + i + " is longer than 2^30");
    const int64_t blocks = (keys + bs - 1) / bs;
    if (q_start[s + 1] > q_start[s] && blocks > stride) {
      throw py::value_error("sequence " + i + " needs " + std::to_string(blocks) +
                            " blocks of its table, which has " + std::to_string(stride));
    }
    // With a window, blocks wholly before the first row's window are never read (nor checked).
    const int64_t first_block =
        window > 0 ? std::max<int64_t>(0, first_pos[s] - window + 1) / bs : 0;
    for (int64_t c = first_block; q_start[s + 1] > q_start[s] && c < blocks; ++c) {
      const int32_t id = table[s * stride + c];
      if (id < 0 || id >= n_blocks) {
        throw py::value_error("block_table[" + i + ", " + std::to_string(c) +
                              "] = " + std::to_string(id) + " is not a block of the pool (" +
                              std::to_string(n_blocks) + " blocks)");
      }
    }
  }
  const float scale_value = scale_arg(scale, d);
  const auto level = isa_level_arg(isa);
  py::array out = attention_out(out_obj, q, k_pool, "k_pool", v_pool, "v_pool");
  ops::F32PagedAttentionArgs args;
  args.n_seqs = n_seqs;
  args.n_heads = n_heads;
  args.n_kv_heads = n_kv;
  args.head_dim = d;
  args.block_size = bs;
  args.table_stride = stride;
  args.q = static_cast<const float*>(q.data());
  args.k_pool = static_cast<const float*>(k_pool.data());
  args.v_pool = static_cast<const float*>(v_pool.data());
  args.out = static_cast<float*>(out.mutable_data());
  args.q_start = q_start;
  args.first_pos = first_pos;
  args.block_table = table;
  args.scale = scale_value;
  args.window = window_arg(window);
  args.softcap = softcap_arg(softcap);
  {
    KernelScope scope;
    ops::f32_paged_attention(ops::f32_attention_kernels(level), args,
                             runtime::ThreadPool::instance());
  }
  return out;
}

}  // namespace

void register_attention(py::module_& m) {
  m.def("kv_cache_write", &kv_cache_write, py::arg("k"), py::arg("v"), py::arg("k_cache"),
        py::arg("v_cache"), py::arg("start_pos"), R"doc(
Writes new keys and values into a KV cache: cache[b, h, start_pos + t, :] = k[b, t, h, :] (and v).

k, v: float32 C-contiguous [batch, q_len, n_kv_heads, head_dim] (the projection's output).
k_cache, v_cache: float32 C-contiguous writeable [batch, n_kv_heads, max_ctx, head_dim] (per
head, positions contiguous: the layout attention streams). start_pos + q_len > max_ctx raises
ValueError (context overflow).)doc");
  m.def("paged_kv_write", &paged_kv_write, py::arg("k"), py::arg("v"), py::arg("k_pool"),
        py::arg("v_pool"), py::arg("slots"), R"doc(
Writes new keys and values into a paged KV cache: pool[s // B, h, s % B, :] = k[t, h, :] (and v)
for s = slots[t], B = block_size.

k, v: float32 C-contiguous [tokens, n_kv_heads, head_dim]; k_pool, v_pool: float32 C-contiguous
writeable [n_blocks, n_kv_heads, block_size, head_dim]; slots: int32 [tokens], each < n_blocks *
block_size (ValueError otherwise).)doc");
  m.def("paged_attention", &paged_attention, py::arg("q"), py::arg("k_pool"), py::arg("v_pool"),
        py::kw_only(), py::arg("q_start"), py::arg("first_pos"), py::arg("block_table"),
        py::arg("scale") = py::none(), py::arg("window") = 0, py::arg("softcap") = 0.0,
        py::arg("out") = py::none(), py::arg("isa") = py::none(),
        R"doc(
Causal attention of a ragged batch over a paged KV cache (the serving engine's step).

q: float32 C-contiguous [tokens, n_heads, head_dim]; sequence s owns rows q_start[s] ..
q_start[s+1]-1 (q_start: int32 [n_seqs + 1], from 0 to tokens), at positions first_pos[s], +1, ...
(first_pos: int32 [n_seqs]); the query at position p sees its sequence's keys 0 .. p, key j in
block block_table[s, j // block_size] (block_table: int32 [n_seqs, max_blocks]) of k_pool, v_pool
(float32 C-contiguous [n_blocks, n_kv_heads, block_size, head_dim]). GQA/MQA as attention().
scale: default 1/sqrt(head_dim). window > 0: a sliding window, the query at p sees keys p - window
+ 1 .. p only (blocks wholly before it are never read). softcap > 0: scores s become softcap *
tanh(s / softcap) (Gemma 2). out: optional float32 [tokens, n_heads, head_dim]. isa: force a
level. A sequence's rows are bit-identical whatever the other sequences and the thread count.)doc");
  m.def("attention", &attention, py::arg("q"), py::arg("k_cache"), py::arg("v_cache"),
        py::kw_only(), py::arg("start_pos"), py::arg("key_begin") = py::none(),
        py::arg("key_end") = py::none(), py::arg("causal") = true, py::arg("scale") = py::none(),
        py::arg("window") = 0, py::arg("softcap") = 0.0, py::arg("out") = py::none(),
        py::arg("isa") = py::none(), R"doc(
softmax(q k^T * scale + mask) v over a KV cache, for every query head; GQA/MQA supported.

q: float32 C-contiguous [batch, q_len, n_heads, head_dim]; k_cache, v_cache: float32
C-contiguous [batch, n_kv_heads, max_ctx, head_dim]; n_heads % n_kv_heads == 0 and query head h
uses KV head h // (n_heads // n_kv_heads). Query t of batch row b sits at position start_pos + t
and sees the keys j with key_begin[b] <= j < key_end[b] and, when causal, j <= start_pos + t.
key_begin, key_end: int32/int64 arrays [batch] or None (0 and start_pos + q_len); key_end <=
max_ctx. Left padding of a batched prompt: key_begin; right padding (encoders): key_end with
causal=False. A query that sees no key gets zeros. scale: default 1/sqrt(head_dim). window > 0
(causal only): a sliding window, query t also needs j > start_pos + t - window. softcap > 0:
scores s become softcap * tanh(s / softcap) (Gemma 2). out:
optional float32 C-contiguous [batch, q_len, n_heads, head_dim] to write into. isa: force an ISA
level. Returns out. The result is bit-identical for any number of threads.)doc");
}

}  // namespace pyengine::bindings
