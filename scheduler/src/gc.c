/*
 * gc.c - the leader's collection of blobs nothing references.
 *
 * A blob is referenced while a row names its SHA-256: files.sha256 (uploads,
 * kept after a soft delete: jobs keep their lineage), artifacts.sha256 (a
 * stored folder's manifest, or a single blob) and artifact_files.sha256 (the
 * files of a manifest). Every gc_interval_s the leader:
 *   1. removes temporaries older than gc_grace_s (uploads that died);
 *   2. fills artifact_files for manifests stored before it existed, reading
 *      them from the store; if one cannot be read, nothing is collected
 *      this time (its files would look unreferenced);
 *   3. lists the store's blobs older than gc_grace_s, asks PostgreSQL which
 *      of them no row names, in batches, and removes those through
 *      ft_store_remove_stale (which keeps a blob committed again meanwhile).
 * The grace period covers what is in flight: a worker stores a folder's
 * files, then its manifest, then sends the event whose row references
 * them; ft-api writes an upload's blob before its row. A blob younger than
 * the grace period is never touched. SIGUSR1 to ft-scheduler asks the leader
 * for a collection at its next tick.
 *
 * Deleting a version, an export or a registered model deletes rows; their
 * blobs go at the next collection that finds nothing else naming them.
 */
#include <unistd.h>

#include "sched_int.h"

#define GC_BATCH 500
#define GC_BACKFILL 200

struct blob {
	char hex[65];
	uint64_t bytes;
};

struct listing {
	struct blob *v;
	size_t n, cap;
	int64_t older_than;
};

static int collect(const char *hex, uint64_t bytes, int64_t mtime_s, void *ud)
{
	struct listing *l = ud;
	if (mtime_s > l->older_than)
		return 0;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 256;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
		FT_ASSERT(l->v);
	}
	ft_strlcpy(l->v[l->n].hex, hex, sizeof(l->v[l->n].hex));
	l->v[l->n].bytes = bytes;
	l->n++;
	return 0;
}

/* artifact_files rows of manifests stored before the table existed. */
static enum ft_rc backfill(struct sched *s, bool *complete, struct ft_err *err)
{
	*complete = true;
	PGresult *r = sched_q(
		s, err,
		"SELECT a.id, a.sha256 FROM artifacts a WHERE a.format = 'manifest'"
		" AND NOT EXISTS (SELECT 1 FROM artifact_files f WHERE f.artifact_id = a.id)"
		" LIMIT 200", /* GC_BACKFILL */
		0, NULL);
	if (!r)
		return err->rc;
	for (int i = 0; i < PQntuples(r); i++) {
		char key[FT_STORE_KEY_MAX];
		struct ft_err e;
		struct ft_buf b = FT_BUF_INIT(64u << 20);
		ft_err_clear(&e);
		ft_store_key_for(PQgetvalue(r, i, 1), key);
		int fd = ft_store_open_read(s->store, key, NULL, &e);
		json_t *m = NULL;
		if (fd >= 0) {
			char buf[65536];
			ssize_t n;
			while ((n = read(fd, buf, sizeof(buf))) > 0)
				if (ft_buf_add(&b, buf, (size_t)n))
					break;
			close(fd);
			m = json_loadb(b.ptr ? b.ptr : "", b.len, 0, NULL);
		}
		ft_buf_release(&b);
		json_t *files = json_object_get(m, "files");
		if (!json_is_array(files) || json_array_size(files) == 0) {
			ft_logf(FT_LOG_WARN, NULL, PQgetvalue(r, i, 0),
				"collection: manifest %s cannot be read (%s); not collecting",
				PQgetvalue(r, i, 1), e.msg[0] ? e.msg : "not a manifest");
			*complete = false;
			json_decref(m);
			continue;
		}
		enum ft_rc rc = sched_artifact_files(s, PQgetvalue(r, i, 0), files, err);
		json_decref(m);
		if (rc) {
			PQclear(r);
			return rc;
		}
	}
	if (PQntuples(r) == GC_BACKFILL)
		*complete = false; /* more next time */
	PQclear(r);
	return FT_OK;
}

/* Remove the blobs of v[0..n) that no row names. */
static enum ft_rc sweep_batch(struct sched *s, const struct blob *v, size_t n, long grace,
			      struct ft_err *err)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(v[i].hex));
	char *text = json_dumps(a, JSON_COMPACT);
	json_decref(a);
	PGresult *r = sched_q(s, err,
			      "SELECT h FROM jsonb_array_elements_text($1::jsonb) AS h"
			      " WHERE NOT EXISTS (SELECT 1 FROM files WHERE sha256 = h)"
			      "   AND NOT EXISTS (SELECT 1 FROM artifacts WHERE sha256 = h)"
			      "   AND NOT EXISTS (SELECT 1 FROM artifact_files WHERE sha256 = h)",
			      1, (const char *[]){ text });
	free(text);
	if (!r)
		return err->rc;
	for (int i = 0; i < PQntuples(r); i++) {
		char key[FT_STORE_KEY_MAX];
		bool removed = false;
		uint64_t bytes = 0;
		struct ft_err e;
		ft_err_clear(&e);
		ft_store_key_for(PQgetvalue(r, i, 0), key);
		if (ft_store_remove_stale(s->store, key, grace, &removed, &bytes, &e)) {
			ft_warn("collection: %s", e.msg);
			continue;
		}
		if (removed) {
			__atomic_add_fetch(&s->gc_blobs, 1, __ATOMIC_RELAXED);
			__atomic_add_fetch(&s->gc_bytes, bytes, __ATOMIC_RELAXED);
		}
	}
	PQclear(r);
	return FT_OK;
}

enum ft_rc sched_gc_run(struct sched *s, struct ft_err *err)
{
	if (!s->store)
		return FT_OK;
	long grace = s->o->gc_grace_s;
	ft_store_sweep_tmp(s->store, grace);
	bool complete;
	if (backfill(s, &complete, err))
		return err->rc;
	__atomic_add_fetch(&s->gc_runs, 1, __ATOMIC_RELAXED);
	if (!complete)
		return FT_OK;
	struct listing l = { .older_than = ft_time_wall_ms() / 1000 - grace };
	enum ft_rc rc = ft_store_list(s->store, collect, &l, err);
	uint64_t before = __atomic_load_n(&s->gc_blobs, __ATOMIC_RELAXED);
	for (size_t i = 0; !rc && i < l.n; i += GC_BATCH)
		rc = sweep_batch(s, l.v + i, FT_MIN((size_t)GC_BATCH, l.n - i), grace, err);
	uint64_t removed = __atomic_load_n(&s->gc_blobs, __ATOMIC_RELAXED) - before;
	if (!rc)
		ft_info("collection: %zu blob(s) older than %lds looked at, %llu removed", l.n,
			grace, (unsigned long long)removed);
	free(l.v);
	return rc;
}

enum ft_rc sched_gc(struct sched *s, struct ft_err *err)
{
	bool asked = s->o->gc_now && *s->o->gc_now;
	if (!s->store || s->gc_off || (!asked && s->o->gc_interval_s <= 0))
		return FT_OK;
	uint64_t now = ft_time_mono_ms();
	if (!asked && now - s->gc_last_ms < (uint64_t)s->o->gc_interval_s * 1000)
		return FT_OK;
	if (asked)
		*s->o->gc_now = 0;
	s->gc_last_ms = now;
	enum ft_rc rc = sched_gc_run(s, err);
	if (rc == FT_EUNAVAIL && strcmp(err->code, "unsupported") == 0) {
		ft_warn("collection of unreferenced blobs is off: %s", err->msg);
		s->gc_off = true; /* said once */
		ft_err_clear(err);
		return FT_OK;
	}
	return rc;
}
