/*
 * dp_shard.c - the data-parallel pieces that need no GPU (ft/dp.h):
 *
 * Shard arithmetic for ZeRO-1, the flat vector of n elements padded so that
 * each of the world ranks owns an equal, 64-element-aligned shard:
 *   padded    = ceil(n / (world * 64)) * world * 64
 *   shard_len = padded / world,  offset = rank * shard_len,
 *   len       = min(shard_len, max(0, n - offset))
 *
 * The file rendezvous for the NCCL unique id (the 128 id bytes, raw):
 *   publish  write PATH.tmp.<pid>, fsync, rename to PATH (atomic on POSIX)
 *   fetch    poll every 10 ms until PATH exists and holds exactly 128 bytes
 *   release  the publisher unlinks PATH; everyone frees the state
 */
#include "ft/dp.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

void ft_dp_shard_compute(size_t n, int world, int rank, struct ft_dp_shard *out)
{
	FT_ASSERT(world >= 1 && world <= FT_DP_MAX_WORLD && rank >= 0 && rank < world);
	size_t unit = (size_t)world * FT_DP_ALIGN;
	out->padded = (n + unit - 1) / unit * unit;
	out->shard_len = out->padded / (size_t)world;
	out->offset = (size_t)rank * out->shard_len;
	out->len = n > out->offset ? FT_MIN(out->shard_len, n - out->offset) : 0;
}

struct rv_file {
	char path[4096];
	bool published;
};

static enum ft_rc rv_file_publish(struct ft_dp_rendezvous *r, const uint8_t id[FT_DP_ID_BYTES],
				  struct ft_err *err)
{
	struct rv_file *f = r->state;
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", f->path, (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return ft_failf(err, FT_EIO, "rendezvous_io", "cannot write \"%s\": %s", tmp,
				strerror(errno));
	ssize_t w = write(fd, id, FT_DP_ID_BYTES);
	int sync_rc = fsync(fd);
	close(fd);
	if (w != FT_DP_ID_BYTES || sync_rc != 0 || rename(tmp, f->path) != 0) {
		int e = errno;
		unlink(tmp);
		return ft_failf(err, FT_EIO, "rendezvous_io",
				"cannot publish the NCCL id to \"%s\": %s", f->path, strerror(e));
	}
	f->published = true;
	return FT_OK;
}

static enum ft_rc rv_file_fetch(struct ft_dp_rendezvous *r, uint8_t id[FT_DP_ID_BYTES],
				int timeout_ms, struct ft_err *err)
{
	struct rv_file *f = r->state;
	const struct timespec tick = { 0, 10 * 1000 * 1000 };
	for (int waited = 0;; waited += 10) {
		int fd = open(f->path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			uint8_t extra;
			ssize_t got = read(fd, id, FT_DP_ID_BYTES);
			ssize_t more = read(fd, &extra, 1);
			close(fd);
			if (got == FT_DP_ID_BYTES && more == 0)
				return FT_OK;
			return ft_failf(err, FT_EFORMAT, "rendezvous_format",
					"\"%s\" is not an NCCL id (%zd bytes, want %d)", f->path,
					got < 0 ? (ssize_t)0 : got + (more > 0 ? 1 : 0),
					FT_DP_ID_BYTES);
		}
		if (errno != ENOENT)
			return ft_failf(err, FT_EIO, "rendezvous_io", "cannot read \"%s\": %s",
					f->path, strerror(errno));
		if (waited >= timeout_ms)
			return ft_failf(err, FT_EUNAVAIL, "rendezvous_timeout",
					"rank 0 did not publish the NCCL id at \"%s\" within %d ms",
					f->path, timeout_ms);
		nanosleep(&tick, NULL);
	}
}

static void rv_file_release(struct ft_dp_rendezvous *r)
{
	struct rv_file *f = r->state;
	if (!f)
		return;
	if (f->published)
		unlink(f->path);
	free(f);
	r->state = NULL;
}

enum ft_rc ft_dp_rendezvous_file(struct ft_dp_rendezvous *r, const char *path, struct ft_err *err)
{
	struct rv_file *f = calloc(1, sizeof(*f));
	if (!f)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	if (ft_strlcpy(f->path, path, sizeof(f->path)) >= sizeof(f->path)) {
		free(f);
		return ft_failf(err, FT_EINVAL, "rendezvous_path", "rendezvous path is too long");
	}
	r->publish = rv_file_publish;
	r->fetch = rv_file_fetch;
	r->release = rv_file_release;
	r->state = f;
	return FT_OK;
}
