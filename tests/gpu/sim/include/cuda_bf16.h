/* cuda_sim stand-in for <cuda_bf16.h> (tests/gpu/sim/README.md) */
#include "../cuda_sim.h"
