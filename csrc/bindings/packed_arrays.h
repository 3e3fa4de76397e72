// The numpy face of packed weights: a layer's packed bytes as a read-only view, and the
// checks on bytes handed back to from_packed (a pack file's memory map).
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstddef>
#include <cstdint>

namespace pyengine::bindings {

namespace py = pybind11;

// A read-only uint8 [nbytes] view of p that keeps `owner` (the layer) alive.
py::array packed_view(const void* p, size_t nbytes, const py::handle& owner);

// A float32 [n] copy of bias, or None when bias is nullptr.
py::object bias_copy(const float* bias, int64_t n);

struct PackedBytes {
  const void* data;
  size_t nbytes;
};

// data must be a 1-D C-contiguous uint8 array starting on a 64-byte boundary (what the
// kernels' aligned loads need; a pack file aligns every blob so).
PackedBytes packed_bytes_arg(const py::object& data_obj);

}  // namespace pyengine::bindings
