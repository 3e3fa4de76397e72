// Peak-FMA and streaming-read probes for the avx2 level.
#include "kernels/avx2/vec_f32__avx2.h"
#include "kernels/common/probes.h"

namespace pyengine::kernels::avx2 {

const ProbeKernels& probe_kernels() {
  static const ProbeKernels kernels = {&probe_fma_loop<VecF32>, &probe_stream_sum<VecF32>};
  return kernels;
}

}  // namespace pyengine::kernels::avx2
