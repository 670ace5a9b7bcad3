/* Running as a systemd service (Type=notify) and reloading on SIGHUP.
 *
 * service_init() blocks SIGHUP in the calling thread, before the daemon
 * starts any other (they inherit the mask), and starts a thread that takes
 * each SIGHUP with sigwait() and calls the daemon's reload function: a
 * SIGHUP never stops or kills a daemon, whatever it is doing. systemd hears
 * RELOADING=1 before the reload and READY=1 after it (the units'
 * ExecReload sends SIGHUP).
 *
 * service_ready() and service_status() tell systemd through sd_notify(3)
 * that the daemon is up and what it is doing (systemctl status shows it);
 * without NOTIFY_SOCKET (not under systemd) they do nothing.
 */
#ifndef HA_COMMON_SERVICE_H
#define HA_COMMON_SERVICE_H

/* Reloads what can change without a restart; says on the log what it did. */
typedef void (*service_reload_fn)(void *ctx);

/* 0 or -errno. FN NULL: a SIGHUP is logged as having nothing to reload. */
int service_init(service_reload_fn fn, void *ctx);

void service_ready(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void service_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void service_stopping(void);

/* In a child between fork() and exec(): the signal mask emptied, and
 * SIGHUP ignored as the daemons ignored it before service_init(), so that
 * a command or VMM it starts does not inherit the blocked SIGHUP.
 * Async-signal-safe. */
void service_child_signals(void);

#endif
