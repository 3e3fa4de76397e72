// The private extension module pyengine._C. The public API is Python (pyengine/).
#include <pybind11/pybind11.h>

#include <exception>

#include "bindings/register.h"
#include "cpu/isa_level.h"

PYBIND11_MODULE(_C, m) {
  m.doc() = "pyengine native kernels (private; use the pyengine package)";
  // Choose the ISA level now, so that a bad PYENGINE_ISA fails the import, not a later call.
  try {
    pyengine::cpu::active_isa_level();
  } catch (const std::exception& e) {
    throw pybind11::import_error(std::string("pyengine: ") + e.what());
  }
  pyengine::bindings::register_cpu(m);
  pyengine::bindings::register_linear(m);
  pyengine::bindings::register_elementwise(m);
  pyengine::bindings::register_attention(m);
  pyengine::bindings::register_quant(m);
}
