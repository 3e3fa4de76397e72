#include "bindings/packed_arrays.h"

#include <algorithm>
#include <string>

#include "bindings/array_checks.h"

namespace pyengine::bindings {

py::array packed_view(const void* p, size_t nbytes, const py::handle& owner) {
  py::array view(py::dtype::of<uint8_t>(), {py::ssize_t(nbytes)}, {py::ssize_t(1)}, p, owner);
  view.attr("setflags")(py::arg("write") = false);
  return view;
}

py::object bias_copy(const float* bias, int64_t n) {
  if (bias == nullptr) return py::none();
  py::array_t<float> out({py::ssize_t(n)});
  std::copy(bias, bias + n, out.mutable_data());
  return std::move(out);
}

int64_t int_arg(const py::object& obj, const char* name) {
  if (!py::isinstance<py::int_>(obj) || py::isinstance<py::bool_>(obj)) {
    throw py::type_error(std::string(name) + " must be an int");
  }
  try {
    return obj.cast<int64_t>();
  } catch (const py::cast_error&) {
    throw py::value_error(std::string(name) + " does not fit a 64-bit integer");
  }
}

std::string str_arg(const py::object& obj, const char* name) {
  if (!py::isinstance<py::str>(obj)) throw py::type_error(std::string(name) + " must be a str");
  return obj.cast<std::string>();
}

void check_packed_shape(int64_t out_f, int64_t in_f) {
  constexpr int64_t kMaxSide = int64_t(1) << 31, kMaxElems = int64_t(1) << 40;
  if (out_f <= 0 || in_f <= 0 || out_f >= kMaxSide || in_f >= kMaxSide ||
      out_f * in_f >= kMaxElems) {
    throw py::value_error(
        "out_features and in_features must be positive, each below 2^31, "
        "their product below 2^40; got " +
        std::to_string(out_f) + " and " + std::to_string(in_f));
  }
}

py::object keep_owner_alive(py::object layer, const py::object& owner) {
  py::detail::keep_alive_impl(layer, owner);
  return layer;
}

PackedBytes packed_bytes_arg(const py::object& data_obj) {
  if (!py::isinstance<py::array>(data_obj) ||
      !py::reinterpret_borrow<py::array>(data_obj).dtype().equal(py::dtype::of<uint8_t>())) {
    throw py::type_error("data must be a numpy.ndarray of uint8 (a layer's packed_data())");
  }
  py::array data = py::reinterpret_borrow<py::array>(data_obj);
  require_ndim(data, "data", 1, 1);
  require_c_contiguous(data, "data");
  const auto address = reinterpret_cast<uintptr_t>(data.data());
  if (address % 64 != 0) {
    throw py::value_error("data must start on a 64-byte boundary (address % 64 = " +
                          std::to_string(address % 64) + ")");
  }
  return {data.data(), size_t(data.nbytes())};
}

}  // namespace pyengine::bindings
