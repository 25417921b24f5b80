/*
 * ft/registry.h - the content-addressed artifact store.
 *
 * Layout of a store (every backend keeps the same keys):
 *
 *   key                         what
 *   sha256/<hh>/<62 hex>        the blob whose SHA-256 is <hh><62 hex>
 *   tmp/<random>.part           (local backend) an upload in progress
 *
 * A blob becomes visible only once it is complete: writers stream into a
 * temporary object, the store hashes what goes through, and commit fsyncs,
 * renames to the key of the hash and fsyncs the folder. A crash before the
 * rename leaves only a temporary file, which no reader ever sees and which
 * ft_store_sweep_tmp() removes once its writer is gone. Writing the same
 * content twice keeps one blob.
 *
 * Backends implement struct ft_store_ops:
 *
 *   backend  where blobs live              temporaries        commit
 *   local    <store_dir>/sha256/...        <store_dir>/tmp/   fsync + rename
 *   s3       <bucket>/<s3_prefix>sha256/.. an unlinked file   HEAD, then one PUT
 *            (any S3-compatible server)    in <store_dir>     or a multipart upload
 *
 * ft_store_open_config() picks one from the configuration (store_backend).
 * Every backend hands readers a local file descriptor; the s3 backend
 * downloads into an unlinked file in store_dir first and refuses a blob
 * whose SHA-256 is not the one its key names ("blob_corrupt").
 *
 * Ownership: ft_store_writer_commit() and ft_store_writer_abort() both free
 * the writer; the store owns nothing its callers passed in (strings are
 * copied).
 */
#ifndef FT_REGISTRY_H
#define FT_REGISTRY_H

#include "ft/config.h"
#include "ft/crypto.h"
#include "ft/err.h"

#define FT_STORE_KEY_MAX 80 /* "sha256/ab/" + 62 + NUL fits */

struct ft_store;

struct ft_store_ops {
	const char *name;
	/* Open a temporary object; *tmp is backend state. */
	enum ft_rc (*tmp_open)(struct ft_store *s, void **tmp, struct ft_err *err);
	enum ft_rc (*tmp_write)(void *tmp, const void *p, size_t n, struct ft_err *err);
	/* Make the temporary object durable under key; always consumes tmp. */
	enum ft_rc (*tmp_commit)(struct ft_store *s, void *tmp, const char *key,
				 struct ft_err *err);
	void (*tmp_abort)(void *tmp);
	/* A readable fd positioned at 0, and the size; -1 with err when absent. */
	int (*open_read)(struct ft_store *s, const char *key, uint64_t *size, struct ft_err *err);
	/* Remove temporaries that no live writer holds and that are at least
	 * max_age_s old (0: any age); returns how many. A temporary being
	 * written is never removed, however old. */
	int (*sweep_tmp)(struct ft_store *s, long max_age_s);
	void (*free)(struct ft_store *s);
	/* Optional (NULL: the backend cannot; collection is then off). Every
	 * blob, with its size and the time it was last written or committed
	 * again; fn returning non-zero stops. */
	enum ft_rc (*list)(struct ft_store *s,
			   int (*fn)(const char *hex, uint64_t bytes, int64_t mtime_s, void *ud),
			   void *ud, struct ft_err *err);
	/* Remove the blob unless it was written or committed again within
	 * min_age_s (*removed says which), safely against a writer that commits
	 * the same content meanwhile. */
	enum ft_rc (*remove_stale)(struct ft_store *s, const char *key, long min_age_s,
				   bool *removed, uint64_t *bytes, struct ft_err *err);
};

/* What a store did since it was opened (updated atomically; for /metrics
 * and tests). The local backend counts nothing. */
struct ft_store_counters {
	uint64_t requests; /* backend requests, each retry included */
	uint64_t retries; /* requests repeated after a 5xx or a connection error */
	uint64_t parts; /* multipart parts uploaded */
	uint64_t resumes; /* downloads continued with a Range after a cut */
};

struct ft_store {
	const struct ft_store_ops *ops;
	struct ft_store_counters counters;
};

/* A local directory store rooted at dir (created when missing). */
struct ft_store *ft_store_local_new(const char *dir, struct ft_err *err);

/* An S3-compatible store (path-style URLs, SigV4 signed by libcurl). */
struct ft_store_s3_opts {
	const char *endpoint; /* "http://127.0.0.1:8333" or "https://s3.example.com" */
	const char *bucket;
	const char *region; /* "us-east-1" when NULL */
	const char *access_key, *secret_key;
	const char *prefix; /* prepended to every key ("" or "team-a/"); [A-Za-z0-9._/-] */
	const char *spool_dir; /* local folder for staged uploads and downloads */
	uint64_t multipart_bytes; /* blobs above this go up in parts this size (>= 5 MiB) */
	int attempts; /* tries per request, >= 1 */
	long backoff_ms; /* first retry delay; doubles per attempt, jittered, capped */
	/* S3 cannot tell a live writer's multipart upload from an abandoned one:
	 * a sweep leaves uploads younger than this alone, whatever age it is
	 * asked for (ft-api sweeps with 0, "as soon as the writer is gone",
	 * which the local backend can tell by its locks). 0: none (tests). */
	long sweep_min_age_s;
};
struct ft_store *ft_store_s3_new(const struct ft_store_s3_opts *o, struct ft_err *err);

/* The store the configuration names: store_backend = local (store_dir) or
 * s3 (the s3_* keys, staging in store_dir). */
struct ft_store *ft_store_open_config(const struct ft_config *cfg, struct ft_err *err);
void ft_store_free(struct ft_store *s);
const char *ft_store_backend(const struct ft_store *s); /* "local", "s3" */
void ft_store_counters_get(const struct ft_store *s, struct ft_store_counters *out);

/* "sha256/ab/cdef..." for a 64-character hex digest. */
void ft_store_key_for(const char *sha_hex, char key[FT_STORE_KEY_MAX]);
bool ft_store_key_valid(const char *key);

struct ft_store_writer;

/* Start a blob of at most max_bytes (0: no cap). */
enum ft_rc ft_store_writer_new(struct ft_store *s, uint64_t max_bytes, struct ft_store_writer **out,
			       struct ft_err *err);
/* Append; FT_ELIMIT (code "file_too_large") past the cap. */
enum ft_rc ft_store_writer_write(struct ft_store_writer *w, const void *p, size_t n,
				 struct ft_err *err);
uint64_t ft_store_writer_bytes(const struct ft_store_writer *w);
/* Finish: fills the hex digest, the key and the size; frees w. */
enum ft_rc ft_store_writer_commit(struct ft_store_writer *w, char sha_hex[FT_SHA256_HEX_LEN + 1],
				  char key[FT_STORE_KEY_MAX], uint64_t *bytes, struct ft_err *err);
void ft_store_writer_abort(struct ft_store_writer *w);

/* Open a blob for reading. */
int ft_store_open_read(struct ft_store *s, const char *key, uint64_t *size, struct ft_err *err);
int ft_store_sweep_tmp(struct ft_store *s, long max_age_s);

/* Collecting blobs nothing references (ft-scheduler's gc.c decides what is
 * referenced; the store only lists and removes). A commit of content that is
 * already stored refreshes the blob's time, and removal re-checks that time
 * after moving the blob aside, so a blob committed again while it is being
 * collected stays (or is written again by that commit). FT_EUNAVAIL with
 * code "unsupported" for a backend that cannot (s3, for now). */
enum ft_rc ft_store_list(struct ft_store *s,
			 int (*fn)(const char *hex, uint64_t bytes, int64_t mtime_s, void *ud),
			 void *ud, struct ft_err *err);
enum ft_rc ft_store_remove_stale(struct ft_store *s, const char *key, long min_age_s, bool *removed,
				 uint64_t *bytes, struct ft_err *err);

/* ---- stored folders ---------------------------------------------------------
 * A folder is stored as its files' blobs and a manifest, itself a blob
 * (written by the worker, worker/src/store.c):
 *
 *   {"format": "ftplat-manifest-1",
 *    "files": [{"path": "adapter_model.safetensors", "sha256": "<64 hex>", "bytes": n}, ...]}
 *
 * Paths are relative, '/'-separated, without empty, "." or ".." segments
 * and without a leading '/'. A manifest that breaks a rule is FT_EFORMAT
 * (code "bad_manifest") naming the entry. */
#define FT_MANIFEST_MAX_BYTES (16u << 20)
#define FT_MANIFEST_MAX_FILES 100000

struct ft_manifest_file {
	char *path;
	char sha256[FT_SHA256_HEX_LEN + 1];
	uint64_t bytes;
};
struct ft_manifest {
	struct ft_manifest_file *files;
	size_t n;
};
enum ft_rc ft_manifest_parse(const char *text, size_t len, struct ft_manifest *out,
			     struct ft_err *err);
void ft_manifest_release(struct ft_manifest *m);
/* Unpack the folder whose manifest is the blob manifest_hex into dir
 * (created when missing; its files written, subfolders made), each file
 * checked against its size and SHA-256 as it is copied ("blob_corrupt"). */
enum ft_rc ft_store_get_dir(struct ft_store *s, const char *manifest_hex, const char *dir,
			    struct ft_err *err);

/* Copy a local file into the store (used by admin tools and tests). */
enum ft_rc ft_store_put_file(struct ft_store *s, const char *path,
			     char sha_hex[FT_SHA256_HEX_LEN + 1], char key[FT_STORE_KEY_MAX],
			     uint64_t *bytes, struct ft_err *err);

#endif
