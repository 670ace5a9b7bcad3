#include "common/service.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "common/log.h"

static service_reload_fn reload_fn;
static void *reload_ctx;

static void *hup_thread(void *arg)
{
	sigset_t set;
	int sig;

	(void)arg;
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		log_info("SIGHUP: reloading");
		sd_notify(0, "RELOADING=1");
		if (reload_fn)
			reload_fn(reload_ctx);
		else
			log_info("SIGHUP: nothing here can be reloaded; a changed setting needs a "
				 "restart");
		sd_notify(0, "READY=1");
	}
	return NULL;
}

int service_init(service_reload_fn fn, void *ctx)
{
	sigset_t set;
	pthread_t th;
	int rc;

	reload_fn = fn;
	reload_ctx = ctx;
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	rc = pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (rc == 0)
		rc = pthread_create(&th, NULL, hup_thread, NULL);
	if (rc == 0)
		pthread_detach(th);
	else
		log_error("cannot set up the SIGHUP handler: %s", strerror(rc));
	return -rc;
}

__attribute__((format(printf, 2, 0))) static void notify_fmt(const char *prefix, const char *fmt,
							   va_list ap)
{
	char msg[256];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	sd_notifyf(0, "%sSTATUS=%s", prefix, msg);
}

void service_ready(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	notify_fmt("READY=1\n", fmt, ap);
	va_end(ap);
}

void service_status(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	notify_fmt("", fmt, ap);
	va_end(ap);
}

void service_stopping(void)
{
	sd_notify(0, "STOPPING=1");
}

void service_child_signals(void)
{
	sigset_t none;

	signal(SIGHUP, SIG_IGN);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}
