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
 * (an export or an evaluation waited for with --wait: 4 failed, 5 cancelled;
 * deployments wait: 4 when the deployment is failed at the timeout)
 * Configuration: FT_API_URL and FT_API_KEY, else ~/.config/ftctl/config
 * (lines `api_url = …`, `api_key = …`); the environment wins.
 */
#include <ctype.h>
#include <math.h>
#include <getopt.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ft/client.h"
#include "ft/fs.h"

enum { EX_OK = 0, EX_API = 1, EX_USAGE = 2, EX_UNAVAIL = 3, EX_FAILED = 4, EX_CANCELLED = 5 };

struct opts {
	bool json;
	bool follow;
	const char *out;
	const char *purpose;
	const char *model, *training_file, *validation_file, *method, *adapter, *suffix;
	const char *role, *name, *url, *after;
	const char *format, *dtype; /* models export / download */
	bool rows, start; /* evals show --rows, experiments create --start */
	const char *assignment, *judge_url, *judge_model; /* experiments create (and --endpoint) */
	const char *response_a, *response_b, *comment, *prompt, *answer_a, *answer_b; /* judge */
	const char *granularity; /* drift show */
	long long reference; /* drift set --reference N */
	long long max_rows; /* experiments replay --max-rows N */
	const char *options[16]; /* --option KEY=VALUE (an export's options) */
	int n_options;
	bool wait, protect;
	long long expect; /* models alias set --expect N (-1: none) */
	const char *kind, *api_key, *endpoint, *status, *gguf_type, *system; /* deployments, chat */
	bool log_texts;
	long long max_tokens;
	double temperature;
	bool has_temperature;
	const char *events[16];
	int n_events;
	const char *hps[32]; /* --hp KEY=VALUE */
	int n_hps;
	long long epochs, batch_size, seed, limit, lora_r, gpus, priority;
	long long rate_limit; /* keys create|update --rate-limit: requests a minute */
	double lr_mult, beta, timeout, lora_alpha, lora_dropout;
	bool has_lr_mult, has_beta, has_lora_alpha, has_lora_dropout;
	const char *lora_targets; /* comma-separated module names */
	const char *lora_layers; /* layers_to_transform: "10-29", "0,2,4" */
};

struct command;

struct ctx {
	struct ft_client *c;
	char key[1024]; /* the API key in use (ftctl chat gives it to ft-serve) */
	const struct command *cmd;
	struct opts o;
	int argc;
	char **argv; /* positional arguments after the command */
};

struct command {
	const char *group;
	const char *name;
	int (*fn)(struct ctx *x);
	int nargs; /* positional arguments required (-n: at least n; the handler checks) */
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

/* --lora-layers: comma-separated layer indices or ranges A-B (inclusive)
 * into a list; NULL when malformed. The API checks the indices' range. */
static json_t *layer_list(const char *spec)
{
	json_t *a = json_array();
	for (const char *p = spec; a;) {
		char *end;
		long lo = strtol(p, &end, 10), hi = lo;
		if (end == p || lo < 0 || lo > 100000)
			break;
		if (*end == '-') {
			const char *q = end + 1;
			hi = strtol(q, &end, 10);
			if (end == q || hi < lo || hi > 100000)
				break;
		}
		for (long l = lo; l <= hi; l++)
			json_array_append_new(a, json_integer(l));
		if (*end == 0)
			return a;
		if (*end != ',')
			break;
		p = end + 1;
	}
	json_decref(a);
	return NULL;
}

static int jobs_create(struct ctx *x)
{
	char tf[128], vf[128];
	struct opts *o = &x->o;
	if (!o->model || !o->training_file) {
		fprintf(stderr, "ftctl: jobs create needs --model and --training-file\n");
		return EX_USAGE;
	}
	json_t *layers = o->lora_layers ? layer_list(o->lora_layers) : NULL;
	if (o->lora_layers && !layers) {
		fprintf(stderr,
			"ftctl: --lora-layers takes layer indices and ranges, e.g. 10-29 or "
			"0,2,4 (got \"%s\")\n",
			o->lora_layers);
		return EX_USAGE;
	}
	json_decref(layers);
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
	json_t *lora = json_object();
	if (o->lora_r > 0)
		json_object_set_new(lora, "r", json_integer(o->lora_r));
	if (o->has_lora_alpha)
		json_object_set_new(lora, "alpha", json_real(o->lora_alpha));
	if (o->has_lora_dropout)
		json_object_set_new(lora, "dropout", json_real(o->lora_dropout));
	if (o->lora_targets) {
		json_t *t = json_array();
		for (const char *p = o->lora_targets; *p;) {
			size_t n = strcspn(p, ",");
			if (n)
				json_array_append_new(t, json_stringn(p, n));
			p += n + (p[n] == ',');
		}
		json_object_set_new(lora, "target_modules", t);
	}
	if (o->lora_layers)
		json_object_set_new(lora, "layers_to_transform", layer_list(o->lora_layers));
	if (json_object_size(lora))
		json_object_set_new(body, "lora", lora);
	else
		json_decref(lora);
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

static void print_event(json_t *ev)
{
	char ts[32] = "";
	cell(json_object_get(ev, "created_at"), "created_at", ts, sizeof(ts));
	printf("%s  %-5s  %s\n", ts, str_or(json_string_value(json_object_get(ev, "level")), ""),
	       str_or(json_string_value(json_object_get(ev, "message")), ""));
}

/* --follow: the live stream (GET .../events?stream=true), oldest first, until
 * its "end" event; a dropped connection is resumed with Last-Event-ID. */
struct follow {
	bool json, ended;
	char status[32];
	char last_id[128];
};

static bool on_stream_event(const struct ft_sse_event *ev, void *ud)
{
	struct follow *f = ud;
	json_t *v = json_loadb(ev->data, ev->data_len, 0, NULL);
	if (strcmp(ev->event, "end") == 0) {
		f->ended = true;
		snprintf(f->status, sizeof(f->status), "%s",
			 str_or(json_string_value(json_object_get(v, "status")), ""));
		json_decref(v);
		return true;
	}
	snprintf(f->last_id, sizeof(f->last_id), "%s", ev->id);
	if (json_is_object(v)) {
		if (f->json) {
			char *line = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
			puts(line);
			free(line);
		} else {
			print_event(v);
		}
		fflush(stdout);
	}
	json_decref(v);
	return false;
}

static int jobs_events_follow(struct ctx *x)
{
	struct follow f = { .json = x->o.json };
	struct ft_err err;
	char p[512];
	snprintf(p, sizeof(p), "/v1/fine_tuning/jobs/%s/events?stream=true", x->argv[0]);
	for (int drops = 0;;) {
		ft_err_clear(&err);
		enum ft_rc rc = ft_client_stream(x->c, p, f.last_id, on_stream_event, &f, &err);
		if (f.ended)
			return EX_OK;
		if (rc && rc != FT_EUNAVAIL)
			return fail(&err);
		/* the connection ended without "end": the server restarted or the
		 * network dropped; resume where it stopped */
		if (++drops > 20) {
			if (!rc)
				ft_failf(&err, FT_EUNAVAIL, "stream_dropped",
					 "the event stream kept closing before the job ended");
			return fail(&err);
		}
		ft_sleep_ms(FT_MIN(500u * (unsigned)drops, 5000u));
	}
}

static int jobs_events(struct ctx *x)
{
	if (x->o.follow)
		return jobs_events_follow(x);
	json_t *r = NULL;
	char p[512];
	snprintf(p, sizeof(p), "/v1/fine_tuning/jobs/%s/events?limit=%lld", x->argv[0],
		 x->o.limit > 0 ? x->o.limit : 100);
	int rc = call(x, "GET", p, NULL, &r);
	if (rc)
		return rc;
	if (x->o.json) {
		print_json(r);
		json_decref(r);
		return EX_OK;
	}
	/* The API lists newest first; print oldest first. */
	json_t *data = json_object_get(r, "data");
	for (size_t i = json_array_size(data); i-- > 0;)
		print_event(json_array_get(data, i));
	json_decref(r);
	fflush(stdout);
	return EX_OK;
}

/* ---- models, keys, webhooks --------------------------------------------- */

static int models_list(struct ctx *x)
{
	static const char *const cols[] = {
		"id", "kind", "owned_by", "architecture", "parameter_count", NULL
	};
	return print_list(x, "/v1/models", cols);
}

/* ---- the model registry ---------------------------------------------------- */

/* A version reference "NAME@ALIAS" or "NAME/N" as the API's path
 * /v1/registry/models/NAME/versions/(N|ALIAS); false for anything else. */
static bool version_path(const char *ref, char *out, size_t n)
{
	const char *at = strrchr(ref, '@'), *slash = strrchr(ref, '/');
	const char *sep = at && (!slash || at > slash) ? at : slash;
	if (!sep || sep == ref || !sep[1])
		return false;
	snprintf(out, n, "/v1/registry/models/%.*s/versions/%s", (int)(sep - ref), ref, sep + 1);
	return true;
}

static int models_versions(struct ctx *x)
{
	char p[512];
	static const char *const cols[] = { "version",		"kind",	      "aliases", "source",
					    "fine_tuned_model", "created_at", NULL };
	snprintf(p, sizeof(p), "/v1/registry/models/%s/versions", x->argv[0]);
	return print_list(x, p, cols);
}

/* models show NAME | NAME@ALIAS | NAME/N: the registered model, or one
 * version with its lineage. */
static int models_show(struct ctx *x)
{
	char p[512];
	json_t *v = NULL;
	if (!version_path(x->argv[0], p, sizeof(p)))
		snprintf(p, sizeof(p), "/v1/registry/models/%s", x->argv[0]);
	int rc = call(x, "GET", p, NULL, &v);
	if (rc)
		return rc;
	if (x->o.json) {
		print_json(v);
		json_decref(v);
		return EX_OK;
	}
	json_t *lineage = json_incref(json_object_get(v, "lineage"));
	json_t *art = json_incref(json_object_get(v, "artifact"));
	json_object_del(v, "lineage");
	json_object_del(v, "artifact");
	show(v);
	if (json_is_object(art))
		printf("artifact     %s  %s  %lld bytes  sha256 %s\n",
		       json_string_value(json_object_get(art, "id")),
		       json_string_value(json_object_get(art, "kind")),
		       (long long)json_integer_value(json_object_get(art, "bytes")),
		       json_string_value(json_object_get(art, "sha256")));
	if (json_is_object(lineage)) {
		printf("lineage:\n");
		const char *k;
		json_t *l;
		char buf[2048];
		json_object_foreach(lineage, k, l)
		{
			cell(l, k, buf, sizeof(buf));
			printf("  %-16s %s\n", k, buf);
		}
	}
	json_decref(lineage);
	json_decref(art);
	json_decref(v);
	return EX_OK;
}

/* models alias set NAME ALIAS VERSION [--protect] [--expect N] |
 * models alias rm NAME ALIAS */
static int models_alias(struct ctx *x)
{
	char p[512];
	bool set = x->argc == 4 && strcmp(x->argv[0], "set") == 0;
	bool rm = x->argc == 3 && strcmp(x->argv[0], "rm") == 0;
	if (!set && !rm) {
		fprintf(stderr, "usage: ftctl %s\n", x->cmd->usage);
		return EX_USAGE;
	}
	snprintf(p, sizeof(p), "/v1/registry/models/%s/aliases/%s", x->argv[1], x->argv[2]);
	if (rm)
		return print_one(x, "DELETE", p, NULL);
	long long version;
	char *end;
	errno = 0;
	version = strtoll(x->argv[3], &end, 10);
	if (errno || *end || version < 1) {
		fprintf(stderr, "ftctl: VERSION must be a version number (got \"%s\")\n",
			x->argv[3]);
		return EX_USAGE;
	}
	json_t *b = json_pack("{s:I}", "version", (json_int_t)version);
	if (x->o.protect)
		json_object_set_new(b, "protected", json_true());
	if (x->o.expect >= 0)
		json_object_set_new(b, "expect_version", json_integer(x->o.expect));
	return print_one(x, "POST", p, b);
}

/* Wait for an export to end; 0 succeeded, 4 failed, 5 cancelled. */
/* Poll an export's or an evaluation's path until it ends. */
static int wait_object(struct ctx *x, const char *path, const char *what, const char *id,
		       json_t **out)
{
	char p[256];
	struct ft_deadline dl =
		ft_deadline_in_ms((uint64_t)(x->o.timeout > 0 ? x->o.timeout : 86400) * 1000);
	snprintf(p, sizeof(p), "%s/%s", path, id);
	for (;;) {
		json_t *e = NULL;
		int rc = call(x, "GET", p, NULL, &e);
		if (rc)
			return rc;
		const char *st = str_or(json_string_value(json_object_get(e, "status")), "?");
		if (terminal(st)) {
			*out = e;
			return !strcmp(st, "succeeded") ? EX_OK
			       : !strcmp(st, "failed")	? EX_FAILED
							: EX_CANCELLED;
		}
		json_decref(e);
		if (ft_deadline_passed(dl)) {
			fprintf(stderr, "ftctl: %s %s still %s after the timeout\n", what, id, st);
			return EX_UNAVAIL;
		}
		ft_sleep_ms(500);
	}
}

/* models export REF --format F [--dtype D] [--option KEY=VALUE]... [--wait] */
static int models_export(struct ctx *x)
{
	if (!x->o.format) {
		fprintf(stderr, "ftctl: models export needs --format (ftctl models formats)\n");
		return EX_USAGE;
	}
	json_t *opts = json_object();
	if (x->o.dtype)
		json_object_set_new(opts, "dtype", json_string(x->o.dtype));
	for (int i = 0; i < x->o.n_options; i++) {
		const char *eq = strchr(x->o.options[i], '=');
		char key[64];
		snprintf(key, sizeof(key), "%.*s", (int)(eq - x->o.options[i]), x->o.options[i]);
		json_t *v = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
		json_object_set_new(opts, key, v ? v : json_string(eq + 1));
	}
	json_t *b = json_pack("{s:s, s:s, s:o}", "model", x->argv[0], "format", x->o.format,
			      "options", opts);
	json_t *e = NULL;
	int rc = call(x, "POST", "/v1/registry/exports", b, &e);
	json_decref(b);
	if (rc)
		return rc;
	if (x->o.wait) {
		char id[128];
		snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(e, "id")));
		json_decref(e);
		e = NULL;
		if (!x->o.json)
			fprintf(stderr, "export %s queued; waiting\n", id);
		rc = wait_object(x, "/v1/registry/exports", "export", id, &e);
		if (rc && rc != EX_FAILED && rc != EX_CANCELLED)
			return rc;
		if (rc == EX_FAILED && !x->o.json)
			fprintf(stderr, "ftctl: export %s failed: %s\n", id,
				str_or(json_string_value(json_object_get(
					       json_object_get(e, "error"), "message")),
				       "unknown error"));
	}
	if (x->o.json)
		print_json(e);
	else
		show(e);
	json_decref(e);
	return rc;
}

/* models download REF [--format F] [-o DIR]: the version's own folder, or
 * (--format) its newest export of that format that succeeded; every file
 * checked by SHA-256, partial files resumed. */
static int models_download(struct ctx *x)
{
	char p[640], vp[512];
	if (!version_path(x->argv[0], vp, sizeof(vp))) {
		fprintf(stderr, "ftctl: name a version: NAME@ALIAS or NAME/N (got \"%s\")\n",
			x->argv[0]);
		return EX_USAGE;
	}
	json_t *list = NULL, *art = NULL;
	snprintf(p, sizeof(p), "%s/artifacts", vp);
	int rc = call(x, "GET", p, NULL, &list);
	if (rc)
		return rc;
	size_t i;
	json_t *a;
	json_array_foreach(json_object_get(list, "data"), i, a)
	{
		json_t *e = json_object_get(a, "export");
		const char *fmt = json_string_value(json_object_get(e, "format"));
		if (x->o.format ? (fmt && !strcmp(fmt, x->o.format)) : json_is_null(e))
			art = a; /* listed oldest first: the last match is the newest */
	}
	if (!art) {
		fprintf(stderr,
			x->o.format
				? "ftctl: %s has no %s export; make one with ftctl models export\n"
				: "ftctl: %s has no artifact%s\n",
			x->argv[0], x->o.format ? x->o.format : "");
		json_decref(list);
		return EX_API;
	}
	const char *dir = x->o.out ? x->o.out : ".";
	char cmd_dir[1024];
	snprintf(cmd_dir, sizeof(cmd_dir), "%s", dir);
	struct ft_err e;
	ft_err_clear(&e);
	if (ft_mkdir_p(cmd_dir, &e)) {
		json_decref(list);
		return fail(&e);
	}
	uint64_t total = 0, fetched = 0;
	json_t *f;
	json_array_foreach(json_object_get(art, "files"), i, f)
	{
		const char *path = json_string_value(json_object_get(f, "path"));
		char dest[2048];
		uint64_t got;
		if (!path || strchr(path, '/') || path[0] == '.')
			continue; /* flat folders only (artifacts.c) */
		snprintf(dest, sizeof(dest), "%s/%s", dir, path);
		if (ft_client_download_file(
			    x->c, json_string_value(json_object_get(f, "url")), dest,
			    (uint64_t)json_integer_value(json_object_get(f, "bytes")),
			    json_string_value(json_object_get(f, "sha256")), &got, &e)) {
			json_decref(list);
			return fail(&e);
		}
		total += (uint64_t)json_integer_value(json_object_get(f, "bytes"));
		fetched += got;
		if (!x->o.json)
			printf("%s  %lld bytes\n", dest,
			       (long long)json_integer_value(json_object_get(f, "bytes")));
	}
	if (x->o.json)
		print_json(art);
	else
		printf("artifact %s (%s, sha256 %s): %llu bytes, %llu fetched now\n",
		       json_string_value(json_object_get(art, "id")),
		       json_string_value(json_object_get(art, "kind")),
		       json_string_value(json_object_get(art, "sha256")), (unsigned long long)total,
		       (unsigned long long)fetched);
	json_decref(list);
	return EX_OK;
}

static int models_formats(struct ctx *x)
{
	static const char *const cols[] = { "name", "artifact_kind", "versions", "description",
					    NULL };
	return print_list(x, "/v1/registry/export_formats", cols);
}

static int models_registry(struct ctx *x)
{
	static const char *const cols[] = { "name",    "latest_version", "versions",
					    "aliases", "updated_at",	 NULL };
	return print_list(x, "/v1/registry/models", cols);
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
	if (x->o.rate_limit)
		json_object_set_new(b, "rate_limit_per_min", json_integer(x->o.rate_limit));
	return print_one(x, "POST", "/v1/keys", b);
}

/* keys update KEY_ID [--name NAME] [--rate-limit N]: what changes of a key
 * (the API checks the values and names a bad one). */
static int keys_update(struct ctx *x)
{
	char p[256];
	json_t *b = json_object();
	if (x->o.name)
		json_object_set_new(b, "name", json_string(x->o.name));
	if (x->o.rate_limit)
		json_object_set_new(b, "rate_limit_per_min", json_integer(x->o.rate_limit));
	if (!json_object_size(b)) {
		json_decref(b);
		fprintf(stderr, "ftctl: keys update needs --name or --rate-limit\n");
		return EX_USAGE;
	}
	snprintf(p, sizeof(p), "/v1/keys/%s", x->argv[0]);
	return print_one(x, "POST", p, b);
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

/* ---- endpoints and deployments (docs/deployments.md) ---------------------- */

static int endpoints_list(struct ctx *x)
{
	static const char *const cols[] = { "id",	   "name",   "kind",	    "url",
					    "has_api_key", "health", "deployments", NULL };
	return print_list(x, "/v1/endpoints", cols);
}

/* endpoints create --name N --kind K --url U [--api-key KEY]; the key may
 * also come from FT_ENDPOINT_API_KEY (kept off the command line). */
static int endpoints_create(struct ctx *x)
{
	if (!x->o.name || !x->o.kind || !x->o.url) {
		fprintf(stderr, "ftctl: endpoints create needs --name, --kind and --url\n");
		return EX_USAGE;
	}
	json_t *b =
		json_pack("{s:s, s:s, s:s}", "name", x->o.name, "kind", x->o.kind, "url", x->o.url);
	const char *key = x->o.api_key ? x->o.api_key : getenv("FT_ENDPOINT_API_KEY");
	if (key && *key)
		json_object_set_new(b, "api_key", json_string(key));
	return print_one(x, "POST", "/v1/endpoints", b);
}

static const char *const deployment_cols[] = { "id",	  "model",	"endpoint", "status",
					       "version", "created_at", NULL };

/* The table's cells for a deployment: its endpoint's name, its version as NAME/N. */
static void flatten_deployment(json_t *d)
{
	json_t *ep = json_object_get(d, "endpoint"), *v = json_object_get(d, "version");
	json_object_set(d, "endpoint", json_object_get(ep, "name"));
	if (json_is_object(v)) {
		char buf[300];
		snprintf(buf, sizeof(buf), "%s/%lld",
			 str_or(json_string_value(json_object_get(v, "model")), "?"),
			 (long long)json_integer_value(json_object_get(v, "version")));
		json_object_set_new(d, "version", json_string(buf));
	}
}

static int deployments_list(struct ctx *x)
{
	char p[512];
	int n = snprintf(p, sizeof(p), "/v1/deployments?");
	if (x->o.endpoint)
		n += snprintf(p + n, sizeof(p) - (size_t)n, "endpoint=%s&", x->o.endpoint);
	if (x->o.status)
		n += snprintf(p + n, sizeof(p) - (size_t)n, "status=%s&", x->o.status);
	snprintf(p + n, sizeof(p) - (size_t)n, "limit=%lld%s%s", x->o.limit > 0 ? x->o.limit : 20,
		 x->o.after ? "&after=" : "", x->o.after ? x->o.after : "");
	json_t *r = NULL;
	int rc = call(x, "GET", p, NULL, &r);
	if (rc)
		return rc;
	if (x->o.json) {
		print_json(r);
	} else {
		size_t i;
		json_t *d;
		json_array_foreach(json_object_get(r, "data"), i, d) flatten_deployment(d);
		table(json_object_get(r, "data"), deployment_cols);
	}
	json_decref(r);
	return EX_OK;
}

/* A deployment as key: value lines, then a llama.cpp deployment's files and command. */
static void show_deployment(json_t *d)
{
	json_t *l = json_incref(json_object_get(d, "llamacpp"));
	json_t *names = json_incref(json_object_get(d, "served_names"));
	json_object_del(d, "llamacpp");
	json_object_del(d, "served_names");
	flatten_deployment(d);
	show(d);
	size_t i;
	json_t *n;
	json_array_foreach(names, i, n) printf("serves       %s\n", json_string_value(n));
	if (json_is_object(l)) {
		json_t *f;
		json_array_foreach(json_object_get(l, "files"), i, f)
			printf("file         %s  %s  %lld bytes  sha256 %s\n",
			       str_or(json_string_value(json_object_get(f, "path")), "?"),
			       str_or(json_string_value(json_object_get(f, "url")), "?"),
			       (long long)json_integer_value(json_object_get(f, "bytes")),
			       str_or(json_string_value(json_object_get(f, "sha256")), "?"));
		if (json_is_string(json_object_get(l, "command")))
			printf("command      %s\n",
			       json_string_value(json_object_get(l, "command")));
	}
	json_decref(l);
	json_decref(names);
}

static int deployments_show(struct ctx *x)
{
	char p[256];
	json_t *d = NULL;
	snprintf(p, sizeof(p), "/v1/deployments/%s", x->argv[0]);
	int rc = call(x, "GET", p, NULL, &d);
	if (rc)
		return rc;
	if (x->o.json)
		print_json(d);
	else
		show_deployment(d);
	json_decref(d);
	return EX_OK;
}

/* deployments wait DEP [--status ready|stopped]: until it is ready (stopped:
 * stopped and unloaded). The controller retries a failed deployment every
 * period, so a failure is waited through; at the timeout: exit 4 if it was
 * failed (the reason printed), else 3. */
static int deployments_wait(struct ctx *x)
{
	const char *want = x->o.status ? x->o.status : "ready";
	if (strcmp(want, "ready") != 0 && strcmp(want, "stopped") != 0) {
		fprintf(stderr, "ftctl: --status must be ready or stopped (got \"%s\")\n", want);
		return EX_USAGE;
	}
	char p[256], last[32] = "";
	snprintf(p, sizeof(p), "/v1/deployments/%s", x->argv[0]);
	struct ft_deadline dl =
		ft_deadline_in_ms((uint64_t)(x->o.timeout > 0 ? x->o.timeout : 600) * 1000);
	for (;;) {
		json_t *d = NULL;
		int rc = call(x, "GET", p, NULL, &d);
		if (rc)
			return rc;
		const char *st = str_or(json_string_value(json_object_get(d, "status")), "?");
		bool done = strcmp(st, want) == 0 && (strcmp(want, "stopped") != 0 ||
						      json_is_true(json_object_get(d, "unloaded")));
		if (!x->o.json && strcmp(st, last) != 0)
			printf("deployment %s %s\n", x->argv[0], st);
		fflush(stdout);
		snprintf(last, sizeof(last), "%s", st);
		if (done) {
			if (x->o.json)
				print_json(d);
			json_decref(d);
			return EX_OK;
		}
		if (ft_deadline_passed(dl)) {
			bool failed = strcmp(st, "failed") == 0;
			fprintf(stderr, "ftctl: deployment %s is %s%s%s after the timeout\n",
				x->argv[0], st, failed ? ": " : "",
				failed ? str_or(json_string_value(
							json_object_get(d, "status_reason")),
						"")
				       : "");
			json_decref(d);
			return failed ? EX_FAILED : EX_UNAVAIL;
		}
		json_decref(d);
		ft_sleep_ms(500);
	}
}

static int deployments_create(struct ctx *x)
{
	if (!x->o.endpoint || !x->o.model) {
		fprintf(stderr, "ftctl: deployments create needs --endpoint and --model\n");
		return EX_USAGE;
	}
	json_t *b = json_pack("{s:s, s:s}", "endpoint", x->o.endpoint, "model", x->o.model);
	if (x->o.log_texts)
		json_object_set_new(b, "log_texts", json_true());
	if (x->o.gguf_type)
		json_object_set_new(b, "gguf_type", json_string(x->o.gguf_type));
	json_t *d = NULL;
	int rc = call(x, "POST", "/v1/deployments", b, &d);
	json_decref(b);
	if (rc)
		return rc;
	if (x->o.wait) {
		char id[128];
		snprintf(id, sizeof(id), "%s",
			 str_or(json_string_value(json_object_get(d, "id")), ""));
		json_decref(d);
		char *argv[] = { id };
		x->argv = argv;
		x->argc = 1;
		return deployments_wait(x);
	}
	if (x->o.json)
		print_json(d);
	else
		show_deployment(d);
	json_decref(d);
	return EX_OK;
}

/* ---- chat ------------------------------------------------------------------ */

/* The endpoint to talk to: --endpoint, else the one of a ready deployment
 * that serves the model. Its URL into url. */
static int chat_endpoint(struct ctx *x, const char *model, char *url, size_t n)
{
	char p[512];
	json_t *r = NULL;
	int rc;
	if (x->o.endpoint) {
		snprintf(p, sizeof(p), "/v1/endpoints/%s", x->o.endpoint);
		if ((rc = call(x, "GET", p, NULL, &r)))
			return rc;
		snprintf(url, n, "%s", str_or(json_string_value(json_object_get(r, "url")), ""));
		json_decref(r);
		return EX_OK;
	}
	if ((rc = call(x, "GET", "/v1/deployments?status=ready&limit=100", NULL, &r)))
		return rc;
	size_t i, k;
	json_t *d, *name;
	const char *ep = NULL;
	json_array_foreach(json_object_get(r, "data"), i, d)
		json_array_foreach(json_object_get(d, "served_names"), k,
				   name) if (!ep && json_is_string(name) &&
					     strcmp(json_string_value(name), model) == 0) ep =
			json_string_value(json_object_get(json_object_get(d, "endpoint"), "id"));
	if (!ep) {
		json_decref(r);
		fprintf(stderr,
			"ftctl: error: no ready deployment serves \"%s\" (ftctl deployments list); "
			"name an endpoint with --endpoint\n",
			model);
		return EX_API;
	}
	snprintf(p, sizeof(p), "/v1/endpoints/%s", ep);
	json_decref(r);
	r = NULL;
	if ((rc = call(x, "GET", p, NULL, &r)))
		return rc;
	snprintf(url, n, "%s", str_or(json_string_value(json_object_get(r, "url")), ""));
	json_decref(r);
	return EX_OK;
}

struct chat_turn {
	struct ft_buf text;
	struct ft_err err;
	bool failed, done;
};

/* Each chunk's new text goes to the terminal as it comes. */
static bool on_chat_event(const struct ft_sse_event *ev, void *ud)
{
	struct chat_turn *t = ud;
	size_t before = t->text.len;
	if (ft_chat_chunk_parse(ev->data, ev->data_len, &t->text, &t->done, &t->err)) {
		t->failed = true;
		return true;
	}
	if (t->text.len > before) {
		fwrite(t->text.ptr + before, 1, t->text.len - before, stdout);
		fflush(stdout);
	}
	return t->done;
}

/* chat MODEL [--endpoint EP] [--system S] [--max-tokens N] [--temperature X]:
 * a conversation with a deployed model through its endpoint's
 * /v1/chat/completions, streamed. Each line of stdin is a user turn; the
 * answers (and the whole conversation) are kept. On a terminal it prompts;
 * otherwise it prints only the answers, one per line. The endpoint gets the
 * platform key (ft-serve accepts it) unless FT_ENDPOINT_API_KEY is set. */
static int chat(struct ctx *x)
{
	const char *model = x->argv[0];
	char url[2100];
	int rc = chat_endpoint(x, model, url, sizeof(url));
	if (rc)
		return rc;
	const char *key = getenv("FT_ENDPOINT_API_KEY");
	if (!key || !*key)
		key = x->key;
	struct ft_err e;
	ft_err_clear(&e);
	struct ft_client *ep = ft_client_new(url, key, &e);
	if (!ep)
		return fail(&e);
	bool tty = isatty(STDIN_FILENO);
	json_t *messages = json_array();
	if (x->o.system)
		json_array_append_new(messages, json_pack("{s:s, s:s}", "role", "system", "content",
							  x->o.system));
	char *line = NULL;
	size_t cap = 0;
	rc = EX_OK;
	for (;;) {
		if (tty) {
			fputs("> ", stdout);
			fflush(stdout);
		}
		ssize_t n = getline(&line, &cap, stdin);
		if (n < 0)
			break;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n == 0)
			continue;
		if (strcmp(line, "/exit") == 0)
			break;
		json_array_append_new(messages,
				      json_pack("{s:s, s:s}", "role", "user", "content", line));
		json_t *b = json_pack("{s:s, s:O, s:b}", "model", model, "messages", messages,
				      "stream", 1);
		if (x->o.max_tokens > 0)
			json_object_set_new(b, "max_tokens", json_integer(x->o.max_tokens));
		if (x->o.has_temperature)
			json_object_set_new(b, "temperature", json_real(x->o.temperature));
		struct chat_turn t = { .text = FT_BUF_INIT(16u << 20) };
		ft_err_clear(&t.err);
		ft_err_clear(&e);
		enum ft_rc r =
			ft_client_stream_post(ep, "/v1/chat/completions", b, on_chat_event, &t, &e);
		json_decref(b);
		putchar('\n');
		fflush(stdout);
		if (r || t.failed) {
			rc = fail(r ? &e : &t.err);
			ft_buf_release(&t.text);
			break;
		}
		json_array_append_new(messages,
				      json_pack("{s:s, s:s%}", "role", "assistant", "content",
						ft_buf_str(&t.text), t.text.len));
		ft_buf_release(&t.text);
	}
	free(line);
	json_decref(messages);
	ft_client_free(ep);
	return rc;
}

/* ---- evaluations, experiments, drift ------------------------------------ */

static bool parse_d(const char *s, double *out);

/* --option KEY=VALUE pairs as an object (values parsed as JSON when they
 * are, else strings). */
static json_t *options_json(const struct opts *o)
{
	json_t *opts = json_object();
	for (int i = 0; i < o->n_options; i++) {
		const char *eq = strchr(o->options[i], '=');
		char key[64];
		snprintf(key, sizeof(key), "%.*s", (int)(eq - o->options[i]), o->options[i]);
		json_t *v = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
		json_object_set_new(opts, key, v ? v : json_string(eq + 1));
	}
	return opts;
}

static double dig(json_t *o, const char *a, const char *b)
{
	json_t *v = json_object_get(b ? json_object_get(o, a) : o, b ? b : a);
	return json_is_number(v) ? json_number_value(v) : NAN;
}

/* An evaluation: its state, then the models side by side (and the rows). */
static void eval_print(json_t *e, bool rows)
{
	printf("evaluation %s (%s) of %s: %s\n", json_string_value(json_object_get(e, "id")),
	       str_or(json_string_value(json_object_get(e, "name")), ""),
	       str_or(json_string_value(json_object_get(e, "file")), "?"),
	       str_or(json_string_value(json_object_get(e, "status")), "?"));
	json_t *err = json_object_get(e, "error");
	if (json_is_object(err))
		printf("error: %s\n",
		       str_or(json_string_value(json_object_get(err, "message")), ""));
	printf("%-32s %10s %10s %8s %14s %6s\n", "MODEL", "PERPLEXITY", "ROUGE-L F", "BLEU",
	       "FACTS", "ROWS");
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(e, "models"), i, m)
	{
		json_t *met = json_object_get(m, "metrics");
		char facts[32] = "-";
		json_t *f = json_object_get(met, "facts");
		if (json_is_object(f))
			snprintf(facts, sizeof(facts), "%lld/%lld %.2f",
				 (long long)json_integer_value(json_object_get(f, "all_found")),
				 (long long)json_integer_value(json_object_get(f, "rows")),
				 dig(f, "share", NULL));
		printf("%-32.32s %10.4g %10.4f %8.2f %14s %6lld\n",
		       str_or(json_string_value(json_object_get(m, "model")), "?"),
		       dig(met, "perplexity", NULL), dig(met, "rouge_l", "fmeasure"),
		       dig(met, "bleu", "score"), facts,
		       (long long)json_integer_value(json_object_get(met, "rows")));
		json_t *j = json_object_get(m, "judge");
		if (json_is_object(j))
			printf("  judge vs the references: win rate %.3f [%.3f, %.3f] (%lld wins, "
			       "%lld ties, %lld losses; %lld pending, %lld failed)\n",
			       dig(j, "win_rate", NULL),
			       json_real_value(json_array_get(json_object_get(j, "ci95"), 0)),
			       json_real_value(json_array_get(json_object_get(j, "ci95"), 1)),
			       (long long)json_integer_value(json_object_get(j, "wins")),
			       (long long)json_integer_value(json_object_get(j, "ties")),
			       (long long)json_integer_value(json_object_get(j, "losses")),
			       (long long)json_integer_value(json_object_get(j, "pending")),
			       (long long)json_integer_value(json_object_get(j, "failed")));
	}
	json_t *r;
	json_array_foreach(rows ? json_object_get(e, "rows") : NULL, i, r)
	{
		printf("\n--- line %lld\nreference: %s\n",
		       (long long)json_integer_value(json_object_get(r, "line")),
		       str_or(json_string_value(json_object_get(r, "reference")), ""));
		size_t k;
		json_t *a;
		json_array_foreach(json_object_get(r, "answers"), k, a)
		{
			json_t *all = json_object_get(a, "all_facts");
			printf("%s (ROUGE-L F %.3f%s): %s\n",
			       str_or(json_string_value(json_object_get(a, "model")), "?"),
			       dig(a, "rouge_l", "fmeasure"),
			       json_is_boolean(all)
				       ? (json_is_true(all) ? ", every fact" : ", facts missing")
				       : "",
			       str_or(json_string_value(json_object_get(a, "answer")), ""));
		}
	}
}

/* evals create FILE|ID MODEL [MODEL...] [--name N] [--option KEY=VALUE]... [--wait] */
static int evals_create(struct ctx *x)
{
	char fid[128];
	int rc = file_arg(x, x->argv[0], fid, sizeof(fid));
	if (rc)
		return rc;
	json_t *models = json_array();
	for (int i = 1; i < x->argc; i++)
		json_array_append_new(models, json_string(x->argv[i]));
	json_t *b = json_pack("{s:s, s:o, s:o}", "file", fid, "models", models, "options",
			      options_json(&x->o));
	if (x->o.name)
		json_object_set_new(b, "name", json_string(x->o.name));
	if (x->o.priority)
		json_object_set_new(b, "priority", json_integer(x->o.priority));
	if (x->o.judge_url || x->o.judge_model) /* the answers against the references */
		json_object_set_new(b, "judge",
				    json_pack("{s:s?, s:s?}", "url", x->o.judge_url, "model",
					      x->o.judge_model));
	json_t *e = NULL;
	rc = call(x, "POST", "/v1/evals", b, &e);
	json_decref(b);
	if (rc)
		return rc;
	if (x->o.wait) {
		char id[128];
		snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(e, "id")));
		json_decref(e);
		e = NULL;
		if (!x->o.json)
			fprintf(stderr, "evaluation %s queued; waiting\n", id);
		rc = wait_object(x, "/v1/evals", "evaluation", id, &e);
		if (rc && rc != EX_FAILED && rc != EX_CANCELLED)
			return rc;
	}
	if (x->o.json)
		print_json(e);
	else
		eval_print(e, false);
	json_decref(e);
	return rc;
}

static int evals_show(struct ctx *x)
{
	char p[256];
	json_t *e = NULL;
	snprintf(p, sizeof(p), "/v1/evals/%s%s", x->argv[0], x->o.rows ? "?rows=true" : "");
	int rc = call(x, "GET", p, NULL, &e);
	if (rc)
		return rc;
	if (x->o.json)
		print_json(e);
	else
		eval_print(e, x->o.rows);
	json_decref(e);
	return EX_OK;
}

static int evals_list(struct ctx *x)
{
	static const char *const cols[] = { "id", "name", "file", "status", "created_at", NULL };
	return print_list(x, "/v1/evals", cols);
}

/* experiments create NAME ARM=MODEL:WEIGHT ARM=MODEL:WEIGHT... */
static int experiments_create(struct ctx *x)
{
	json_t *arms = json_array();
	for (int i = 1; i < x->argc; i++) {
		const char *a = x->argv[i], *eq = strchr(a, '='), *colon = strrchr(a, ':');
		double w;
		char name[64], model[512], wt[64];
		if (!eq || !colon || colon < eq ||
		    (snprintf(wt, sizeof(wt), "%s", colon + 1), !parse_d(wt, &w))) {
			fprintf(stderr, "ftctl: an arm is NAME=MODEL:WEIGHT (got \"%s\")\n", a);
			json_decref(arms);
			return EX_USAGE;
		}
		snprintf(name, sizeof(name), "%.*s", (int)(eq - a), a);
		snprintf(model, sizeof(model), "%.*s", (int)(colon - eq - 1), eq + 1);
		json_array_append_new(arms, json_pack("{s:s, s:s, s:f}", "name", name, "model",
						      model, "weight", w));
	}
	json_t *b = json_pack("{s:s, s:o}", "name", x->argv[0], "arms", arms);
	if (x->o.assignment)
		json_object_set_new(b, "assignment", json_string(x->o.assignment));
	if (x->o.endpoint)
		json_object_set_new(b, "endpoint_id", json_string(x->o.endpoint));
	if (x->o.seed >= 0)
		json_object_set_new(b, "seed", json_integer(x->o.seed));
	if (x->o.judge_url || x->o.judge_model)
		json_object_set_new(b, "judge",
				    json_pack("{s:s?, s:s?}", "url", x->o.judge_url, "model",
					      x->o.judge_model));
	json_t *e = NULL;
	int rc = call(x, "POST", "/v1/experiments", b, &e);
	json_decref(b);
	if (!rc && x->o.start) {
		char p[256];
		snprintf(p, sizeof(p), "/v1/experiments/%s/start",
			 json_string_value(json_object_get(e, "id")));
		json_decref(e);
		e = NULL;
		rc = call(x, "POST", p, NULL, &e);
	}
	if (rc)
		return rc;
	if (x->o.json)
		print_json(e);
	else
		show(e);
	json_decref(e);
	return EX_OK;
}

static void interval_cell(json_t *iv, char *out, size_t n)
{
	if (!json_is_object(iv) || !json_is_number(json_object_get(iv, "lo")))
		snprintf(out, n, "-");
	else
		snprintf(out, n, "[%.3f, %.3f]", dig(iv, "lo", NULL), dig(iv, "hi", NULL));
}

/* experiments show EXP_ID: the experiment and the leader's last results. */
static int experiments_show(struct ctx *x)
{
	char p[256];
	json_t *e = NULL, *res = NULL;
	snprintf(p, sizeof(p), "/v1/experiments/%s", x->argv[0]);
	int rc = call(x, "GET", p, NULL, &e);
	if (!rc) {
		snprintf(p, sizeof(p), "/v1/experiments/%s/results", x->argv[0]);
		rc = call(x, "GET", p, NULL, &res);
	}
	if (rc) {
		json_decref(e);
		return rc;
	}
	if (x->o.json) {
		json_t *o = json_pack("{s:O, s:O}", "experiment", e, "results", res);
		print_json(o);
		json_decref(o);
	} else {
		printf("experiment %s (%s): %s, assignment by %s\n",
		       json_string_value(json_object_get(e, "id")),
		       json_string_value(json_object_get(e, "name")),
		       json_string_value(json_object_get(e, "status")),
		       json_string_value(json_object_get(e, "assignment")));
		json_t *arms = json_object_get(res, "arms");
		if (!json_is_array(arms)) {
			printf("no results yet: the scheduler computes them on its period\n");
			arms = json_object_get(e, "arms");
		}
		printf("%-16s %-24s %6s %-8s %9s %-18s %8s %8s %10s %9s\n", "ARM", "MODEL",
		       "WEIGHT", "STATUS", "JUDGED", "WIN RATE 95%", "RATING", "REQUESTS",
		       "ERROR RATE", "THUMBS UP");
		size_t i;
		json_t *a;
		json_array_foreach(arms, i, a)
		{
			char wr[48], req[32];
			interval_cell(
				json_array_get(json_object_get(json_object_get(res, "bootstrap"),
							       "win_rate"),
					       i),
				wr, sizeof(wr));
			snprintf(req, sizeof(req), "%lld",
				 (long long)json_integer_value(json_object_get(a, "requests")));
			printf("%-16.16s %-24.24s %6.2f %-8s %9lld %-18s %8.1f %8s %10.4f %9.4f\n",
			       str_or(json_string_value(json_object_get(a, "name")), "?"),
			       str_or(json_string_value(json_object_get(a, "model")), "?"),
			       dig(a, "weight", NULL),
			       str_or(json_string_value(json_object_get(a, "status")), "?"),
			       (long long)json_integer_value(json_object_get(a, "judgments")), wr,
			       dig(json_array_get(json_object_get(json_object_get(res, "ratings"),
								  "rating"),
						  i),
				   NULL, NULL),
			       req, dig(json_object_get(a, "errors"), "rate", NULL),
			       dig(json_object_get(json_object_get(a, "feedback"), "thumbs_up"),
				   "rate", NULL));
		}
		json_t *c;
		json_array_foreach(json_object_get(res, "comparisons"), i, c)
		{
			json_t *need = json_object_get(c, "judgments_needed");
			printf("%s vs %s: %lld judgments, share %.3f, %s",
			       json_string_value(json_object_get(c, "arm")),
			       json_string_value(json_object_get(c, "control")),
			       (long long)json_integer_value(json_object_get(c, "judgments")),
			       dig(c, "share", NULL),
			       json_is_true(json_object_get(c, "decided")) ? "decided: "
									   : "undecided");
			if (json_is_true(json_object_get(c, "decided")))
				printf("%s wins", json_string_value(json_object_get(c, "winner")));
			else if (json_is_object(need) &&
				 json_is_true(json_object_get(need, "reachable")))
				printf(" (about %.0f more judgments for power at alpha %.3g)",
				       dig(need, "more", NULL), dig(c, "alpha", NULL));
			putchar('\n');
		}
		json_t *rule = json_object_get(res, "decision_rule");
		if (json_is_object(rule))
			printf("false positives: %s\n",
			       str_or(json_string_value(
					      json_object_get(rule, "false_positive_rate")),
				      ""));
	}
	json_decref(e);
	json_decref(res);
	return EX_OK;
}

static int experiments_list(struct ctx *x)
{
	static const char *const cols[] = {
		"id", "name", "status", "assignment", "created_at", NULL
	};
	return print_list(x, "/v1/experiments", cols);
}

/* A replay: its status, the rows sent, each arm's answers, the judgments. */
static void replay_print(json_t *e)
{
	printf("replay %s  %s  rows %lld of %lld  judgments %lld\n",
	       str_or(json_string_value(json_object_get(e, "id")), "?"),
	       str_or(json_string_value(json_object_get(e, "status")), "?"),
	       (long long)json_integer_value(json_object_get(e, "rows_sent")),
	       (long long)json_integer_value(json_object_get(e, "rows")),
	       (long long)json_integer_value(json_object_get(e, "judgments_created")));
	size_t i;
	json_t *a;
	json_array_foreach(json_object_get(e, "arms"), i, a)
	{
		printf("  %-24s %lld answers\n",
		       str_or(json_string_value(json_object_get(a, "arm")), "?"),
		       (long long)json_integer_value(json_object_get(a, "answers")));
	}
	const char *err = json_string_value(json_object_get(e, "error"));
	if (err)
		printf("  error: %s\n", err);
}

/* experiments replay EXP_ID FILE|FILE_ID [--max-rows N] [--max-tokens N] [--wait] */
static int experiments_replay(struct ctx *x)
{
	char fid[128], path[256];
	int rc = file_arg(x, x->argv[1], fid, sizeof(fid));
	if (rc)
		return rc;
	json_t *b = json_pack("{s:s}", "file", fid);
	if (x->o.max_rows)
		json_object_set_new(b, "max_rows", json_integer(x->o.max_rows));
	if (x->o.max_tokens)
		json_object_set_new(b, "max_tokens", json_integer(x->o.max_tokens));
	snprintf(path, sizeof(path), "/v1/experiments/%s/replays", x->argv[0]);
	json_t *e = NULL;
	rc = call(x, "POST", path, b, &e);
	json_decref(b);
	if (rc)
		return rc;
	if (x->o.wait) {
		char id[128];
		snprintf(id, sizeof(id), "%s",
			 str_or(json_string_value(json_object_get(e, "id")), ""));
		json_decref(e);
		e = NULL;
		if (!x->o.json)
			fprintf(stderr, "replay %s queued; waiting\n", id);
		rc = wait_object(x, path, "replay", id, &e);
		if (rc && rc != EX_FAILED && rc != EX_CANCELLED)
			return rc;
	}
	if (x->o.json)
		print_json(e);
	else
		replay_print(e);
	json_decref(e);
	return rc;
}

/* experiments judge EXP ARM_A ARM_B a|b|tie|both_bad|llm: a person's
 * judgment, or (llm) one the experiment's LLM judge makes in both orders. */
static int experiments_judge(struct ctx *x)
{
	char p[256];
	bool llm = !strcmp(x->argv[3], "llm");
	json_t *b = json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:s?}", "arm_a", x->argv[1],
			      "arm_b", x->argv[2], "response_a", x->o.response_a, "response_b",
			      x->o.response_b, "prompt", x->o.prompt, "answer_a", x->o.answer_a,
			      "answer_b", x->o.answer_b);
	if (!llm) {
		json_object_set_new(b, "winner", json_string(x->argv[3]));
		if (x->o.comment)
			json_object_set_new(b, "comment", json_string(x->o.comment));
	}
	snprintf(p, sizeof(p), "/v1/experiments/%s/%s", x->argv[0], llm ? "judge" : "judgments");
	return print_one(x, "POST", p, b);
}

/* drift show DEPLOYMENT [--granularity hour|day] [--limit N] */
static int drift_show(struct ctx *x)
{
	char p[256];
	json_t *m = NULL, *w = NULL;
	const char *gran = x->o.granularity ? x->o.granularity : "hour";
	snprintf(p, sizeof(p), "/v1/drift/%s", x->argv[0]);
	int rc = call(x, "GET", p, NULL, &m);
	if (!rc) {
		snprintf(p, sizeof(p), "/v1/drift/%s/windows?granularity=%s&limit=%lld", x->argv[0],
			 gran, x->o.limit > 0 ? x->o.limit : 24);
		rc = call(x, "GET", p, NULL, &w);
	}
	if (rc) {
		json_decref(m);
		return rc;
	}
	if (x->o.json) {
		json_t *o = json_pack("{s:O, s:O}", "monitor", m, "windows", w);
		print_json(o);
		json_decref(o);
	} else {
		char since[64];
		cell(json_object_get(m, "alert_since"), "alert_since", since, sizeof(since));
		printf("deployment %s: %s%s%s\n", x->argv[0],
		       json_string_value(json_object_get(m, "status")),
		       json_is_null(json_object_get(m, "alert_since")) ? "" : " since ",
		       json_is_null(json_object_get(m, "alert_since")) ? "" : since);
		printf("%-19s %6s %8s %10s %8s %8s %8s  %s\n", "WINDOW (UTC)", "N", "PSI", "KS P",
		       "REFUSALS", "CUT", "LANG JS", "ALERTS");
		size_t i;
		json_t *x1;
		json_array_foreach(json_object_get(w, "data"), i, x1)
		{
			char start[64], alerts[256] = "";
			json_t *mt = json_object_get(x1, "metrics"),
			       *al = json_object_get(x1, "alerts");
			cell(json_object_get(x1, "window_start"), "window_start", start,
			     sizeof(start));
			size_t k;
			json_t *a;
			json_array_foreach(al, k, a)
			{
				size_t l = strlen(alerts);
				snprintf(alerts + l, sizeof(alerts) - l, "%s%s", k ? "," : "",
					 json_string_value(a));
			}
			printf("%-19s %6lld %8.3f %10.3g %8.3f %8.3f %8.3f  %s\n", start,
			       (long long)json_integer_value(json_object_get(x1, "n_requests")),
			       dig(mt, "prompt_tokens", "psi"),
			       dig(mt, "prompt_tokens", "ks_pvalue"), dig(mt, "refusals", "rate"),
			       dig(mt, "truncated", "rate"), dig(mt, "languages", "js"),
			       alerts[0] ? alerts : "-");
		}
	}
	json_decref(m);
	json_decref(w);
	return EX_OK;
}

/* drift set DEPLOYMENT [--reference N] [--option THRESHOLD=VALUE]... */
static int drift_set(struct ctx *x)
{
	char p[256];
	json_t *b = json_pack("{s:o}", "thresholds", options_json(&x->o));
	if (x->o.reference > 0)
		json_object_set_new(b, "reference_requests", json_integer(x->o.reference));
	snprintf(p, sizeof(p), "/v1/drift/%s", x->argv[0]);
	return print_one(x, "POST", p, b);
}

static int drift_list(struct ctx *x)
{
	static const char *const cols[] = { "deployment_id", "status",	   "reference_requests",
					    "alert_since",   "updated_at", NULL };
	return print_list(x, "/v1/drift", cols);
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
	  "        [--lora-r N] [--lora-alpha X] [--lora-dropout X] [--lora-targets "
	  "q_proj,v_proj,...] [--lora-layers 10-29]\n"
	  "        [--hp KEY=VALUE]... [--suffix S] [--seed N] [--gpus N] [--priority "
	  "N] [--follow]",
	  "create a fine-tuning job (--follow: show progress until it ends)", NULL, NULL },
	{ "jobs", "list", jobs_list, 0, "jobs list [--limit N] [--after ID]", "list jobs", NULL,
	  NULL },
	{ "jobs", "get", object_call, 1, "jobs get JOB_ID", "show a job", "GET",
	  "/v1/fine_tuning/jobs/{}" },
	{ "jobs", "events", jobs_events, 1, "jobs events JOB_ID [--follow] [--json]",
	  "list a job's events (--follow: live, until the job ends; --json: one event per line)",
	  NULL, NULL },
	{ "jobs", "checkpoints", jobs_checkpoints, 1, "jobs checkpoints JOB_ID",
	  "list a job's checkpoints", NULL, NULL },
	{ "jobs", "cancel", object_call, 1, "jobs cancel JOB_ID", "cancel a job", "POST",
	  "/v1/fine_tuning/jobs/{}/cancel" },
	{ "jobs", "pause", object_call, 1, "jobs pause JOB_ID",
	  "pause a job (its trainer checkpoints and stops; it holds no worker)", "POST",
	  "/v1/fine_tuning/jobs/{}/pause" },
	{ "jobs", "resume", object_call, 1, "jobs resume JOB_ID",
	  "resume a paused job from its last checkpoint", "POST",
	  "/v1/fine_tuning/jobs/{}/resume" },
	{ "jobs", "wait", jobs_wait, 1, "jobs wait JOB_ID [--timeout SECONDS]",
	  "wait for a job to end (exit 0 succeeded, 4 failed, 5 cancelled)", NULL, NULL },
	{ "models", "list", models_list, 0, "models list",
	  "list the models the team can use: base, fine-tuned, checkpoints", NULL, NULL },
	{ "models", "registry", models_registry, 0, "models registry", "list the registered models",
	  NULL, NULL },
	{ "models", "versions", models_versions, 1, "models versions NAME",
	  "list a registered model's versions", NULL, NULL },
	{ "models", "show", models_show, 1, "models show NAME[@ALIAS|/N]",
	  "a registered model, or a version with its lineage", NULL, NULL },
	{ "models", "alias", models_alias, -3,
	  "models alias set NAME ALIAS VERSION [--protect] [--expect N] | alias rm NAME ALIAS",
	  "point an alias at a version (--expect: only if it points at N now), or remove it", NULL,
	  NULL },
	{ "models", "delete", object_call, 1, "models delete MODEL",
	  "delete a fine-tuned model (ft:...) and its version", "DELETE", "/v1/models/{}" },
	{ "models", "export", models_export, 1,
	  "models export NAME@ALIAS|NAME/N --format merged [--dtype bf16|fp16|fp32] [--option "
	  "KEY=VALUE]... [--wait]",
	  "export a version on a worker (--wait: until it ends; exit 4 failed)", NULL, NULL },
	{ "models", "formats", models_formats, 0, "models formats", "list the export formats", NULL,
	  NULL },
	{ "models", "download", models_download, 1,
	  "models download NAME@ALIAS|NAME/N [--format F] [-o DIR]",
	  "download a version's folder, or its newest export in a format (resumes, checks "
	  "SHA-256)",
	  NULL, NULL },
	{ "keys", "list", keys_list, 0, "keys list", "list API keys (admin)", NULL, NULL },
	{ "keys", "create", keys_create, 0,
	  "keys create [--role viewer|member|admin] [--name NAME] [--rate-limit N]",
	  "create an API key; the key is shown once", NULL, NULL },
	{ "keys", "update", keys_update, 1, "keys update KEY_ID [--name NAME] [--rate-limit N]",
	  "change a key's name or requests-per-minute limit (held at once by ft-api and ft-serve)",
	  NULL, NULL },
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
	{ "endpoints", "create", endpoints_create, 0,
	  "endpoints create --name NAME --kind ftserve|vllm|llamacpp --url URL [--api-key KEY]",
	  "add an inference server to publish to (admin); the key (or FT_ENDPOINT_API_KEY) is "
	  "stored sealed and never shown",
	  NULL, NULL },
	{ "endpoints", "list", endpoints_list, 0, "endpoints list", "list the team's endpoints",
	  NULL, NULL },
	{ "endpoints", "show", object_call, 1, "endpoints show ENDPOINT",
	  "an endpoint (id or name) with its health", "GET", "/v1/endpoints/{}" },
	{ "endpoints", "delete", object_call, 1, "endpoints delete ENDPOINT",
	  "delete an endpoint that serves no live deployment", "DELETE", "/v1/endpoints/{}" },
	{ "deployments", "create", deployments_create, 0,
	  "deployments create --endpoint EP --model NAME@ALIAS|NAME/N|ft:... [--log-texts] "
	  "[--gguf-type T] [--wait]",
	  "deploy a model version to an endpoint (by alias: it follows the alias)", NULL, NULL },
	{ "deployments", "list", deployments_list, 0,
	  "deployments list [--endpoint EP] [--status S]", "list the team's deployments", NULL,
	  NULL },
	{ "deployments", "show", deployments_show, 1, "deployments show DEPLOYMENT_ID",
	  "a deployment: its state, the names it serves, llama.cpp's files and command", NULL,
	  NULL },
	{ "deployments", "delete", object_call, 1, "deployments delete DEPLOYMENT_ID",
	  "stop a deployment (the controller unloads it)", "DELETE", "/v1/deployments/{}" },
	{ "deployments", "wait", deployments_wait, 1,
	  "deployments wait DEPLOYMENT_ID [--status ready|stopped] [--timeout SECONDS]",
	  "wait until a deployment is ready, or stopped and unloaded (exit 4 if it is failed at "
	  "the timeout)",
	  NULL, NULL },
	{ "chat", "", chat, 1,
	  "chat MODEL [--endpoint EP] [--system TEXT] [--max-tokens N] [--temperature X]",
	  "talk with a deployed model, streamed; each line of stdin is a turn (a terminal gets a "
	  "prompt; /exit or end of input ends)",
	  NULL, NULL },
	{ "evals", "create", evals_create, -2,
	  "evals create FILE|FILE_ID MODEL [MODEL...] [--name N] [--option KEY=VALUE]... "
	  "[--judge-url URL --judge-model M] [--wait]",
	  "evaluate models (base models or versions) on a chat JSONL file: perplexity, ROUGE-L, "
	  "BLEU, required facts, an LLM judge's win rate against the references (--wait: until "
	  "it ends; exit 4 failed)",
	  NULL, NULL },
	{ "evals", "show", evals_show, 1, "evals show EVAL_ID [--rows]",
	  "an evaluation's models side by side (--rows: every answer)", NULL, NULL },
	{ "evals", "list", evals_list, 0, "evals list", "list evaluations", NULL, NULL },
	{ "evals", "cancel", object_call, 1, "evals cancel EVAL_ID", "cancel an evaluation", "POST",
	  "/v1/evals/{}/cancel" },
	{ "experiments", "create", experiments_create, -3,
	  "experiments create NAME ARM=MODEL:WEIGHT ARM=MODEL:WEIGHT... [--assignment "
	  "user|request]\n"
	  "        [--endpoint EP] [--seed N] [--judge-url URL --judge-model M] [--start]",
	  "an A/B experiment (the first arm is the control; weights sum to 1)", NULL, NULL },
	{ "experiments", "show", experiments_show, 1, "experiments show EXP_ID",
	  "arms, win rates with 95% intervals, ratings, decisions, traffic and feedback", NULL,
	  NULL },
	{ "experiments", "list", experiments_list, 0, "experiments list", "list experiments", NULL,
	  NULL },
	{ "experiments", "start", object_call, 1, "experiments start EXP_ID",
	  "start (or resume) an experiment", "POST", "/v1/experiments/{}/start" },
	{ "experiments", "pause", object_call, 1, "experiments pause EXP_ID", "pause an experiment",
	  "POST", "/v1/experiments/{}/pause" },
	{ "experiments", "stop", object_call, 1, "experiments stop EXP_ID",
	  "stop an experiment for good", "POST", "/v1/experiments/{}/stop" },
	{ "experiments", "judge", experiments_judge, 4,
	  "experiments judge EXP_ID ARM_A ARM_B a|b|tie|both_bad|llm [--response-a ID] "
	  "[--response-b ID]\n"
	  "        [--prompt TEXT --answer-a TEXT --answer-b TEXT] [--comment TEXT]",
	  "record a pairwise judgment, or (llm) ask the experiment's LLM judge in both orders",
	  NULL, NULL },
	{ "experiments", "replay", experiments_replay, 2,
	  "experiments replay EXP_ID FILE|FILE_ID [--max-rows N] [--max-tokens N] [--wait]",
	  "send a chat JSONL file's prompts to every active arm (greedy); with an LLM judge, one "
	  "judgment per row per arm against the control (--wait: until it ends; exit 4 failed)",
	  NULL, NULL },
	{ "drift", "show", drift_show, 1,
	  "drift show DEPLOYMENT [--granularity hour|day] [--limit N]",
	  "a deployment's drift state and its latest windows", NULL, NULL },
	{ "drift", "set", drift_set, 1,
	  "drift set DEPLOYMENT [--reference N] [--option THRESHOLD=VALUE]...",
	  "monitor a deployment's drift (or change its reference size and thresholds)", NULL,
	  NULL },
	{ "drift", "list", drift_list, 0, "drift list", "list the drift monitors", NULL, NULL },
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

/* ---- options: a table of {name, kind, field} ------------------------------ */

enum opt_kind {
	OPT_FLAG, /* bool */
	OPT_STR, /* const char * */
	OPT_INT, /* long long */
	OPT_NUM, /* double, and its "given" flag */
	OPT_EVENT, /* appended to events[] */
	OPT_HP, /* KEY=VALUE, appended to hps[] */
	OPT_OPTION /* KEY=VALUE, appended to options[] */
};

struct opt_def {
	const char *name;
	enum opt_kind kind;
	size_t off; /* the field in struct opts */
	size_t given; /* OPT_NUM: its bool "given" field, or SIZE_MAX */
};

#define FLAG(n, f)                                              \
	{                                                       \
		n, OPT_FLAG, offsetof(struct opts, f), SIZE_MAX \
	}
#define STR(n, f)                                              \
	{                                                      \
		n, OPT_STR, offsetof(struct opts, f), SIZE_MAX \
	}
#define INT(n, f)                                              \
	{                                                      \
		n, OPT_INT, offsetof(struct opts, f), SIZE_MAX \
	}
#define NUM(n, f, g)                                    \
	{                                               \
		n, OPT_NUM, offsetof(struct opts, f), g \
	}
static const struct opt_def opt_defs[] = {
	FLAG("json", json),
	FLAG("follow", follow),
	STR("purpose", purpose),
	STR("model", model),
	STR("training-file", training_file),
	STR("validation-file", validation_file),
	STR("method", method),
	INT("epochs", epochs),
	INT("batch-size", batch_size),
	NUM("lr-multiplier", lr_mult, offsetof(struct opts, has_lr_mult)),
	NUM("beta", beta, offsetof(struct opts, has_beta)),
	STR("adapter", adapter),
	INT("lora-r", lora_r),
	NUM("lora-alpha", lora_alpha, offsetof(struct opts, has_lora_alpha)),
	NUM("lora-dropout", lora_dropout, offsetof(struct opts, has_lora_dropout)),
	STR("lora-targets", lora_targets),
	STR("lora-layers", lora_layers),
	STR("suffix", suffix),
	INT("seed", seed),
	INT("gpus", gpus),
	INT("priority", priority),
	INT("limit", limit),
	INT("rate-limit", rate_limit),
	STR("after", after),
	NUM("timeout", timeout, SIZE_MAX),
	STR("role", role),
	STR("name", name),
	STR("url", url),
	STR("format", format),
	STR("dtype", dtype),
	FLAG("wait", wait),
	FLAG("protect", protect),
	INT("expect", expect),
	STR("kind", kind),
	STR("api-key", api_key),
	STR("endpoint", endpoint),
	STR("status", status),
	STR("gguf-type", gguf_type),
	STR("system", system),
	FLAG("log-texts", log_texts),
	INT("max-tokens", max_tokens),
	NUM("temperature", temperature, offsetof(struct opts, has_temperature)),
	FLAG("rows", rows),
	FLAG("start", start),
	STR("assignment", assignment),
	STR("judge-url", judge_url),
	STR("judge-model", judge_model),
	STR("response-a", response_a),
	STR("response-b", response_b),
	STR("comment", comment),
	STR("prompt", prompt),
	STR("answer-a", answer_a),
	STR("answer-b", answer_b),
	STR("granularity", granularity),
	INT("reference", reference),
	INT("max-rows", max_rows),
	{ "option", OPT_OPTION, 0, SIZE_MAX },
	{ "event", OPT_EVENT, 0, SIZE_MAX },
	{ "hp", OPT_HP, 0, SIZE_MAX },
};
#undef FLAG
#undef STR
#undef INT
#undef NUM

/* Store one option's value; false when the value does not parse. */
static bool set_opt(struct opts *o, const struct opt_def *d, const char *v)
{
	char *field = (char *)o + d->off;
	switch (d->kind) {
	case OPT_FLAG: *(bool *)(void *)field = true; return true;
	case OPT_STR: *(const char **)(void *)field = v; return true;
	case OPT_INT: return parse_ll(v, (long long *)(void *)field);
	case OPT_NUM:
		if (d->given != SIZE_MAX)
			*(bool *)(void *)((char *)o + d->given) = true;
		return parse_d(v, (double *)(void *)field);
	case OPT_EVENT:
		if (o->n_events < (int)FT_ARRAY_LEN(o->events))
			o->events[o->n_events++] = v;
		return true;
	case OPT_HP:
		if (!strchr(v, '=') || v[0] == '=' || o->n_hps == (int)FT_ARRAY_LEN(o->hps))
			return false;
		o->hps[o->n_hps++] = v;
		return true;
	case OPT_OPTION:
		if (!strchr(v, '=') || v[0] == '=' || o->n_options == (int)FT_ARRAY_LEN(o->options))
			return false;
		o->options[o->n_options++] = v;
		return true;
	}
	return false;
}

/* Options anywhere on the line; the rest are positional. */
static int parse_args(struct ctx *x, int argc, char **argv, char **positional, size_t max,
		      bool *want_help)
{
	struct option lo[FT_ARRAY_LEN(opt_defs) + 3];
	for (size_t i = 0; i < FT_ARRAY_LEN(opt_defs); i++)
		lo[i] = (struct option){ opt_defs[i].name,
					 opt_defs[i].kind == OPT_FLAG ? no_argument
								      : required_argument,
					 NULL, 256 + (int)i };
	lo[FT_ARRAY_LEN(opt_defs)] = (struct option){ "help", no_argument, NULL, 'h' };
	lo[FT_ARRAY_LEN(opt_defs) + 1] = (struct option){ "output", required_argument, NULL, 'o' };
	lo[FT_ARRAY_LEN(opt_defs) + 2] = (struct option){ NULL, 0, NULL, 0 };
	int c;
	x->argv = positional;
	while ((c = getopt_long(argc, argv, "+ho:", lo, NULL)) != -1 || optind < argc) {
		if (c == -1) { /* a positional argument: keep it, go on parsing options after it */
			if ((size_t)x->argc == max) {
				fprintf(stderr, "ftctl: too many arguments\n");
				return EX_USAGE;
			}
			x->argv[x->argc++] = argv[optind++];
			continue;
		}
		if (c == 'h') {
			*want_help = true;
			continue;
		}
		if (c == 'o') {
			x->o.out = optarg;
			continue;
		}
		if (c < 256 || c >= 256 + (int)FT_ARRAY_LEN(opt_defs)) {
			usage(stderr);
			return EX_USAGE;
		}
		const struct opt_def *d = &opt_defs[c - 256];
		if (!set_opt(&x->o, d, optarg)) {
			fprintf(stderr,
				d->kind == OPT_HP || d->kind == OPT_OPTION
					? "ftctl: --%s needs KEY=VALUE (got \"%s\")\n"
					: "ftctl: --%s needs a number (got \"%s\")\n",
				d->name, optarg);
			return EX_USAGE;
		}
	}
	return EX_OK;
}

/* The command the first two positional words name (NULL: said why). */
static const struct command *find_command(const struct ctx *x)
{
	const struct command *cmd = NULL;
	bool group_known = false;
	for (size_t i = 0; i < FT_ARRAY_LEN(commands); i++) {
		if (!strcmp(commands[i].group, x->argv[0])) {
			group_known = true;
			/* a one-word command ("chat MODEL") has an empty name */
			if (!commands[i].name[0] || !strcmp(commands[i].name, x->argv[1]))
				cmd = &commands[i];
		}
	}
	if (!cmd) {
		fprintf(stderr,
			group_known ? "ftctl: unknown command \"%s %s\"\n"
				    : "ftctl: unknown command \"%s\"\n",
			x->argv[0], x->argv[1]);
		usage(stderr);
	}
	return cmd;
}

/* ftctl help, ftctl --help, ftctl GROUP NAME --help. */
static int help(const struct ctx *x, bool want_help)
{
	for (size_t i = 0; want_help && x->argc >= 1 && i < FT_ARRAY_LEN(commands); i++)
		if (!strcmp(commands[i].group, x->argv[0]) &&
		    (!commands[i].name[0] ||
		     (x->argc >= 2 && !strcmp(commands[i].name, x->argv[1])))) {
			printf("usage: ftctl %s\n\n%s\n", commands[i].usage, commands[i].help);
			return EX_OK;
		}
	if (want_help || (x->argc == 1 && !strcmp(x->argv[0], "help"))) {
		usage(stdout);
		return EX_OK;
	}
	usage(stderr);
	return EX_USAGE;
}

/* The client: the API URL and key from ~/.config/ftplat/ftctl.json, then
 * the environment. */
static struct ft_client *connect_client(int *rc, char key[1024])
{
	char url[1024] = "";
	key[0] = '\0';
	load_file_config(url, sizeof(url), key, 1024);
	if (getenv("FT_API_URL"))
		snprintf(url, sizeof(url), "%s", getenv("FT_API_URL"));
	if (getenv("FT_API_KEY"))
		snprintf(key, 1024, "%s", getenv("FT_API_KEY"));
	struct ft_err e;
	ft_err_clear(&e);
	struct ft_client *c = ft_client_new(url, key, &e);
	if (!c) /* no server to reach, or a bad URL or key */
		*rc = fail(&e) == EX_UNAVAIL ? EX_UNAVAIL : EX_USAGE;
	return c;
}

int main(int argc, char **argv)
{
	struct ctx x = { 0 };
	x.o.seed = -1;
	x.o.expect = -1;
	char *positional[64];
	bool want_help = false;
	int rc = parse_args(&x, argc, argv, positional, FT_ARRAY_LEN(positional), &want_help);
	if (rc)
		return rc;
	if (x.argc < 2 || want_help)
		return help(&x, want_help);
	const struct command *cmd = find_command(&x);
	if (!cmd)
		return EX_USAGE;
	int words = cmd->name[0] ? 2 : 1;
	x.argv += words;
	x.argc -= words;
	if (cmd->nargs >= 0 ? x.argc != cmd->nargs : x.argc < -cmd->nargs) {
		fprintf(stderr, "usage: ftctl %s\n", cmd->usage);
		return EX_USAGE;
	}
	x.cmd = cmd;
	if (cmd->fn == completion)
		return completion(&x);
	if (!(x.c = connect_client(&rc, x.key)))
		return rc;
	rc = cmd->fn(&x);
	ft_client_free(x.c);
	return rc;
}
