// pyengine._C: CPU features, ISA levels, threads and the machine-limit probes.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>

#include "bindings/array_checks.h"
#include "bindings/kernel_clock.h"
#include "bindings/register.h"
#include "cpu/features.h"
#include "cpu/isa_level.h"
#include "ops/probes.h"
#include "runtime/thread_pool.h"

namespace pyengine::bindings {
namespace {

py::dict features_dict(const cpu::CpuFeatures& f) {
  py::dict d;
  d["sse2"] = f.sse2;
  d["avx"] = f.avx;
  d["avx2"] = f.avx2;
  d["fma"] = f.fma;
  d["f16c"] = f.f16c;
  d["avx512f"] = f.avx512f;
  d["avx512bw"] = f.avx512bw;
  d["avx512vl"] = f.avx512vl;
  d["avx512dq"] = f.avx512dq;
  d["avx512_vnni"] = f.avx512_vnni;
  d["avx512_bf16"] = f.avx512_bf16;
  d["avx512_fp16"] = f.avx512_fp16;
  d["avx_vnni"] = f.avx_vnni;
  d["amx_tile"] = f.amx_tile;
  d["amx_bf16"] = f.amx_bf16;
  d["amx_int8"] = f.amx_int8;
  return d;
}

// The inverse of features_dict, for testing the level choice against made-up CPUs.
cpu::CpuFeatures features_from_dict(const py::dict& d) {
  cpu::CpuFeatures f;
  auto get = [&](const char* key) { return d.contains(key) && d[key].cast<bool>(); };
  f.sse2 = get("sse2");
  f.avx = get("avx");
  f.avx2 = get("avx2");
  f.fma = get("fma");
  f.f16c = get("f16c");
  f.avx512f = get("avx512f");
  f.avx512bw = get("avx512bw");
  f.avx512vl = get("avx512vl");
  f.avx512dq = get("avx512dq");
  f.avx512_bf16 = get("avx512_bf16");
  f.amx_tile = get("amx_tile");
  f.amx_bf16 = get("amx_bf16");
  f.amx_int8 = get("amx_int8");
  return f;
}

py::list level_names(const std::vector<cpu::IsaLevel>& levels) {
  py::list names;
  for (auto level : levels) names.append(cpu::isa_level_name(level));
  return names;
}

}  // namespace

void register_cpu(py::module_& m) {
  m.def(
      "cpu_features", [] { return features_dict(cpu::cpu_features()); },
      "Features the CPU has and the OS enables (CPUID gated by XGETBV).");
  m.def("cpu_brand", [] { return cpu::cpu_features().brand; });
  m.def("cache_sizes", [] {
    const auto& f = cpu::cpu_features();
    py::dict d;
    d["l1d"] = f.l1d_bytes;
    d["l2"] = f.l2_bytes;
    d["l3"] = f.l3_bytes;
    return d;
  });
  m.attr("built_with_amx") = bool(PYENGINE_HAVE_AMX);
  m.def(
      "isa_level", [] { return cpu::isa_level_name(cpu::active_isa_level()); },
      "The ISA level chosen at import (best supported, or $PYENGINE_ISA).");
  m.def(
      "isa_level_requirements",
      [](const std::string& level) {
        try {
          return cpu::isa_level_requirements(cpu::parse_isa_level(level));
        } catch (const std::invalid_argument& e) {
          throw py::value_error(e.what());
        }
      },
      py::arg("level"), "The CPU features a level's kernels need, comma separated.");
  m.def("supported_isa_levels",
        [] { return level_names(cpu::supported_isa_levels(cpu::cpu_features())); });
  m.def(
      "choose_isa_level",
      [](const py::dict& features, const std::string& requested) {
        try {
          return std::string(
              cpu::isa_level_name(cpu::choose_isa_level(features_from_dict(features), requested)));
        } catch (const std::invalid_argument& e) {
          throw py::value_error(e.what());
        }
      },
      py::arg("features"), py::arg("requested") = "",
      "The level import would choose for a CPU with `features` (a cpu_features()-style dict).");

  m.def(
      "set_num_threads",
      [](int n) {
        if (n < 1)
          throw py::value_error("number of threads must be >= 1, got " + std::to_string(n));
        py::gil_scoped_release release;
        runtime::ThreadPool::instance().set_num_threads(n);
      },
      py::arg("n"));
  m.def("get_num_threads", [] { return runtime::ThreadPool::instance().num_threads(); });
  m.def("available_cpus", &runtime::available_cpus);
  m.def(
      "kernel_seconds",
      [] { return double(kernel_clock_ns().load(std::memory_order_relaxed)) * 1e-9; },
      "Total seconds spent inside native kernels called from Python (GIL released), since "
      "import: wall time minus this is Python-side overhead.");
  m.def(
      "measure_dispatch_overhead_ns",
      [](int iterations) {
        if (iterations < 1) throw py::value_error("iterations must be >= 1");
        py::gil_scoped_release release;
        return runtime::measure_dispatch_overhead_ns(runtime::ThreadPool::instance(), iterations);
      },
      py::arg("iterations") = 10000,
      "Mean nanoseconds of one empty parallel dispatch over all pool threads.");
  m.def(
      "probe_peak_gflops",
      [](double seconds, const py::object& isa) {
        const auto level = isa_level_arg(isa);
        py::gil_scoped_release release;
        return ops::probe_peak_gflops(level, seconds);
      },
      py::arg("seconds") = 0.2, py::arg("isa") = py::none(),
      "Measured fp32 FMA GFLOP/s on all pool threads.");
  m.def(
      "probe_bf16_tile_peak_gflops",
      [](double seconds, const py::object& isa) {
        const auto level = isa_level_arg(isa);
        py::gil_scoped_release release;
        return ops::probe_bf16_tile_peak_gflops(level, seconds);
      },
      py::arg("seconds") = 0.2, py::arg("isa") = py::none(),
      "Measured bf16 GFLOP/s of the AMX tile unit on all pool threads (0.0 without one).");
  m.def(
      "probe_read_bandwidth_gbs",
      [](size_t bytes, int repeats, const py::object& isa) {
        const auto level = isa_level_arg(isa);
        py::gil_scoped_release release;
        return ops::probe_read_bandwidth_gbs(level, bytes, repeats);
      },
      py::arg("bytes") = size_t(1) << 30, py::arg("repeats") = 5, py::arg("isa") = py::none(),
      "Measured streaming-read GB/s on all pool threads.");
}

}  // namespace pyengine::bindings
