/* cuda_sim stand-in for <cublasLt.h> (tests/gpu/sim/README.md) */
#include "../cuda_sim.h"
