/*
 * devmem.c - host views of backend memory: the one pattern host code uses
 * to read or fill a tensor that lives on the backend (ft/backend.h).
 *
 *   float *h = ft_dev_map(be, t, bytes, fetch);   t itself on the CPU,
 *   ... read / write h ...                          else a staging copy
 *   ft_dev_unmap(be, t, h, bytes, store);          upload if store, free
 *
 * On a host-memory backend both calls are free: the CPU path makes no copy.
 */
#include "ft/backend.h"

void *ft_dev_map(const struct ft_backend *be, void *dev, size_t bytes, bool fetch)
{
	if (be->host_memory)
		return dev;
	void *h = malloc(bytes ? bytes : 1);
	if (h && fetch)
		be->download(h, dev, bytes);
	return h;
}

void ft_dev_unmap(const struct ft_backend *be, void *dev, void *host, size_t bytes, bool store)
{
	if (be->host_memory || !host)
		return;
	if (store)
		be->upload(dev, host, bytes);
	free(host);
}

void *ft_dev_calloc(const struct ft_backend *be, size_t bytes)
{
	void *p = be->alloc(bytes);
	if (p)
		be->zero(p, bytes);
	return p;
}
