/* Logging: levelled, format-checked, carrying the domain and epoch.
 *
 * Lines go to stderr as
 *   2026-11-24T13:58:20.123Z ha-protect[812] kvm:web epoch 42: error: text
 * The program name is set once; the domain and epoch are per thread, because
 * the sender thread works on epoch N while the epoch loop runs N+1.
 *
 * The level is info, debug with -v, or what HA_LOG_LEVEL says (error, warn,
 * info or debug; any other value is refused at start, exit 2). Lines that
 * say the pair runs unsafe (log_unsafe) are printed whatever the level.
 * When stderr is the systemd journal (JOURNAL_STREAM names it), each line
 * starts with its syslog priority (<3> error, <4> warning, <6> info, <7>
 * debug) instead of a time stamp: the journal keeps the time and the level.
 */
#ifndef HA_COMMON_LOG_H
#define HA_COMMON_LOG_H

#include <stdint.h>

enum log_level {
	LOG_LVL_NONE = -1, /* nothing but log_unsafe(): for a probe whose failure is expected */
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};

#define LOG_NO_EPOCH UINT64_MAX

/* For the programs' --help. */
#define LOG_USAGE                                                                   \
	"Environment: HA_LOG_LEVEL=error|warn|info|debug (default info, debug with\n" \
	"-v); lines about unsafe settings are logged at every level.\n"

/* --log-level LEVEL, for the daemons' getopt_long tables (common/opt.c
 * takes it); it overrides HA_LOG_LEVEL, and -v overrides both. */
#define LOG_OPT_LEVEL 0x1200
#define LOG_OPTIONS {"log-level", required_argument, NULL, LOG_OPT_LEVEL}

/* Sets the program's name and the level from HA_LOG_LEVEL; an invalid
 * value is a usage error: said on stderr, exit 2. */
void log_init(const char *prog);
void log_set_level(enum log_level level);
/* The name log_init() was given, without its directory. */
const char *log_prog_name(void);
enum log_level log_get_level(void);
/* Parse "error|warn|info|debug"; returns 0 or -EINVAL. */
int log_parse_level(const char *s, enum log_level *out);

/* Per-thread context. NULL domain / LOG_NO_EPOCH clear it. */
void log_set_domain(const char *domain);
void log_set_epoch(uint64_t epoch);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

/* A warning that the pair is not protected as it should be: "UNSAFE: "
 * and the text, printed whatever the level. */
void log_unsafe(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A line that repeats while a state lasts (a retry while degraded): the
 * first LOG_RL_BURST lines of every LOG_RL_WINDOW_S seconds are printed,
 * the rest counted; the next printed line, or log_rl_end() when the state
 * ends, says how many were suppressed. One struct per repeating line,
 * zero-initialised; safe from any thread. */
#define LOG_RL_BURST 3
#define LOG_RL_WINDOW_S 60
struct log_rl {
	uint64_t window_ns;
	unsigned printed;
	unsigned long suppressed;
};
void log_rl_msg(struct log_rl *rl, enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void log_rl_end(struct log_rl *rl);

/* For main() only: log an error and exit(1). */
_Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
