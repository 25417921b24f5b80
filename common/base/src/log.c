/*
 * log.c - JSON-lines records on stderr, one write(2) each.
 */
#include <pthread.h>
#include <unistd.h>

#include "ft/buf.h"
#include "ft/clock.h"
#include "ft/log.h"

static const char *log_component = "ftplat";
static enum ft_log_level log_min = FT_LOG_INFO;
static int log_fd = -1;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void ft_log_init(const char *component, enum ft_log_level min)
{
	if (component)
		log_component = component;
	log_min = min;
}

bool ft_log_level_parse(const char *s, enum ft_log_level *out)
{
	for (size_t i = 0; i < FT_ARRAY_LEN(level_names); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum ft_log_level)i;
			return true;
		}
	}
	if (strcmp(s, "warning") == 0) {
		*out = FT_LOG_WARN;
		return true;
	}
	return false;
}

void ft_log_set_fd(int fd)
{
	log_fd = fd;
}

/* JSON string escaping for the fields we write; invalid UTF-8 bytes are
 * passed through as \u00XX so the line stays parseable. */
static void add_json_str(struct ft_buf *b, const char *s)
{
	(void)!ft_buf_addch(b, '"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		unsigned char c = *p;
		switch (c) {
		case '"': (void)!ft_buf_addstr(b, "\\\""); break;
		case '\\': (void)!ft_buf_addstr(b, "\\\\"); break;
		case '\n': (void)!ft_buf_addstr(b, "\\n"); break;
		case '\r': (void)!ft_buf_addstr(b, "\\r"); break;
		case '\t': (void)!ft_buf_addstr(b, "\\t"); break;
		default:
			if (c < 0x20 || c >= 0x80)
				(void)!ft_buf_addf(b, "\\u%04x", c);
			else
				(void)!ft_buf_addch(b, (char)c);
		}
	}
	(void)!ft_buf_addch(b, '"');
}

void ft_logf(enum ft_log_level level, const char *component, const char *job_id, const char *fmt,
	     ...)
{
	char msg[2048], ts[32];
	struct ft_buf b = FT_BUF_INIT(8192);
	va_list ap;
	int fd;

	if (level < log_min)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ft_time_iso8601(ft_time_wall_ms(), ts);

	(void)!ft_buf_addf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":", ts,
			   level_names[level]);
	add_json_str(&b, component ? component : log_component);
	if (job_id && *job_id) {
		(void)!ft_buf_addstr(&b, ",\"job\":");
		add_json_str(&b, job_id);
	}
	(void)!ft_buf_addstr(&b, ",\"msg\":");
	add_json_str(&b, msg);
	(void)!ft_buf_addstr(&b, "}\n");

	fd = log_fd >= 0 ? log_fd : STDERR_FILENO;
	for (size_t off = 0; off < b.len;) {
		ssize_t n = write(fd, b.ptr + off, b.len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	ft_buf_release(&b);
}
