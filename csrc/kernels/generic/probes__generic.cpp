// Peak-FMA and streaming-read probes for the generic level.
#include "kernels/common/probes.h"
#include "kernels/generic/vec_f32__generic.h"

namespace pyengine::kernels::generic {

const ProbeKernels& probe_kernels() {
  static const ProbeKernels kernels = {&probe_fma_loop<VecF32>, &probe_stream_sum<VecF32>};
  return kernels;
}

}  // namespace pyengine::kernels::generic
