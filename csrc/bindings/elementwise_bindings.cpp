// pyengine._C: the row-wise and elementwise ops: rms_norm, layer_norm, softmax, add, gelu,
// swiglu, embedding, rope. Every argument is checked here; the kernels trust what they get.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bindings/array_checks.h"
#include "bindings/kernel_clock.h"
#include "bindings/register.h"
#include "ops/f32_elementwise.h"
#include "ops/f32_embedding.h"
#include "ops/f32_norm.h"
#include "ops/f32_rope.h"
#include "ops/f32_softmax.h"

namespace pyengine::bindings {
namespace {

using Shape = std::vector<py::ssize_t>;

Shape shape_of(const py::array& a) { return Shape(a.shape(), a.shape() + a.ndim()); }

// Product of all dimensions but the last: the row count of a [..., n] array.
int64_t leading_rows(const py::array& a) {
  int64_t rows = 1;
  for (py::ssize_t d = 0; d + 1 < a.ndim(); ++d) rows *= a.shape(d);
  return rows;
}

const float* f32_data(const py::array& a) { return static_cast<const float*>(a.data()); }
float* f32_mutable_data(py::array& a) { return static_cast<float*>(a.mutable_data()); }

// A float32, C-contiguous input with at least min_ndim dimensions.
py::array f32_input(const py::object& obj, const char* name, int min_ndim) {
  py::array a = require_f32_array(obj, name);
  require_min_ndim(a, name, min_ndim);
  require_c_contiguous(a, name);
  return a;
}

// A float32, C-contiguous parameter vector of n elements (weight, bias).
py::array f32_vector(const py::object& obj, const char* name, py::ssize_t n) {
  py::array a = require_f32_array(obj, name);
  require_shape(a, name, {n});
  require_c_contiguous(a, name);
  return a;
}

float eps_arg(double eps) {
  if (!std::isfinite(eps) || eps < 0.0) {
    throw py::value_error("eps must be a finite number >= 0, got " +
                          std::string(py::repr(py::float_(eps))));
  }
  return float(eps);
}

// "ids[1, 2]" for flat index i of an array of this shape.
std::string index_str(const char* name, const py::array& a, int64_t i) {
  Shape index(size_t(a.ndim()));
  for (py::ssize_t d = a.ndim() - 1; d >= 0; --d) {
    index[size_t(d)] = py::ssize_t(i % a.shape(d));
    i /= a.shape(d);
  }
  std::string s = std::string(name) + "[";
  for (size_t d = 0; d < index.size(); ++d) s += (d ? ", " : "") + std::to_string(index[d]);
  return s + "]";
}

// Raises ValueError naming the first entry of `ids` outside [0, limit) (a "token id", a
// "position"), where it is, and what sets the limit.
void require_indices_in_range(const py::array& ids, const char* name, const char* noun,
                              int64_t limit, const std::string& limit_desc) {
  const int64_t n = ids.size();
  int64_t bad, value = 0;
  if (ids.itemsize() == 4) {
    const auto* p = static_cast<const int32_t*>(ids.data());
    bad = ops::first_index_out_of_range(p, n, limit);
    if (bad >= 0) value = p[bad];
  } else {
    const auto* p = static_cast<const int64_t*>(ids.data());
    bad = ops::first_index_out_of_range(p, n, limit);
    if (bad >= 0) value = p[bad];
  }
  if (bad >= 0) {
    throw py::value_error(std::string(noun) + " " + std::to_string(value) + " at " +
                          index_str(name, ids, bad) + " is out of range: " + limit_desc);
  }
}

py::array rms_norm(const py::object& x_obj, const py::object& weight_obj, double eps,
                   const py::object& out_obj, const py::object& isa) {
  py::array x = f32_input(x_obj, "x", 1);
  const py::ssize_t n = x.shape(x.ndim() - 1);
  py::array weight = f32_vector(weight_obj, "weight", n);
  const float e = eps_arg(eps);
  const auto level = isa_level_arg(isa);
  py::array out = f32_output(out_obj, shape_of(x));
  require_no_overlap(out, "out", x, "x", /*allow_identical=*/true);
  require_no_overlap(out, "out", weight, "weight");
  const int64_t rows = leading_rows(x);
  const float *xp = f32_data(x), *wp = f32_data(weight);
  float* yp = f32_mutable_data(out);
  {
    KernelScope scope;
    ops::f32_rms_norm(level, rows, n, xp, wp, e, yp);
  }
  return out;
}

py::array layer_norm(const py::object& x_obj, const py::object& weight_obj,
                     const py::object& bias_obj, double eps, const py::object& out_obj,
                     const py::object& isa) {
  py::array x = f32_input(x_obj, "x", 1);
  const py::ssize_t n = x.shape(x.ndim() - 1);
  py::array weight = f32_vector(weight_obj, "weight", n);
  std::optional<py::array> bias;  // (a default py::array is an empty array, not "none")
  if (!bias_obj.is_none()) bias = f32_vector(bias_obj, "bias", n);
  const float e = eps_arg(eps);
  const auto level = isa_level_arg(isa);
  py::array out = f32_output(out_obj, shape_of(x));
  require_no_overlap(out, "out", x, "x", /*allow_identical=*/true);
  require_no_overlap(out, "out", weight, "weight");
  if (bias) require_no_overlap(out, "out", *bias, "bias");
  const int64_t rows = leading_rows(x);
  const float *xp = f32_data(x), *wp = f32_data(weight);
  const float* bp = bias ? f32_data(*bias) : nullptr;
  float* yp = f32_mutable_data(out);
  {
    KernelScope scope;
    ops::f32_layer_norm(level, rows, n, xp, wp, bp, e, yp);
  }
  return out;
}

py::array softmax(const py::object& x_obj, const py::object& out_obj, const py::object& isa) {
  py::array x = f32_input(x_obj, "x", 1);
  const auto level = isa_level_arg(isa);
  py::array out = f32_output(out_obj, shape_of(x));
  require_no_overlap(out, "out", x, "x", /*allow_identical=*/true);
  const int64_t rows = leading_rows(x), n = x.shape(x.ndim() - 1);
  const float* xp = f32_data(x);
  float* yp = f32_mutable_data(out);
  {
    KernelScope scope;
    ops::f32_softmax(level, rows, n, xp, yp);
  }
  return out;
}

py::array add(const py::object& a_obj, const py::object& b_obj, const py::object& out_obj,
              const py::object& isa) {
  py::array a = f32_input(a_obj, "a", 0);
  py::array b = require_f32_array(b_obj, "b");
  if (!std::equal(a.shape(), a.shape() + a.ndim(), b.shape()) || a.ndim() != b.ndim()) {
    throw py::value_error("b must have the shape of a, " + shape_str(a) + ", got " + shape_str(b) +
                          " (no broadcasting)");
  }
  require_c_contiguous(b, "b");
  const auto level = isa_level_arg(isa);
  py::array out = f32_output(out_obj, shape_of(a));
  require_no_overlap(out, "out", a, "a", /*allow_identical=*/true);
  require_no_overlap(out, "out", b, "b", /*allow_identical=*/true);
  const float *ap = f32_data(a), *bp = f32_data(b);
  float* yp = f32_mutable_data(out);
  const int64_t n = a.size();
  {
    KernelScope scope;
    ops::f32_add(level, n, ap, bp, yp);
  }
  return out;
}

py::array gelu(const py::object& x_obj, const std::string& approximate, const py::object& out_obj,
               const py::object& isa) {
  py::array x = f32_input(x_obj, "x", 0);
  ops::GeluApproximation approx;
  if (approximate == "tanh") {
    approx = ops::GeluApproximation::kTanh;
  } else if (approximate == "none") {
    approx = ops::GeluApproximation::kNone;
  } else {
    throw py::value_error("approximate must be 'tanh' or 'none', got " +
                          std::string(py::repr(py::str(approximate))));
  }
  const auto level = isa_level_arg(isa);
  py::array out = f32_output(out_obj, shape_of(x));
  require_no_overlap(out, "out", x, "x", /*allow_identical=*/true);
  const float* xp = f32_data(x);
  float* yp = f32_mutable_data(out);
  const int64_t n = x.size();
  {
    KernelScope scope;
    ops::f32_gelu(level, approx, n, xp, yp);
  }
  return out;
}

// swiglu and geglu: gate_up [..., 2 * I] -> act(gate) * up [..., I].
py::array gated(const py::object& gate_up_obj, const py::object& out_obj, const py::object& isa,
                void (*op)(cpu::IsaLevel, int64_t, int64_t, const float*, float*)) {
  py::array gate_up = f32_input(gate_up_obj, "gate_up", 1);
  const py::ssize_t width = gate_up.shape(gate_up.ndim() - 1);
  if (width % 2 != 0) {
    throw py::value_error("gate_up must have an even last dimension (gate, then up), got shape " +
                          shape_str(gate_up));
  }
  const auto level = isa_level_arg(isa);
  Shape out_shape = shape_of(gate_up);
  out_shape.back() = width / 2;
  py::array out = f32_output(out_obj, out_shape);
  require_no_overlap(out, "out", gate_up, "gate_up");
  const int64_t rows = leading_rows(gate_up);
  const float* gp = f32_data(gate_up);
  float* yp = f32_mutable_data(out);
  {
    KernelScope scope;
    op(level, rows, width / 2, gp, yp);
  }
  return out;
}

py::array swiglu(const py::object& gate_up_obj, const py::object& out_obj, const py::object& isa) {
  return gated(gate_up_obj, out_obj, isa, &ops::f32_swiglu);
}

py::array geglu(const py::object& gate_up_obj, const py::object& out_obj, const py::object& isa) {
  return gated(gate_up_obj, out_obj, isa, &ops::f32_geglu);
}

// scale and softcap: y = f(x, parameter) elementwise, in place allowed.
py::array scalar_map(const py::object& x_obj, double param, const char* what,
                     const py::object& out_obj, const py::object& isa, bool positive,
                     void (*op)(cpu::IsaLevel, int64_t, float, const float*, float*)) {
  py::array x = f32_input(x_obj, "x", 0);
  if (!std::isfinite(param) || (positive && param <= 0.0)) {
    throw py::value_error(std::string(what) + " must be a finite number" +
                          (positive ? " > 0" : "") + ", got " +
                          std::string(py::repr(py::float_(param))));
  }
  const auto level = isa_level_arg(isa);
  py::array out = f32_output(out_obj, shape_of(x));
  require_no_overlap(out, "out", x, "x", /*allow_identical=*/true);
  const float* xp = f32_data(x);
  float* yp = f32_mutable_data(out);
  {
    KernelScope scope;
    op(level, x.size(), float(param), xp, yp);
  }
  return out;
}

py::array scale(const py::object& x_obj, double s, const py::object& out_obj,
                const py::object& isa) {
  return scalar_map(x_obj, s, "s", out_obj, isa, false, &ops::f32_scale);
}

py::array softcap(const py::object& x_obj, double cap, const py::object& out_obj,
                  const py::object& isa) {
  return scalar_map(x_obj, cap, "cap", out_obj, isa, true, &ops::f32_softcap);
}

py::array embedding(const py::object& table_obj, const py::object& ids_obj,
                    const py::object& out_obj) {
  py::array table = require_f32_array(table_obj, "table");
  require_ndim(table, "table", 2, 2);
  require_c_contiguous(table, "table");
  py::array ids = require_index_array(ids_obj, "ids");
  require_c_contiguous(ids, "ids");
  const int64_t vocab = table.shape(0), dim = table.shape(1);
  require_indices_in_range(ids, "ids", "id", vocab, "vocab size is " + std::to_string(vocab));
  Shape out_shape = shape_of(ids);
  out_shape.push_back(py::ssize_t(dim));
  py::array out = f32_output(out_obj, out_shape);
  require_no_overlap(out, "out", table, "table");
  require_no_overlap(out, "out", ids, "ids");
  const float* tp = f32_data(table);
  float* yp = f32_mutable_data(out);
  const void* idp = ids.data();
  const int64_t n = ids.size();
  const bool i32 = ids.itemsize() == 4;
  {
    KernelScope scope;
    if (i32) {
      ops::f32_embedding(n, static_cast<const int32_t*>(idp), tp, dim, yp);
    } else {
      ops::f32_embedding(n, static_cast<const int64_t*>(idp), tp, dim, yp);
    }
  }
  return out;
}

void rope(const py::object& x_obj, const py::object& positions_obj, const py::object& cos_obj,
          const py::object& sin_obj, bool interleaved, const py::object& isa) {
  py::array x = require_f32_array(x_obj, "x");
  if (x.ndim() != 3 && x.ndim() != 4) {
    throw py::value_error(
        "x must be [tokens, n_heads, head_dim] or [batch, seq, n_heads, head_dim], got shape " +
        shape_str(x));
  }
  require_c_contiguous(x, "x");
  require_writeable(x, "x");
  py::array positions = require_index_array(positions_obj, "positions");
  require_shape(positions, "positions", Shape(x.shape(), x.shape() + x.ndim() - 2));
  require_c_contiguous(positions, "positions");
  py::array cos = require_f32_array(cos_obj, "cos");
  require_ndim(cos, "cos", 2, 2);
  require_c_contiguous(cos, "cos");
  py::array sin = require_f32_array(sin_obj, "sin");
  require_shape(sin, "sin", shape_of(cos));
  require_c_contiguous(sin, "sin");
  const int64_t max_pos = cos.shape(0), half = cos.shape(1);
  const int64_t n_heads = x.shape(x.ndim() - 2), head_dim = x.shape(x.ndim() - 1);
  if (2 * half > head_dim) {
    throw py::value_error("cos and sin have " + std::to_string(half) +
                          " columns, so rotary_dim = " + std::to_string(2 * half) +
                          " exceeds head_dim = " + std::to_string(head_dim) +
                          " (x's last dimension)");
  }
  require_no_overlap(x, "x", cos, "cos");
  require_no_overlap(x, "x", sin, "sin");
  require_no_overlap(x, "x", positions, "positions");
  require_indices_in_range(
      positions, "positions", "position", max_pos,
      "the cos/sin tables have " + std::to_string(max_pos) + " rows (max_pos)");
  const auto level = isa_level_arg(isa);
  const int64_t tokens = positions.size();
  float* xp = f32_mutable_data(x);
  const float *cp = f32_data(cos), *sp = f32_data(sin);
  const void* pp = positions.data();
  const bool i32 = positions.itemsize() == 4;
  {
    KernelScope scope;
    if (i32) {
      ops::f32_rope(level, interleaved, tokens, n_heads, head_dim, static_cast<const int32_t*>(pp),
                    cp, sp, half, xp);
    } else {
      ops::f32_rope(level, interleaved, tokens, n_heads, head_dim, static_cast<const int64_t*>(pp),
                    cp, sp, half, xp);
    }
  }
}

}  // namespace

void register_elementwise(py::module_& m) {
  m.def("rms_norm", &rms_norm, py::arg("x"), py::arg("weight"), py::arg("eps"), py::kw_only(),
        py::arg("out") = py::none(), py::arg("isa") = py::none(), R"doc(
RMSNorm along the last axis: y = x * (1 / sqrt(mean(x^2) + eps)) * weight (T5, Llama).

x: float32 C-contiguous [..., n]. weight: float32 [n]. eps: finite, >= 0. out: optional float32
C-contiguous writeable array of x's shape; it may be x itself (in place). isa: force an ISA level
("generic", "avx2", "avx512"); None = the level chosen at import. Returns out.)doc");
  m.def("layer_norm", &layer_norm, py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("eps"),
        py::kw_only(), py::arg("out") = py::none(), py::arg("isa") = py::none(),
        R"doc(
LayerNorm along the last axis: y = (x - mean) / sqrt(var + eps) * weight + bias, with the biased
variance (divided by n), as torch.nn.LayerNorm.

x: float32 C-contiguous [..., n]. weight: float32 [n]. bias: float32 [n] or None. eps: finite,
>= 0. out: optional float32 C-contiguous writeable array of x's shape; it may be x itself.
isa: force an ISA level; None = the level chosen at import. Returns out.)doc");
  m.def("softmax", &softmax, py::arg("x"), py::kw_only(), py::arg("out") = py::none(),
        py::arg("isa") = py::none(), R"doc(
Softmax along the last axis, max-subtracted: exp(x - max) / sum(exp(x - max)).

x: float32 C-contiguous [..., n]. out: optional float32 C-contiguous writeable array of x's
shape; it may be x itself. isa: force an ISA level; None = the level chosen at import.
Returns out.)doc");
  m.def("add", &add, py::arg("a"), py::arg("b"), py::kw_only(), py::arg("out") = py::none(),
        py::arg("isa") = py::none(), R"doc(
a + b elementwise (a residual add). a, b: float32 C-contiguous arrays of the same shape (no
broadcasting). out: optional float32 C-contiguous writeable array of that shape; it may be a or
b itself. isa: force an ISA level; None = the level chosen at import. Returns out.)doc");
  m.def("gelu", &gelu, py::arg("x"), py::kw_only(), py::arg("approximate") = "tanh",
        py::arg("out") = py::none(), py::arg("isa") = py::none(), R"doc(
GELU elementwise. approximate="tanh": 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (HF
gelu_new / gelu_pytorch_tanh); approximate="none": 0.5 x (1 + erf(x / sqrt(2))) (HF "gelu").

x: float32 C-contiguous. out: optional float32 C-contiguous writeable array of x's shape; it may
be x itself. isa: force an ISA level; None = the level chosen at import. Returns out.)doc");
  m.def("swiglu", &swiglu, py::arg("gate_up"), py::kw_only(), py::arg("out") = py::none(),
        py::arg("isa") = py::none(), R"doc(
SwiGLU: gate_up [..., 2 * I] (gate = the first I columns, up = the last I) -> silu(gate) * up,
[..., I], with silu(g) = g / (1 + exp(-g)) (Llama's MLP after a fused gate/up projection).

gate_up: float32 C-contiguous. out: optional float32 C-contiguous writeable [..., I], not
overlapping gate_up. isa: force an ISA level; None = the level chosen at import. Returns out.)doc");
  m.def("geglu", &geglu, py::arg("gate_up"), py::kw_only(), py::arg("out") = py::none(),
        py::arg("isa") = py::none(), R"doc(
GeGLU: gate_up [..., 2 * I] (gate = the first I columns, up = the last I) -> gelu_tanh(gate) *
up, [..., I] (Gemma's MLP, gelu_pytorch_tanh). Arguments as swiglu.)doc");
  m.def("scale", &scale, py::arg("x"), py::arg("s"), py::kw_only(), py::arg("out") = py::none(),
        py::arg("isa") = py::none(), R"doc(
y = s * x elementwise (s finite). x: float32 C-contiguous; out: optional, x's shape, may be x.
Returns out.)doc");
  m.def("softcap", &softcap, py::arg("x"), py::arg("cap"), py::kw_only(),
        py::arg("out") = py::none(), py::arg("isa") = py::none(), R"doc(
y = cap * tanh(x / cap) elementwise, cap > 0 (Gemma 2's logit soft-capping). x: float32
C-contiguous; out: optional, x's shape, may be x. Returns out.)doc");
  m.def("embedding", &embedding, py::arg("table"), py::arg("ids"), py::kw_only(),
        py::arg("out") = py::none(), R"doc(
Embedding lookup: out[..., :] = table[ids[...], :].

table: float32 C-contiguous [vocab, dim]. ids: int32 or int64 C-contiguous, any shape; every id
must lie in [0, vocab) (checked before anything is written; ValueError otherwise). out: optional
float32 C-contiguous writeable [*ids.shape, dim], not overlapping table. Returns out.)doc");
  m.def("rope", &rope, py::arg("x"), py::arg("positions"), py::arg("cos"), py::arg("sin"),
        py::kw_only(), py::arg("interleaved") = false, py::arg("isa") = py::none(), R"doc(
Rotary position embedding, in place on x; returns None.

x: float32 C-contiguous writeable [tokens, n_heads, head_dim] or [batch, seq, n_heads, head_dim].
positions: int32 or int64 of x.shape[:-2], each in [0, max_pos). cos, sin: float32 C-contiguous
[max_pos, rotary_dim / 2] tables (angles pos * inv_freq[k]); rotary_dim <= head_dim, and dims
past rotary_dim are left untouched (partial rotary). For each pair (i, p):
x_i' = x_i cos - x_p sin, x_p' = x_p cos + x_i sin. interleaved=False: pairs (k, k + rotary_dim/2)
(rotate-half: HF Llama, GPT-NeoX); interleaved=True: pairs (2k, 2k + 1) (GPT-J, GGML).
isa: force an ISA level; None = the level chosen at import.)doc");
}

}  // namespace pyengine::bindings
