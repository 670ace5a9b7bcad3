/* Logging: levelled, format-checked, carrying the domain and epoch.
 *
 * Lines go to stderr as
 *   2026-11-24T13:58:20.123Z ha-protect[812] kvm:web epoch 42: error: text
 * The program name is set once; the domain and epoch are per thread, because
 * the sender thread works on epoch N while the epoch loop runs N+1.
 */
#ifndef HA_COMMON_LOG_H
#define HA_COMMON_LOG_H

#include <stdint.h>

enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};

#define LOG_NO_EPOCH UINT64_MAX

void log_init(const char *prog);
void log_set_level(enum log_level level);
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

/* For main() only: log an error and exit(1). */
_Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
