/*
 * cmd.h - the ft-train subcommands that live in their own files
 * (trainer/cmd_*.c), listed in the commands[] table of ft_train.c.
 * Each takes argc/argv starting at the command name and returns the exit code.
 */
#ifndef FT_TRAIN_CMD_H
#define FT_TRAIN_CMD_H

int cmd_tokenize(int argc, char **argv); /* cmd_tokenize.c */
int cmd_detokenize(int argc, char **argv); /* cmd_tokenize.c */

#endif
