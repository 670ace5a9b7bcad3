#include "common/notify.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/runcmd.h"
#include "common/service.h"

struct event {
	char vars[8][320];
};

struct notify {
	char *cmd;
	unsigned timeout_ms;
	char role[16];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	bool stop;
	struct event q[NOTIFY_QUEUE];
	unsigned head, len;
	uint64_t seq, dropped;
};

static void *notify_main(void *arg)
{
	struct notify *n = arg;

	pthread_mutex_lock(&n->mu);
	for (;;) {
		while (!n->len && !n->stop)
			pthread_cond_wait(&n->cv, &n->mu);
		if (!n->len)
			break;
		struct event e = n->q[n->head];
		const char *const v[] = {e.vars[0], e.vars[1], e.vars[2], e.vars[3],
					 e.vars[4], e.vars[5], e.vars[6], e.vars[7], NULL};
		char why[200];
		int rc;

		n->head = (n->head + 1) % NOTIFY_QUEUE;
		n->len--;
		pthread_mutex_unlock(&n->mu);
		/* What systemctl status shows: the last event (off the
		 * caller's path too: sd_notify may block on a full socket). */
		service_status("%s %s%s%s", e.vars[0] + 9, e.vars[2] + 10, e.vars[5][10] ? ": " : "",
			       e.vars[5] + 10);
		rc = n->cmd ? run_cmd("notify", n->cmd, n->timeout_ms, v, why, sizeof(why)) : 0;
		if (rc < 0)
			log_warn("notify: %s (%s); nothing else changes", why, e.vars[0]);
		pthread_mutex_lock(&n->mu);
	}
	pthread_mutex_unlock(&n->mu);
	return NULL;
}

int notify_start(const char *cmd, unsigned timeout_ms, const char *role, struct notify **out)
{
	struct notify *n;
	int rc;

	*out = NULL;
	/* Without hooks the thread still tells systemd of each event, when
	 * it runs under systemd. */
	if (!cmd && !getenv("NOTIFY_SOCKET"))
		return 0;
	n = calloc(1, sizeof(*n));
	if (!n || (cmd && !(n->cmd = strdup(cmd)))) {
		free(n);
		return -ENOMEM;
	}
	n->timeout_ms = timeout_ms;
	snprintf(n->role, sizeof(n->role), "%s", role);
	pthread_mutex_init(&n->mu, NULL);
	pthread_cond_init(&n->cv, NULL);
	rc = -pthread_create(&n->thread, NULL, notify_main, n);
	if (rc < 0) {
		pthread_cond_destroy(&n->cv);
		pthread_mutex_destroy(&n->mu);
		free(n->cmd);
		free(n);
		return rc;
	}
	*out = n;
	return 0;
}

void notify_event(struct notify *n, const char *event, const char *domain, const char *peer,
		  uint64_t epoch, const char *reason)
{
	struct timespec now;
	struct tm tm;
	char ts[32];

	if (!n)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	pthread_mutex_lock(&n->mu);
	if (n->len == NOTIFY_QUEUE) {
		n->dropped++;
		pthread_mutex_unlock(&n->mu);
		log_warn("notify: %llu event(s) dropped (the hook is slower than the events); "
			 "this one was %s",
			 (unsigned long long)n->dropped, event);
		return;
	}
	struct event *e = &n->q[(n->head + n->len) % NOTIFY_QUEUE];
	snprintf(e->vars[0], sizeof(e->vars[0]), "HA_EVENT=%s", event);
	snprintf(e->vars[1], sizeof(e->vars[1]), "HA_ROLE=%s", n->role);
	snprintf(e->vars[2], sizeof(e->vars[2]), "HA_DOMAIN=%s", domain ? domain : "");
	snprintf(e->vars[3], sizeof(e->vars[3]), "HA_PEER=%s", peer ? peer : "");
	if (epoch == NOTIFY_NO_EPOCH)
		snprintf(e->vars[4], sizeof(e->vars[4]), "HA_EPOCH=");
	else
		snprintf(e->vars[4], sizeof(e->vars[4]), "HA_EPOCH=%llu",
			 (unsigned long long)epoch);
	snprintf(e->vars[5], sizeof(e->vars[5]), "HA_REASON=%s", reason ? reason : "");
	snprintf(e->vars[6], sizeof(e->vars[6]), "HA_TIME=%s.%03ldZ", ts, now.tv_nsec / 1000000);
	snprintf(e->vars[7], sizeof(e->vars[7]), "HA_SEQ=%llu", (unsigned long long)++n->seq);
	n->len++;
	pthread_cond_signal(&n->cv);
	pthread_mutex_unlock(&n->mu);
}

void notify_stop(struct notify *n)
{
	if (!n)
		return;
	pthread_mutex_lock(&n->mu);
	n->stop = true;
	pthread_cond_signal(&n->cv);
	pthread_mutex_unlock(&n->mu);
	pthread_join(n->thread, NULL);
	pthread_cond_destroy(&n->cv);
	pthread_mutex_destroy(&n->mu);
	free(n->cmd);
	free(n);
}
