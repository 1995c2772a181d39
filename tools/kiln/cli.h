/* cli.h - shared declarations of the kiln command-line tool: one function per
 * subcommand (each in its own cmd_*.c file) and small helpers they share. */
#ifndef KILN_CLI_H
#define KILN_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int cmd_inspect(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_conformance(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_optimize(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_calibrate(int argc, char **argv);

/* --threads N / --opt LEVEL (run, bench): 1 consumed, 0 not one, -1 bad value. */
int cli_session_option(int argc, char **argv, int *i, int *threads, int *opt_level, const char *cmd);

/* Print "kiln: <message>" to stderr; returns 1 (the exit status for errors). */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Seconds on a monotonic clock. */
double cli_now(void);
/* Parse a non-negative integer option value; false on junk. */
bool cli_parse_i64(const char *s, int64_t *out);

#endif
