// The numpy face of packed weights: a layer's packed bytes as a read-only view, and the
// checks on bytes handed back to from_packed (a pack file's memory map).
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstddef>
#include <cstdint>
#include <string>

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

// A Python int (not a bool) that fits int64_t, else TypeError naming `name`. from_packed takes
// every argument as an object and converts it here: a failed pybind11 overload match on a
// function with keep_alive crashes (pybind11 2.13), a TypeError raised inside does not.
int64_t int_arg(const py::object& obj, const char* name);
std::string str_arg(const py::object& obj, const char* name);

// out_features and in_features of a layer over borrowed bytes: positive, each below 2^31 and
// their product below 2^40, so that every size computed from them fits 64 bits (a crafted
// shape whose byte count wraps must not match a small buffer). ValueError otherwise.
void check_packed_shape(int64_t out_features, int64_t in_features);

// `layer` (a new Python object) keeps `owner` alive as long as it lives (pybind11's
// keep_alive, applied here rather than as a def() attribute, see int_arg).
py::object keep_owner_alive(py::object layer, const py::object& owner);

// data must be a 1-D C-contiguous uint8 array starting on a 64-byte boundary (what the
// kernels' aligned loads need; a pack file aligns every blob so).
PackedBytes packed_bytes_arg(const py::object& data_obj);

}  // namespace pyengine::bindings
