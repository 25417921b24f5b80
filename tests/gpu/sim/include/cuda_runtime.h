/* cuda_sim stand-in for <cuda_runtime.h> (tests/gpu/sim/README.md) */
#include "../cuda_sim.h"
