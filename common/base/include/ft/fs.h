/*
 * ft/fs.h - the one set of file helpers every process uses (fs.c): whole-
 * file reads with a cap, atomic writes (temp file in the same folder, fsync,
 * rename, fsync of the folder), mkdir -p, copies, removal of a folder. Errors carry the code
 * "io_error" and name the path.
 */
#ifndef FT_FS_H
#define FT_FS_H

#include "ft/base.h"
#include "ft/buf.h"
#include "ft/err.h"

/* Append the file's bytes to out (out's cap limits the size). */
enum ft_rc ft_read_file(const char *path, struct ft_buf *out, struct ft_err *err);
enum ft_rc ft_write_file_atomic(const char *path, const void *data, size_t len, struct ft_err *err);
enum ft_rc ft_mkdir_p(const char *dir, struct ft_err *err);
bool ft_file_exists(const char *path);
enum ft_rc ft_copy_file(const char *src, const char *dst, struct ft_err *err);
/* fsync a folder (after renames inside it). */
void ft_fsync_dir(const char *dir);
/* Remove a folder and everything under it (symbolic links are removed, not
 * followed); a path that does not exist is fine. */
enum ft_rc ft_remove_tree(const char *dir, struct ft_err *err);

#endif
