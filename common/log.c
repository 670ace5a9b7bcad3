#include "common/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"

static const char *log_prog = "ha";
/* Changed by a reload (SIGHUP) while other threads log. */
static _Atomic enum log_level log_level = LOG_LVL_INFO;
static _Thread_local char log_domain[64];
static _Thread_local uint64_t log_epoch = LOG_NO_EPOCH;
static bool log_journal; /* stderr is the systemd journal */
static pthread_mutex_t rl_mu = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {
	[LOG_LVL_ERROR] = "error",
	[LOG_LVL_WARN] = "warning",
	[LOG_LVL_INFO] = "info",
	[LOG_LVL_DEBUG] = "debug",
};

/* syslog priorities: err, warning, info, debug. */
static const int level_prio[] = {3, 4, 6, 7};

/* systemd sets JOURNAL_STREAM=DEV:INODE for the stream it connects to
 * stderr; stderr redirected elsewhere since is not the journal. */
static bool stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	int end = 0;

	if (!env || sscanf(env, "%llu:%llu%n", &dev, &ino, &end) != 2 || env[end] ||
	    fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_init(const char *prog)
{
	const char *slash = strrchr(prog, '/');
	const char *env = getenv("HA_LOG_LEVEL");
	enum log_level lvl;

	log_prog = slash ? slash + 1 : prog;
	log_journal = stderr_is_journal();
	if (!env)
		return;
	if (log_parse_level(env, &lvl) < 0) {
		fprintf(stderr, "%s: HA_LOG_LEVEL wants error, warn, info or debug, not '%s'\n",
			log_prog, env);
		exit(2);
	}
	log_level = lvl;
}

const char *log_prog_name(void)
{
	return log_prog;
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
	if (log_journal)
		fprintf(stderr, "<%d>%s[%d]%s: %s: %s\n", level_prio[level], log_prog,
			(int)getpid(), ctx, level_names[level], msg);
	else
		fprintf(stderr, "%s.%03ldZ %s[%d]%s: %s: %s\n", ts, now.tv_nsec / 1000000, log_prog,
			(int)getpid(), ctx, level_names[level], msg);
	errno = saved;
}

/* Prints whatever the level. */
__attribute__((format(printf, 2, 3))) static void log_vline(enum log_level level, const char *fmt,
							    ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
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

void log_unsafe(const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_vline(LOG_LVL_WARN, "UNSAFE: %s", msg);
}

void log_rl_msg(struct log_rl *rl, enum log_level level, const char *fmt, ...)
{
	uint64_t now = clk_now_ns();
	unsigned long suppressed = 0;
	bool print = false;
	char msg[2048];
	va_list ap;

	if (level > log_level)
		return;
	pthread_mutex_lock(&rl_mu);
	if (!rl->window_ns || now - rl->window_ns >= (uint64_t)LOG_RL_WINDOW_S * NSEC_PER_SEC) {
		rl->window_ns = now;
		rl->printed = 0;
	}
	if (rl->printed < LOG_RL_BURST) {
		rl->printed++;
		print = true;
		suppressed = rl->suppressed;
		rl->suppressed = 0;
	} else {
		rl->suppressed++;
	}
	pthread_mutex_unlock(&rl_mu);
	if (!print)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (suppressed)
		log_vline(level, "%s (%lu like it suppressed)", msg, suppressed);
	else
		log_vline(level, "%s", msg);
}

void log_rl_end(struct log_rl *rl)
{
	unsigned long suppressed;

	pthread_mutex_lock(&rl_mu);
	suppressed = rl->suppressed;
	*rl = (struct log_rl){0};
	pthread_mutex_unlock(&rl_mu);
	if (suppressed)
		log_info("%lu repeated line(s) were suppressed", suppressed);
}

void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LVL_ERROR, fmt, ap);
	va_end(ap);
	exit(1);
}
