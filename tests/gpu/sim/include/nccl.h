/*
 * nccl.h stand-in for the CUDA simulator (tests/gpu/sim/README.md): the
 * NCCL calls trainer/plan/dp_nccl.c makes, with ranks as threads of one
 * process (cuda_sim_nccl.cpp). Plain C, like the real header.
 */
#ifndef FT_SIM_NCCL_H
#define FT_SIM_NCCL_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { ncclSuccess = 0, ncclSystemError = 2, ncclInvalidArgument = 4 } ncclResult_t;
typedef enum { ncclFloat32 = 7, ncclFloat64 = 8, ncclBfloat16 = 9 } ncclDataType_t;
typedef enum { ncclSum = 0, ncclAvg = 4 } ncclRedOp_t;
typedef struct {
	char internal[128];
} ncclUniqueId;
typedef struct sim_nccl_comm *ncclComm_t;
typedef void *cudaStream_t;

const char *ncclGetErrorString(ncclResult_t r);
ncclResult_t ncclGetUniqueId(ncclUniqueId *id);
ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank);
ncclResult_t ncclCommDestroy(ncclComm_t comm);
ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t type,
			   ncclRedOp_t op, ncclComm_t comm, cudaStream_t s);
ncclResult_t ncclReduceScatter(const void *sendbuff, void *recvbuff, size_t recvcount,
			       ncclDataType_t type, ncclRedOp_t op, ncclComm_t comm,
			       cudaStream_t s);
ncclResult_t ncclAllGather(const void *sendbuff, void *recvbuff, size_t sendcount,
			   ncclDataType_t type, ncclComm_t comm, cudaStream_t s);

#ifdef __cplusplus
}
#endif

#endif
