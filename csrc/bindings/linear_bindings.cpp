// pyengine._C: Linear and Bf16Linear (fixed, pre-packed fp32 or bf16 weight) and matmul.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>

#include "bindings/array_checks.h"
#include "bindings/kernel_clock.h"
#include "bindings/linear_call.h"
#include "bindings/packed_arrays.h"
#include "bindings/register.h"
#include "ops/linear.h"
#include "ops/packed_layout.h"

namespace pyengine::bindings {
namespace {

template <class L>
std::unique_ptr<L> make_linear(const py::object& weight_obj, const py::object& bias_obj,
                               const py::object& isa) {
  py::array weight = require_f32_array(weight_obj, "weight");
  require_ndim(weight, "weight", 2, 2);
  if (weight.strides(0) % 4 != 0 || weight.strides(1) % 4 != 0) {
    throw py::value_error("weight strides must be multiples of 4 bytes");
  }
  const int64_t out_f = weight.shape(0), in_f = weight.shape(1);
  py::array bias_arr;
  const float* bias = bias_arg(bias_obj, out_f, bias_arr);
  const auto level = isa_level_arg(isa);
  const float* w = static_cast<const float*>(weight.data());
  const int64_t s_out = weight.strides(0) / 4, s_in = weight.strides(1) / 4;
  py::gil_scoped_release release;
  return std::make_unique<L>(w, s_out, s_in, out_f, in_f, bias, level);
}

template <class L>
py::object linear_from_packed(const py::object& data_obj, const py::object& out_obj,
                              const py::object& in_obj, const py::object& bias_obj,
                              const py::object& isa) {
  const PackedBytes packed = packed_bytes_arg(data_obj);
  const int64_t out_f = int_arg(out_obj, "out_features"), in_f = int_arg(in_obj, "in_features");
  check_packed_shape(out_f, in_f);
  py::array bias_arr;
  const float* bias = bias_arg(bias_obj, out_f, bias_arr);
  const auto level = isa_level_arg(isa);
  auto layer = std::make_unique<L>(packed.data, packed.nbytes, out_f, in_f, bias, level);
  return keep_owner_alive(py::cast(std::move(layer)), data_obj);
}

py::array matmul(const py::object& a_obj, const py::object& b_obj, const py::object& isa) {
  py::array a = require_f32_array(a_obj, "a");
  py::array b = require_f32_array(b_obj, "b");
  require_ndim(a, "a", 2, 3);
  require_ndim(b, "b", 2, 3);
  require_c_contiguous(a, "a");
  require_c_contiguous(b, "b");
  if (b.ndim() == 3 && a.ndim() != 3) {
    throw py::value_error("b is 3-D (batched), so a must be 3-D too; got a " + shape_str(a));
  }
  const py::ssize_t batch = a.ndim() == 3 ? a.shape(0) : 1;
  const int64_t m = a.shape(a.ndim() - 2), k = a.shape(a.ndim() - 1);
  const int64_t kb = b.shape(b.ndim() - 2), n = b.shape(b.ndim() - 1);
  if (kb != k) {
    throw py::value_error("matmul: a's last dimension (" + std::to_string(k) +
                          ") must equal b's second to last (" + std::to_string(kb) + "); got a " +
                          shape_str(a) + ", b " + shape_str(b));
  }
  if (b.ndim() == 3 && b.shape(0) != batch) {
    throw py::value_error("matmul: batch sizes differ: a " + shape_str(a) + ", b " + shape_str(b));
  }
  const auto level = isa_level_arg(isa);
  std::vector<py::ssize_t> out_shape = {py::ssize_t(m), py::ssize_t(n)};
  if (a.ndim() == 3) out_shape.insert(out_shape.begin(), batch);
  py::array_t<float> out(out_shape);
  const float* ap = static_cast<const float*>(a.data());
  const float* bp = static_cast<const float*>(b.data());
  float* cp = out.mutable_data();
  const int64_t b_batch_stride = b.ndim() == 3 ? k * n : 0;
  {
    KernelScope scope;
    for (py::ssize_t i = 0; i < batch; ++i) {
      ops::f32_matmul(level, m, n, k, ap + i * m * k, size_t(k), bp + i * b_batch_stride, size_t(n),
                      cp + i * m * n, size_t(n));
    }
  }
  return out;
}

// The Python face both Linear kinds share.
template <class L>
void def_linear_common(py::class_<L>& cls, const char* type_name) {
  cls.def(py::init(&make_linear<L>), py::arg("weight"), py::arg("bias") = py::none(), py::kw_only(),
          py::arg("isa") = py::none())
      .def("__call__", &linear_call<L>, py::arg("x"), py::kw_only(), py::arg("out") = py::none(),
           py::arg("residual") = py::none(), py::arg("batch_invariant") = false, R"doc(
y = x @ weight.T + bias (+ residual).

x: float32 C-contiguous [..., in_features]. out: optional float32 C-contiguous writeable
[..., out_features] to write into (no allocation). residual: optional float32 array of the
output's shape added in the epilogue; it may be `out` itself (in-place residual add).
batch_invariant: compute every row the same way whatever the number of rows (the many-row
kernels even for one row; slower for few rows), so a row's result does not depend on the batch
it is part of (the serving engine's deterministic mode).)doc")
      .def_property_readonly("in_features", &L::in_features)
      .def_property_readonly("out_features", &L::out_features)
      .def_property_readonly("has_bias", &L::has_bias)
      .def_property_readonly("isa", [](const L& l) { return cpu::isa_level_name(l.isa_level()); })
      .def_property_readonly("kernel", [](const L& l) { return l.kernels().name; })
      .def_property_readonly("packed_nbytes", &L::packed_bytes)
      .def(
          "packed_data",
          [](py::object self) {
            const L& l = self.cast<const L&>();
            return packed_view(l.packed_data(), l.packed_bytes(), self);
          },
          "The packed weight: a read-only uint8 view [packed_nbytes] in this level's layout "
          "(what from_packed takes back).")
      .def_property_readonly(
          "bias", [](const L& l) { return bias_copy(l.bias_data(), l.out_features()); },
          "A float32 copy of the bias [out_features], or None.")
      .def_static("from_packed", &linear_from_packed<L>, py::arg("data"), py::arg("out_features"),
                  py::arg("in_features"), py::arg("bias") = py::none(), py::kw_only(),
                  py::arg("isa") = py::none(),
                  "A layer over data = packed_data() of a layer of the same shape made at the "
                  "same ISA level (e.g. read from a pack file): the bytes are used in place, not "
                  "copied, and kept alive with the layer; they must not change. ValueError when "
                  "their size is not this level's layout of the shape.")
      .def("__repr__", [type_name](const L& l) {
        return std::string(type_name) + "(in_features=" + std::to_string(l.in_features()) +
               ", out_features=" + std::to_string(l.out_features()) +
               ", bias=" + (l.has_bias() ? "True" : "False") + ", kernel=" + l.kernels().name + ")";
      });
}

}  // namespace

void register_linear(py::module_& m) {
  py::class_<ops::F32Linear> f32(m, "Linear", R"doc(
A fixed-weight linear layer: y = x @ weight.T + bias.

weight: float32 [out_features, in_features] (torch.nn.Linear's layout; any strides), packed
once, here, into the layout of the ISA level's micro-kernel. bias: float32 [out_features] or
None. isa: force an ISA level for this layer ("generic", "avx2", "avx512", "amx"); None = the
level chosen at import.)doc");
  def_linear_common(f32, "Linear");

  py::class_<ops::Bf16Linear> bf16(m, "Bf16Linear", R"doc(
A fixed-weight linear layer with the weight stored as bfloat16: y = x @ weight.T + bias.

Same arguments as Linear. The float32 weight is rounded to bfloat16 (nearest even) once, here,
and packed; x, y, bias and residual stay float32 and products accumulate in float32. With more
than a few rows on the amx level, x is rounded to bfloat16 as well and the product runs on the
AMX tile unit (see rounds_input), which reads subnormal bfloat16 values as zero.)doc");
  def_linear_common(bf16, "Bf16Linear");
  bf16.def("rounds_input", &ops::Bf16Linear::rounds_input, py::arg("rows"),
           "Whether a call with this many rows rounds x to bfloat16 (the AMX path).");
  bf16.def(
      "path",
      [](const ops::Bf16Linear& l, int64_t rows) { return ops::bf16_path_name(l.path(rows)); },
      py::arg("rows"),
      "The kernels a call with this many rows runs: 'gemv' (few rows; weights widened in "
      "registers), 'widened' (the fp32 micro-kernel on weights widened per cache block) or "
      "'tiles' (AMX).");
  m.def(
      "packed_layout", [](const py::object& isa) { return ops::packed_layout(isa_level_arg(isa)); },
      py::arg("isa") = py::none(),
      "The packed weights' layout at an ISA level (None: the chosen one), as pack files record "
      "it: a file is run only where this string is the same.");
  m.def("matmul", &matmul, py::arg("a"), py::arg("b"), py::kw_only(), py::arg("isa") = py::none(),
        "a @ b in float32: [M, K] @ [K, N], or batched [B, M, K] @ [B, K, N] / [K, N].");
}

}  // namespace pyengine::bindings
