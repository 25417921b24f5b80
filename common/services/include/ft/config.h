/*
 * ft/config.h - configuration from defaults, an optional file and the
 * environment, in that order (later wins). Every key is listed in one table
 * in common/services/src/config.c and documented in docs/configuration.md.
 *
 * File format: one `key = value` per line; `#` starts a comment; blank lines
 * ignored; values may be wrapped in double quotes. Keys are the lower-case
 * names ("database_url"); the environment variable is FT_ + upper case
 * ("FT_DATABASE_URL"). FT_CONFIG names the file when no path is given.
 */
#ifndef FT_CONFIG_H
#define FT_CONFIG_H

#include "ft/err.h"

enum ft_config_type { FT_CFG_STR, FT_CFG_INT, FT_CFG_BOOL };

struct ft_config_key {
	const char *name; /* "database_url" */
	enum ft_config_type type;
	const char *def; /* default value as text, may be NULL (unset) */
	long min, max; /* for FT_CFG_INT */
	const char *help;
};

struct ft_config {
	char **values; /* one per key in the table, owned */
	char **origin; /* "default", "file:LINE", "env" - owned */
};

/* The key table (for docs and `--help-config`). */
const struct ft_config_key *ft_config_keys(size_t *count);

/* Load defaults, then `path` (or $FT_CONFIG when path is NULL; no file when
 * both are unset), then the environment. Values are type-checked: a bad
 * number names the key and where it came from. */
enum ft_rc ft_config_load(struct ft_config *cfg, const char *path, struct ft_err *err);
void ft_config_release(struct ft_config *cfg);

/* Getters; the key must exist in the table (programmer error otherwise). */
const char *ft_config_str(const struct ft_config *cfg, const char *key); /* NULL when unset */
long ft_config_int(const struct ft_config *cfg, const char *key);
bool ft_config_bool(const struct ft_config *cfg, const char *key);
const char *ft_config_origin(const struct ft_config *cfg, const char *key);

/* Override one value (command-line flags); validated like the others. */
enum ft_rc ft_config_set(struct ft_config *cfg, const char *key, const char *value,
			 const char *origin, struct ft_err *err);

/* The start of a daemon's main(): `PROG [--config FILE]`, then the
 * configuration loaded and logging set up (component, log_level). Returns
 * -1 to go on, or the exit status to return (0 after --help, 2 for a bad
 * command line, 1 for a bad configuration, with the reason on stderr). */
int ft_config_daemon_start(int argc, char **argv, const char *prog, const char *component,
			   struct ft_config *cfg);

#endif
