/*
 * gguf_write.c - the GGUF writer: metadata and tensor infos collected in
 * memory, tensor data filled one tensor at a time while the file is
 * written (ft/gguf.h has the layout the reader checks; the writer produces
 * exactly that, version 3, little-endian).
 *
 * Metadata values are serialised when they are set (key, type, value
 * bytes) into one buffer, so writing the header is a copy; keys are kept
 * in a sorted index so a key set twice is refused. Tensor i's offset is
 * the sum of the sizes of tensors 0..i-1, each rounded up to the
 * alignment; the data section starts at the header's end rounded up the
 * same way, and the padding is zero bytes.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ft/fs.h"
#include "ft/gguf.h"

#define GGUF_VERSION 3
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_NAME 64
#define HEADER_MAX ((size_t)1 << 32)

struct wtensor {
	char name[GGUF_MAX_NAME];
	uint32_t type;
	int n_dims;
	uint64_t ne[4];
	uint64_t nbytes, offset;
	ft_gguf_fill_fn fill;
	void *ctx;
};

struct ft_gguf_writer {
	struct ft_buf kv; /* serialised metadata */
	uint64_t n_kv;
	char **keys; /* sorted, for duplicates */
	size_t n_keys, cap_keys;
	struct wtensor *t;
	size_t n_t, cap_t;
	uint64_t data_bytes; /* with padding */
	uint32_t alignment;
	char arch[64];
};

static enum ft_rc oom(struct ft_err *err)
{
	return ft_failf(err, FT_ENOMEM, NULL, "gguf writer: out of memory");
}

struct ft_gguf_writer *ft_gguf_writer_new(void)
{
	struct ft_gguf_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	ft_buf_init(&w->kv, HEADER_MAX);
	w->alignment = GGUF_DEFAULT_ALIGNMENT;
	return w;
}

void ft_gguf_writer_free(struct ft_gguf_writer *w)
{
	if (!w)
		return;
	ft_buf_release(&w->kv);
	for (size_t i = 0; i < w->n_keys; i++)
		free(w->keys[i]);
	free(w->keys);
	free(w->t);
	free(w);
}

/* ---- serialisation ---- */

static enum ft_rc le(struct ft_buf *b, uint64_t v, int bytes)
{
	uint8_t x[8];
	for (int i = 0; i < bytes; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	return ft_buf_add(b, x, (size_t)bytes);
}

static enum ft_rc str(struct ft_buf *b, const char *s, uint64_t len)
{
	return le(b, len, 8) || ft_buf_add(b, s, (size_t)len) ? FT_ENOMEM : FT_OK;
}

static uint32_t vsize(enum ft_gguf_vtype t)
{
	static const uint8_t sizes[FT_GGUF_VTYPE_COUNT] = {
		[FT_GGUF_UINT8] = 1,   [FT_GGUF_INT8] = 1,    [FT_GGUF_UINT16] = 2,
		[FT_GGUF_INT16] = 2,   [FT_GGUF_UINT32] = 4,  [FT_GGUF_INT32] = 4,
		[FT_GGUF_FLOAT32] = 4, [FT_GGUF_BOOL] = 1,    [FT_GGUF_UINT64] = 8,
		[FT_GGUF_INT64] = 8,   [FT_GGUF_FLOAT64] = 8,
	};
	return (unsigned)t < FT_GGUF_VTYPE_COUNT ? sizes[t] : 0;
}

/* A scalar's bytes from a C object of its type (little-endian host). */
static enum ft_rc scalar(struct ft_buf *b, enum ft_gguf_vtype t, const void *val)
{
	if (t == FT_GGUF_BOOL) {
		uint8_t v = *(const bool *)val ? 1 : 0;
		return ft_buf_add(b, &v, 1);
	}
	return ft_buf_add(b, val, vsize(t));
}

/* Insert key into the sorted index; false when it is there already. */
static enum ft_rc add_key(struct ft_gguf_writer *w, const char *key, struct ft_err *err)
{
	size_t lo = 0, hi = w->n_keys;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(w->keys[mid], key);
		if (c == 0)
			return ft_failf(err, FT_EINVAL, NULL,
					"gguf writer: metadata \"%s\" set twice", key);
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (w->n_keys == w->cap_keys) {
		size_t nc = w->cap_keys ? 2 * w->cap_keys : 32;
		char **nk = realloc(w->keys, nc * sizeof(*nk));
		if (!nk)
			return oom(err);
		w->keys = nk;
		w->cap_keys = nc;
	}
	char *k = strdup(key);
	if (!k)
		return oom(err);
	memmove(w->keys + lo + 1, w->keys + lo, (w->n_keys - lo) * sizeof(*w->keys));
	w->keys[lo] = k;
	w->n_keys++;
	return FT_OK;
}

bool ft_gguf_writer_has(const struct ft_gguf_writer *w, const char *key)
{
	size_t lo = 0, hi = w->n_keys;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(w->keys[mid], key);
		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* The key's name and type, ready for its value. */
static enum ft_rc kv_head(struct ft_gguf_writer *w, const char *key, enum ft_gguf_vtype t,
			  struct ft_err *err)
{
	size_t n = strlen(key);
	if (n == 0 || n >= (1u << 16))
		return ft_failf(err, FT_EINVAL, NULL, "gguf writer: a key of %zu bytes", n);
	enum ft_rc rc = add_key(w, key, err);
	if (rc)
		return rc;
	if (str(&w->kv, key, n) || le(&w->kv, (uint64_t)t, 4))
		return oom(err);
	w->n_kv++;
	return FT_OK;
}

enum ft_rc ft_gguf_writer_kv(struct ft_gguf_writer *w, const char *key, enum ft_gguf_vtype type,
			     const void *val, struct ft_err *err)
{
	FT_ASSERT(type < FT_GGUF_VTYPE_COUNT && type != FT_GGUF_ARRAY);
	enum ft_rc rc = kv_head(w, key, type, err);
	if (rc)
		return rc;
	if (type == FT_GGUF_STRING)
		rc = str(&w->kv, val, strlen(val));
	else
		rc = scalar(&w->kv, type, val);
	return rc ? oom(err) : FT_OK;
}

enum ft_rc ft_gguf_writer_arr(struct ft_gguf_writer *w, const char *key, enum ft_gguf_vtype elem,
			      const void *vals, const uint64_t *lens, uint64_t n,
			      struct ft_err *err)
{
	FT_ASSERT(elem < FT_GGUF_VTYPE_COUNT && elem != FT_GGUF_ARRAY);
	enum ft_rc rc = kv_head(w, key, FT_GGUF_ARRAY, err);
	if (rc)
		return rc;
	if (le(&w->kv, (uint64_t)elem, 4) || le(&w->kv, n, 8))
		return oom(err);
	if (elem == FT_GGUF_STRING) {
		const char *const *s = vals;
		for (uint64_t i = 0; i < n; i++)
			if (str(&w->kv, s[i], lens ? lens[i] : strlen(s[i])))
				return oom(err);
		return FT_OK;
	}
	if (elem == FT_GGUF_BOOL) {
		const bool *b = vals;
		for (uint64_t i = 0; i < n; i++)
			if (scalar(&w->kv, elem, &b[i]))
				return oom(err);
		return FT_OK;
	}
	return ft_buf_add(&w->kv, vals, (size_t)(n * vsize(elem))) ? oom(err) : FT_OK;
}

enum ft_rc ft_gguf_writer_arch(struct ft_gguf_writer *w, const char *arch, struct ft_err *err)
{
	if (strlen(arch) >= sizeof w->arch)
		return ft_failf(err, FT_EINVAL, NULL, "gguf writer: architecture name too long");
	ft_strlcpy(w->arch, arch, sizeof w->arch);
	return ft_gguf_writer_kv(w, ft_gguf_keys[FT_GGUF_KEY_ARCHITECTURE].name, FT_GGUF_STRING,
				 arch, err);
}

static void key_name(const struct ft_gguf_writer *w, enum ft_gguf_key k, char *buf, size_t size)
{
	const char *n = ft_gguf_keys[k].name;
	if (strncmp(n, "{arch}", 6) == 0) {
		FT_ASSERT(w->arch[0]); /* ft_gguf_writer_arch first */
		snprintf(buf, size, "%s%s", w->arch, n + 6);
	} else {
		snprintf(buf, size, "%s", n);
	}
}

enum ft_rc ft_gguf_writer_key(struct ft_gguf_writer *w, enum ft_gguf_key k, const void *val,
			      struct ft_err *err)
{
	char name[160];
	FT_ASSERT(k < FT_GGUF_KEY_COUNT && ft_gguf_keys[k].type != FT_GGUF_ARRAY);
	key_name(w, k, name, sizeof name);
	if (k == FT_GGUF_KEY_ALIGNMENT) {
		uint32_t a = *(const uint32_t *)val;
		if (a == 0 || (a & (a - 1)) || a > (1u << 30) || w->n_t)
			return ft_failf(err, FT_EINVAL, NULL,
					"gguf writer: alignment %u (a power of two, set before "
					"the tensors)",
					a);
		w->alignment = a;
	}
	return ft_gguf_writer_kv(w, name, ft_gguf_keys[k].type, val, err);
}

enum ft_rc ft_gguf_writer_key_arr(struct ft_gguf_writer *w, enum ft_gguf_key k, const void *vals,
				  uint64_t n, struct ft_err *err)
{
	char name[160];
	FT_ASSERT(k < FT_GGUF_KEY_COUNT && ft_gguf_keys[k].type == FT_GGUF_ARRAY);
	key_name(w, k, name, sizeof name);
	return ft_gguf_writer_arr(w, name, ft_gguf_keys[k].elem, vals, NULL, n, err);
}

/* ---- tensors ---- */

static uint64_t pad_to(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

enum ft_rc ft_gguf_writer_tensor(struct ft_gguf_writer *w, const char *name, uint32_t type,
				 int n_dims, const uint64_t *ne, ft_gguf_fill_fn fill, void *ctx,
				 struct ft_err *err)
{
	const struct ft_ggml_type_info *ti = ft_ggml_type_info(type);
	if (!ti)
		return ft_failf(err, FT_EINVAL, NULL, "gguf writer: tensor \"%s\": type %u", name,
				type);
	if (strlen(name) >= GGUF_MAX_NAME || !name[0])
		return ft_failf(err, FT_EINVAL, NULL,
				"gguf writer: tensor name \"%s\" must have 1 to %d bytes", name,
				GGUF_MAX_NAME - 1);
	if (n_dims < 1 || n_dims > 4)
		return ft_failf(err, FT_EINVAL, NULL,
				"gguf writer: tensor \"%s\" has %d dimensions", name, n_dims);
	uint64_t nelem = 1;
	for (int d = 0; d < n_dims; d++) {
		if (ne[d] == 0 || ne[d] > (UINT64_C(1) << 40) ||
		    nelem > (UINT64_C(1) << 40) / ne[d])
			return ft_failf(err, FT_EINVAL, NULL,
					"gguf writer: tensor \"%s\" has an empty or huge shape",
					name);
		nelem *= ne[d];
	}
	if (ne[0] % ti->block)
		return ft_failf(err, FT_EINVAL, NULL,
				"gguf writer: tensor \"%s\": a row of %" PRIu64
				" is not a multiple of %s's block of %u",
				name, ne[0], ti->name, ti->block);
	for (size_t i = 0; i < w->n_t; i++)
		if (strcmp(w->t[i].name, name) == 0)
			return ft_failf(err, FT_EINVAL, NULL,
					"gguf writer: tensor \"%s\" added twice", name);
	if (w->n_t == w->cap_t) {
		size_t nc = w->cap_t ? 2 * w->cap_t : 64;
		struct wtensor *nt = realloc(w->t, nc * sizeof(*nt));
		if (!nt)
			return oom(err);
		w->t = nt;
		w->cap_t = nc;
	}
	struct wtensor *t = &w->t[w->n_t++];
	memset(t, 0, sizeof(*t));
	ft_strlcpy(t->name, name, sizeof t->name);
	t->type = type;
	t->n_dims = n_dims;
	for (int d = 0; d < 4; d++)
		t->ne[d] = d < n_dims ? ne[d] : 1;
	t->nbytes = nelem / ti->block * ti->bytes;
	t->offset = w->data_bytes;
	t->fill = fill;
	t->ctx = ctx;
	w->data_bytes += pad_to(t->nbytes, w->alignment);
	return FT_OK;
}

/* ---- the file ---- */

static enum ft_rc header(const struct ft_gguf_writer *w, struct ft_buf *h)
{
	if (ft_buf_add(h, "GGUF", 4) || le(h, GGUF_VERSION, 4) || le(h, w->n_t, 8) ||
	    le(h, w->n_kv, 8) || ft_buf_add(h, w->kv.ptr, w->kv.len))
		return FT_ENOMEM;
	for (size_t i = 0; i < w->n_t; i++) {
		const struct wtensor *t = &w->t[i];
		if (str(h, t->name, strlen(t->name)) || le(h, (uint64_t)t->n_dims, 4))
			return FT_ENOMEM;
		for (int d = 0; d < t->n_dims; d++)
			if (le(h, t->ne[d], 8))
				return FT_ENOMEM;
		if (le(h, t->type, 4) || le(h, t->offset, 8))
			return FT_ENOMEM;
	}
	static const char zeros[64];
	uint64_t pad = pad_to(h->len, w->alignment) - h->len;
	while (pad) {
		size_t k = pad > sizeof zeros ? sizeof zeros : (size_t)pad;
		if (ft_buf_add(h, zeros, k))
			return FT_ENOMEM;
		pad -= k;
	}
	return FT_OK;
}

uint64_t ft_gguf_writer_size(const struct ft_gguf_writer *w)
{
	struct ft_buf h = FT_BUF_INIT(HEADER_MAX);
	uint64_t n = header(w, &h) ? 0 : h.len + w->data_bytes;
	ft_buf_release(&h);
	return n;
}

static enum ft_rc write_all(int fd, const void *p, size_t n, const char *path, struct ft_err *err)
{
	const char *c = p;
	while (n) {
		ssize_t k = write(fd, c, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return ft_failf(err, FT_EIO, "io_error", "%s: write failed: %s", path,
					k < 0 ? strerror(errno) : "no progress");
		c += k;
		n -= (size_t)k;
	}
	return FT_OK;
}

enum ft_rc ft_gguf_writer_write(struct ft_gguf_writer *w, const char *path,
				ft_gguf_progress_fn progress, void *ud, struct ft_err *err)
{
	struct ft_buf h = FT_BUF_INIT(HEADER_MAX), tmp = FT_BUF_INIT(8192);
	uint8_t *data = NULL;
	size_t cap = 0;
	int fd = -1;
	enum ft_rc rc = FT_OK;
	if (header(w, &h) || ft_buf_addf(&tmp, "%s.tmp-XXXXXX", path)) {
		rc = oom(err);
		goto release;
	}
	fd = mkstemp(tmp.ptr);
	if (fd < 0) {
		rc = ft_failf(err, FT_EIO, "io_error", "%s: cannot create: %s", path,
			      strerror(errno));
		goto release;
	}
	(void)!fchmod(fd, 0644);
	if ((rc = write_all(fd, h.ptr, h.len, path, err)))
		goto unlink_tmp;
	uint64_t done = 0;
	for (size_t i = 0; i < w->n_t && !rc; i++) {
		const struct wtensor *t = &w->t[i];
		size_t padded = (size_t)pad_to(t->nbytes, w->alignment);
		if (padded > cap) {
			free(data);
			cap = padded;
			if (!(data = malloc(cap))) {
				rc = oom(err);
				break;
			}
		}
		memset(data + t->nbytes, 0, padded - t->nbytes);
		if ((rc = t->fill(t->ctx, data, t->nbytes, err))) {
			ft_err_prefixf(err, "tensor \"%s\": ", t->name);
			break;
		}
		rc = write_all(fd, data, padded, path, err);
		done += padded;
		if (!rc && progress)
			progress(ud, i + 1, w->n_t, done, w->data_bytes);
	}
	if (!rc && fsync(fd) != 0)
		rc = ft_failf(err, FT_EIO, "io_error", "%s: fsync failed: %s", path,
			      strerror(errno));
	if (close(fd) != 0 && !rc)
		rc = ft_failf(err, FT_EIO, "io_error", "%s: close failed: %s", path,
			      strerror(errno));
	fd = -1;
	if (!rc && rename(tmp.ptr, path) != 0)
		rc = ft_failf(err, FT_EIO, "io_error", "%s: rename failed: %s", path,
			      strerror(errno));
	if (!rc) {
		char dir[4096];
		ft_strlcpy(dir, path, sizeof dir);
		char *slash = strrchr(dir, '/');
		if (slash)
			*slash = 0;
		ft_fsync_dir(slash ? dir : ".");
	}
unlink_tmp:
	if (fd >= 0)
		close(fd);
	if (rc)
		unlink(tmp.ptr);
release:
	free(data);
	ft_buf_release(&h);
	ft_buf_release(&tmp);
	return rc;
}
