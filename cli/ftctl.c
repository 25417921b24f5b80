/*
 * ftctl - the command-line client of ftplat, built only on ft/client.h.
 *
 * Commands are one static table (git's commands[]); each has a group, a
 * name, a handler, a usage line and help. Output is a human table by
 * default, the API's JSON with --json. Exit codes scripts can rely on:
 *   0 success
 *   1 the API refused the request (its message is printed)
 *   2 usage error
 *   3 the API could not be reached, or failed (5xx)
 *   4 the job failed            (jobs wait / --follow)
 *   5 the job was cancelled     (jobs wait / --follow)
 * Configuration: FT_API_URL and FT_API_KEY, else ~/.config/ftctl/config
 * (lines `api_url = …`, `api_key = …`); the environment wins.
 */
#include <ctype.h>
#include <getopt.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ft/client.h"

enum { EX_OK = 0, EX_API = 1, EX_USAGE = 2, EX_UNAVAIL = 3, EX_FAILED = 4, EX_CANCELLED = 5 };

struct opts {
	bool json;
	bool follow;
	const char *out;
	const char *purpose;
	const char *model, *training_file, *validation_file, *method, *adapter, *suffix;
	const char *role, *name, *url, *after;
	const char *events[16];
	int n_events;
	const char *hps[32]; /* --hp KEY=VALUE */
	int n_hps;
	long long epochs, batch_size, seed, limit, lora_r, gpus, priority;
	double lr_mult, beta, timeout;
	bool has_lr_mult, has_beta;
};

struct command;

struct ctx {
	struct ft_client *c;
	const struct command *cmd;
	struct opts o;
	int argc;
	char **argv; /* positional arguments after the command */
};

struct command {
	const char *group;
	const char *name;
	int (*fn)(struct ctx *x);
	int nargs; /* positional arguments required */
	const char *usage;
	const char *help;
	/* Commands that act on one object (fn = object_call): the method and the
	 * path, each "{}" replaced by the next positional argument. */
	const char *method;
	const char *path;
};

/* ---- output ---------------------------------------------------------- */

static int fail(const struct ft_err *e)
{
	fprintf(stderr, "ftctl: error: %s", e->msg);
	if (e->param[0])
		fprintf(stderr, " (param: %s)", e->param);
	if (e->line)
		fprintf(stderr, " (line %ld)", e->line);
	fprintf(stderr, "\n");
	if (e->detail[0])
		fprintf(stderr, "ftctl: %s\n", e->detail);
	if (e->hint[0])
		fprintf(stderr, "hint: %s\n", e->hint);
	return e->rc == FT_EUNAVAIL ? EX_UNAVAIL : EX_API;
}

static void print_json(json_t *v)
{
	char *s = json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	puts(s);
	free(s);
}

/* Render a value for a table cell: epochs as UTC time, null as "-". */
static void cell(json_t *v, const char *field, char *out, size_t n)
{
	if (!v || json_is_null(v)) {
		snprintf(out, n, "-");
	} else if (json_is_string(v)) {
		snprintf(out, n, "%s", json_string_value(v));
	} else if (json_is_integer(v)) {
		long long x = json_integer_value(v);
		if (strstr(field, "_at") && x > 1000000000LL) {
			char ts[32];
			ft_time_iso8601(x * 1000, ts);
			ts[19] = '\0';
			snprintf(out, n, "%s", ts);
		} else {
			snprintf(out, n, "%lld", x);
		}
	} else if (json_is_real(v)) {
		snprintf(out, n, "%.4g", json_real_value(v));
	} else if (json_is_boolean(v)) {
		snprintf(out, n, "%s", json_is_true(v) ? "yes" : "no");
	} else {
		char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		snprintf(out, n, "%s", s);
		free(s);
	}
}

/* A table of rows (objects) with the given columns ("field" or "field:HEADER"). */
static void table(json_t *rows, const char *const *cols)
{
	size_t ncol = 0, w[16] = { 0 };
	const char *fields[16], *heads[16];
	char buf[512];
	for (; cols[ncol] && ncol < 16; ncol++) {
		const char *colon = strchr(cols[ncol], ':');
		static char fbuf[16][64];
		if (colon) {
			snprintf(fbuf[ncol], sizeof(fbuf[ncol]), "%.*s", (int)(colon - cols[ncol]),
				 cols[ncol]);
			fields[ncol] = fbuf[ncol];
			heads[ncol] = colon + 1;
		} else {
			fields[ncol] = cols[ncol];
			heads[ncol] = cols[ncol];
		}
		w[ncol] = strlen(heads[ncol]);
	}
	size_t i;
	json_t *row;
	json_array_foreach(rows, i, row)
	{
		for (size_t c = 0; c < ncol; c++) {
			cell(json_object_get(row, fields[c]), fields[c], buf, sizeof(buf));
			w[c] = FT_MAX(w[c], FT_MIN(strlen(buf), (size_t)60));
		}
	}
	for (size_t c = 0; c < ncol; c++) {
		for (const char *h = heads[c]; *h; h++)
			putchar(toupper((unsigned char)*h));
		printf("%*s", (int)(w[c] - strlen(heads[c]) + (c + 1 < ncol ? 2 : 0)), "");
	}
	putchar('\n');
	json_array_foreach(rows, i, row)
	{
		for (size_t c = 0; c < ncol; c++) {
			cell(json_object_get(row, fields[c]), fields[c], buf, sizeof(buf));
			if (strlen(buf) > 60)
				memcpy(buf + 57, "...", 4);
			printf("%-*s%s", (int)w[c], buf, c + 1 < ncol ? "  " : "");
		}
		putchar('\n');
	}
}

/* One object as "key: value" lines, in the given order then the rest. */
static void show(json_t *obj)
{
	const char *k;
	json_t *v;
	char buf[1024];
	size_t kw = 0;
	json_object_foreach(obj, k, v) kw = FT_MAX(kw, strlen(k));
	json_object_foreach(obj, k, v)
	{
		cell(v, k, buf, sizeof(buf));
		printf("%-*s  %s\n", (int)kw, k, buf);
	}
}

static int call(struct ctx *x, const char *method, const char *path, json_t *body, json_t **out)
{
	struct ft_err e;
	ft_err_clear(&e);
	if (ft_client_call(x->c, method, path, body, out, NULL, &e))
		return fail(&e);
	return EX_OK;
}

static int print_list(struct ctx *x, const char *path, const char *const *cols)
{
	json_t *r = NULL;
	char p[1024];
	snprintf(p, sizeof(p), "%s%slimit=%lld%s%s", path, strchr(path, '?') ? "&" : "?",
		 x->o.limit > 0 ? x->o.limit : 20, x->o.after ? "&after=" : "",
		 x->o.after ? x->o.after : "");
	int rc = call(x, "GET", p, NULL, &r);
	if (rc)
		return rc;
	if (x->o.json)
		print_json(r);
	else
		table(json_object_get(r, "data"), cols);
	json_decref(r);
	return EX_OK;
}

static int print_one(struct ctx *x, const char *method, const char *path, json_t *body)
{
	json_t *r = NULL;
	int rc = call(x, method, path, body, &r);
	json_decref(body);
	if (rc)
		return rc;
	if (x->o.json)
		print_json(r);
	else
		show(r);
	json_decref(r);
	return EX_OK;
}

static const char *str_or(const char *s, const char *def)
{
	return s ? s : def;
}

static bool is_file_id(const char *s)
{
	return strncmp(s, "file-", 5) == 0;
}

/* A file id, or a local path that is uploaded first. */
static int file_arg(struct ctx *x, const char *arg, char *id, size_t n)
{
	struct ft_err e;
	json_t *r = NULL;
	if (is_file_id(arg)) {
		snprintf(id, n, "%s", arg);
		return EX_OK;
	}
	ft_err_clear(&e);
	if (ft_client_upload(x->c, arg, "fine-tune", &r, &e))
		return fail(&e);
	snprintf(id, n, "%s", json_string_value(json_object_get(r, "id")));
	if (!x->o.json)
		fprintf(stderr, "uploaded %s as %s\n", arg, id);
	json_decref(r);
	return EX_OK;
}

/* ---- files ------------------------------------------------------------ */

static int files_upload(struct ctx *x)
{
	struct ft_err e;
	json_t *r = NULL;
	ft_err_clear(&e);
	if (ft_client_upload(x->c, x->argv[0], x->o.purpose ? x->o.purpose : "fine-tune", &r, &e))
		return fail(&e);
	if (x->o.json)
		print_json(r);
	else
		show(r);
	json_decref(r);
	return EX_OK;
}

static const char *const file_cols[] = { "id",	   "filename",	 "bytes", "purpose",
					 "status", "created_at", NULL };

static int files_list(struct ctx *x)
{
	return print_list(x, "/v1/files", file_cols);
}

static int files_content(struct ctx *x)
{
	char p[256];
	struct ft_err e;
	FILE *f = x->o.out ? fopen(x->o.out, "wb") : stdout;
	if (!f) {
		fprintf(stderr, "ftctl: cannot write \"%s\": %s\n", x->o.out, strerror(errno));
		return EX_USAGE;
	}
	snprintf(p, sizeof(p), "/v1/files/%s/content", x->argv[0]);
	ft_err_clear(&e);
	enum ft_rc rc = ft_client_download(x->c, p, f, &e);
	if (f != stdout)
		fclose(f);
	if (rc && x->o.out)
		unlink(x->o.out);
	return rc ? fail(&e) : EX_OK;
}

/* ---- datasets ---------------------------------------------------------- */

static void print_report(json_t *d)
{
	json_t *rep = json_object_get(d, "report"), *stats = json_object_get(d, "stats");
	printf("dataset %s: %s", json_string_value(json_object_get(d, "id")),
	       json_string_value(json_object_get(d, "status")));
	if (json_is_string(json_object_get(d, "format")))
		printf(" (format %s)", json_string_value(json_object_get(d, "format")));
	putchar('\n');
	const char *k;
	json_t *v;
	char buf[256];
	if (json_is_object(stats))
		json_object_foreach(stats, k, v)
		{
			cell(v, k, buf, sizeof(buf));
			printf("  %-20s %s\n", k, buf);
		}
	json_t *errs = json_object_get(rep, "errors");
	size_t i;
	json_t *e;
	json_array_foreach(errs, i, e)
	{
		const char *msg = json_string_value(json_object_get(e, "message"));
		json_t *line = json_object_get(e, "line");
		if (json_is_integer(line) && msg && strncmp(msg, "line ", 5) != 0)
			printf("  line %lld: %s\n", (long long)json_integer_value(line), msg);
		else
			printf("  %s\n", msg ? msg : "(error)");
	}
}

static int datasets_validate(struct ctx *x)
{
	char fid[128], p[256];
	json_t *d = NULL;
	int rc = file_arg(x, x->argv[0], fid, sizeof(fid));
	if (rc)
		return rc;
	json_t *body = json_pack("{s:s}", "file_id", fid);
	rc = call(x, "POST", "/v1/datasets", body, &d);
	json_decref(body);
	if (rc)
		return rc;
	snprintf(p, sizeof(p), "/v1/datasets/%s", json_string_value(json_object_get(d, "id")));
	struct ft_deadline dl =
		ft_deadline_in_ms((uint64_t)(x->o.timeout > 0 ? x->o.timeout : 600) * 1000);
	while (strcmp(json_string_value(json_object_get(d, "status")), "validating") == 0) {
		if (ft_deadline_passed(dl)) {
			fprintf(stderr, "ftctl: validation did not finish in time\n");
			json_decref(d);
			return EX_UNAVAIL;
		}
		ft_sleep_ms(300);
		json_decref(d);
		d = NULL;
		if ((rc = call(x, "GET", p, NULL, &d)))
			return rc;
	}
	bool ok = strcmp(json_string_value(json_object_get(d, "status")), "valid") == 0;
	if (x->o.json)
		print_json(d);
	else
		print_report(d);
	json_decref(d);
	return ok ? EX_OK : EX_API;
}

static int datasets_show(struct ctx *x)
{
	char p[256];
	json_t *d = NULL;
	snprintf(p, sizeof(p), "/v1/datasets/%s", x->argv[0]);
	int rc = call(x, "GET", p, NULL, &d);
	if (rc)
		return rc;
	if (x->o.json) {
		print_json(d);
	} else {
		print_report(d);
		size_t i;
		json_t *ex;
		json_array_foreach(json_object_get(d, "preview"), i, ex)
		{
			char buf[2048];
			cell(ex, "preview", buf, sizeof(buf));
			printf("--- example %zu\n%s\n", i + 1, buf);
		}
	}
	json_decref(d);
	return EX_OK;
}

static int datasets_list(struct ctx *x)
{
	static const char *const cols[] = { "id", "name", "format", "status", "created_at", NULL };
	return print_list(x, "/v1/datasets", cols);
}

/* ---- jobs ---------------------------------------------------------------- */

static const char *const job_cols[] = { "id",	      "model",	     "status", "fine_tuned_model",
					"created_at", "finished_at", NULL };

static int jobs_list(struct ctx *x)
{
	return print_list(x, "/v1/fine_tuning/jobs", job_cols);
}

static int jobs_checkpoints(struct ctx *x)
{
	char p[256];
	static const char *const cols[] = { "id", "step_number", "fine_tuned_model_checkpoint",
					    "created_at", NULL };
	snprintf(p, sizeof(p), "/v1/fine_tuning/jobs/%s/checkpoints", x->argv[0]);
	return print_list(x, p, cols);
}

static bool terminal(const char *s)
{
	return !strcmp(s, "succeeded") || !strcmp(s, "failed") || !strcmp(s, "cancelled");
}

static double num(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_number(v) ? json_number_value(v) : -1;
}

/* One progress line: [####......] step 12/100 loss 1.234 812 tok/s ETA 0:42 */
static void progress_line(json_t *job, bool tty)
{
	json_t *m = json_object_get(job, "latest_metrics");
	const char *status = json_string_value(json_object_get(job, "status"));
	double step = num(m, "step"), total = num(m, "total_steps"), loss = num(m, "train_loss"),
	       tps = num(m, "tokens_per_second"), eta = num(m, "eta_seconds");
	char bar[32] = "";
	if (total > 0 && step >= 0) {
		int filled = (int)(20 * step / total);
		for (int i = 0; i < 20; i++)
			bar[i] = i < filled ? '#' : '.';
		bar[20] = '\0';
	}
	printf("%s%-10s", tty ? "\r\033[K" : "", status ? status : "?");
	if (step >= 0) {
		if (bar[0])
			printf(" [%s] step %.0f/%.0f", bar, step, total);
		else
			printf(" step %.0f", step);
	}
	if (loss >= 0)
		printf("  loss %.4f", loss);
	if (tps >= 0)
		printf("  %.0f tok/s", tps);
	if (eta >= 0)
		printf("  ETA %d:%02d", (int)eta / 60, (int)eta % 60);
	if (!tty)
		putchar('\n');
	fflush(stdout);
}

/* Poll a job until it ends; prints progress unless quiet. */
static int wait_job(struct ctx *x, const char *id, bool show_progress)
{
	char p[256], last[512] = "", last_status[32] = "";
	bool tty = isatty(STDOUT_FILENO) && !x->o.json;
	uint64_t last_print = 0;
	struct ft_deadline dl =
		ft_deadline_in_ms((uint64_t)(x->o.timeout > 0 ? x->o.timeout : 86400) * 1000);
	snprintf(p, sizeof(p), "/v1/fine_tuning/jobs/%s", id);
	for (;;) {
		json_t *j = NULL;
		int rc = call(x, "GET", p, NULL, &j);
		if (rc)
			return rc;
		const char *st = json_string_value(json_object_get(j, "status"));
		char now[512];
		char *m = json_dumps(json_object_get(j, "latest_metrics"),
				     JSON_COMPACT | JSON_ENCODE_ANY);
		snprintf(now, sizeof(now), "%s %s", st ? st : "", m ? m : "");
		free(m);
		/* On a terminal the line is redrawn at every change; in a log, a line
		 * at most every 2 s, and at every change of status. */
		bool status_changed = st && strcmp(st, last_status) != 0;
		if (show_progress && strcmp(now, last) != 0 &&
		    (tty || status_changed || ft_time_mono_ms() - last_print >= 2000)) {
			progress_line(j, tty);
			ft_strlcpy(last, now, sizeof(last));
			ft_strlcpy(last_status, st ? st : "", sizeof(last_status));
			last_print = ft_time_mono_ms();
		}
		if (st && terminal(st)) {
			if (tty && show_progress)
				putchar('\n');
			int code = !strcmp(st, "succeeded") ? EX_OK
				   : !strcmp(st, "failed")  ? EX_FAILED
							    : EX_CANCELLED;
			if (x->o.json) {
				print_json(j);
			} else if (code == EX_OK) {
				printf("job %s succeeded: %s\n", id,
				       str_or(json_string_value(
						      json_object_get(j, "fine_tuned_model")),
					      ""));
			} else if (code == EX_FAILED) {
				json_t *err = json_object_get(j, "error");
				fprintf(stderr, "ftctl: job %s failed: %s\n", id,
					str_or(json_string_value(json_object_get(err, "message")),
					       "unknown error"));
			} else {
				fprintf(stderr, "ftctl: job %s was cancelled\n", id);
			}
			json_decref(j);
			return code;
		}
		json_decref(j);
		if (ft_deadline_passed(dl)) {
			fprintf(stderr, "ftctl: job %s still %s after the timeout\n", id,
				st ? st : "?");
			return EX_UNAVAIL;
		}
		ft_sleep_ms(1000);
	}
}

static int jobs_wait(struct ctx *x)
{
	return wait_job(x, x->argv[0], !x->o.json);
}

static int jobs_create(struct ctx *x)
{
	char tf[128], vf[128];
	struct opts *o = &x->o;
	if (!o->model || !o->training_file) {
		fprintf(stderr, "ftctl: jobs create needs --model and --training-file\n");
		return EX_USAGE;
	}
	int rc = file_arg(x, o->training_file, tf, sizeof(tf));
	if (!rc && o->validation_file)
		rc = file_arg(x, o->validation_file, vf, sizeof(vf));
	if (rc)
		return rc;
	json_t *hp = json_object();
	if (o->epochs > 0)
		json_object_set_new(hp, "n_epochs", json_integer(o->epochs));
	if (o->batch_size > 0)
		json_object_set_new(hp, "batch_size", json_integer(o->batch_size));
	if (o->has_lr_mult)
		json_object_set_new(hp, "learning_rate_multiplier", json_real(o->lr_mult));
	const char *method = o->method ? o->method : "supervised";
	if (o->has_beta && strcmp(method, "dpo") == 0)
		json_object_set_new(hp, "beta", json_real(o->beta));
	/* --hp KEY=VALUE: VALUE as JSON when it is (numbers, true, false),
	 * else a string; the API checks names, types and ranges */
	for (int i = 0; i < o->n_hps; i++) {
		const char *eq = strchr(o->hps[i], '=');
		char key[64];
		snprintf(key, sizeof(key), "%.*s", (int)(eq - o->hps[i]), o->hps[i]);
		json_t *v = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
		json_object_set_new(hp, key, v ? v : json_string(eq + 1));
	}
	json_t *body = json_pack("{s:s, s:s, s:{s:s, s:{s:o}}}", "model", o->model, "training_file",
				 tf, "method", "type", method, method, "hyperparameters", hp);
	if (o->validation_file)
		json_object_set_new(body, "validation_file", json_string(vf));
	if (o->adapter)
		json_object_set_new(body, "adapter", json_string(o->adapter));
	if (o->suffix)
		json_object_set_new(body, "suffix", json_string(o->suffix));
	if (o->seed >= 0)
		json_object_set_new(body, "seed", json_integer(o->seed));
	if (o->lora_r > 0)
		json_object_set_new(body, "lora", json_pack("{s:I}", "r", (json_int_t)o->lora_r));
	if (o->gpus > 0)
		json_object_set_new(body, "gpus", json_integer(o->gpus));
	if (o->priority)
		json_object_set_new(body, "priority", json_integer(o->priority));
	json_t *j = NULL;
	rc = call(x, "POST", "/v1/fine_tuning/jobs", body, &j);
	json_decref(body);
	if (rc)
		return rc;
	char id[128];
	snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(j, "id")));
	if (!o->follow) {
		if (o->json)
			print_json(j);
		else
			show(j);
		json_decref(j);
		return EX_OK;
	}
	if (!o->json)
		printf("created %s\n", id);
	json_decref(j);
	return wait_job(x, id, !o->json);
}

static int jobs_events(struct ctx *x)
{
	char p[512], seen[256][64];
	size_t nseen = 0;
	do {
		json_t *r = NULL;
		snprintf(p, sizeof(p), "/v1/fine_tuning/jobs/%s/events?limit=%lld", x->argv[0],
			 x->o.limit > 0 ? x->o.limit : 100);
		int rc = call(x, "GET", p, NULL, &r);
		if (rc)
			return rc;
		json_t *data = json_object_get(r, "data");
		if (x->o.json && !x->o.follow) {
			print_json(r);
			json_decref(r);
			return EX_OK;
		}
		/* The API lists newest first; print oldest first, each once. */
		for (size_t i = json_array_size(data); i-- > 0;) {
			json_t *ev = json_array_get(data, i);
			const char *id = json_string_value(json_object_get(ev, "id"));
			bool dup = false;
			for (size_t k = 0; k < nseen && !dup; k++)
				dup = id && !strcmp(seen[k], id);
			if (dup || !id)
				continue;
			snprintf(seen[nseen % 256], sizeof(seen[0]), "%s", id);
			nseen++;
			char ts[32] = "";
			cell(json_object_get(ev, "created_at"), "created_at", ts, sizeof(ts));
			printf("%s  %-5s  %s\n", ts,
			       str_or(json_string_value(json_object_get(ev, "level")), ""),
			       str_or(json_string_value(json_object_get(ev, "message")), ""));
		}
		json_decref(r);
		if (!x->o.follow)
			break;
		json_t *j = NULL;
		snprintf(p, sizeof(p), "/v1/fine_tuning/jobs/%s", x->argv[0]);
		if ((rc = call(x, "GET", p, NULL, &j)))
			return rc;
		bool done = terminal(str_or(json_string_value(json_object_get(j, "status")), ""));
		json_decref(j);
		if (done)
			break;
		ft_sleep_ms(1000);
	} while (1);
	fflush(stdout);
	return EX_OK;
}

/* ---- models, keys, webhooks --------------------------------------------- */

static int models_list(struct ctx *x)
{
	static const char *const cols[] = {
		"id", "owned_by", "architecture", "parameter_count", "chat_template", NULL
	};
	return print_list(x, "/v1/models", cols);
}

static int keys_list(struct ctx *x)
{
	static const char *const cols[] = { "id",	    "name",	  "prefix",	"role",
					    "last_used_at", "expires_at", "revoked_at", NULL };
	return print_list(x, "/v1/keys", cols);
}

static int keys_create(struct ctx *x)
{
	json_t *b = json_pack("{s:s}", "role", x->o.role ? x->o.role : "member");
	if (x->o.name)
		json_object_set_new(b, "name", json_string(x->o.name));
	return print_one(x, "POST", "/v1/keys", b);
}

static int webhooks_list(struct ctx *x)
{
	static const char *const cols[] = { "id", "url", "events", "enabled", "created_at", NULL };
	return print_list(x, "/v1/webhooks", cols);
}

static int webhooks_create(struct ctx *x)
{
	if (!x->o.url || !x->o.n_events) {
		fprintf(stderr, "ftctl: webhooks create needs --url and at least one --event\n");
		return EX_USAGE;
	}
	json_t *ev = json_array();
	for (int i = 0; i < x->o.n_events; i++)
		json_array_append_new(ev, json_string(x->o.events[i]));
	return print_one(x, "POST", "/v1/webhooks",
			 json_pack("{s:s, s:o}", "url", x->o.url, "events", ev));
}

static int webhooks_deliveries(struct ctx *x)
{
	char p[256];
	static const char *const cols[] = {
		"id",	      "event_type", "status", "attempts", "last_status_code",
		"last_error", "created_at", NULL
	};
	snprintf(p, sizeof(p), "/v1/webhooks/%s/deliveries", x->argv[0]);
	return print_list(x, p, cols);
}

/* The single-object commands: fill the path template and print the answer. */
static int object_call(struct ctx *x)
{
	char p[1024];
	size_t o = 0;
	int arg = 0;
	for (const char *t = x->cmd->path; *t && o + 1 < sizeof(p); t++) {
		if (t[0] == '{' && t[1] == '}' && arg < x->argc) {
			o += ft_strlcpy(p + o, x->argv[arg++], sizeof(p) - o);
			t++;
			continue;
		}
		p[o++] = *t;
	}
	p[FT_MIN(o, sizeof(p) - 1)] = '\0';
	return print_one(x, x->cmd->method, p, NULL);
}

static int completion(struct ctx *x);

static const struct command commands[] = {
	{ "files", "upload", files_upload, 1, "files upload FILE [--purpose fine-tune]",
	  "upload a JSONL file", NULL, NULL },
	{ "files", "list", files_list, 0, "files list [--limit N] [--after ID]", "list files", NULL,
	  NULL },
	{ "files", "get", object_call, 1, "files get FILE_ID", "show a file", "GET",
	  "/v1/files/{}" },
	{ "files", "delete", object_call, 1, "files delete FILE_ID", "delete a file", "DELETE",
	  "/v1/files/{}" },
	{ "files", "content", files_content, 1, "files content FILE_ID [-o OUT]", "download a file",
	  NULL, NULL },
	{ "datasets", "validate", datasets_validate, 1, "datasets validate FILE|FILE_ID",
	  "validate a dataset and print its report (exit 1 when invalid)", NULL, NULL },
	{ "datasets", "show", datasets_show, 1, "datasets show DATASET_ID",
	  "report, statistics and preview", NULL, NULL },
	{ "datasets", "list", datasets_list, 0, "datasets list", "list datasets", NULL, NULL },
	{ "jobs", "create", jobs_create, 0,
	  "jobs create --model M --training-file FILE|ID [--validation-file FILE|ID] [--method "
	  "supervised|dpo]\n"
	  "        [--epochs N] [--batch-size N] [--lr-multiplier X] [--beta X] [--adapter "
	  "lora|qlora|none]\n"
	  "        [--lora-r N] [--hp KEY=VALUE]... [--suffix S] [--seed N] [--gpus N] [--priority "
	  "N] [--follow]",
	  "create a fine-tuning job (--follow: show progress until it ends)", NULL, NULL },
	{ "jobs", "list", jobs_list, 0, "jobs list [--limit N] [--after ID]", "list jobs", NULL,
	  NULL },
	{ "jobs", "get", object_call, 1, "jobs get JOB_ID", "show a job", "GET",
	  "/v1/fine_tuning/jobs/{}" },
	{ "jobs", "events", jobs_events, 1, "jobs events JOB_ID [--follow]", "list a job's events",
	  NULL, NULL },
	{ "jobs", "checkpoints", jobs_checkpoints, 1, "jobs checkpoints JOB_ID",
	  "list a job's checkpoints", NULL, NULL },
	{ "jobs", "cancel", object_call, 1, "jobs cancel JOB_ID", "cancel a job", "POST",
	  "/v1/fine_tuning/jobs/{}/cancel" },
	{ "jobs", "wait", jobs_wait, 1, "jobs wait JOB_ID [--timeout SECONDS]",
	  "wait for a job to end (exit 0 succeeded, 4 failed, 5 cancelled)", NULL, NULL },
	{ "models", "list", models_list, 0, "models list", "list base models", NULL, NULL },
	{ "keys", "list", keys_list, 0, "keys list", "list API keys (admin)", NULL, NULL },
	{ "keys", "create", keys_create, 0,
	  "keys create [--role viewer|member|admin] [--name NAME]",
	  "create an API key; the key is shown once", NULL, NULL },
	{ "keys", "revoke", object_call, 1, "keys revoke KEY_ID", "revoke an API key", "DELETE",
	  "/v1/keys/{}" },
	{ "webhooks", "list", webhooks_list, 0, "webhooks list", "list webhook endpoints", NULL,
	  NULL },
	{ "webhooks", "create", webhooks_create, 0,
	  "webhooks create --url URL --event TYPE [--event TYPE...]",
	  "add a webhook endpoint; its secret is shown once", NULL, NULL },
	{ "webhooks", "delete", object_call, 1, "webhooks delete WEBHOOK_ID",
	  "delete a webhook endpoint", "DELETE", "/v1/webhooks/{}" },
	{ "webhooks", "deliveries", webhooks_deliveries, 1, "webhooks deliveries WEBHOOK_ID",
	  "list an endpoint's deliveries", NULL, NULL },
	{ "webhooks", "redeliver", object_call, 2, "webhooks redeliver WEBHOOK_ID DELIVERY_ID",
	  "send a delivery again", "POST", "/v1/webhooks/{}/deliveries/{}/redeliver" },
	{ "completion", "bash", completion, 0, "completion bash",
	  "print the bash completion script", NULL, NULL },
};

static int completion(struct ctx *x)
{
	FT_UNUSED(x);
	printf("# bash completion for ftctl: eval \"$(ftctl completion bash)\"\n"
	       "_ftctl() {\n  local cur=${COMP_WORDS[COMP_CWORD]}\n"
	       "  case $COMP_CWORD in\n    1) COMPREPLY=($(compgen -W \"");
	const char *prev = "";
	for (size_t i = 0; i < FT_ARRAY_LEN(commands); i++) {
		if (strcmp(prev, commands[i].group) != 0)
			printf("%s ", commands[i].group);
		prev = commands[i].group;
	}
	printf("--help --json\" -- \"$cur\"));;\n    2) case ${COMP_WORDS[1]} in\n");
	prev = "";
	for (size_t i = 0; i < FT_ARRAY_LEN(commands); i++) {
		if (strcmp(prev, commands[i].group) != 0) {
			if (*prev)
				printf("\" -- \"$cur\"));;\n");
			printf("      %s) COMPREPLY=($(compgen -W \"", commands[i].group);
		}
		printf("%s ", commands[i].name);
		prev = commands[i].group;
	}
	printf("\" -- \"$cur\"));;\n    esac;;\n    *) COMPREPLY=($(compgen -f -- \"$cur\"));;\n  "
	       "esac\n}\n"
	       "complete -F _ftctl ftctl\n");
	return EX_OK;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: ftctl [--json] <group> <command> [options]\n\n");
	for (size_t i = 0; i < FT_ARRAY_LEN(commands); i++)
		fprintf(f, "  ftctl %s\n      %s\n", commands[i].usage, commands[i].help);
	fprintf(f,
		"\nFT_API_URL and FT_API_KEY (or ~/.config/ftctl/config) say where and who.\n"
		"Exit codes: 0 ok, 1 refused by the API, 2 usage, 3 API unreachable, 4 job failed, "
		"5 job cancelled.\n");
}

/* ~/.config/ftctl/config: `api_url = …`, `api_key = …`. */
static void load_file_config(char *url, size_t un, char *key, size_t kn)
{
	char path[1024], line[1024];
	const char *home = getenv("HOME");
	if (!home)
		return;
	snprintf(path, sizeof(path), "%s/.config/ftctl/config", home);
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *eq = strchr(line, '='), *k = line, *v;
		if (!eq || line[0] == '#')
			continue;
		*eq = '\0';
		v = eq + 1;
		while (isspace((unsigned char)*k))
			k++;
		for (char *e = eq - 1; e >= k && isspace((unsigned char)*e); e--)
			*e = '\0';
		while (isspace((unsigned char)*v))
			v++;
		v[strcspn(v, "\r\n")] = '\0';
		for (size_t l = strlen(v); l && isspace((unsigned char)v[l - 1]); l--)
			v[l - 1] = '\0';
		if (!strcmp(k, "api_url"))
			snprintf(url, un, "%s", v);
		else if (!strcmp(k, "api_key"))
			snprintf(key, kn, "%s", v);
	}
	fclose(f);
}

static bool parse_ll(const char *s, long long *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end)
		return false;
	*out = v;
	return true;
}

static bool parse_d(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end)
		return false;
	*out = v;
	return true;
}

int main(int argc, char **argv)
{
	struct ctx x = { 0 };
	struct opts *o = &x.o;
	o->seed = -1;
	enum {
		O_JSON = 256,
		O_FOLLOW,
		O_PURPOSE,
		O_MODEL,
		O_TRAIN,
		O_VAL,
		O_METHOD,
		O_EPOCHS,
		O_BATCH,
		O_LR,
		O_BETA,
		O_ADAPTER,
		O_LORA_R,
		O_SUFFIX,
		O_SEED,
		O_GPUS,
		O_PRIO,
		O_LIMIT,
		O_AFTER,
		O_TIMEOUT,
		O_ROLE,
		O_NAME,
		O_URL,
		O_EVENT,
		O_HP
	};
	static const struct option lo[] = { { "json", no_argument, NULL, O_JSON },
					    { "follow", no_argument, NULL, O_FOLLOW },
					    { "purpose", required_argument, NULL, O_PURPOSE },
					    { "model", required_argument, NULL, O_MODEL },
					    { "training-file", required_argument, NULL, O_TRAIN },
					    { "validation-file", required_argument, NULL, O_VAL },
					    { "method", required_argument, NULL, O_METHOD },
					    { "epochs", required_argument, NULL, O_EPOCHS },
					    { "batch-size", required_argument, NULL, O_BATCH },
					    { "lr-multiplier", required_argument, NULL, O_LR },
					    { "beta", required_argument, NULL, O_BETA },
					    { "adapter", required_argument, NULL, O_ADAPTER },
					    { "lora-r", required_argument, NULL, O_LORA_R },
					    { "suffix", required_argument, NULL, O_SUFFIX },
					    { "seed", required_argument, NULL, O_SEED },
					    { "gpus", required_argument, NULL, O_GPUS },
					    { "priority", required_argument, NULL, O_PRIO },
					    { "limit", required_argument, NULL, O_LIMIT },
					    { "after", required_argument, NULL, O_AFTER },
					    { "timeout", required_argument, NULL, O_TIMEOUT },
					    { "role", required_argument, NULL, O_ROLE },
					    { "name", required_argument, NULL, O_NAME },
					    { "url", required_argument, NULL, O_URL },
					    { "event", required_argument, NULL, O_EVENT },
					    { "hp", required_argument, NULL, O_HP },
					    { "help", no_argument, NULL, 'h' },
					    { "output", required_argument, NULL, 'o' },
					    { NULL, 0, NULL, 0 } };
	int c;
	bool bad = false, want_help = false;
	char *positional[64];
	x.argv = positional;
	while ((c = getopt_long(argc, argv, "+ho:", lo, NULL)) != -1 || optind < argc) {
		if (c == -1) { /* a positional argument: keep it, go on parsing options after it */
			if (x.argc == (int)FT_ARRAY_LEN(positional)) {
				fprintf(stderr, "ftctl: too many arguments\n");
				return EX_USAGE;
			}
			x.argv[x.argc++] = argv[optind++];
			continue;
		}
		switch (c) {
		case 'h': want_help = true; break;
		case 'o': o->out = optarg; break;
		case O_JSON: o->json = true; break;
		case O_FOLLOW: o->follow = true; break;
		case O_PURPOSE: o->purpose = optarg; break;
		case O_MODEL: o->model = optarg; break;
		case O_TRAIN: o->training_file = optarg; break;
		case O_VAL: o->validation_file = optarg; break;
		case O_METHOD: o->method = optarg; break;
		case O_ADAPTER: o->adapter = optarg; break;
		case O_SUFFIX: o->suffix = optarg; break;
		case O_AFTER: o->after = optarg; break;
		case O_ROLE: o->role = optarg; break;
		case O_NAME: o->name = optarg; break;
		case O_URL: o->url = optarg; break;
		case O_EVENT:
			if (o->n_events < 16)
				o->events[o->n_events++] = optarg;
			break;
		case O_HP:
			bad |= !strchr(optarg, '=') || optarg[0] == '=' || o->n_hps == 32;
			if (!bad)
				o->hps[o->n_hps++] = optarg;
			break;
		case O_EPOCHS: bad |= !parse_ll(optarg, &o->epochs); break;
		case O_BATCH: bad |= !parse_ll(optarg, &o->batch_size); break;
		case O_LORA_R: bad |= !parse_ll(optarg, &o->lora_r); break;
		case O_SEED: bad |= !parse_ll(optarg, &o->seed); break;
		case O_GPUS: bad |= !parse_ll(optarg, &o->gpus); break;
		case O_PRIO: bad |= !parse_ll(optarg, &o->priority); break;
		case O_LIMIT: bad |= !parse_ll(optarg, &o->limit); break;
		case O_LR:
			bad |= !parse_d(optarg, &o->lr_mult);
			o->has_lr_mult = true;
			break;
		case O_BETA:
			bad |= !parse_d(optarg, &o->beta);
			o->has_beta = true;
			break;
		case O_TIMEOUT: bad |= !parse_d(optarg, &o->timeout); break;
		default: usage(stderr); return EX_USAGE;
		}
		if (bad) {
			const char *name = "?";
			for (const struct option *p = lo; p->name; p++)
				if (p->val == c)
					name = p->name;
			fprintf(stderr, "ftctl: --%s needs a number (got \"%s\")\n", name, optarg);
			return EX_USAGE;
		}
	}
	if (x.argc < 2 || want_help) {
		for (size_t i = 0; want_help && x.argc >= 2 && i < FT_ARRAY_LEN(commands); i++)
			if (!strcmp(commands[i].group, x.argv[0]) &&
			    !strcmp(commands[i].name, x.argv[1])) {
				printf("usage: ftctl %s\n\n%s\n", commands[i].usage,
				       commands[i].help);
				return EX_OK;
			}
		if (want_help || (x.argc == 1 && !strcmp(x.argv[0], "help"))) {
			usage(stdout);
			return EX_OK;
		}
		usage(stderr);
		return EX_USAGE;
	}
	const struct command *cmd = NULL;
	bool group_known = false;
	for (size_t i = 0; i < FT_ARRAY_LEN(commands); i++) {
		if (!strcmp(commands[i].group, x.argv[0])) {
			group_known = true;
			if (!strcmp(commands[i].name, x.argv[1]))
				cmd = &commands[i];
		}
	}
	if (!cmd) {
		fprintf(stderr,
			group_known ? "ftctl: unknown command \"%s %s\"\n"
				    : "ftctl: unknown command \"%s\"\n",
			x.argv[0], x.argv[1]);
		usage(stderr);
		return EX_USAGE;
	}
	x.argv += 2;
	x.argc -= 2;
	if (x.argc != cmd->nargs) {
		fprintf(stderr, "usage: ftctl %s\n", cmd->usage);
		return EX_USAGE;
	}
	x.cmd = cmd;
	if (cmd->fn == completion)
		return completion(&x);

	char url[1024] = "", key[1024] = "";
	load_file_config(url, sizeof(url), key, sizeof(key));
	if (getenv("FT_API_URL"))
		snprintf(url, sizeof(url), "%s", getenv("FT_API_URL"));
	if (getenv("FT_API_KEY"))
		snprintf(key, sizeof(key), "%s", getenv("FT_API_KEY"));
	struct ft_err e;
	ft_err_clear(&e);
	x.c = ft_client_new(url, key, &e);
	if (!x.c)
		return fail(&e) == EX_UNAVAIL ? EX_UNAVAIL : EX_USAGE;
	int rc = cmd->fn(&x);
	ft_client_free(x.c);
	return rc;
}
