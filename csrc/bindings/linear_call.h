// The call of every fixed-weight linear layer kind (Linear, Bf16Linear, QuantLinear): argument
// checks, the output array, the GIL released around L::forward.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "bindings/array_checks.h"
#include "bindings/kernel_clock.h"

namespace pyengine::bindings {

template <class L>
py::array linear_call(const L& lin, const py::object& x_obj, const py::object& out_obj,
                      const py::object& residual_obj, bool batch_invariant) {
  py::array x = require_f32_array(x_obj, "x");
  require_ndim(x, "x", 1, 32);
  const int64_t in_f = lin.in_features(), out_f = lin.out_features();
  if (x.shape(x.ndim() - 1) != in_f) {
    throw py::value_error("x must have shape (..., " + std::to_string(in_f) +
                          ") to match in_features, got " + shape_str(x));
  }
  require_c_contiguous(x, "x");
  std::vector<py::ssize_t> out_shape(x.shape(), x.shape() + x.ndim());
  out_shape.back() = py::ssize_t(out_f);
  int64_t rows_total = 1;
  for (int d = 0; d + 1 < x.ndim(); ++d) rows_total *= x.shape(d);

  py::array out = f32_output(out_obj, out_shape);
  if (!out_obj.is_none()) require_no_overlap(out, "out", x, "x");
  const float* residual = nullptr;
  py::array res;
  if (!residual_obj.is_none()) {
    res = require_f32_array(residual_obj, "residual");
    require_shape(res, "residual", out_shape);
    require_c_contiguous(res, "residual");
    require_no_overlap(out, "out", res, "residual", /*allow_identical=*/true);
    residual = static_cast<const float*>(res.data());
  }
  const float* xp = static_cast<const float*>(x.data());
  float* yp = static_cast<float*>(out.mutable_data());
  {
    KernelScope scope;
    lin.forward(rows_total, xp, size_t(in_f), yp, size_t(out_f), residual, size_t(out_f),
                batch_invariant);
  }
  return out;
}

}  // namespace pyengine::bindings
