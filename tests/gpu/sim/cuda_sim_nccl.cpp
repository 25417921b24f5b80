/*
 * cuda_sim_nccl.cpp - NCCL for the CUDA simulator: every rank is a thread
 * of this process; ranks that pass the same unique id form one group.
 * Each collective: every rank posts its buffers, barrier, every rank
 * computes its own result from all ranks' send buffers into a temporary,
 * barrier, every rank writes its receive buffer. In-place calls must follow
 * NCCL's rule (reduce-scatter: recvbuff = sendbuff + rank * recvcount;
 * all-gather: sendbuff = recvbuff + rank * sendcount), anything else that
 * overlaps aborts.
 */
#include <nccl.h>

#include "cuda_sim.h"

#include <barrier>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

struct sim_group {
	int world, joined = 0;
	std::unique_ptr<std::barrier<>> bar;
	std::vector<const void *> send;
};
struct sim_nccl_comm {
	sim_group *g;
	int rank;
};

static std::mutex reg_mu;
static std::condition_variable reg_cv;
static std::map<std::string, sim_group *> groups;
static unsigned long id_counter;

static void die(const char *what)
{
	fprintf(stderr, "nccl sim: %s\n", what);
	abort();
}

extern "C" const char *ncclGetErrorString(ncclResult_t r)
{
	return r == ncclSuccess ? "no error" : "simulated NCCL error";
}

extern "C" ncclResult_t ncclGetUniqueId(ncclUniqueId *id)
{
	std::lock_guard<std::mutex> l(reg_mu);
	memset(id->internal, 0, sizeof(id->internal));
	snprintf(id->internal, sizeof(id->internal), "sim-nccl-%lu", ++id_counter);
	return ncclSuccess;
}

extern "C" ncclResult_t ncclCommInitRank(ncclComm_t *comm, int n, ncclUniqueId id, int rank)
{
	if (n < 1 || rank < 0 || rank >= n)
		return ncclInvalidArgument;
	std::string key(id.internal, strnlen(id.internal, sizeof(id.internal)));
	std::unique_lock<std::mutex> l(reg_mu);
	sim_group *&g = groups[key];
	if (!g) {
		g = new sim_group;
		g->world = n;
		g->bar = std::make_unique<std::barrier<>>(n);
		g->send.assign((size_t)n, nullptr);
	}
	if (g->world != n)
		return ncclInvalidArgument;
	g->joined++;
	reg_cv.notify_all();
	sim_group *mine = g;
	reg_cv.wait(l, [mine] { return mine->joined == mine->world; });
	*comm = new sim_nccl_comm{ mine, rank };
	return ncclSuccess;
}

extern "C" ncclResult_t ncclCommDestroy(ncclComm_t comm)
{
	comm->g->bar->arrive_and_wait();
	delete comm; /* the group stays: other ranks may still hold it */
	return ncclSuccess;
}

static size_t esize(ncclDataType_t t)
{
	return t == ncclFloat64 ? 8 : t == ncclFloat32 ? 4 : 2;
}

static double get(const void *p, ncclDataType_t t, size_t i)
{
	if (t == ncclFloat32)
		return ((const float *)p)[i];
	if (t == ncclFloat64)
		return ((const double *)p)[i];
	return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
}

static void put(void *p, ncclDataType_t t, size_t i, double v)
{
	if (t == ncclFloat32)
		((float *)p)[i] = (float)v;
	else if (t == ncclFloat64)
		((double *)p)[i] = v;
	else
		((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn((float)v);
}

static bool overlap(const void *a, size_t an, const void *b, size_t bn)
{
	const char *x = (const char *)a, *y = (const char *)b;
	return x < y + bn && y < x + an;
}

/* The shape of every collective: out[i] for i < nout from all ranks' sends. */
template <typename F>
static ncclResult_t collective(ncclComm_t c, const void *send, void *recv, size_t nout,
			       ncclDataType_t t, F result)
{
	sim_group *g = c->g;
	g->send[(size_t)c->rank] = send;
	g->bar->arrive_and_wait();
	std::vector<double> tmp(nout);
	for (size_t i = 0; i < nout; i++)
		tmp[i] = result(i);
	g->bar->arrive_and_wait();
	for (size_t i = 0; i < nout; i++)
		put(recv, t, i, tmp[i]);
	return ncclSuccess;
}

static double reduce(sim_group *g, ncclDataType_t t, ncclRedOp_t op, size_t i)
{
	double s = 0;
	for (int r = 0; r < g->world; r++)
		s += get(g->send[(size_t)r], t, i);
	return op == ncclAvg ? s / g->world : s;
}

extern "C" ncclResult_t ncclAllReduce(const void *send, void *recv, size_t count, ncclDataType_t t,
				      ncclRedOp_t op, ncclComm_t c, cudaStream_t)
{
	if (send != recv && overlap(send, count * esize(t), recv, count * esize(t)))
		die("all-reduce buffers overlap without being in place");
	sim_group *g = c->g;
	return collective(c, send, recv, count, t, [&](size_t i) { return reduce(g, t, op, i); });
}

extern "C" ncclResult_t ncclReduceScatter(const void *send, void *recv, size_t recvcount,
					  ncclDataType_t t, ncclRedOp_t op, ncclComm_t c,
					  cudaStream_t)
{
	size_t es = esize(t), world = (size_t)c->g->world, rank = (size_t)c->rank;
	if (overlap(send, world * recvcount * es, recv, recvcount * es) &&
	    (const char *)recv != (const char *)send + rank * recvcount * es)
		die("reduce-scatter in place needs recvbuff = sendbuff + rank * recvcount");
	sim_group *g = c->g;
	return collective(c, send, recv, recvcount, t,
			  [&](size_t i) { return reduce(g, t, op, rank * recvcount + i); });
}

extern "C" ncclResult_t ncclAllGather(const void *send, void *recv, size_t sendcount,
				      ncclDataType_t t, ncclComm_t c, cudaStream_t)
{
	size_t es = esize(t), world = (size_t)c->g->world, rank = (size_t)c->rank;
	if (overlap(send, sendcount * es, recv, world * sendcount * es) &&
	    (const char *)send != (const char *)recv + rank * sendcount * es)
		die("all-gather in place needs sendbuff = recvbuff + rank * sendcount");
	sim_group *g = c->g;
	return collective(c, send, recv, world * sendcount, t,
			  [&](size_t i) { return get(g->send[i / sendcount], t, i % sendcount); });
}
