// pyengine._C: QuantLinear (a fixed weight kept in a quantized block format) and the table of
// formats the kernels know.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <string>

#include "bindings/array_checks.h"
#include "bindings/kernel_clock.h"
#include "bindings/linear_call.h"
#include "bindings/packed_arrays.h"
#include "bindings/register.h"
#include "ops/quant_linear.h"

namespace pyengine::bindings {
namespace {

using ops::QuantLinear;
using ops::QuantType;

std::string format_names() {
  std::string s;
  for (const auto& info : kernels::kQuantTypes) s += std::string(s.empty() ? "" : ", ") + info.name;
  return s;
}

QuantType quant_type_arg(const std::string& name) {
  const auto t = ops::parse_quant_type(name);
  if (!t) {
    throw py::value_error("unknown quantized format " + name + "; known: " + format_names());
  }
  return *t;
}

std::unique_ptr<QuantLinear> from_blocks(const py::object& data_obj, const std::string& format,
                                         int64_t in_features, const py::object& bias_obj,
                                         const py::object& isa) {
  const QuantType t = quant_type_arg(format);
  const auto& info = kernels::quant_type_info(t);
  if (!py::isinstance<py::array>(data_obj) ||
      !py::reinterpret_borrow<py::array>(data_obj).dtype().equal(py::dtype::of<uint8_t>())) {
    throw py::type_error("data must be a numpy.ndarray of uint8 (the rows' stored blocks)");
  }
  py::array data = py::reinterpret_borrow<py::array>(data_obj);
  require_ndim(data, "data", 2, 2);
  if (in_features <= 0 || in_features % info.block_elems != 0) {
    throw py::value_error(
        std::string(info.name) + " rows hold whole blocks of " + std::to_string(info.block_elems) +
        " values; in_features=" + std::to_string(in_features) + " is not a positive multiple");
  }
  const size_t row_bytes = ops::quant_row_bytes(t, in_features);
  if (size_t(data.shape(1)) != row_bytes || data.strides(1) != 1) {
    throw py::value_error("data must be [out_features, " + std::to_string(row_bytes) + "] (" +
                          std::to_string(in_features) + " values of " + info.name +
                          ") with contiguous rows, got " + shape_str(data));
  }
  const int64_t out_f = data.shape(0);
  py::array bias_keep;
  const float* bias = bias_arg(bias_obj, out_f, bias_keep);
  const auto level = isa_level_arg(isa);
  const auto* p = static_cast<const uint8_t*>(data.data());
  const size_t stride = size_t(data.strides(0));
  py::gil_scoped_release release;
  return std::make_unique<QuantLinear>(t, p, stride, out_f, in_features, bias, level);
}

std::unique_ptr<QuantLinear> quantize(const py::object& weight_obj, const std::string& format,
                                      const py::object& bias_obj, const py::object& isa) {
  const QuantType t = quant_type_arg(format);
  if (!ops::quant_can_encode(t)) {
    throw py::value_error(std::string("QuantLinear.quantize encodes Q8_0 and Q4_0, not ") +
                          kernels::quant_type_info(t).name);
  }
  py::array weight = require_f32_array(weight_obj, "weight");
  require_ndim(weight, "weight", 2, 2);
  if (weight.strides(0) % 4 != 0 || weight.strides(1) % 4 != 0) {
    throw py::value_error("weight strides must be multiples of 4 bytes");
  }
  const int64_t out_f = weight.shape(0), in_f = weight.shape(1);
  py::array bias_keep;
  const float* bias = bias_arg(bias_obj, out_f, bias_keep);
  const auto level = isa_level_arg(isa);
  const float* w = static_cast<const float*>(weight.data());
  const int64_t s_out = weight.strides(0) / 4, s_in = weight.strides(1) / 4;
  py::gil_scoped_release release;
  return std::make_unique<QuantLinear>(
      QuantLinear::from_f32(t, w, s_out, s_in, out_f, in_f, bias, level));
}

py::object quant_from_packed(const py::object& data_obj, const py::object& format_obj,
                             const py::object& out_obj, const py::object& in_obj,
                             const py::object& bias_obj, const py::object& isa) {
  const QuantType t = quant_type_arg(str_arg(format_obj, "format"));
  const PackedBytes packed = packed_bytes_arg(data_obj);
  const int64_t out_f = int_arg(out_obj, "out_features"), in_f = int_arg(in_obj, "in_features");
  const auto& info = kernels::quant_type_info(t);
  check_packed_shape(out_f, in_f);
  if (in_f % info.block_elems != 0) {
    throw py::value_error("out_features must be positive and in_features a positive multiple of " +
                          std::to_string(info.block_elems) + " (" + info.name + "), got " +
                          std::to_string(out_f) + " and " + std::to_string(in_f));
  }
  py::array bias_keep;
  const float* bias = bias_arg(bias_obj, out_f, bias_keep);
  const auto level = isa_level_arg(isa);
  auto layer = std::make_unique<QuantLinear>(
      QuantLinear::borrow_packed(t, packed.data, packed.nbytes, out_f, in_f, bias, level));
  return keep_owner_alive(py::cast(std::move(layer)), data_obj);
}

py::array embedding(const QuantLinear& lin, const py::object& ids_obj, const py::object& out_obj) {
  py::array ids = require_index_array(ids_obj, "ids");
  std::vector<py::ssize_t> shape(ids.shape(), ids.shape() + ids.ndim());
  shape.push_back(py::ssize_t(lin.in_features()));
  py::array_t<int64_t, py::array::c_style | py::array::forcecast> ids64(ids);
  const int64_t count = ids64.size();
  const int64_t* p = ids64.data();
  for (int64_t i = 0; i < count; ++i) {
    if (p[i] < 0 || p[i] >= lin.out_features()) {
      throw py::value_error("ids[" + std::to_string(i) + "] = " + std::to_string(p[i]) +
                            " is out of range for a table of " +
                            std::to_string(lin.out_features()) + " rows");
    }
  }
  py::array out = f32_output(out_obj, shape);
  float* o = static_cast<float*>(out.mutable_data());
  {
    KernelScope scope;
    lin.gather_rows(p, count, o, size_t(lin.in_features()));
  }
  return out;
}

py::array dequantize(const QuantLinear& lin) {
  py::array_t<float> out({py::ssize_t(lin.out_features()), py::ssize_t(lin.in_features())});
  float* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    for (int64_t r = 0; r < lin.out_features(); ++r) {
      lin.dequantize_row_at(r, o + r * lin.in_features());
    }
  }
  return out;
}

const char* type_name(const QuantLinear& l) { return kernels::quant_type_info(l.type()).name; }

}  // namespace

void register_quant(py::module_& m) {
  py::class_<QuantLinear> cls(m, "QuantLinear", R"doc(
A fixed-weight linear layer whose weight stays in a quantized block format:
y = x @ W.T + bias.

QuantLinear(data, format, in_features, bias=None, *, isa=None): data is uint8
[out_features, row_bytes], each row the stored blocks of one output (a GGUF tensor's rows as
they are in the file); format one of quant_formats() ("Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1",
"Q4_K", "Q5_K", "Q6_K"); in_features a multiple of the format's block. The bytes are copied.
QuantLinear.quantize(weight, format, bias=None, *, isa=None) encodes a float32 weight as Q8_0
or Q4_0 (llama.cpp's reference quantizers; in_features need not be a multiple of 32).

Calls with few rows quantize x per 32 values to int8 (scale max|x| / 127) and take integer dot
products with the stored blocks; calls with many rows (path(rows) == "widened") dequantize the
weight slice by slice to float32 and run the float32 micro-kernel on float32 x.)doc");
  cls.def(py::init(&from_blocks), py::arg("data"), py::arg("format"), py::arg("in_features"),
          py::arg("bias") = py::none(), py::kw_only(), py::arg("isa") = py::none())
      .def_static("quantize", &quantize, py::arg("weight"), py::arg("format"),
                  py::arg("bias") = py::none(), py::kw_only(), py::arg("isa") = py::none())
      .def("__call__", &linear_call<QuantLinear>, py::arg("x"), py::kw_only(),
           py::arg("out") = py::none(), py::arg("residual") = py::none(),
           py::arg("batch_invariant") = false,
           "y = x @ W.T + bias (+ residual); the arguments of Linear.__call__.")
      .def("embedding", &embedding, py::arg("ids"), py::kw_only(), py::arg("out") = py::none(),
           "Rows `ids` of W dequantized to float32: [*ids.shape, in_features] (an embedding "
           "table kept quantized).")
      .def("dequantize", &dequantize, "W as float32 [out_features, in_features].")
      .def(
          "path",
          [](const QuantLinear& l, int64_t rows) {
            return l.path(rows) == QuantLinear::Path::kDot ? "dot" : "widened";
          },
          py::arg("rows"), "The kernels a call with this many rows runs: 'dot' or 'widened'.")
      .def_property_readonly("format", &type_name)
      .def_property_readonly("in_features", &QuantLinear::in_features)
      .def_property_readonly("out_features", &QuantLinear::out_features)
      .def_property_readonly("has_bias", &QuantLinear::has_bias)
      .def_property_readonly(
          "isa", [](const QuantLinear& l) { return cpu::isa_level_name(l.isa_level()); })
      .def_property_readonly("kernel", [](const QuantLinear& l) { return l.kernels().name; })
      .def_property_readonly("packed_nbytes", &QuantLinear::packed_bytes)
      .def_property_readonly("row_bytes", &QuantLinear::row_bytes)
      .def(
          "packed_data",
          [](py::object self) {
            const QuantLinear& l = self.cast<const QuantLinear&>();
            return packed_view(l.data(), l.packed_bytes(), self);
          },
          "The stored weight: a read-only uint8 view [packed_nbytes] in this level's layout "
          "(interleaved when `interleaved`; what from_packed takes back).")
      .def_property_readonly(
          "bias", [](const QuantLinear& l) { return bias_copy(l.bias_data(), l.out_features()); },
          "A float32 copy of the bias [out_features], or None.")
      .def_static("from_packed", &quant_from_packed, py::arg("data"), py::arg("format"),
                  py::arg("out_features"), py::arg("in_features"), py::arg("bias") = py::none(),
                  py::kw_only(), py::arg("isa") = py::none(),
                  "A layer over data = packed_data() of a layer of the same format and shape "
                  "made at the same ISA level: used in place, not copied, kept alive with the "
                  "layer. ValueError when the size is not this level's layout of the shape.")
      .def_property_readonly("interleaved", &QuantLinear::interleaved,
                             "Whether rows are stored in groups of 8 for the level's x8 kernels.")
      .def("__repr__", [](const QuantLinear& l) {
        return "QuantLinear(format=" + std::string(type_name(l)) +
               ", in_features=" + std::to_string(l.in_features()) +
               ", out_features=" + std::to_string(l.out_features()) +
               ", bias=" + (l.has_bias() ? "True" : "False") + ", kernel=" + l.kernels().name + ")";
      });
  m.def(
      "quant_formats",
      [] {
        py::list out;
        for (const auto& info : kernels::kQuantTypes) {
          py::dict d;
          d["name"] = info.name;
          d["ggml_type"] = info.ggml_type;
          d["block_elems"] = info.block_elems;
          d["block_bytes"] = info.block_bytes;
          out.append(d);
        }
        return out;
      },
      "The quantized block formats the kernels run: name, GGUF type id, values and bytes per "
      "block.");
}

}  // namespace pyengine::bindings
