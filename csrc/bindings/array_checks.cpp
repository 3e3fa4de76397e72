#include "bindings/array_checks.h"

#include <cstdint>
#include <stdexcept>

namespace pyengine::bindings {

std::string shape_str(const std::vector<py::ssize_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    s += std::to_string(shape[i]);
    if (i + 1 < shape.size() || shape.size() == 1) s += ", ";
  }
  if (shape.size() == 1) s.resize(s.size() - 1);
  return s + ")";
}

std::string shape_str(const py::array& a) {
  return shape_str(std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim()));
}

py::array require_f32_array(const py::handle& obj, const char* name) {
  if (!py::isinstance<py::array>(obj)) {
    throw py::type_error(std::string(name) + " must be a numpy.ndarray of float32, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (!a.dtype().is(py::dtype::of<float>())) {
    throw py::type_error(std::string(name) + " must have dtype float32, got " +
                         std::string(py::str(a.dtype())));
  }
  return a;
}

void require_c_contiguous(const py::array& a, const char* name) {
  if (!(a.flags() & py::array::c_style)) {
    throw py::value_error(std::string(name) +
                          " must be C-contiguous (use numpy.ascontiguousarray)");
  }
}

void require_writeable(const py::array& a, const char* name) {
  if (!a.writeable()) throw py::value_error(std::string(name) + " must be writeable");
}

void require_ndim(const py::array& a, const char* name, int min_ndim, int max_ndim) {
  if (a.ndim() < min_ndim || a.ndim() > max_ndim) {
    const std::string want = min_ndim == max_ndim ? std::to_string(min_ndim) + "-D"
                                                  : std::to_string(min_ndim) + "-D to " +
                                                        std::to_string(max_ndim) + "-D";
    throw py::value_error(std::string(name) + " must be " + want + ", got shape " + shape_str(a));
  }
}

void require_min_ndim(const py::array& a, const char* name, int min_ndim) {
  if (a.ndim() < min_ndim) {
    throw py::value_error(std::string(name) + " must be at least " + std::to_string(min_ndim) +
                          "-D, got shape " + shape_str(a));
  }
}

py::array require_index_array(const py::handle& obj, const char* name) {
  if (!py::isinstance<py::array>(obj)) {
    throw py::type_error(std::string(name) + " must be a numpy.ndarray of int32 or int64, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  py::array a = py::reinterpret_borrow<py::array>(obj);
  // By kind and size: int64 has two numpy type codes ('l', 'q') on LP64 platforms. Byte order
  // native (x86 is little-endian): a big-endian '>i8' would be misread.
  const py::dtype dt = a.dtype();
  const bool native = dt.byteorder() == '=' || dt.byteorder() == '|' || dt.byteorder() == '<';
  if (dt.kind() != 'i' || (dt.itemsize() != 4 && dt.itemsize() != 8)) {
    throw py::type_error(std::string(name) + " must have dtype int32 or int64, got " +
                         std::string(py::str(dt)));
  }
  if (!native) {
    throw py::type_error(std::string(name) + " must be in native (little-endian) byte order, " +
                         "got " + std::string(py::str(dt)) + "; use .astype(np.int64)");
  }
  return a;
}

void require_shape(const py::array& a, const char* name, const std::vector<py::ssize_t>& shape) {
  const bool same =
      a.ndim() == py::ssize_t(shape.size()) && std::equal(shape.begin(), shape.end(), a.shape());
  if (!same) {
    throw py::value_error(std::string(name) + " must have shape " + shape_str(shape) + ", got " +
                          shape_str(a));
  }
}

namespace {
// [lowest, highest) byte addresses an array may touch.
std::pair<uintptr_t, uintptr_t> byte_range(const py::array& a) {
  uintptr_t lo = reinterpret_cast<uintptr_t>(a.data()), hi = lo;
  if (a.size() == 0) return {lo, lo};
  for (py::ssize_t d = 0; d < a.ndim(); ++d) {
    const py::ssize_t span = (a.shape(d) - 1) * a.strides(d);
    if (span < 0)
      lo += span;
    else
      hi += span;
  }
  return {lo, hi + a.itemsize()};
}
}  // namespace

void require_no_overlap(const py::array& a, const char* a_name, const py::array& b,
                        const char* b_name, bool allow_identical) {
  if (allow_identical && a.data() == b.data() && a.ndim() == b.ndim() &&
      std::equal(a.shape(), a.shape() + a.ndim(), b.shape())) {
    return;
  }
  const auto ra = byte_range(a), rb = byte_range(b);
  if (ra.first < rb.second && rb.first < ra.second) {
    throw py::value_error(std::string(a_name) + " must not share memory with " + b_name);
  }
}

cpu::IsaLevel isa_level_arg(const py::object& isa) {
  if (isa.is_none()) return cpu::active_isa_level();
  if (!py::isinstance<py::str>(isa)) throw py::type_error("isa must be a str or None");
  const auto name = isa.cast<std::string>();
  try {
    return cpu::choose_isa_level(cpu::cpu_features(), name);
  } catch (const std::exception& e) {
    throw py::value_error(e.what());
  }
}

const float* bias_arg(const py::object& bias_obj, int64_t out_f, py::array& keep) {
  if (bias_obj.is_none()) return nullptr;
  keep = require_f32_array(bias_obj, "bias");
  require_shape(keep, "bias", {py::ssize_t(out_f)});
  require_c_contiguous(keep, "bias");
  return static_cast<const float*>(keep.data());
}

py::array f32_output(const py::object& obj, const std::vector<py::ssize_t>& shape) {
  if (obj.is_none()) return py::array_t<float>(shape);
  py::array out = require_f32_array(obj, "out");
  require_shape(out, "out", shape);
  require_c_contiguous(out, "out");
  require_writeable(out, "out");
  return out;
}

}  // namespace pyengine::bindings
