// Argument validation at the Python boundary: every check raises a Python exception that names
// the argument and what was expected (TypeError for dtype/type, ValueError for shape/layout).
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "cpu/isa_level.h"

namespace pyengine::bindings {

namespace py = pybind11;

// `obj` must be a numpy.ndarray of float32; returns it as py::array (no conversion, no copy).
py::array require_f32_array(const py::handle& obj, const char* name);
void require_c_contiguous(const py::array& a, const char* name);
void require_writeable(const py::array& a, const char* name);
void require_ndim(const py::array& a, const char* name, int min_ndim, int max_ndim);
void require_min_ndim(const py::array& a, const char* name, int min_ndim);
// `obj` must be a numpy.ndarray of int32 or int64 (token ids, positions); no conversion.
py::array require_index_array(const py::handle& obj, const char* name);
void require_shape(const py::array& a, const char* name, const std::vector<py::ssize_t>& shape);
// Raises ValueError when the byte ranges of a and b overlap (unless allow_identical and they
// start at the same address with the same shape).
void require_no_overlap(const py::array& a, const char* a_name, const py::array& b,
                        const char* b_name, bool allow_identical = false);
// `out` when given (float32, of `shape`, C-contiguous, writeable), else a new array of `shape`.
// A bias argument: None -> nullptr, else float32 C-contiguous [out_f], kept alive in `keep`.
const float* bias_arg(const py::object& bias_obj, int64_t out_f, py::array& keep);
py::array f32_output(const py::object& obj, const std::vector<py::ssize_t>& shape);
std::string shape_str(const py::array& a);
std::string shape_str(const std::vector<py::ssize_t>& shape);

// None -> the process-wide level; otherwise the named level, which this CPU must support.
cpu::IsaLevel isa_level_arg(const py::object& isa);

}  // namespace pyengine::bindings
