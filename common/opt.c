#include "common/opt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/conf.h"
#include "common/log.h"

static _Noreturn void bad(const char *prog, const char *opt, const char *what, unsigned long min,
			  unsigned long max, const char *s)
{
	const char *from = conf_origin(optind - 1);

	/* An option from a pair file: where it is written. */
	fprintf(stderr, "%s: %s%s%s wants %s in %lu..%lu, not '%s'\n", prog, from ? from : "",
		from ? ": " : "", opt, what, min, max, s);
	exit(2);
}

unsigned long opt_ulong(const char *prog, const char *opt, const char *s, unsigned long min,
			unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	/* strtoul takes "-1" as ULONG_MAX: a sign is never a number here. */
	v = strtoul(s, &end, 10);
	if (errno || !*s || *end || *s == '-' || *s == '+' || v < min || v > max)
		bad(prog, opt, "a number", min, max, s);
	return v;
}

static bool level_fixed, verbose;

bool opt_log_level_fixed(void)
{
	return level_fixed;
}

int opt_common(int c, void (*usage)(FILE *))
{
	const char *from = conf_origin(optind - 1);
	enum log_level lvl;

	if (c == 'v') {
		log_set_level(LOG_LVL_DEBUG);
		verbose = true;
		level_fixed = level_fixed || !from;
		return -1;
	}
	if (c == LOG_OPT_LEVEL) {
		if (log_parse_level(optarg, &lvl) < 0) {
			fprintf(stderr, "%s: %s%s--log-level wants error, warn, info or debug, "
					"not '%s'\n",
				log_prog_name(), from ? from : "", from ? ": " : "", optarg);
			exit(2);
		}
		if (!verbose)
			log_set_level(lvl);
		level_fixed = level_fixed || !from;
		return -1;
	}
	usage(c == 'h' ? stdout : stderr);
	return c == 'h' ? 0 : 2;
}

unsigned opt_uint(const char *prog, const char *opt, const char *s, unsigned min, unsigned max)
{
	return (unsigned)opt_ulong(prog, opt, s, min, max);
}

unsigned long opt_pow2(const char *prog, const char *opt, const char *s, unsigned long min,
		       unsigned long max)
{
	unsigned long v = opt_ulong(prog, opt, s, min, max);

	if (v & (v - 1))
		bad(prog, opt, "a power of two", min, max, s);
	return v;
}

bool opt_hex(const char *s, uint8_t *out, size_t len)
{
	if (strlen(s) != 2 * len)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned v = 0;

		for (int k = 0; k < 2; k++) {
			char c = s[2 * i + (size_t)k];

			v <<= 4;
			if (c >= '0' && c <= '9')
				v |= (unsigned)(c - '0');
			else if (c >= 'a' && c <= 'f')
				v |= (unsigned)(c - 'a' + 10);
			else if (c >= 'A' && c <= 'F')
				v |= (unsigned)(c - 'A' + 10);
			else
				return false;
		}
		out[i] = (uint8_t)v;
	}
	return true;
}
