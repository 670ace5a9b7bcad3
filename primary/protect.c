#include "primary/protect.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "checkpoint/codec.h"
#include "checkpoint/extdev.h"
#include "checkpoint/stream.h"
#include "common/bitmap.h"
#include "common/clock.h"
#include "common/ctl.h"
#include "common/hist.h"
#include "common/log.h"
#include "common/service.h"
#include "common/sock.h"
#include "failover/link.h"
#include "primary/devset.h"
#include "primary/interval.h"
#include "primary/lease.h"
#include "primary/status.h"
#include "primary/prot_int.h"


static volatile sig_atomic_t stop_flag;

void prot_set_state(struct prot *p, enum prot_state s)
{
	if (p->state != s || !p->state_since_ns)
		p->state_since_ns = clk_now_ns();
	p->state = s;
}

void prot_request_stop(void)
{
	stop_flag = 1;
}

bool prot_stop_requested(void)
{
	return stop_flag;
}

/* ------------------------------------------------------------------ */

void prot_degrade(struct prot *p, const char *fmt, ...)
{
	va_list ap;
	bool first = false;
	int64_t acked;

	pthread_mutex_lock(&p->mu);
	acked = p->acked;
	if (p->state == ST_SYNC || p->state == ST_PROTECTED) {
		va_start(ap, fmt);
		vsnprintf(p->reason, sizeof(p->reason), fmt, ap);
		va_end(ap);
		prot_set_state(p, ST_DEGRADED);
		p->stats.degradations++;
		first = true;
	}
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	if (first) {
		if (p->lease)
			lease_secondary_lost(p->lease);
		log_error("secondary lost: %s", p->reason);
		notify_event(p->notify, "degraded", p->cfg->domain, p->cfg->peer,
			     acked < 0 ? NOTIFY_NO_EPOCH : (uint64_t)acked, p->reason);
		if (p->cfg->witness)
			log_error("DEGRADED: the domain runs UNPROTECTED until the secondary is "
				  "back, its held output released only under the witness's lease");
		else
			log_error("DEGRADED: releasing held output; the domain runs UNPROTECTED "
				  "until the secondary is back");
	}
	if (p->link)
		fo_link_shutdown(p->link);
}

bool prot_running(struct prot *p, enum prot_state want)
{
	bool ok;

	pthread_mutex_lock(&p->mu);
	ok = p->state == want && !stop_flag;
	pthread_mutex_unlock(&p->mu);
	return ok;
}

/* One --event-log line (protect.h) stamped at T: after the event for
 * closed/released/setup, before what it permits for ack. */
void prot_event_at(struct prot *p, uint64_t t, const char *what, int64_t epoch)
{
	if (!p->events)
		return;
	if (epoch < 0)
		fprintf(p->events, "%llu %s\n", (unsigned long long)t, what);
	else
		fprintf(p->events, "%llu %s %lld\n", (unsigned long long)t, what, (long long)epoch);
}

void prot_event(struct prot *p, const char *what, int64_t epoch)
{
	prot_event_at(p, clk_now_ns(), what, epoch);
}

static int sink_record(void *ctx, uint32_t type, const struct iovec *iov, int iovcnt)
{
	struct prot *p = ctx;

	return fo_link_record(p->link, type, iov, iovcnt);
}

static bool sink_cancelled(void *ctx)
{
	struct prot *p = ctx;

	return !prot_running(p, ST_SYNC);
}

/* Devices that replicate state of their own start now, beside pre-copy. */
static int devs_connect(struct prot *p)
{
	struct ckpt_sink sink = {.record = sink_record, .cancelled = sink_cancelled, .ctx = p};

	pthread_mutex_lock(&p->mu);
	sink.resync_full = p->resync_full;
	/* Kept until the session is protected (session_protected): the acker
	 * replaces them only after the devices have connected. */
	for (unsigned i = 0; i < CKPT_DISK_MAX; i++) {
		sink.need[i] = p->need[i];
		sink.need_len[i] = p->need_len[i];
	}
	pthread_mutex_unlock(&p->mu);
	return devset_connect(p->devs, &sink);
}

static void devs_event(void *ctx, const char *what)
{
	prot_event(ctx, what, -1);
}

/* ------------------------------------------------------------------ */

/* The --save file: it holds the guest's memory, so it is the owner's
 * alone (0600, also when it existed with a wider mode). */
static int open_save(const char *path)
{
	struct stat st;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077) &&
	    fchmod(fd, 0600) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

static int open_link(struct prot *p)
{
	int fd;

	if (p->cfg->blackhole) {
		const char *path = p->cfg->save_path ? p->cfg->save_path : "/dev/null";

		fd = open_save(path);
		if (fd < 0)
			return fd;
		p->file_fd = fd;
		return fo_link_new(fd, 0, &p->link);
	}
	fd = sock_tcp_connect(p->cfg->peer, (int)p->cfg->timeout_ms * 4);
	if (fd < 0)
		return fd;
	char err[320] = "";
	int rc = fo_link_open(fd, p->cfg->timeout_ms, p->cfg->tls, &p->link, err, sizeof(err));

	if (rc < 0 && err[0])
		log_error("secondary %s: %s", p->cfg->peer, err);
	else if (rc == 0)
		log_info("link to %s: %s", p->cfg->peer, fo_link_security(p->link));
	return rc;
}

/* The connection broke while the stream's start was being written: the
 * secondary may have said why (HA_ERROR, e.g. busy) before hanging up. */
static void log_start_failure(struct prot *p, int rc)
{
	struct ckpt_reader *r = fo_link_reader(p->link);
	struct ckpt_record rec;

	if (!p->cfg->blackhole && ckpt_reader_headers(r, CKPT_IHDR_ID_BACK) == 0 &&
	    fo_link_next(p->link, &rec) == 0 && rec.type == CKPT_REC_HA_ERROR) {
		const struct ckpt_ha_error_hdr *h = (const void *)rec.body;

		log_error("the secondary %s refused this primary: %.*s (%s)", p->cfg->peer,
			  (int)(rec.length - sizeof(*h)), (const char *)(rec.body + sizeof(*h)),
			  strerror((int)h->code));
		return;
	}
	log_error("secondary %s: the connection broke at its start (%s)%s",
		  p->cfg->blackhole ? "(file)" : p->cfg->peer, strerror(-rc),
		  p->cfg->tls || p->cfg->blackhole
		      ? ""
		      : "; a secondary that wants TLS drops a plain --insecure primary like "
			"this: give both hosts the same --tls-* settings");
}

/* A new session starts from epoch 0 with empty staging. */
static void session_reset(struct prot *p)
{
	pthread_mutex_lock(&p->mu);
	p->next_epoch = 0;
	p->frozen = false;
	p->switch_epoch = -1;
	p->switch_answer = 0;
	p->peer_error = 0;
	p->sent = p->acked = -1;
	/* A switchover asked of a session that ended before it began is
	 * not carried into the next one (--migrate asks anew). */
	atomic_store(&p->switchover_req, false);
	p->qhead = p->qlen = 0;
	for (unsigned i = 0; i < NSLOTS; i++)
		p->slots[i].busy = false;
	pthread_mutex_unlock(&p->mu);
	atomic_store(&p->committed, UINT64_MAX);
	ckpt_encoder_reset(p->enc);
}

/* The stream's start, the back channel, the devices' own replication,
 * pre-copy and the devices' setup (from which they hold output), then the
 * sender: once this returns 0 the session is protected. */
static int session_sync(struct prot *p)
{
	int rc;

	if (p->save_fd >= 0)
		fo_link_tee(p->link, p->save_fd);
	rc = fo_link_headers(p->link, CKPT_IHDR_ID_XEN, p->info.domain_type, p->info.xen_major,
			     p->info.xen_minor);
	/* This side's down timer before the configuration: the secondary
	 * learns it before it creates the incoming domain, which may take
	 * longer than the timer, and heartbeats at its pace meanwhile. */
	if (rc == 0 && !p->cfg->blackhole)
		rc = fo_link_heartbeat_start(p->link, &p->committed);
	if (rc == 0)
		rc = prot_send_config(p);
	if (rc < 0) {
		log_start_failure(p, rc);
		return rc;
	}
	if (!p->cfg->blackhole) {
		rc = -pthread_create(&p->acker, NULL, prot_acker_main, p);
		p->acker_running = rc == 0;
		if (rc < 0)
			return rc;
	}
	rc = devs_connect(p);
	if (rc < 0) {
		prot_degrade(p, "cannot start disk replication: %s", strerror(-rc));
		return rc;
	}
	rc = prot_precopy(p);
	if (rc < 0)
		return rc;
	rc = devset_setup(p->devs);
	if (rc < 0) {
		prot_degrade(p, "cannot set up the checkpoint devices: %s", strerror(-rc));
		return rc;
	}
	rc = -pthread_create(&p->sender, NULL, prot_sender_main, p);
	p->sender_running = rc == 0;
	return rc;
}

static void session_protected(struct prot *p, bool first)
{
	pthread_mutex_lock(&p->mu);
	if (p->state == ST_SYNC)
		prot_set_state(p, ST_PROTECTED);
	/* The chunks the replicas asked for were resent. */
	for (unsigned i = 0; i < CKPT_DISK_MAX; i++) {
		free(p->need[i]);
		p->need[i] = NULL;
	}
	pthread_mutex_unlock(&p->mu);
	if (!prot_running(p, ST_PROTECTED))
		return;
	if (!first) {
		pthread_mutex_lock(&p->mu);
		p->stats.reprotections++;
		pthread_mutex_unlock(&p->mu);
		log_rl_end(&p->retry_rl);
	}
	if (p->cfg->on_copy && !p->cfg->blackhole)
		p->cfg->on_copy(p->cfg->on_copy_ctx, true);
	notify_event(p->notify, first ? "protected" : "reprotected", p->cfg->domain,
		     p->cfg->blackhole ? NULL : p->cfg->peer, NOTIFY_NO_EPOCH, NULL);
	log_info("PROTECTED: checkpointing every %u ms to %s", atomic_load(&p->interval_ms),
		 p->cfg->blackhole ? "a file (no secondary)" : p->cfg->peer);
}

/* Winds a session down after RC (LOOP_FAILED: from the epoch loop): a clean
 * stop drains the sender and ends the stream; then the held output is
 * released, dropped or kept held, as below. */
static void session_end(struct prot *p, int rc, bool loop_failed)
{
	pthread_mutex_lock(&p->mu);
	bool clean = p->state == ST_PROTECTED || p->state == ST_SYNC;
	if (clean)
		prot_set_state(p, ST_STOPPING);
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	if (p->sender_running) {
		pthread_join(p->sender, NULL);
		p->sender_running = false;
	}
	/* END also when a checkpoint failed but the domain lives on (it runs
	 * unprotected, the secondary must not start a second copy), and when
	 * the guest ended itself (not a host failure: the secondary discards
	 * its copy rather than resurrect it). No END when the domain is gone
	 * (destroyed) or stuck suspended: then the secondary takes over. */
	bool ended = clean &&
		     (stop_flag || p->guest_ended || (loop_failed && rc != -ESRCH && !p->frozen)) &&
		     fo_link_end(p->link) == 0;
	/* The secondary answers END with END. Until then (or until the
	 * acker's down timer runs out: a partition), the output of epochs it
	 * has not acknowledged stays held, as it may still activate its copy. */
	if (!ended)
		fo_link_shutdown(p->link);
	if (p->acker_running) {
		pthread_join(p->acker, NULL);
		p->acker_running = false;
	}
	fo_link_shutdown(p->link);
	if (ended)
		log_info("END %s", p->end_confirmed ? "confirmed by the secondary: it discards its copy"
						    : "not confirmed by the secondary: it may take over");
	if (ended && p->end_confirmed && p->cfg->on_copy && !p->cfg->blackhole)
		p->cfg->on_copy(p->cfg->on_copy_ctx, false);
	/* A domain that is gone (or stuck suspended) releases nothing it
	 * still holds and claims nothing: the secondary's copy is all that is
	 * left of it. */
	if (rc == -ESRCH || p->frozen)
		devset_discard(p->devs);
	else if (p->switch_end != SW_NONE || p->end_confirmed || !p->lease ||
		 lease_may_release(p->lease))
		devset_teardown(p->devs); /* handed over: all was acknowledged */
	if (p->ops->dirty_stop)
		p->ops->dirty_stop(p->dom);
	fo_link_free(p->link);
	p->link = NULL;
	p->file_fd = -1;
	log_set_epoch(LOG_NO_EPOCH);
}

/* One protection session: connect, synchronise, run epochs until the
 * secondary is lost or a stop is requested. */
static int session(struct prot *p, bool first)
{
	bool loop_failed = false;
	int rc;

	session_reset(p);
	p->session_t0 = clk_now_ns();
	/* A migration starts by asking its external devices whether it can
	 * happen: before the secondary is even reached. */
	if (p->cfg->migrate && p->cfg->ext) {
		char why[300];

		extdev_begin(p->cfg->ext, EXTDEV_MIGRATE);
		rc = extdev_phase(p->cfg->ext, EXTDEV_MIGRATE, EXTDEV_CHECK, EXTDEV_NO_EPOCH, why,
				  sizeof(why));
		if (rc < 0) {
			pthread_mutex_lock(&p->mu);
			snprintf(p->reason, sizeof(p->reason), "%.200s", why);
			pthread_mutex_unlock(&p->mu);
			return rc;
		}
	}
	rc = open_link(p);
	if (rc < 0) {
		if (first)
			log_error("cannot reach the secondary at %s: %s", p->cfg->peer,
				  rc == -ENXIO ? sock_tcp_strerror(rc) : strerror(-rc));
		return rc;
	}
	/* Degraded until now; from here a failure degrades this session. */
	if (p->lease && lease_session_begins(p->lease) < 0) {
		fo_link_free(p->link);
		p->link = NULL;
		return -EAGAIN;
	}
	pthread_mutex_lock(&p->mu);
	p->end_confirmed = false;
	prot_set_state(p, ST_SYNC);
	p->reason[0] = '\0';
	pthread_mutex_unlock(&p->mu);

	rc = session_sync(p);
	if (rc == 0) {
		session_protected(p, first);
		rc = prot_epoch_loop(p);
		if (rc == PROT_LOOP_SWITCHOVER)
			rc = p->cfg->blackhole ? prot_save_stop(p) : prot_switchover(p);
		loop_failed = rc < 0;
	}
	session_end(p, rc, loop_failed);
	return rc;
}

/* ------------------------------------------------------------------ */

/* "status" (text), "status json", "metrics" (Prometheus). */
static int show(struct prot *p, const char *arg, FILE *out, bool metrics)
{
	struct prot_status st = {
		.domain = p->cfg->domain,
		.peer = p->cfg->blackhole ? NULL : p->cfg->peer,
		.sla_p99_ms = p->cfg->sla_p99_ms,
		.interval_min_ms = p->cfg->interval_min_ms,
		.interval_max_ms = p->cfg->interval_max_ms,
	};
	char wit[400];
	struct report *r;
	int rc;

	if (!metrics && *arg && strcmp(arg, "json")) {
		fprintf(out, "error: status takes no argument but json\n");
		return -EINVAL;
	}
	pthread_mutex_lock(&p->mu);
	st.state = prot_state_names[p->state];
	st.state_idx = p->state;
	st.state_since_ns = p->state_since_ns;
	snprintf(st.reason, sizeof(st.reason), "%s", p->reason);
	st.epoch = p->next_epoch;
	st.acked = p->acked;
	st.stats = p->stats;
	st.auto_on = p->auto_on;
	st.sync = p->sync;
	st.now_ns = clk_now_ns();
	/* Output of epoch acked+1 on is held: it began when epoch acked's
	 * pause did, at the earliest. */
	if (p->state == ST_PROTECTED && p->acked >= 0 &&
	    p->next_epoch - (uint64_t)p->acked < LAT_RING)
		st.held_age_ns = st.now_ns - p->paused_at[(uint64_t)p->acked % LAT_RING];
	if (p->auto_on)
		ival_estimate(&p->ival, &st.est);
	pthread_mutex_unlock(&p->mu);
	st.interval_ms = atomic_load(&p->interval_ms);
	if (metrics || *arg)
		st.held_known = devset_held(p->devs, &st.held_packets, &st.held_bytes);
	if (p->lease) {
		lease_status(p->lease, wit, sizeof(wit));
		lease_info(p->lease, &st.lease);
		st.witness = wit;
	}
	if (!metrics && !*arg) {
		prot_status_print(&st, out);
		devset_status(p->devs, out);
		return 0;
	}
	rc = report_new(out, metrics ? REPORT_PROM : REPORT_JSON, "ha_protect", &r);
	if (rc < 0)
		return rc;
	prot_status_report(&st, r);
	return report_finish(r);
}

static int cmd_status(void *ctx, const char *arg, FILE *out)
{
	return show(ctx, arg, out, false);
}

static int cmd_metrics(void *ctx, const char *arg, FILE *out)
{
	(void)arg;
	return show(ctx, "", out, true);
}

static int cmd_interval(void *ctx, const char *arg, FILE *out)
{
	struct prot *p = ctx;
	char *end;
	unsigned long ms = strtoul(arg, &end, 10);

	if (!strcmp(arg, "auto")) {
		if (!p->cfg->sla_p99_ms) {
			fprintf(out, "error: no p99 target: start ha-protect with "
				     "--interval auto --sla-p99 MS\n");
			return -EINVAL;
		}
		pthread_mutex_lock(&p->mu);
		struct ival_config ic = {
			.target_us = p->cfg->sla_p99_ms * 1000,
			.min_ms = p->cfg->interval_min_ms,
			.max_ms = p->cfg->interval_max_ms,
			.start_ms = atomic_load(&p->interval_ms),
		};
		ival_init(&p->ival, &ic);
		p->auto_on = true;
		pthread_mutex_unlock(&p->mu);
		log_info("interval: automatic again (p99 target %u ms)", p->cfg->sla_p99_ms);
		fprintf(out, "ok: interval auto\n");
		return 0;
	}
	if (!*arg || *end || ms < 1 || ms > 60000) {
		fprintf(out, "error: interval must be 1..60000 ms, or auto\n");
		return -EINVAL;
	}
	pthread_mutex_lock(&p->mu);
	bool was_auto = p->auto_on;
	p->auto_on = false;
	atomic_store(&p->interval_ms, (unsigned)ms);
	pthread_mutex_unlock(&p->mu);
	log_info("interval set to %lu ms%s", ms,
		 was_auto ? " (automatic tuning off; 'ha-ctl interval DOMAIN auto' resumes it)"
			  : "");
	fprintf(out, "ok: interval %lu ms\n", ms);
	return 0;
}

static int cmd_switchover(void *ctx, const char *arg, FILE *out)
{
	struct prot *p = ctx;
	bool ok;

	if (arg && *arg) {
		fprintf(out, "error: switchover takes no argument\n");
		return -EINVAL;
	}
	pthread_mutex_lock(&p->mu);
	ok = p->state == ST_PROTECTED && !p->cfg->blackhole && p->switch_epoch < 0;
	pthread_mutex_unlock(&p->mu);
	if (!ok) {
		fprintf(out, "error: %s is not protected now, or a switchover is under way: a "
			     "switchover needs a secondary that holds its copy (ha-ctl status)\n",
			p->cfg->domain);
		return -EAGAIN;
	}
	atomic_store(&p->switchover_req, true);
	fprintf(out, "ok: switchover of %s to %s: the next checkpoint is the last here; the domain "
		     "then runs on %s (ha-protect logs \"SWITCHOVER complete\" and exits)\n",
		p->cfg->domain, p->cfg->peer, p->cfg->peer);
	return 0;
}

static int cmd_verify(void *ctx, const char *arg, FILE *out)
{
	struct prot *p = ctx;

	if (*arg) {
		fprintf(out, "error: verify takes no argument\n");
		return -EINVAL;
	}
	if (p->cfg->blackhole) {
		fprintf(out, "error: no secondary to verify against\n");
		return -EINVAL;
	}
	atomic_store(&p->verify_req, true);
	fprintf(out, "ok: the next checkpoint carries a hash of every page; the secondary "
		     "compares its copy and reports in its log and its status (last_verify)\n");
	return 0;
}

static const struct ctl_cmd prot_cmds[] = {
	{"status", "status [json]", cmd_status},
	{"metrics", "metrics", cmd_metrics},
	{"interval", "interval MS|auto", cmd_interval},
	{"verify", "verify", cmd_verify},
	{"switchover", "switchover", cmd_switchover},
};

static int slots_init(struct prot *p)
{
	size_t n = p->info.nr_pages;

	for (unsigned i = 0; i < NSLOTS; i++) {
		struct slot *s = &p->slots[i];

		s->pages = mmap(NULL, n * CKPT_PAGE_SIZE, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (s->pages == MAP_FAILED) {
			s->pages = NULL;
			return -ENOMEM;
		}
		s->pfns = malloc(n * sizeof(*s->pfns));
		s->ptrs = malloc(n * sizeof(*s->ptrs));
		if (!s->pfns || !s->ptrs)
			return -ENOMEM;
	}
	return 0;
}

static void slots_free(struct prot *p)
{
	for (unsigned i = 0; i < NSLOTS; i++) {
		struct slot *s = &p->slots[i];

		if (s->pages)
			munmap(s->pages, p->info.nr_pages * CKPT_PAGE_SIZE);
		free(s->pfns);
		free(s->ptrs);
		hv_state_free(&s->st);
	}
}

/* Everything a protection needs before its first session: a linear
 * sequence, each failure logged. */
static int prot_setup(struct prot *p, const struct hv_save_ops *ops, struct hv_dom *dom)
{
	const struct prot_config *cfg = p->cfg;
	struct ckpt_codec_config cc = {.cache_pages = cfg->cache_pages, .level = cfg->level};
	int rc;

	atomic_store(&p->interval_ms, cfg->interval_ms);
	if (cfg->sla_p99_ms) {
		struct ival_config ic = {
			.target_us = cfg->sla_p99_ms * 1000,
			.min_ms = cfg->interval_min_ms,
			.max_ms = cfg->interval_max_ms,
			.start_ms = cfg->interval_min_ms,
		};

		if (ival_init(&p->ival, &ic) < 0) {
			log_error("--interval auto: the range %u..%u ms is empty", cfg->interval_min_ms,
				  cfg->interval_max_ms);
			return -EINVAL;
		}
		p->auto_on = true;
		atomic_store(&p->interval_ms, p->ival.cur_ms);
	}
	rc = devset_new(cfg->devs, cfg->ndevs, devs_event, p, &p->devs);
	if (rc < 0) {
		log_error("cannot set up the checkpoint devices: %s", strerror(-rc));
		return rc;
	}
	rc = ops->info(dom, &p->info);
	if (rc < 0) {
		log_error("cannot read the domain's configuration: %s", strerror(-rc));
		return rc;
	}
	rc = bitmap_init(&p->dirty, p->info.nr_pages);
	if (rc == 0)
		rc = slots_init(p);
	if (rc == 0)
		rc = ckpt_encoder_new(&cc, &p->enc);
	if (rc < 0) {
		log_error("cannot allocate staging for %llu pages: %s",
			  (unsigned long long)p->info.nr_pages, strerror(-rc));
		return rc;
	}
	if (cfg->save_path && !cfg->blackhole) {
		p->save_fd = open_save(cfg->save_path);
		if (p->save_fd < 0) {
			rc = p->save_fd;
			log_error("cannot create %s: %s", cfg->save_path, strerror(-rc));
			return rc;
		}
	}
	rc = notify_start(cfg->notify_cmd, cfg->notify_timeout_ms, "primary", &p->notify);
	if (rc < 0) {
		log_error("cannot start the event hooks: %s", strerror(-rc));
		return rc;
	}
	if (cfg->event_log) {
		p->events = fopen(cfg->event_log, "ae");
		if (!p->events) {
			rc = -errno;
			log_error("cannot open the event log %s: %s", cfg->event_log,
				  strerror(errno));
			return rc;
		}
		/* Whole lines reach the file at once: a killed run leaves no torn one. */
		setvbuf(p->events, NULL, _IOLBF, 0);
	}
	if (cfg->ctl_path) {
		p->cmds = (struct ctl_commands){prot_cmds, sizeof(prot_cmds) / sizeof(prot_cmds[0]),
						p, &stop_flag};
		rc = ctl_server_start(cfg->ctl_path, ctl_dispatch, &p->cmds, &p->ctl);
		if (rc < 0) {
			log_error("control socket %s: %s%s", cfg->ctl_path, strerror(-rc),
				  rc == -EADDRINUSE ? " (is this domain already protected?)" : "");
			return rc;
		}
	}
	service_ready("%s: starting protection to %s", cfg->domain,
		      cfg->peer ? cfg->peer : "nowhere (-b)");

	if (cfg->witness) {
		struct lease_config lc = {
			.witness = cfg->witness,
			.tls = cfg->witness_tls,
			.pair = p->info.name,
			.domain = cfg->domain,
			.ttl_ms = cfg->witness_ttl_ms,
			.ops = ops,
			.dom = dom,
			.devs = p->devs,
			.notify = p->notify,
		};

		rc = lease_start(&lc, &p->lease);
		if (rc < 0) {
			log_error("cannot start the witness thread: %s", strerror(-rc));
			return rc;
		}
	}
	return 0;
}

/* Sessions, one after the other, until a stop or the end of the domain:
 * 0, or -errno when the first one failed for want of anything working (a
 * configuration problem, logged). */
static int run_sessions(struct prot *p)
{
	int rc;

	for (bool first = true; !stop_flag; first = false) {
		if (!first && p->lease && lease_blocks(p->lease)) {
			/* Paused for want of the lease: the witness thread decides. */
			clk_sleep_until_ns(clk_now_ns() + 20 * NSEC_PER_MSEC);
			continue;
		}
		rc = session(p, first);
		if (p->switch_end != SW_NONE)
			break; /* handed over, or not known whether: never here again */
		if (p->cfg->migrate) {
			log_error("MIGRATION FAILED%s%s: the domain runs on here (unprotected); run "
				  "ha-protect --migrate again once the cause is fixed",
				  p->reason[0] ? ": " : "", p->reason);
			return rc < 0 ? rc : -EIO;
		}
		if (stop_flag)
			break;
		if (rc == -ESHUTDOWN || p->guest_ended) {
			log_error("the guest ended itself (its reason is above): protection ends; the "
				  "secondary was told to discard its copy. Start the guest again and "
				  "protect it anew");
			break;
		}
		if (rc == -ESRCH) {
			/* The domain itself is gone (destroyed or crashed): nothing is
			 * left to protect, and the secondary, which saw the stream
			 * break without END, takes over. */
			log_error("the protected domain is gone; stopping");
			p->domain_gone = true;
			break;
		}
		if (first && p->stats.epochs == 0 && rc < 0 && rc != -ECANCELED &&
		    p->stats.degradations == 0) {
			/* Nothing ever worked: a configuration problem, say so and stop. */
			return rc;
		}
		if (p->cfg->blackhole) {
			log_error("writing the stream failed; stopping");
			break;
		}
		pthread_mutex_lock(&p->mu);
		prot_set_state(p, ST_DEGRADED);
		pthread_mutex_unlock(&p->mu);
		log_rl_msg(&p->retry_rl, LOG_LVL_WARN,
			   "degraded: retrying the secondary at %s every %u ms", p->cfg->peer,
			   p->cfg->retry_ms);
		clk_sleep_until_or(clk_now_ns() + (uint64_t)p->cfg->retry_ms * NSEC_PER_MSEC,
				   prot_stop_requested);
	}
	return 0;
}

static void prot_free(struct prot *p)
{
	lease_free(p->lease);
	notify_stop(p->notify);
	ctl_server_stop(p->ctl);
	if (p->events)
		fclose(p->events);
	if (p->save_fd >= 0)
		close(p->save_fd);
	ckpt_encoder_free(p->enc);
	for (unsigned i = 0; i < CKPT_DISK_MAX; i++)
		free(p->need[i]);
	slots_free(p);
	bitmap_destroy(&p->dirty);
	bitmap_destroy(&p->pc_need);
	pthread_cond_destroy(&p->cv);
	devset_free(p->devs);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

int prot_run(const struct prot_config *cfg, const struct hv_save_ops *ops, struct hv_dom *dom)
{
	struct prot *p = calloc(1, sizeof(*p));
	int rc;

	if (!p)
		return -ENOMEM;
	p->cfg = cfg;
	p->ops = ops;
	p->dom = dom;
	p->save_fd = p->file_fd = -1;
	prot_set_state(p, ST_SYNC);
	pthread_mutex_init(&p->mu, NULL);
	clk_cond_init(&p->cv);
	rc = prot_setup(p, ops, dom);
	if (rc == 0)
		rc = run_sessions(p);
	if (rc == 0) {
		rc = p->stopped_saved ? 0 : p->guest_ended ? -ESHUTDOWN : p->domain_gone ? -ESRCH : 0;
		if (p->switch_end == SW_DONE)
			rc = PROT_HANDED_OVER;
		else if (p->switch_end == SW_UNCONFIRMED)
			rc = -EINPROGRESS;
		/* No more renewals: the secondary waits for this lease to expire. */
		lease_stop(p->lease);
		log_info("stopped after %llu epochs; pause us: p50 %llu p99 %llu max %llu, %llu "
			 "pages per epoch",
			 (unsigned long long)p->stats.epochs,
			 (unsigned long long)hist_quantile(&p->stats.pause_us, 0.5),
			 (unsigned long long)hist_quantile(&p->stats.pause_us, 0.99),
			 (unsigned long long)(p->stats.pause_ns_max / 1000),
			 (unsigned long long)(p->stats.epochs ? p->stats.pages_sum / p->stats.epochs
							      : 0));
		notify_event(p->notify, "stopped", cfg->domain, cfg->blackhole ? NULL : cfg->peer,
			     p->acked < 0 ? NOTIFY_NO_EPOCH : (uint64_t)p->acked,
			     p->guest_ended	    ? "the guest shut down, rebooted or crashed"
			     : p->domain_gone	    ? "the domain is gone: the secondary takes over"
			     : p->switch_end == SW_DONE ? "handed over to the secondary (switchover)"
			     : p->switch_end		    ? "switchover unconfirmed"
							    : "protection stopped");
		if (p->lease && lease_blocks(p->lease)) {
			log_warn("the domain stays PAUSED%s: resume it by hand only once you know "
				 "the secondary did not activate its copy",
				 lease_output_held(p->lease) ? " and its held output is dropped"
							     : "");
			if (rc == 0)
				rc = -ESTALE;
		}
	}
	prot_free(p);
	return rc;
}
