/*
 * ft-migrate - applies and rolls back the numbered SQL migrations in
 * migrations/ against PostgreSQL.
 *
 *   ft-migrate [--database-url URL] [--dir DIR] up [N]     apply pending (at most N)
 *   ft-migrate ... down N|all                              roll back the last N
 *   ft-migrate ... status                                  list versions and state
 *   ft-migrate ... force V                                 clear the dirty mark of V
 *
 * Files: NNNN_name.up.sql and NNNN_name.down.sql (name: [a-z0-9_]+); every
 * up has a down. Each migration runs in one transaction together with its
 * row in schema_migrations, so a failed migration leaves nothing behind.
 * A file whose first line is "-- ft:no-transaction" (for statements such as
 * CREATE INDEX CONCURRENTLY) runs outside a transaction: its row is written
 * with dirty = true first and cleared when it finishes, so a crash halfway
 * is visible and blocks further migrations until `force`.
 *
 * A session-level advisory lock keeps two ft-migrate processes apart.
 *
 * schema_migrations:
 *   version    bigint PRIMARY KEY   the NNNN of the file
 *   name       text                 the _name part
 *   dirty      boolean              true while a no-transaction migration runs
 *   applied_at timestamptz
 */
#include <dirent.h>
#include <libpq-fe.h>
#include <regex.h>
#include <sys/stat.h>

#include "ft/buf.h"
#include "ft/config.h"
#include "ft/err.h"
#include "ft/log.h"

#ifndef FT_MIGRATIONS_DEFAULT_DIR
#define FT_MIGRATIONS_DEFAULT_DIR "migrations"
#endif

#define MIGRATE_LOCK_KEY 7346201 /* pg_advisory_lock key, arbitrary but fixed */
#define MAX_SQL_BYTES (16u << 20)
#define FT_XSTR(x) #x
#define FT_STR(x) FT_XSTR(x)

struct migration {
	long version;
	char name[128];
	char *up_path;
	char *down_path;
	bool applied;
	bool dirty;
};

struct plan {
	struct migration *m;
	size_t n;
	const char *dir;
};

static void plan_release(struct plan *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->m[i].up_path);
		free(p->m[i].down_path);
	}
	free(p->m);
	p->m = NULL;
	p->n = 0;
}

static struct migration *find_version(struct plan *p, long version)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->m[i].version == version)
			return &p->m[i];
	return NULL;
}

static int cmp_migration(const void *a, const void *b)
{
	const struct migration *x = a, *y = b;
	return (x->version > y->version) - (x->version < y->version);
}

static char *path_join(const char *dir, const char *file)
{
	struct ft_buf b = FT_BUF_INIT(PATH_MAX);
	if (ft_buf_addf(&b, "%s/%s", dir, file)) {
		ft_buf_release(&b);
		return NULL;
	}
	return ft_buf_take(&b);
}

/* Read the folder; every .sql file must be a well-named up or down. */
static enum ft_rc plan_scan(struct plan *p, const char *dir, struct ft_err *err)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	regex_t re;
	enum ft_rc rc = FT_OK;
	size_t cap = 0;

	p->dir = dir;
	if (!d)
		return ft_failf(err, FT_EIO, "migrations_dir",
				"cannot open migrations folder \"%s\": %s", dir, strerror(errno));
	FT_ASSERT(regcomp(&re, "^([0-9]{4})_([a-z0-9_]+)\\.(up|down)\\.sql$", REG_EXTENDED) == 0);
	while ((de = readdir(d))) {
		regmatch_t mt[4];
		size_t len = strlen(de->d_name);
		if (len < 4 || strcmp(de->d_name + len - 4, ".sql") != 0)
			continue;
		if (regexec(&re, de->d_name, 4, mt, 0) != 0) {
			rc = ft_failf(err, FT_EFORMAT, "migrations_dir",
				      "migration file \"%s\" is not named NNNN_name.up.sql or "
				      "NNNN_name.down.sql",
				      de->d_name);
			break;
		}
		long version = strtol(de->d_name, NULL, 10);
		char name[128] = "";
		size_t nl = (size_t)(mt[2].rm_eo - mt[2].rm_so);
		if (nl >= sizeof(name)) {
			rc = ft_failf(err, FT_EFORMAT, "migrations_dir",
				      "migration name too long: %s", de->d_name);
			break;
		}
		memcpy(name, de->d_name + mt[2].rm_so, nl);
		name[nl] = '\0';
		bool up = de->d_name[mt[3].rm_so] == 'u';

		struct migration *m = find_version(p, version);
		if (!m) {
			if (p->n == cap) {
				cap = cap ? cap * 2 : 16;
				struct migration *nm = realloc(p->m, cap * sizeof(*nm));
				if (!nm) {
					rc = FT_ENOMEM;
					break;
				}
				p->m = nm;
			}
			m = &p->m[p->n++];
			memset(m, 0, sizeof(*m));
			m->version = version;
			ft_strlcpy(m->name, name, sizeof(m->name));
		} else if (strcmp(m->name, name) != 0) {
			rc = ft_failf(err, FT_EFORMAT, "migrations_dir",
				      "two migrations share version %04ld: \"%s\" and \"%s\"",
				      version, m->name, name);
			break;
		}
		char **slot = up ? &m->up_path : &m->down_path;
		*slot = path_join(dir, de->d_name);
		if (!*slot) {
			rc = ft_failf(err, FT_EINVAL, "migrations_dir", "path too long: %s",
				      de->d_name);
			break;
		}
	}
	closedir(d);
	regfree(&re);
	if (rc)
		return rc;
	qsort(p->m, p->n, sizeof(*p->m), cmp_migration);
	for (size_t i = 0; i < p->n; i++) {
		if (!p->m[i].up_path || !p->m[i].down_path)
			return ft_failf(err, FT_EFORMAT, "migrations_dir",
					"migration %04ld_%s has no %s file", p->m[i].version,
					p->m[i].name, p->m[i].up_path ? "down" : "up");
	}
	return FT_OK;
}

static char *read_file(const char *path, struct ft_err *err)
{
	FILE *f = fopen(path, "rb");
	struct ft_buf b = FT_BUF_INIT(MAX_SQL_BYTES);
	char chunk[65536];
	size_t n;
	if (!f) {
		ft_failf(err, FT_EIO, "io_error", "cannot read \"%s\": %s", path, strerror(errno));
		return NULL;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (ft_buf_add(&b, chunk, n)) {
			ft_failf(err, FT_ELIMIT, "too_large", "\"%s\" is larger than %u bytes",
				 path, MAX_SQL_BYTES);
			fclose(f);
			ft_buf_release(&b);
			return NULL;
		}
	}
	fclose(f);
	return ft_buf_take(&b);
}

static PGresult *exec(PGconn *c, const char *sql, int n, const char *const *params)
{
	return PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
}

static bool ok(PGresult *r)
{
	ExecStatusType s = PQresultStatus(r);
	return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
}

/* Turn a failed result into an error naming the file and its line. */
static enum ft_rc sql_fail(struct ft_err *err, PGresult *r, const char *what, const char *sql)
{
	const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
	const char *pos = PQresultErrorField(r, PG_DIAG_STATEMENT_POSITION);
	const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	long line = 0;
	if (pos && sql) {
		long p = strtol(pos, NULL, 10); /* 1-based character position */
		line = 1;
		for (long i = 0, chars = 0; sql[i] && chars < p - 1; i++) {
			if (((unsigned char)sql[i] & 0xC0) != 0x80)
				chars++;
			if (sql[i] == '\n')
				line++;
		}
	}
	if (line)
		ft_failf(err, FT_EDB, "migration_failed", "%s line %ld: %s", what, line,
			 msg ? msg : "error");
	else
		ft_failf(err, FT_EDB, "migration_failed", "%s: %s", what,
			 msg ? msg : PQresultErrorMessage(r));
	ft_err_line(err, line);
	if (state)
		ft_err_hintf(err, "SQLSTATE %s", state);
	return FT_EDB;
}

static enum ft_rc simple(PGconn *c, const char *sql, struct ft_err *err)
{
	PGresult *r = PQexec(c, sql);
	enum ft_rc rc = ok(r) ? FT_OK : sql_fail(err, r, "ft-migrate", NULL);
	PQclear(r);
	return rc;
}

static enum ft_rc load_state(PGconn *c, struct plan *p, struct ft_err *err)
{
	PGresult *r;
	enum ft_rc rc = simple(c,
			       "CREATE TABLE IF NOT EXISTS schema_migrations ("
			       " version bigint PRIMARY KEY,"
			       " name text NOT NULL,"
			       " dirty boolean NOT NULL DEFAULT false,"
			       " applied_at timestamptz NOT NULL DEFAULT now())",
			       err);
	if (rc)
		return rc;
	r = PQexec(c, "SELECT version, name, dirty FROM schema_migrations ORDER BY version");
	if (!ok(r)) {
		rc = sql_fail(err, r, "reading schema_migrations", NULL);
		PQclear(r);
		return rc;
	}
	for (int i = 0; i < PQntuples(r); i++) {
		long v = strtol(PQgetvalue(r, i, 0), NULL, 10);
		struct migration *m = find_version(p, v);
		if (!m) {
			rc = ft_failf(err, FT_ECONFLICT, "unknown_version",
				      "the database has migration %04ld_%s, which is not in \"%s\"",
				      v, PQgetvalue(r, i, 1), p->dir);
			ft_err_hintf(err,
				     "run the ft-migrate that belongs to this database's version");
			break;
		}
		m->applied = true;
		m->dirty = PQgetvalue(r, i, 2)[0] == 't';
	}
	PQclear(r);
	return rc;
}

static enum ft_rc refuse_dirty(struct plan *p, struct ft_err *err)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->m[i].dirty) {
			ft_failf(err, FT_ECONFLICT, "dirty",
				 "migration %04ld_%s is dirty: it did not finish", p->m[i].version,
				 p->m[i].name);
			ft_err_hintf(err,
				     "repair the schema by hand, then run `ft-migrate force %ld`",
				     p->m[i].version);
			return FT_ECONFLICT;
		}
	return FT_OK;
}

static bool no_transaction(const char *sql)
{
	static const char marker[] = "-- ft:no-transaction";
	return strncmp(sql, marker, sizeof(marker) - 1) == 0;
}

static enum ft_rc run_one(PGconn *c, struct migration *m, bool up, struct ft_err *err)
{
	const char *path = up ? m->up_path : m->down_path;
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	char vbuf[32];
	const char *params[2] = { vbuf, m->name };
	enum ft_rc rc = FT_OK;
	PGresult *r;
	char *sql = read_file(path, err);

	if (!sql)
		return err ? err->rc : FT_EIO;
	snprintf(vbuf, sizeof(vbuf), "%ld", m->version);

	if (no_transaction(sql)) {
		if (up)
			r = exec(c,
				 "INSERT INTO schema_migrations (version, name, dirty) VALUES ($1, "
				 "$2, true)",
				 2, params);
		else
			r = exec(c, "UPDATE schema_migrations SET dirty = true WHERE version = $1",
				 1, params);
		if (!ok(r))
			rc = sql_fail(err, r, base, NULL);
		PQclear(r);
		if (rc)
			goto out;
		r = PQexec(c, sql);
		if (!ok(r))
			rc = sql_fail(err, r, base, sql);
		PQclear(r);
		if (rc)
			goto out; /* stays dirty: the schema may be half-changed */
		if (up)
			r = exec(c, "UPDATE schema_migrations SET dirty = false WHERE version = $1",
				 1, params);
		else
			r = exec(c, "DELETE FROM schema_migrations WHERE version = $1", 1, params);
		if (!ok(r))
			rc = sql_fail(err, r, base, NULL);
		PQclear(r);
		goto out;
	}

	if ((rc = simple(c, "BEGIN", err)))
		goto out;
	r = PQexec(c, sql);
	if (!ok(r))
		rc = sql_fail(err, r, base, sql);
	PQclear(r);
	if (!rc) {
		if (up)
			r = exec(c, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
				 2, params);
		else
			r = exec(c, "DELETE FROM schema_migrations WHERE version = $1", 1, params);
		if (!ok(r))
			rc = sql_fail(err, r, base, NULL);
		PQclear(r);
	}
	if (!rc && PQtransactionStatus(c) != PQTRANS_INTRANS)
		rc = ft_failf(err, FT_EFORMAT, "migration_failed",
			      "%s: must not end the transaction itself (COMMIT/ROLLBACK)", base);
	if (rc) {
		PQclear(PQexec(c, "ROLLBACK"));
		goto out;
	}
	rc = simple(c, "COMMIT", err);
out:
	if (!rc) {
		m->applied = up;
		m->dirty = false;
		ft_info("%s %04ld_%s", up ? "applied" : "rolled back", m->version, m->name);
	}
	free(sql);
	return rc;
}

static enum ft_rc cmd_up(PGconn *c, struct plan *p, long limit, struct ft_err *err)
{
	long done = 0;
	enum ft_rc rc = refuse_dirty(p, err);
	if (rc)
		return rc;
	for (size_t i = 0; i < p->n && (limit < 0 || done < limit); i++) {
		if (p->m[i].applied)
			continue;
		if ((rc = run_one(c, &p->m[i], true, err)))
			return rc;
		done++;
	}
	printf("applied %ld migration%s\n", done, done == 1 ? "" : "s");
	return FT_OK;
}

static enum ft_rc cmd_down(PGconn *c, struct plan *p, long limit, struct ft_err *err)
{
	long done = 0;
	enum ft_rc rc = refuse_dirty(p, err);
	if (rc)
		return rc;
	for (size_t i = p->n; i-- > 0 && (limit < 0 || done < limit);) {
		if (!p->m[i].applied)
			continue;
		if ((rc = run_one(c, &p->m[i], false, err)))
			return rc;
		done++;
	}
	printf("rolled back %ld migration%s\n", done, done == 1 ? "" : "s");
	return FT_OK;
}

static enum ft_rc cmd_status(struct plan *p)
{
	printf("%-8s %-40s %s\n", "version", "name", "state");
	for (size_t i = 0; i < p->n; i++)
		printf("%04ld     %-40s %s\n", p->m[i].version, p->m[i].name,
		       p->m[i].dirty	 ? "dirty"
		       : p->m[i].applied ? "applied"
					 : "pending");
	return FT_OK;
}

static enum ft_rc cmd_force(PGconn *c, struct plan *p, long version, struct ft_err *err)
{
	char vbuf[32];
	const char *params[1] = { vbuf };
	struct migration *m = find_version(p, version);
	if (!m || !m->dirty)
		return ft_failf(err, FT_EINVAL, "not_dirty", "migration %04ld is not dirty",
				version);
	snprintf(vbuf, sizeof(vbuf), "%ld", version);
	PGresult *r =
		exec(c, "UPDATE schema_migrations SET dirty = false WHERE version = $1", 1, params);
	enum ft_rc rc = ok(r) ? FT_OK : sql_fail(err, r, "force", NULL);
	PQclear(r);
	if (!rc)
		printf("cleared the dirty mark of %04ld_%s\n", m->version, m->name);
	return rc;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ft-migrate [--database-url URL] [--dir DIR] up [N] | down N|all | "
		"status | force V\n"
		"  URL defaults to $FT_DATABASE_URL, DIR to $FT_MIGRATIONS_DIR or %s\n",
		FT_MIGRATIONS_DEFAULT_DIR);
}

static bool parse_count(const char *s, long *out)
{
	char *end;
	if (strcmp(s, "all") == 0) {
		*out = -1;
		return true;
	}
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < 0)
		return false;
	*out = v;
	return true;
}

int main(int argc, char **argv)
{
	struct ft_config cfg = { 0 };
	struct ft_err err;
	struct plan plan = { 0 };
	const char *url = NULL, *dir = NULL;
	PGconn *c = NULL;
	enum ft_rc rc;
	int i = 1, status = 1;
	enum ft_log_level lvl = FT_LOG_INFO;

	ft_err_clear(&err);
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--database-url") == 0 && i + 1 < argc) {
			url = argv[++i];
		} else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
			dir = argv[++i];
		} else {
			fprintf(stderr, "ft-migrate: unknown option \"%s\"\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[i++];
	long count = -1;
	if (strcmp(cmd, "up") == 0) {
		if (i < argc && !parse_count(argv[i++], &count))
			goto bad_count;
	} else if (strcmp(cmd, "down") == 0 || strcmp(cmd, "force") == 0) {
		if (i >= argc || !parse_count(argv[i++], &count) ||
		    (strcmp(cmd, "force") == 0 && count < 0))
			goto bad_count;
	} else if (strcmp(cmd, "status") != 0) {
		fprintf(stderr, "ft-migrate: unknown command \"%s\"\n", cmd);
		usage(stderr);
		return 2;
	}
	if (i < argc) {
		fprintf(stderr, "ft-migrate: unexpected argument \"%s\"\n", argv[i]);
		return 2;
	}

	if (ft_config_load(&cfg, NULL, &err))
		goto fail;
	if (ft_config_str(&cfg, "log_level"))
		ft_log_level_parse(ft_config_str(&cfg, "log_level"), &lvl);
	ft_log_init("migrate", lvl);
	if (!url)
		url = ft_config_str(&cfg, "database_url");
	if (!dir)
		dir = ft_config_str(&cfg, "migrations_dir");
	if (!dir)
		dir = FT_MIGRATIONS_DEFAULT_DIR;

	if ((rc = plan_scan(&plan, dir, &err)))
		goto fail;
	c = PQconnectdb(url);
	if (PQstatus(c) != CONNECTION_OK) {
		ft_failf(&err, FT_EUNAVAIL, "db_unavailable", "cannot connect to PostgreSQL");
		ft_err_detailf(&err, "%s", PQerrorMessage(c));
		goto fail;
	}
	PQclear(PQexec(c, "SET client_min_messages = warning"));
	if (simple(c, "SELECT pg_advisory_lock(" FT_STR(MIGRATE_LOCK_KEY) ")", &err))
		goto fail;
	if ((rc = load_state(c, &plan, &err)))
		goto fail;

	if (strcmp(cmd, "up") == 0)
		rc = cmd_up(c, &plan, count, &err);
	else if (strcmp(cmd, "down") == 0)
		rc = cmd_down(c, &plan, count, &err);
	else if (strcmp(cmd, "force") == 0)
		rc = cmd_force(c, &plan, count, &err);
	else
		rc = cmd_status(&plan);
	if (rc)
		goto fail;
	status = 0;
	goto out;

bad_count:
	fprintf(stderr, "ft-migrate: %s needs a count (a number or \"all\")\n", cmd);
	return 2;
fail:
	fprintf(stderr, "ft-migrate: error: %s\n", err.msg);
	if (err.detail[0])
		fprintf(stderr, "ft-migrate: detail: %s\n", err.detail);
	if (err.hint[0])
		fprintf(stderr, "ft-migrate: hint: %s\n", err.hint);
out:
	if (c)
		PQfinish(c);
	plan_release(&plan);
	ft_config_release(&cfg);
	return status;
}
