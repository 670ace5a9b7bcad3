#include "common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *log_prog = "ha";
static enum log_level log_level = LOG_LVL_INFO;
static _Thread_local char log_domain[64];
static _Thread_local uint64_t log_epoch = LOG_NO_EPOCH;

static const char *const level_names[] = {
	[LOG_LVL_ERROR] = "error",
	[LOG_LVL_WARN] = "warning",
	[LOG_LVL_INFO] = "info",
	[LOG_LVL_DEBUG] = "debug",
};

void log_init(const char *prog)
{
	const char *slash = strrchr(prog, '/');
	const char *env = getenv("HA_LOG_LEVEL");
	enum log_level lvl;

	log_prog = slash ? slash + 1 : prog;
	if (env && log_parse_level(env, &lvl) == 0)
		log_level = lvl;
}

void log_set_level(enum log_level level)
{
	log_level = level;
}

enum log_level log_get_level(void)
{
	return log_level;
}

int log_parse_level(const char *s, enum log_level *out)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

void log_set_domain(const char *domain)
{
	if (!domain)
		log_domain[0] = '\0';
	else
		snprintf(log_domain, sizeof(log_domain), "%s", domain);
}

void log_set_epoch(uint64_t epoch)
{
	log_epoch = epoch;
}

__attribute__((format(printf, 2, 0))) static void log_vmsg(enum log_level level, const char *fmt,
								 va_list ap)
{
	char ctx[128] = "";
	char ts[32];
	struct timespec now;
	struct tm tm;
	int saved = errno;
	size_t n = 0;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);

	if (log_domain[0])
		n += (size_t)snprintf(ctx + n, sizeof(ctx) - n, " %s", log_domain);
	if (log_epoch != LOG_NO_EPOCH && n < sizeof(ctx))
		snprintf(ctx + n, sizeof(ctx) - n, " epoch %llu", (unsigned long long)log_epoch);

	/* One fprintf per line keeps lines from different threads whole. */
	char msg[2048];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	fprintf(stderr, "%s.%03ldZ %s[%d]%s: %s: %s\n", ts, now.tv_nsec / 1000000, log_prog,
		(int)getpid(), ctx, level_names[level], msg);
	errno = saved;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LVL_ERROR, fmt, ap);
	va_end(ap);
	exit(1);
}
