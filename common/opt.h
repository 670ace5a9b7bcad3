/* Option values for the programs' main()s, one validator per kind of
 * value: a bad value is quoted with what was wanted, and the program
 * exits 2 (a usage error), as every program here documents.
 *
 *   cfg.timeout_ms = opt_uint("ha-protect", "--timeout", optarg, 20, 600000);
 */
#ifndef HA_COMMON_OPT_H
#define HA_COMMON_OPT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* A decimal number in [min, max]. */
unsigned long opt_ulong(const char *prog, const char *opt, const char *s, unsigned long min,
			unsigned long max);
unsigned opt_uint(const char *prog, const char *opt, const char *s, unsigned min, unsigned max);
/* A power of two in [min, max]. */
unsigned long opt_pow2(const char *prog, const char *opt, const char *s, unsigned long min,
		       unsigned long max);

/* The options every program shares, for the default branch of its
 * getopt_long switch: -v (debug logging) and --log-level L (common/log.h's
 * LOG_OPTIONS) return -1 (go on); -h prints
 * USAGE to stdout and returns 0, anything else prints it to stderr and
 * returns 2: the exit status. */
int opt_common(int c, void (*usage)(FILE *));
/* Exactly 2 * len hex digits into out: true, else false. */
bool opt_hex(const char *s, uint8_t *out, size_t len);

/* Whether the command line itself set the log level (-v or --log-level),
 * which a pair file's log-level, read again on a reload, must not undo. */
bool opt_log_level_fixed(void);

#endif
