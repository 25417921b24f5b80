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
 * ft_store_sweep_tmp() removes later. Writing the same content twice keeps
 * one blob.
 *
 * Backends implement struct ft_store_ops (local directory now; an
 * S3-compatible one later). Ownership: ft_store_writer_commit() and
 * ft_store_writer_abort() both free the writer.
 */
#ifndef FT_REGISTRY_H
#define FT_REGISTRY_H

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
	/* Remove temporaries older than max_age_s; returns how many. */
	int (*sweep_tmp)(struct ft_store *s, long max_age_s);
	void (*free)(struct ft_store *s);
};

struct ft_store {
	const struct ft_store_ops *ops;
};

/* A local directory store rooted at dir (created when missing). */
struct ft_store *ft_store_local_new(const char *dir, struct ft_err *err);
void ft_store_free(struct ft_store *s);

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

/* Copy a local file into the store (used by admin tools and tests). */
enum ft_rc ft_store_put_file(struct ft_store *s, const char *path,
			     char sha_hex[FT_SHA256_HEX_LEN + 1], char key[FT_STORE_KEY_MAX],
			     uint64_t *bytes, struct ft_err *err);

#endif
