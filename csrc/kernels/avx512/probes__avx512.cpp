// Peak-FMA and streaming-read probes for the avx512 level.
#include "kernels/avx512/vec_f32__avx512.h"
#include "kernels/common/probes.h"

namespace pyengine::kernels::avx512 {

const ProbeKernels& probe_kernels() {
  static const ProbeKernels kernels = {&probe_fma_loop<VecF32>, &probe_stream_sum<VecF32>};
  return kernels;
}

}  // namespace pyengine::kernels::avx512
