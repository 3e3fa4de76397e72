// One registration function per bindings file; module.cpp calls them all.
#pragma once
#include <pybind11/pybind11.h>

namespace pyengine::bindings {
void register_cpu(pybind11::module_& m);
void register_linear(pybind11::module_& m);
void register_elementwise(pybind11::module_& m);
void register_attention(pybind11::module_& m);
void register_quant(pybind11::module_& m);
}  // namespace pyengine::bindings
