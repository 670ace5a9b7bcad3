#include "secondary/receive.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include "checkpoint/codec.h"
#include "checkpoint/stream.h"
#include "common/clock.h"
#include "common/ctl.h"
#include "common/io.h"
#include "common/log.h"
#include "common/report.h"
#include "common/service.h"
#include "common/sock.h"
#include "diskrepl/drbd.h"
#include "failover/link.h"
#include "diskrepl/replica.h"
#include "secondary/ckbuf.h"
#include "secondary/rx_int.h"

static volatile sig_atomic_t stop_flag;

void rx_request_stop(void)
{
	stop_flag = 1;
}

bool rx_stop_requested(void)
{
	return stop_flag;
}

static const char *const rx_state_names[] = {"waiting for a primary", "syncing", "protected",
					     "fencing the primary (not active)", "failing over",
					     "active (failed over)"};


/* Stable identifiers of the states, for machines (status --json, metrics). */
static const char *const rx_state_ids[] = {"waiting", "syncing", "protected",
					   "fencing", "failing_over", "active"};

void rx_set_state_locked(struct rx *x, enum rx_state s)
{
	if (x->state != s || !x->state_since_ns)
		x->state_since_ns = clk_now_ns();
	x->state = s;
}

void rx_set_state(struct rx *x, enum rx_state s)
{
	pthread_mutex_lock(&x->mu);
	rx_set_state_locked(x, s);
	pthread_mutex_unlock(&x->mu);
}

/* DRBD's own view of each resource, read now. */
static void report_drbd(struct rx *x, struct report *r)
{
	bool json = report_format(r) == REPORT_JSON;
	struct drbd_state st[CKPT_DISK_MAX];
	int rc[CKPT_DISK_MAX];

	if (!x->cfg->ndrbd)
		return;
	for (unsigned i = 0; i < x->cfg->ndrbd; i++)
		rc[i] = drbd_read_state(x->drbd[i].minor, &st[i]);
	if (json)
		report_begin(r, "drbd");
	/* Prometheus: each family's samples together, one per resource. */
	for (int m = 0; m < (json ? 1 : 3); m++) {
		for (unsigned i = 0; i < x->cfg->ndrbd; i++) {
			bool ok = rc[i] == 0;

			if (json) {
				report_begin(r, x->drbd[i].name);
				report_str(r, "device", x->drbd[i].dev);
				report_str(r, "connection", ok ? st[i].cs : NULL);
				report_str(r, "role", ok ? st[i].role : NULL);
				report_str(r, "disk", ok ? st[i].disk : NULL);
				report_str(r, "peer_disk", ok ? st[i].peer_disk : NULL);
			} else {
				report_sample_label(r, "resource", x->drbd[i].name);
			}
			if (json || m == 0)
				report_bool(r, "drbd_connected", ok && !strcmp(st[i].cs, "Connected"),
					    "DRBD's connection state is Connected");
			if (json || m == 1)
				report_bool(r, "drbd_uptodate", ok && !strcmp(st[i].disk, "UpToDate"),
					    "this host's DRBD disk is UpToDate");
			if (json || m == 2)
				report_gauge(r, "drbd_out_of_sync_bytes",
					     ok ? (double)st[i].oos_kib * 1024 : -1,
					     "what DRBD has to resynchronise (-1: unreadable)");
			if (json)
				report_end(r);
		}
	}
	report_sample_label(r, NULL, NULL);
	if (json)
		report_end(r);
}

/* status json, metrics */
static int rx_report(struct rx *x, FILE *out, bool metrics)
{
	uint64_t c = atomic_load(&x->committed), now = clk_now_ns();
	struct report *r;
	int rc;

	rc = report_new(out, metrics ? REPORT_PROM : REPORT_JSON, "ha_receive", &r);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&x->mu);
	report_label(r, "domain", x->domain);
	report_str(r, "role", "secondary");
	report_str(r, "peer", x->peer[0] ? x->peer : NULL);
	report_state(r, "state", rx_state_ids, sizeof(rx_state_ids) / sizeof(rx_state_ids[0]),
		     x->state, "the copy's state (1: the current one)");
	report_gauge(r, "state_seconds", (double)(now - x->state_since_ns) / 1e9,
		     "time in the current state");
	report_int(r, "committed_epoch", c == UINT64_MAX ? -1 : (int64_t)c,
		   "the epoch a failover resumes (-1: none)");
	report_gauge(r, "last_commit_age_seconds",
		     x->commit_at_ns ? (double)(now - x->commit_at_ns) / 1e9 : -1,
		     "time since the last checkpoint was committed (-1: none yet)");
	report_counter(r, "checkpoints", x->checkpoints, "checkpoints committed");
	report_counter(r, "pages", x->pages, "pages committed");
	report_counter(r, "bytes", x->bytes, "stream octets received");
	report_gauge(r, "apply_seconds", (double)x->apply_ns_last / 1e9,
		     "how long the last commit took");
	report_counter(r, "failovers", x->state == RX_ACTIVE,
		       "failovers of this domain to this host");
	report_gauge(r, "failover_seconds", x->state == RX_ACTIVE ? x->failover_ms / 1e3 : 0,
		     "how long the activation took (0: none)");
	report_begin(r, "fencing");
	report_bool(r, "witness", x->cfg->witness != NULL, "activation waits for the witness");
	report_bool(r, "command", x->cfg->fence_cmd != NULL,
		    "activation waits for the fence command");
	report_counter(r, "attempts", x->fence_attempts, "fencing attempts");
	report_str(r, "result", x->fence_attempts ? x->fence_result : NULL);
	report_end(r);
	report_str(r, "last_error", x->last_error[0] ? x->last_error : NULL);
	report_str(r, "last_verify", x->last_verify[0] ? x->last_verify : NULL);
	pthread_mutex_unlock(&x->mu);
	report_drbd(x, r);
	return report_finish(r);
}

static int cmd_metrics(void *ctx, const char *arg, FILE *out)
{
	(void)arg;
	return rx_report(ctx, out, true);
}

static int cmd_status(void *ctx, const char *arg, FILE *out)
{
	struct rx *x = ctx;
	uint64_t c = atomic_load(&x->committed);

	if (!strcmp(arg, "json"))
		return rx_report(x, out, false);
	if (*arg) {
		fprintf(out, "error: status takes no argument but json\n");
		return -EINVAL;
	}
	pthread_mutex_lock(&x->mu);
	fprintf(out, "role: secondary\ndomain: %s\nstate: %s\nprimary: %s\n", x->domain,
		rx_state_names[x->state], x->peer[0] ? x->peer : "(none)");
	if (c == UINT64_MAX)
		fprintf(out, "committed_epoch: none\n");
	else
		fprintf(out, "committed_epoch: %llu\n", (unsigned long long)c);
	fprintf(out, "checkpoints: %llu\npages: %llu\nbytes: %llu\napply_us: %llu\n",
		(unsigned long long)x->checkpoints, (unsigned long long)x->pages,
		(unsigned long long)x->bytes, (unsigned long long)(x->apply_ns_last / 1000));
	if (x->state == RX_ACTIVE)
		fprintf(out, "failover_ms: %llu\n", (unsigned long long)x->failover_ms);
	fprintf(out, "fencing: %s%s%s\n", x->cfg->witness ? "witness " : "",
		x->cfg->fence_cmd ? "command" : "",
		x->cfg->witness || x->cfg->fence_cmd ? "" : "none (unsafe)");
	if (x->fence_attempts)
		fprintf(out, "fence_attempts: %u\nfence_result: %s\n", x->fence_attempts,
			x->fence_result);
	if (x->last_error[0])
		fprintf(out, "last_error: %s\n", x->last_error);
	if (x->last_verify[0])
		fprintf(out, "last_verify: %s\n", x->last_verify);
	pthread_mutex_unlock(&x->mu);
	/* DRBD's own view, read now: an operator's first question on a
	 * failover that waits or refuses. */
	for (unsigned i = 0; i < x->cfg->ndrbd; i++) {
		struct drbd_state st;
		char line[160];
		int rc = drbd_read_state(x->drbd[i].minor, &st);

		if (rc == 0)
			drbd_state_str(&st, line, sizeof(line));
		else
			snprintf(line, sizeof(line), "unreadable: %s", strerror(-rc));
		fprintf(out, "drbd %s (%s): %s\n", x->drbd[i].name, x->drbd[i].dev, line);
	}
	return 0;
}

static const struct ctl_cmd rx_cmds[] = {
	{"status", "status [json]", cmd_status},
	{"metrics", "metrics", cmd_metrics},
};

static uint8_t *page_of(void *ctx, uint64_t pfn)
{
	struct rx *x = ctx;

	return x->ops->page(x->copy, pfn);
}

/* Sent once memory is committed and every replicated disk's epoch is
 * durable in its journal (with no disk, trivially). */
static int send_ack(struct fo_link *l, uint64_t epoch)
{
	struct ckpt_ha_ack a = {.epoch = epoch, .flags = CKPT_ACK_MEMORY | CKPT_ACK_DISK};
	struct iovec iov = {&a, sizeof(a)};

	return fo_link_record(l, CKPT_REC_HA_ACK, &iov, 1);
}

/* A disk record; -EPROTO for a stream that breaks its promises, another
 * -errno for a local failure (journal or replica), with err set. */
static int take_disk_record(struct rx *x, const struct ckpt_record *rec, char *err, size_t errlen)
{
	uint32_t disk;
	struct replica *rp;
	int rc;

	switch (rec->type) {
	case CKPT_REC_HA_DISK_CONFIG:
		disk = ((const struct ckpt_ha_disk_config *)rec->body)->disk;
		break;
	case CKPT_REC_HA_DISK_WRITE:
		disk = ((const struct ckpt_ha_disk_write_hdr *)rec->body)->disk;
		break;
	default:
		disk = ((const struct ckpt_ha_disk_barrier *)rec->body)->disk;
		break;
	}
	rp = disk < CKPT_DISK_MAX ? x->disks[disk] : NULL;
	if (!rp) {
		snprintf(err, errlen, "the primary replicates disk %u, but this secondary has no "
				      "replica for it (ha-receive --disk IMAGE, one per disk, in order)",
			 disk);
		return -ENODEV;
	}
	if (rec->type == CKPT_REC_HA_DISK_CONFIG || x->disk_on[disk])
		rc = replica_take(rp, rec->type, rec->body);
	else
		rc = -EPROTO;
	if (rc == 0 && rec->type == CKPT_REC_HA_DISK_CONFIG) {
		const struct ckpt_ha_disk_config *c = (const void *)rec->body;

		x->disk_on[disk] = true;
		log_info("disk %u: replica %s, %llu MiB, %s resynchronisation of %llu KiB", disk,
			 replica_path(rp), (unsigned long long)(c->size >> 20),
			 c->flags & CKPT_DISKCFG_FULL ? "full" : "incremental",
			 (unsigned long long)(c->sync_bytes >> 10));
	}
	if (rc < 0)
		snprintf(err, errlen, "disk %u: %s", disk,
			 x->disk_on[disk] || rec->type == CKPT_REC_HA_DISK_CONFIG
				 ? replica_error(rp)
				 : "a disk record before the disk's configuration");
	return rc;
}

/* Every replica here must be replicated by the primary: a domain resumed
 * on a replica nobody updates would see a stale disk. */
static int disks_check(struct rx *x, char *err, size_t errlen)
{
	for (unsigned i = 0; i < CKPT_DISK_MAX; i++) {
		if (x->disks[i] && !x->disk_on[i]) {
			snprintf(err, errlen, "this secondary keeps a replica of disk %u (%s) but the "
					      "primary does not replicate it (ha-protect --disk)",
				 i, replica_path(x->disks[i]));
			return -EPROTO;
		}
	}
	return 0;
}

/* Takes back a disk commit of epoch whose memory did not commit (or that
 * another disk could not commit): no restart may recover it on a disk. */
static void disks_rollback(struct rx *x, uint64_t epoch)
{
	for (unsigned i = 0; i < CKPT_DISK_MAX; i++) {
		struct replica_stats st;

		if (!x->disk_on[i])
			continue;
		replica_get_stats(x->disks[i], &st);
		if (st.committed != (int64_t)epoch)
			continue; /* its commit did not happen */
		if (replica_rollback(x->disks[i], epoch) < 0)
			log_error("disk %u: %s", i, replica_error(x->disks[i]));
		else
			log_warn("disk %u: the commit of epoch %llu is taken back (its memory "
				 "did not commit); the replica stays at the epoch before",
				 i, (unsigned long long)epoch);
	}
}

/* Makes epoch durable on every disk of the session. */
static int disks_commit(struct rx *x, uint64_t epoch, char *err, size_t errlen)
{
	for (unsigned i = 0; i < CKPT_DISK_MAX; i++) {
		int rc;

		if (!x->disk_on[i])
			continue;
		rc = replica_commit(x->disks[i], epoch);
		if (rc < 0) {
			snprintf(err, errlen, "disk %u: %s", i, replica_error(x->disks[i]));
			return rc;
		}
	}
	return 0;
}

static int disks_apply(struct rx *x, char *err, size_t errlen)
{
	for (unsigned i = 0; i < CKPT_DISK_MAX; i++) {
		int rc;

		if (!x->disk_on[i])
			continue;
		rc = replica_apply(x->disks[i]);
		if (rc < 0) {
			snprintf(err, errlen, "disk %u: %s", i, replica_error(x->disks[i]));
			return rc;
		}
	}
	return 0;
}

static void send_error(struct fo_link *l, int code, const char *msg)
{
	struct ckpt_ha_error_hdr h = {.code = (uint32_t)code};
	struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)msg, strlen(msg)}};

	fo_link_record(l, CKPT_REC_HA_ERROR, iov, 2);
}

/* Applies one record during pre-copy (directly) or buffers it. */
static int take_record(struct rx *x, const struct ckpt_record *rec, bool precopy, char *err,
		       size_t errlen)
{
	int rc = ckbuf_add(x->buf, rec);

	if (rc == -E2BIG) {
		snprintf(err, errlen, "checkpoint larger than the %zu-octet buffer bound "
				      "(raise --max-checkpoint)", x->cfg->max_ckpt_bytes);
		return rc;
	}
	if (rc < 0) {
		snprintf(err, errlen, "cannot buffer a %s record: %s", ckpt_rec_name(rec->type),
			 strerror(-rc));
		return rc;
	}
	if (!precopy)
		return rc;
	/* Nothing is committed yet: pre-copy pages go straight to the domain.
	 * Records before them are the stream's start (stream_start). */
	struct hv_state first = {0};
	rc = ckbuf_commit(x->buf, x->dec, page_of, x, &first, err, errlen);
	if (rc == 0 && first.nrecs && x->ops->stream_start) {
		rc = x->ops->stream_start(x->copy, &first);
		if (rc < 0)
			snprintf(err, errlen, "keeping the stream's start records: %s",
				 strerror(-rc));
	}
	hv_state_free(&first);
	return rc;
}

/* What a session came to (rx_run: whether to accept the next primary). */
enum rx_result {
	RX_ENDED,	  /* no failover: a clean END, a refusal, a loss before any
			   * checkpoint, a local failure, a live primary */
	RX_ACTIVATED,	  /* failed over: the domain runs here now */
	RX_NOT_A_SESSION, /* the peer failed the TLS handshake */
	RX_NOT_ACTIVATED, /* the primary was lost and activation failed: the
			   * copy is discarded, as after RX_ENDED */
};

/* What one record does to the session. Only a primary that is gone makes
 * the secondary fail over: a primary that still talks, however wrongly,
 * is alive, and a copy activated beside it would be a second one. */
enum rx_next {
	RX_GO_ON,
	RX_END,		    /* the primary ended protection cleanly (END) */
	RX_PRIMARY_LOST,    /* the connection ended (EOF, reset, a record cut
			     * short, the down timer): fail over to the last
			     * committed checkpoint */
	RX_PRIMARY_BROKEN,  /* a complete record that fails validation, a
			     * checkpoint that does not decode or whose disk
			     * records do not add up: the primary is told (it
			     * runs degraded), the copy is discarded */
	RX_LOCAL_FAILURE,   /* this host cannot keep the copy (a limit, memory,
			     * a replica or DRBD problem): the same */
	RX_SWITCHOVER,	    /* the primary handed the domain over at the last
			     * committed checkpoint (HA_SWITCHOVER) */
};

/* How a failure RC of the stream's records ends the session: the reader's
 * -EBADMSG is a record it refused (TLS's too: a record that fails its
 * check), the replicas' -EPROTO disk records that do not add up; -E2BIG
 * and -ENOMEM are this host's limits; anything else is the connection:
 * -ENODATA the end of the stream without END, -EPIPE a record cut short,
 * -EAGAIN the down timer, a reset. */
static enum rx_next classify(int rc)
{
	switch (rc) {
	case -EBADMSG:
	case -EPROTO:
		return RX_PRIMARY_BROKEN;
	case -E2BIG:
	case -ENOMEM:
		return RX_LOCAL_FAILURE;
	default:
		return RX_PRIMARY_LOST;
	}
}

/* One session with one primary. */
struct rx_session {
	struct rx *x;
	struct fo_link *l;
	struct ckpt_reader *r;
	const char *peer;
	bool have_ckpt;	   /* a checkpoint was committed */
	int rc;		   /* why the session ends: -errno */
	char err[320];	   /* ... in words */
};

/* Failback: the chunks each adopted replica asks for (HA_DISK_NEED),
 * before the HA_ERROR that refuses the incremental copy. */
static void send_needs(struct rx_session *s)
{
	struct rx *x = s->x;

	for (uint32_t i = 0; i < CKPT_DISK_MAX; i++) {
		struct iovec iov;
		uint32_t len;
		void *body;

		if (!x->disks[i] || replica_need(x->disks[i], i, &body, &len) < 0)
			continue;
		iov = (struct iovec){body, len};
		if (fo_link_record(s->l, CKPT_REC_HA_DISK_NEED, &iov, 1) < 0)
			log_warn("disk %u: cannot send the chunks it asks for", i);
		free(body);
	}
}

__attribute__((format(printf, 3, 4))) static enum rx_next fail(struct rx_session *s,
							       enum rx_next how,
							       const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->err, sizeof(s->err), fmt, ap);
	va_end(ap);
	return how;
}

/* HA_VERIFY in the checkpoint just committed (ha-ctl verify on the
 * primary): every page the primary held, hashed in that checkpoint's
 * pause, against the copy. The result goes to the log and the status. */
static void verify_copy(struct rx *x, uint64_t epoch, const struct ckpt_ha_verify_hdr *h)
{
	const uint64_t *e = (const uint64_t *)(h + 1);
	uint64_t differ = 0, absent = 0, first_differ = UINT64_MAX, first_absent = UINT64_MAX;
	uint64_t t0 = clk_now_ns();
	char line[sizeof(x->last_verify)];

	for (uint32_t i = 0; i < h->count; i++) {
		uint64_t pfn = e[2 * i];
		const uint8_t *pg = x->ops->peek ? x->ops->peek(x->copy, pfn)
						 : x->ops->page(x->copy, pfn);

		if (!pg) {
			if (!absent++)
				first_absent = pfn;
		} else if (XXH3_64bits(pg, CKPT_PAGE_SIZE) != e[2 * i + 1]) {
			if (!differ++)
				first_differ = pfn;
		}
	}
	snprintf(line, sizeof(line), "epoch %llu: %u pages compared, %llu differ%s, %llu not held here",
		 (unsigned long long)epoch, h->count, (unsigned long long)differ,
		 differ ? " (see the log)" : "", (unsigned long long)absent);
	if (differ)
		log_error("verify %s; the first that differs is pfn %llu: the copy does not match "
			  "the primary's domain",
			  line, (unsigned long long)first_differ);
	else if (absent)
		log_info("verify %s (pages this host's daemons share with the copy are not kept "
			 "here; the first is pfn %llu) (%llu ms)",
			 line, (unsigned long long)first_absent,
			 (unsigned long long)((clk_now_ns() - t0) / NSEC_PER_MSEC));
	else
		log_info("verify %s (%llu ms)", line,
			 (unsigned long long)((clk_now_ns() - t0) / NSEC_PER_MSEC));
	pthread_mutex_lock(&x->mu);
	snprintf(x->last_verify, sizeof(x->last_verify), "%s", line);
	pthread_mutex_unlock(&x->mu);
}

/* CHECKPOINT(N): the disks' epoch N, then memory and state, are committed
 * together or not at all; then N is acknowledged. */
static enum rx_next on_checkpoint(struct rx_session *s, const struct ckpt_record *rec)
{
	struct rx *x = s->x;
	uint64_t t0 = clk_now_ns(), pages = ckbuf_pages(x->buf);
	int rc;

	log_set_epoch(rec->epoch);
	if (x->drbd_seen < x->cfg->ndrbd) {
		s->rc = -ENODEV;
		return fail(s, RX_LOCAL_FAILURE,
			    "this secondary has DRBD %s (--drbd) for the domain's disk, but the "
			    "primary does not replicate a disk with DRBD (ha-protect --disk "
			    "drbd:RES)",
			    x->drbd[x->drbd_seen].name);
	}
	rc = disks_check(x, s->err, sizeof(s->err));
	if (rc == 0) {
		rc = disks_commit(x, rec->epoch, s->err, sizeof(s->err));
		if (rc < 0) /* the disks committed before the failing one */
			disks_rollback(x, rec->epoch);
	}
	s->rc = rc;
	if (rc == -EPROTO)
		return RX_PRIMARY_BROKEN;
	if (rc < 0)
		return RX_LOCAL_FAILURE;
	s->err[0] = '\0';
	rc = ckbuf_commit(x->buf, x->dec, page_of, x, &x->state_recs, s->err, sizeof(s->err));
	if (rc == 0 && !x->state_recs.nrecs) {
		snprintf(s->err, sizeof(s->err), "checkpoint without domain state");
		rc = -EBADMSG;
	}
	if (rc < 0) {
		/* Memory stays at the last committed epoch: so must the disks,
		 * after a restart too. */
		disks_rollback(x, rec->epoch);
		s->rc = rc;
		if (!s->err[0])
			snprintf(s->err, sizeof(s->err), "committing epoch %llu: %s",
				 (unsigned long long)rec->epoch,
				 rc == -E2BIG ? "more domain state records than this secondary keeps"
					      : strerror(-rc));
		return classify(rc);
	}
	if (x->ops->commit) {
		rc = x->ops->commit(x->copy, &x->state_recs);
		if (rc < 0) {
			s->rc = rc;
			return fail(s, RX_LOCAL_FAILURE, "keeping the copy of epoch %llu: %s",
				    (unsigned long long)rec->epoch, strerror(-rc));
		}
	}
	{
		uint32_t vlen;
		const void *v = hv_state_find(&x->state_recs, CKPT_REC_HA_VERIFY, &vlen);

		if (v)
			verify_copy(x, rec->epoch, v);
	}
	atomic_store(&x->committed, rec->epoch);
	rc = send_ack(s->l, rec->epoch);
	pthread_mutex_lock(&x->mu);
	x->checkpoints++;
	x->pages += pages;
	x->apply_ns_last = clk_now_ns() - t0;
	x->commit_at_ns = clk_now_ns();
	rx_set_state_locked(x, RX_PROTECTED);
	pthread_mutex_unlock(&x->mu);
	if (!s->have_ckpt) {
		log_info("first checkpoint committed: %s is protected", x->domain);
		notify_event(x->notify, "protected", x->domain, x->peer, rec->epoch, NULL);
	}
	s->have_ckpt = true;
	if (rc < 0) {
		s->rc = rc;
		return fail(s, RX_PRIMARY_LOST, "sending ACK: %s", strerror(-rc));
	}
	s->rc = disks_apply(x, s->err, sizeof(s->err));
	return s->rc < 0 ? RX_LOCAL_FAILURE : RX_GO_ON;
}

/* Pages: straight into the domain during pre-copy (nothing is committed
 * yet), else buffered until their CHECKPOINT. */
static enum rx_next on_pages(struct rx_session *s, const struct ckpt_record *rec)
{
	struct rx *x = s->x;
	bool precopy = !s->have_ckpt && x->state_recs.nrecs == 0 &&
		       ckpt_reader_last_epoch(s->r) == UINT64_MAX;

	pthread_mutex_lock(&x->mu);
	x->bytes += rec->length;
	pthread_mutex_unlock(&x->mu);
	s->rc = take_record(x, rec, precopy, s->err, sizeof(s->err));
	return s->rc < 0 ? classify(s->rc) : RX_GO_ON;
}

/* The primary's disk is a DRBD resource: this secondary must have one. */
static enum rx_next on_drbd_disk(struct rx_session *s, const struct ckpt_record *rec)
{
	struct rx *x = s->x;
	const struct ckpt_ha_drbd_disk *d = (const void *)rec->body;

	if (x->drbd_seen >= x->cfg->ndrbd) {
		s->rc = -ENODEV;
		return fail(s, RX_LOCAL_FAILURE,
			    "the primary's disk is DRBD resource %s (minor %u there) and this "
			    "secondary has no --drbd for it: it could not resume the domain on "
			    "its disk; start ha-receive with --drbd RES (the resource here)",
			    d->resource, d->minor);
	}
	log_info("the primary's disk is DRBD %s (minor %u there); here DRBD %s (%s)",
		 d->resource, d->minor, x->drbd[x->drbd_seen].name,
		 x->drbd[x->drbd_seen].dev);
	x->drbd_seen++;
	return RX_GO_ON;
}

/* A replicated disk's configuration, writes and epoch barriers. */
static enum rx_next on_disk(struct rx_session *s, const struct ckpt_record *rec)
{
	struct rx *x = s->x;

	if (rec->type == CKPT_REC_HA_DISK_WRITE) {
		pthread_mutex_lock(&x->mu);
		x->bytes += rec->length;
		pthread_mutex_unlock(&x->mu);
	}
	s->rc = take_disk_record(x, rec, s->err, sizeof(s->err));
	if (s->rc == -EPROTO)
		return RX_PRIMARY_BROKEN;
	return s->rc < 0 ? RX_LOCAL_FAILURE : RX_GO_ON;
}

/* The primary's domain is suspended for good (or stopped) at the end of
 * the checkpoint this side acknowledged last: it asks this side to run it. */
static enum rx_next on_switchover(struct rx_session *s, const struct ckpt_record *rec)
{
	const struct ckpt_ha_switchover *h = (const void *)rec->body;
	uint64_t committed = atomic_load(&s->x->committed);

	if (h->step != CKPT_SWITCH_PREPARE && h->step != CKPT_SWITCH_GO) {
		s->rc = -EPROTO;
		return fail(s, RX_PRIMARY_BROKEN, "HA_SWITCHOVER step %u from the primary", h->step);
	}
	if (!s->have_ckpt || h->epoch != committed) {
		s->rc = -EPROTO;
		return fail(s, RX_PRIMARY_BROKEN,
			    "the primary hands the domain over at epoch %llu, but the last "
			    "checkpoint committed here is %lld",
			    (unsigned long long)h->epoch,
			    s->have_ckpt ? (long long)committed : -1LL);
	}
	if (h->step == CKPT_SWITCH_PREPARE) {
		/* It holds that checkpoint: the primary may stop its domain. */
		struct ckpt_ha_switchover a = {.epoch = h->epoch, .step = CKPT_SWITCH_READY};
		struct iovec iov = {&a, sizeof(a)};

		log_info("switchover: the primary asks whether epoch %llu can run here: it can",
			 (unsigned long long)h->epoch);
		s->rc = fo_link_record(s->l, CKPT_REC_HA_SWITCHOVER, &iov, 1);
		return s->rc < 0 ? fail(s, RX_PRIMARY_LOST, "answering the switchover: %s",
					strerror(-s->rc))
				 : RX_GO_ON;
	}
	return RX_SWITCHOVER;
}

static enum rx_next process_record(struct rx_session *s, const struct ckpt_record *rec)
{
	switch (rec->type) {
	case CKPT_REC_HA_SWITCHOVER:
		return on_switchover(s, rec);
	case CKPT_REC_HA_TRAILER:
		return RX_GO_ON;
	case CKPT_REC_END:
		return RX_END;
	case CKPT_REC_CHECKPOINT:
		return on_checkpoint(s, rec);
	case CKPT_REC_PAGE_DATA:
	case CKPT_REC_HA_PAGE_DATA_Z:
		return on_pages(s, rec);
	case CKPT_REC_HA_DRBD_DISK:
		return on_drbd_disk(s, rec);
	case CKPT_REC_HA_DISK_CONFIG:
	case CKPT_REC_HA_DISK_WRITE:
	case CKPT_REC_HA_DISK_BARRIER:
		return on_disk(s, rec);
	default:
		/* Domain state records (HA_VMM_STATE, Xen's context records). */
		s->rc = take_record(s->x, rec, false, s->err, sizeof(s->err));
		return s->rc < 0 ? classify(s->rc) : RX_GO_ON;
	}
}

/* The reader's account of why the stream's start is refused. */
static int refuse(struct rx_session *s, int rc)
{
	const char *why = ckpt_reader_error(s->r);

	snprintf(s->err, sizeof(s->err), "%s", why[0] ? why : strerror(-rc));
	return rc;
}

/* The stream's start, its headers read (conn_main): the answering headers
 * (at once, so that the primary's down timer sees a live secondary while
 * the incoming domain is created), the domain's configuration, the
 * incoming domain. 0, or -errno with err
 * set: the stream is refused. */
static int session_start(struct rx_session *s)
{
	struct rx *x = s->x;
	struct ckpt_record rec;
	int rc;

	rc = fo_link_headers(s->l, CKPT_IHDR_ID_BACK, ckpt_reader_info(s->r)->domain_type, 0, 0);
	if (rc == 0)
		rc = fo_link_heartbeat_start(s->l, &x->committed);
	if (rc < 0)
		return rc; /* the link broke: nothing to say on it */
	rc = fo_link_next(s->l, &rec);
	if (rc < 0)
		return refuse(s, rc);
	const struct ckpt_stream_info *info = ckpt_reader_info(s->r);
	if (rec.type != CKPT_REC_HA_DOMAIN_CONFIG) {
		snprintf(s->err, sizeof(s->err),
			 "the stream does not start with a domain configuration");
		return -EBADMSG;
	}
	struct hv_info hi = {
		.nr_pages = info->config.nr_pages,
		.vcpus = info->config.vcpus,
		.domain_type = info->domain_type,
		.xen_major = info->xen_major,
		.xen_minor = info->xen_minor,
	};
	snprintf(hi.name, sizeof(hi.name), "%s", info->config.name);
	memcpy(hi.mac, info->config.mac, 6);
	if (x->disks[0] && x->cfg->serve[0]) {
		char nbd[108];

		rx_serve_path(x->cfg->serve[0], nbd, sizeof(nbd));
		snprintf(hi.disk, sizeof(hi.disk), "nbd:unix:%s", nbd);
	} else if (x->disks[0]) {
		snprintf(hi.disk, sizeof(hi.disk), "%s", replica_path(x->disks[0]));
	}
	else if (x->cfg->ndrbd)
		snprintf(hi.disk, sizeof(hi.disk), "%s", x->drbd[0].dev);
	if (x->cfg->domain && strcmp(hi.name, x->cfg->domain)) {
		snprintf(s->err, sizeof(s->err),
			 "the primary protects the domain '%s', but this secondary serves '%s' "
			 "(--domain)",
			 hi.name, x->cfg->domain);
		return -EPERM;
	}
	pthread_mutex_lock(&x->mu);
	snprintf(x->domain, sizeof(x->domain), "%s", hi.name);
	pthread_mutex_unlock(&x->mu);
	log_set_domain(hi.name);

	if (!x->ctl) {
		char path[108];

		if (x->cfg->ctl_path)
			snprintf(path, sizeof(path), "%s", x->cfg->ctl_path);
		else
			ctl_path(path, sizeof(path), "ha-receive", hi.name);
		x->cmds = (struct ctl_commands){rx_cmds, sizeof(rx_cmds) / sizeof(rx_cmds[0]), x,
						&stop_flag};
		if (ctl_server_start(path, ctl_dispatch, &x->cmds, &x->ctl) < 0)
			log_warn("no control socket at %s", path);
	}
	rc = x->ops->create(&hi, &x->copy);
	if (rc < 0) {
		snprintf(s->err, sizeof(s->err), "cannot create the incoming domain: %s",
			 strerror(-rc));
		return rc;
	}
	log_info("receiving %s (%llu pages, %u vCPUs) from %s", hi.name,
		 (unsigned long long)hi.nr_pages, hi.vcpus, s->peer);
	return 0;
}

/* Records until the session ends one way or another. */
static enum rx_next session_records(struct rx_session *s)
{
	for (;;) {
		struct ckpt_record rec;
		enum rx_next next;

		s->rc = fo_link_next(s->l, &rec);
		if (s->rc < 0)
			return fail(s, classify(s->rc), "%s",
				    s->rc == -EAGAIN ? "no data or heartbeat from the primary within "
						       "the down timer"
						     : ckpt_reader_error(s->r));
		if (stop_flag) {
			s->rc = -ECANCELED;
			return fail(s, RX_PRIMARY_LOST, "stop requested");
		}
		next = process_record(s, &rec);
		if (next != RX_GO_ON)
			return next;
	}
}

/* The primary is lost with the session's stream (s->rc, s->err): fail over
 * to the last committed checkpoint, if there is one and the primary is not
 * known to be alive. */
static enum rx_result primary_lost(struct rx_session *s)
{
	struct rx *x = s->x;

	ckbuf_reset(x->buf);
	snprintf(x->last_error, sizeof(x->last_error), "%s", s->err);
	fo_link_shutdown(s->l);
	if (s->rc == -ECANCELED)
		return RX_ENDED;
	if (!s->have_ckpt) {
		log_error("the primary went away before the first checkpoint: %s; nothing to "
			  "resume, %s",
			  s->err, s->x->cfg->once ? "and --once: exiting" : "waiting for a new primary");
		return RX_ENDED;
	}
	uint32_t pclen;

	if (hv_state_find(&x->state_recs, CKPT_REC_HA_POSTCOPY, &pclen)) {
		log_error("the primary went away before its postcopy began: %s; this copy lacks the "
			  "pages its last checkpoint left out and is never a failover's: it is "
			  "discarded, and the primary keeps the domain",
			  s->err);
		return RX_ENDED;
	}
	log_error("primary lost: %s", s->err);
	int rc = rx_take_over(x, s->err);

	if (rc == 1)
		return RX_ACTIVATED;
	if (rc == -EALREADY || rc == -ECANCELED)
		return RX_ENDED; /* the primary lives, or a stop: discard the copy */
	log_error("FAILOVER FAILED (%s): the domain runs nowhere now. Its copy is discarded; "
		  "start the domain by hand (its disk holds epoch %llu), then protect it anew",
		  x->last_error, (unsigned long long)atomic_load(&x->committed));
	return RX_NOT_ACTIVATED;
}

/* A switchover: activate the committed checkpoint and tell the primary,
 * which waits for the answer (its domain no longer runs anywhere). */
static enum rx_result switch_over(struct rx_session *s)
{
	struct rx *x = s->x;
	struct ckpt_ha_switchover h = {.epoch = atomic_load(&x->committed),
				       .step = CKPT_SWITCH_RUNS};
	struct iovec iov = {&h, sizeof(h)};
	uint32_t pclen;
	const struct ckpt_ha_postcopy_hdr *pch =
		hv_state_find(&x->state_recs, CKPT_REC_HA_POSTCOPY, &pclen);
	struct rx_postcopy *pc = NULL;
	int rc;

	ckbuf_reset(x->buf);
	if (pch) {
		rc = rx_postcopy_begin(x, s->l, pch, &pc, s->err, sizeof(s->err));
		if (rc < 0) {
			log_error("SWITCHOVER refused: %s; the domain runs on at the primary", s->err);
			send_error(s->l, -rc, s->err);
			return RX_NOT_ACTIVATED;
		}
	}
	rc = rx_switch_over(x);
	if (rc == 1) {
		if (fo_link_record(s->l, CKPT_REC_HA_SWITCHOVER, &iov, 1) < 0)
			log_warn("the domain runs here, but the primary could not be told so: it "
				 "reports the switchover as unconfirmed");
		if (pc && rx_postcopy_finish(pc) < 0) {
			/* It can never be whole here: it runs nowhere (session()
			 * stops the copy). */
			pthread_mutex_lock(&x->mu);
			x->switched = false;
			rx_set_state_locked(x, RX_WAITING);
			pthread_mutex_unlock(&x->mu);
			return RX_NOT_ACTIVATED;
		}
		fo_link_shutdown(s->l);
		return RX_ACTIVATED;
	}
	if (pc) {
		pthread_mutex_lock(&x->mu);
		snprintf(s->err, sizeof(s->err), "%.280s", x->last_error);
		pthread_mutex_unlock(&x->mu);
		send_error(s->l, rc == -EIO ? EIO : -rc, s->err);
		rx_postcopy_abort(pc);
		log_error("SWITCHOVER FAILED (%s): the copy did not start; the primary, told so, "
			  "resumes the domain there",
			  s->err);
		return RX_NOT_ACTIVATED;
	}
	pthread_mutex_lock(&x->mu);
	snprintf(s->err, sizeof(s->err), "%.280s", x->last_error);
	pthread_mutex_unlock(&x->mu);
	log_error("SWITCHOVER FAILED (%s): the domain runs nowhere now; the primary is told. "
		  "Start it by hand from its last state (epoch %llu; its disk is at that epoch "
		  "here)",
		  s->err, (unsigned long long)h.epoch);
	send_error(s->l, rc == -EIO ? EIO : -rc, s->err);
	return RX_NOT_ACTIVATED;
}

/* --restore with a save file: the last complete checkpoint in the
 * hypervisor's own format (0600: it holds the guest's memory). */
static int write_save_file(struct rx *x)
{
	const char *path = x->cfg->save_file;
	int fd, rc;

	if (!x->ops->save_file) {
		log_error("this backend has no save file format of its own: run the checkpoint "
			  "with --restore alone");
		return -EOPNOTSUPP;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		log_error("cannot create %s: %s%s", path, strerror(errno),
			  errno == EEXIST ? " (it is not overwritten)" : "");
		return rc;
	}
	rc = x->ops->save_file(x->copy, &x->state_recs, fd);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	close(fd);
	/* The copy never runs here. */
	if (x->ops->destroy)
		x->ops->destroy(x->copy);
	x->ops->close(x->copy);
	x->copy = NULL;
	if (rc < 0) {
		unlink(path);
		log_error("cannot write %s: %s", path, strerror(-rc));
		return rc;
	}
	pthread_mutex_lock(&x->mu);
	x->restored = true; /* written: rx_run's result */
	pthread_mutex_unlock(&x->mu);
	log_info("epoch %llu written to %s", (unsigned long long)atomic_load(&x->committed), path);
	return 0;
}

/* --restore: the file's stream ended (NEXT): its last complete
 * checkpoint runs here, whether the file ends with END or is cut short. */
static enum rx_result restore_end(struct rx_session *s, enum rx_next next)
{
	struct rx *x = s->x;

	ckbuf_reset(x->buf);
	/* A stream saved during a switchover ends with its HA_SWITCHOVER. */
	if (next != RX_END && next != RX_PRIMARY_LOST && next != RX_SWITCHOVER) {
		log_error("cannot restore from %s: %s", x->cfg->restore_path, s->err);
		return RX_NOT_ACTIVATED;
	}
	if (!s->have_ckpt) {
		log_error("cannot restore from %s: it holds no complete checkpoint%s%s",
			  x->cfg->restore_path, s->err[0] ? " (" : "", s->err[0] ? ")" : "");
		return RX_NOT_ACTIVATED;
	}
	if (next == RX_PRIMARY_LOST)
		log_warn("%s is cut short (%s): restoring its last complete checkpoint",
			 x->cfg->restore_path, s->err);
	if (x->cfg->save_file)
		return write_save_file(x) == 0 ? RX_ACTIVATED : RX_NOT_ACTIVATED;
	return rx_restore(x) == 1 ? RX_ACTIVATED : RX_NOT_ACTIVATED;
}

/* A session with the primary on S's link, its headers read. */
static enum rx_result session(struct rx_session *s)
{
	struct rx *x = s->x;
	const char *peer = s->peer;
	enum rx_result res = RX_ENDED;
	int rc;

	atomic_store(&x->committed, UINT64_MAX);
	memset(x->disk_on, 0, sizeof(x->disk_on));
	x->drbd_seen = 0;
	snprintf(x->peer, sizeof(x->peer), "%s", peer);
	rx_set_state(x, RX_SYNCING);

	rc = session_start(s);
	if (rc < 0 && s->err[0]) {
		log_error("refusing the stream from %s: %s", peer, s->err);
		if (fo_link_bytes_sent(s->l) == 0)
			fo_link_headers(s->l, CKPT_IHDR_ID_BACK,
					ckpt_reader_info(s->r)->domain_type, 0, 0);
		send_error(s->l, -rc, s->err);
	}
	if (rc == 0 && x->cfg->restore_path) {
		res = restore_end(s, session_records(s));
	} else if (rc == 0) {
		switch (session_records(s)) {
		case RX_END:
			/* Answered with END: the primary may then release what it
			 * holds, since this copy will never run. */
			log_info("the primary stopped protection cleanly; discarding the copy");
			fo_link_end(s->l);
			break;
		case RX_LOCAL_FAILURE:
			/* The primary is alive: tell it why this copy cannot go on. */
			log_error("cannot keep the copy: %s; the primary is told and runs degraded",
				  s->err);
			snprintf(x->last_error, sizeof(x->last_error), "%s", s->err);
			if (s->rc == -EAGAIN)
				send_needs(s);
			send_error(s->l, -s->rc, s->err);
			break;
		case RX_PRIMARY_BROKEN:
			/* Alive, since it talks: no failover beside it. */
			log_error("the primary's stream is broken: %s; the primary is told and runs "
				  "degraded, and this copy is discarded, not activated",
				  s->err);
			snprintf(x->last_error, sizeof(x->last_error), "%s", s->err);
			send_error(s->l, -s->rc, s->err);
			break;
		case RX_PRIMARY_LOST:
			res = primary_lost(s);
			break;
		case RX_SWITCHOVER:
			res = switch_over(s);
			break;
		case RX_GO_ON:
			break;
		}
	}
	if (res == RX_ACTIVATED) { /* the domain runs here: handed over */
		if (x->copy) { /* the handle only: the domain runs on */
			x->ops->close(x->copy);
			x->copy = NULL;
		}
		fo_link_free(s->l);
		log_set_epoch(LOG_NO_EPOCH);
		return res;
	}
	ckbuf_reset(x->buf);
	if (x->copy) {
		if (x->ops->destroy)
			x->ops->destroy(x->copy);
		x->ops->close(x->copy);
		x->copy = NULL;
	}
	hv_state_free(&x->state_recs);
	fo_link_free(s->l);
	log_set_epoch(LOG_NO_EPOCH);
	return res;
}

/* Tells a second primary on L (its headers read) that this secondary is
 * taken, then hangs up. */
static void refuse_busy(struct fo_link *l, int fd, const char *domain)
{
	char msg[160];

	snprintf(msg, sizeof(msg), "this secondary is already protecting %s", domain);
	fo_link_headers(l, CKPT_IHDR_ID_BACK, ckpt_reader_info(fo_link_reader(l))->domain_type, 0,
			0);
	send_error(l, EBUSY, msg);
	/* Hang up only after the primary did (at most 1 s): closing with its
	 * data unread resets the connection, and the primary could fail a
	 * write before it reads the refusal. Its data is not read, so it
	 * stalls instead of being pumped through. */
	shutdown(fd, SHUT_WR);
	for (uint64_t end = clk_now_ns() + 1000 * NSEC_PER_MSEC; clk_now_ns() < end;) {
		struct pollfd pfd = {.fd = fd, .events = POLLRDHUP};

		if (poll(&pfd, 1, 50) > 0)
			break;
	}
}

/* Connections. Each accepted connection gets a thread of its own, which
 * authenticates the peer (the TLS handshake) and reads its stream headers
 * before the connection may take the one session slot: a client that never
 * gets that far cannot keep the primary out. Each handshake gets at most
 * handshake_ms() (the accept loop shuts a late one down); at most
 * RX_PENDING_HOST run at once per client address and RX_PENDING in all: a
 * new connection beyond that cuts an older one short (make_room), so that
 * clients that connect and stay silent cannot hold off a primary, which
 * finishes its handshake in a few round trips. */
#define RX_PENDING 8
#define RX_PENDING_HOST 2
#define RX_CONNS (1 + 2 * RX_PENDING) /* the session, the handshakes, those cut short */

struct conn {
	struct rx *x;
	int fd;
	char host[64]; /* its address */
	char peer[64]; /* address:port */
	pthread_t th;
	pthread_mutex_t mu;
	uint64_t deadline_ns; /* under mu; 0: past the handshake (the thread closes fd) */
	bool expired;	      /* under mu: the accept loop shut it down */
	_Atomic bool done;
	enum rx_result result;
};

/* The whole handshake's bound: TLS (link.c gives it 4 down timers, at
 * least 5 s) and the headers (one down timer). */
static uint64_t handshake_ms(const struct rx_config *cfg)
{
	uint64_t t = cfg->timeout_ms;

	return (t * 4 > 5000 ? t * 4 : 5000) + t;
}

/* The handshake is over: from now on the thread owns fd. Returns whether
 * the accept loop had already shut it down for being late. */
static bool handshake_over(struct conn *c)
{
	bool expired;

	pthread_mutex_lock(&c->mu);
	c->deadline_ns = 0;
	expired = c->expired;
	pthread_mutex_unlock(&c->mu);
	return expired;
}

/* Takes the session slot. False when another session holds it, or when
 * rx_run is ending (x->closing). */
static bool take_slot(struct rx *x)
{
	bool ok;

	pthread_mutex_lock(&x->mu);
	ok = !x->busy && !x->closing;
	if (ok)
		x->busy = true;
	pthread_mutex_unlock(&x->mu);
	return ok;
}

/* Whether to log one more refused connection: at most 5 per 10 s, then a
 * count, so that a client hammering the listener cannot flood the log. */
static bool refusal_logged(struct rx *x)
{
	uint64_t now = clk_now_ns();
	unsigned quiet = 0;
	bool log;

	pthread_mutex_lock(&x->mu);
	if (now - x->refusal_window_ns >= 10 * NSEC_PER_SEC) {
		quiet = x->refusals_unlogged;
		x->refusal_window_ns = now;
		x->refusals = 0;
		x->refusals_unlogged = 0;
	}
	log = ++x->refusals <= 5;
	if (!log)
		x->refusals_unlogged++;
	pthread_mutex_unlock(&x->mu);
	if (quiet)
		log_warn("%u more connection(s) refused in 10 s, not logged one by one", quiet);
	return log;
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct rx *x = c->x;
	struct rx_session s = {.x = x, .peer = c->peer};
	char domain[sizeof(x->domain)];
	bool expired;
	int fd, rc;

	c->result = RX_NOT_A_SESSION;
	/* The link gets a descriptor of its own (and closes it when it
	 * fails): c->fd stays open until the handshake is over, so that the
	 * accept loop never shuts down a number reused meanwhile. */
	fd = fcntl(c->fd, F_DUPFD_CLOEXEC, 0);
	rc = fd < 0 ? -errno
		    : fo_link_open(fd, x->cfg->timeout_ms, x->cfg->tls, &s.l, s.err, sizeof(s.err));
	if (rc == 0) {
		s.r = fo_link_reader(s.l);
		rc = ckpt_reader_headers(s.r, CKPT_IHDR_ID_XEN);
		if (rc < 0)
			refuse(&s, rc);
	}
	expired = handshake_over(c);
	close(c->fd);
	if (expired) {
		rc = -ETIMEDOUT;
		snprintf(s.err, sizeof(s.err),
			 "cut short before its stream headers: late (over %llu ms), or more than "
			 "%d clients in their handshake at once",
			 (unsigned long long)handshake_ms(x->cfg), RX_PENDING);
	}
	if (rc < 0) {
		if (refusal_logged(x))
			log_error("refusing the connection from %s: %s", c->peer,
				  s.err[0] ? s.err : strerror(-rc));
		fo_link_free(s.l);
		goto out;
	}
	if (x->cfg->tls)
		log_info("connection from %s: %s", c->peer, fo_link_security(s.l));
	if (!take_slot(x)) {
		pthread_mutex_lock(&x->mu);
		snprintf(domain, sizeof(domain), "%s", x->closing ? "(shutting down)" : x->domain);
		pthread_mutex_unlock(&x->mu);
		log_warn("refusing a second primary from %s: already protecting %s", c->peer,
			 domain);
		refuse_busy(s.l, fd, domain);
		fo_link_free(s.l);
		goto out;
	}
	c->result = session(&s);
	/* "waiting" means the slot is free: a primary may come. */
	pthread_mutex_lock(&x->mu);
	x->busy = false;
	if (c->result != RX_ACTIVATED)
		rx_set_state_locked(x, RX_WAITING);
	pthread_mutex_unlock(&x->mu);
out:
	atomic_store(&c->done, true);
	return NULL;
}

/* Joins the connections that ended. Returns whether rx_run is done: the
 * domain runs here, or --once and a session (not a refused connection)
 * ended. */
static bool reap(struct conn **conns, bool once)
{
	bool over = false;

	for (unsigned i = 0; i < RX_CONNS; i++) {
		struct conn *c = conns[i];

		if (!c || !atomic_load(&c->done))
			continue;
		pthread_join(c->th, NULL);
		if (c->result == RX_ACTIVATED || (once && c->result != RX_NOT_A_SESSION))
			over = true;
		pthread_mutex_destroy(&c->mu);
		free(c);
		conns[i] = NULL;
	}
	return over;
}

/* Shuts down the connections still in their handshake: past their deadline,
 * or all of them (ALL). */
static void expire(struct conn **conns, bool all)
{
	uint64_t now = clk_now_ns();

	for (unsigned i = 0; i < RX_CONNS; i++) {
		struct conn *c = conns[i];

		if (!c)
			continue;
		pthread_mutex_lock(&c->mu);
		if (c->deadline_ns && (all || now >= c->deadline_ns) && !c->expired) {
			c->expired = true;
			shutdown(c->fd, SHUT_RDWR);
		}
		pthread_mutex_unlock(&c->mu);
	}
}

/* Whether C is still in its handshake (under its mu). */
static bool pending(struct conn *c)
{
	return c && c->deadline_ns && !c->expired;
}

/* The oldest handshake of CONNS from HOST (any host: NULL), and how many
 * there are. */
static struct conn *oldest_of(struct conn **conns, const char *host, unsigned *count)
{
	struct conn *oldest = NULL;

	*count = 0;
	for (unsigned i = 0; i < RX_CONNS; i++) {
		struct conn *c = conns[i];

		if (!c)
			continue;
		pthread_mutex_lock(&c->mu);
		if (pending(c) && (!host || !strcmp(c->host, host))) {
			++*count;
			if (!oldest || c->deadline_ns < oldest->deadline_ns)
				oldest = c;
		}
		pthread_mutex_unlock(&c->mu);
	}
	return oldest;
}

/* Makes room for a handshake from HOST: cuts HOST's oldest short if it has
 * RX_PENDING_HOST running, else, if RX_PENDING run in all, the oldest of
 * the host with the most. So a client hammering from one address only
 * ever cuts its own connections short, never the primary's. Returns the
 * peer it cut short, or NULL. */
static const char *make_room(struct conn **conns, const char *host)
{
	struct conn *victim = NULL;
	unsigned n, total, most = 0;

	victim = oldest_of(conns, host, &n);
	if (n < RX_PENDING_HOST) {
		victim = NULL;
		oldest_of(conns, NULL, &total);
		for (unsigned i = 0; total >= RX_PENDING && i < RX_CONNS; i++) {
			struct conn *o;

			if (!conns[i])
				continue;
			o = oldest_of(conns, conns[i]->host, &n);
			if (o && n > most) {
				most = n;
				victim = o;
			}
		}
	}
	if (!victim)
		return NULL;
	pthread_mutex_lock(&victim->mu);
	if (pending(victim)) {
		victim->expired = true;
		shutdown(victim->fd, SHUT_RDWR);
	}
	pthread_mutex_unlock(&victim->mu);
	return victim->peer;
}

/* Accepts one connection on LFD into a free place of CONNS. */
static void accept_one(struct rx *x, int lfd, struct conn **conns)
{
	static uint64_t last_warn_ns;
	static unsigned cut;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
	char host[64] = "?", serv[16] = "";
	const char *victim;
	unsigned i = 0;
	struct conn *c;

	if (fd < 0)
		return;
	getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), serv, sizeof(serv),
		    NI_NUMERICHOST | NI_NUMERICSERV);
	victim = make_room(conns, host);
	while (i < RX_CONNS && conns[i])
		i++;
	c = i < RX_CONNS ? calloc(1, sizeof(*c)) : NULL;
	if (victim || !c) {
		cut++;
		if (clk_now_ns() - last_warn_ns >= 10 * NSEC_PER_SEC) {
			log_warn("%u connection(s) cut short before authenticating (the last: %s): "
				 "more than %d clients at once in the handshake, which is bounded "
				 "to %llu ms",
				 cut, c ? victim : host, RX_PENDING,
				 (unsigned long long)handshake_ms(x->cfg));
			last_warn_ns = clk_now_ns();
			cut = 0;
		}
	}
	if (!c) {
		close(fd);
		return;
	}
	c->x = x;
	c->fd = fd;
	snprintf(c->host, sizeof(c->host), "%s", host);
	snprintf(c->peer, sizeof(c->peer), "%s:%s", host, serv);
	pthread_mutex_init(&c->mu, NULL);
	c->deadline_ns = clk_now_ns() + handshake_ms(x->cfg) * NSEC_PER_MSEC;
	if (pthread_create(&c->th, NULL, conn_main, c)) {
		pthread_mutex_destroy(&c->mu);
		close(fd);
		free(c);
		return;
	}
	conns[i] = c;
}

/* --restore: the file is fed through one end of a socket pair, as a
 * primary's stream would arrive; what the session answers (ACKs,
 * heartbeats) is read and dropped. */
struct feed {
	int in, fd;
};

static void *feed_main(void *arg)
{
	struct feed *f = arg;
	char buf[65536], sink[4096];
	size_t have = 0, off = 0;
	bool eof = false;

	for (;;) {
		struct pollfd p = {.fd = f->fd, .events = POLLIN | (eof ? 0 : POLLOUT)};

		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			break;
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(f->fd, sink, sizeof(sink));

			if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
				break; /* the session closed its end */
		}
		if (eof || !(p.revents & POLLOUT))
			continue;
		if (off == have) {
			ssize_t n = read(f->in, buf, sizeof(buf));

			if (n <= 0) {
				eof = true;
				shutdown(f->fd, SHUT_WR);
				continue;
			}
			have = (size_t)n;
			off = 0;
		}
		ssize_t w = send(f->fd, buf + off, have - off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w > 0)
			off += (size_t)w;
		else if (w < 0 && errno != EAGAIN && errno != EINTR)
			break;
	}
	close(f->fd);
	return NULL;
}

static int restore_file(struct rx *x)
{
	struct rx_session s = {.x = x, .peer = "file"};
	struct feed f = {.in = -1, .fd = -1};
	pthread_t th;
	int sv[2], rc;

	f.in = open(x->cfg->restore_path, O_RDONLY | O_CLOEXEC);
	if (f.in < 0) {
		rc = -errno;
		log_error("cannot open %s: %s", x->cfg->restore_path, strerror(errno));
		return rc;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		rc = -errno;
		close(f.in);
		return rc;
	}
	f.fd = sv[1];
	rc = -pthread_create(&th, NULL, feed_main, &f);
	if (rc < 0) {
		close(sv[0]);
		close(sv[1]);
		close(f.in);
		return rc;
	}
	log_info("restoring from %s", x->cfg->restore_path);
	rc = fo_link_new(sv[0], 0, &s.l);
	if (rc == 0) {
		s.r = fo_link_reader(s.l);
		rc = ckpt_reader_headers(s.r, CKPT_IHDR_ID_XEN);
		if (rc < 0) {
			refuse(&s, rc);
			log_error("%s is not a stream ha-protect --save wrote: %s",
				  x->cfg->restore_path, s.err);
			fo_link_free(s.l);
		} else {
			take_slot(x);
			rc = session(&s) == RX_ACTIVATED ? 0 : -EIO;
		}
	} else {
		close(sv[0]);
	}
	pthread_join(th, NULL);
	close(f.in);
	return rc;
}

int rx_run(const struct rx_config *cfg, const struct hv_restore_ops *ops)
{
	struct rx *x = calloc(1, sizeof(*x));
	struct conn *conns[RX_CONNS] = {0};
	int lfd, rc = 0;

	if (!x)
		return -ENOMEM;
	x->cfg = cfg;
	x->ops = ops;
	pthread_mutex_init(&x->mu, NULL);
	atomic_store(&x->committed, UINT64_MAX);
	x->state_since_ns = clk_now_ns();
	snprintf(x->domain, sizeof(x->domain), "%s", cfg->domain ? cfg->domain : "(none yet)");
	if (ckbuf_new(cfg->max_ckpt_bytes, &x->buf) < 0 || ckpt_decoder_new(&x->dec) < 0 ||
	    notify_start(cfg->notify_cmd, cfg->notify_timeout_ms, "secondary", &x->notify) < 0) {
		rc = -ENOMEM;
		goto out;
	}
	for (unsigned i = 0; i < cfg->ndisks; i++) {
		char err[512];

		rc = replica_open(cfg->disks[i], cfg->journals[i], cfg->journal_limit, &x->disks[i],
				  err, sizeof(err));
		if (rc < 0) {
			log_error("disk %u: %s", i, err);
			goto out;
		}
		if (!cfg->bitmaps[i])
			continue;
		rc = replica_adopt(x->disks[i], cfg->bitmaps[i]);
		if (rc < 0) {
			log_error("disk %u: %s", i, replica_error(x->disks[i]));
			goto out;
		}
		if (rc == 1)
			log_info("disk %u: %s is this disk's old primary image (bitmap file %s): %s; "
				 "they are asked for when a primary of its lineage connects",
				 i, cfg->disks[i], cfg->bitmaps[i], replica_error(x->disks[i]));
		else
			log_info("disk %u: the bitmap file %s is not used: %s", i, cfg->bitmaps[i],
				 replica_error(x->disks[i]));
		rc = 0;
	}
	for (unsigned i = 0; i < cfg->ndrbd; i++) {
		char err[512];

		rc = drbd_resolve(cfg->drbd[i], &x->drbd[i], err, sizeof(err));
		if (rc == 0)
			rc = drbd_check_secondary(&x->drbd[i], err, sizeof(err));
		if (rc < 0) {
			log_error("--drbd %s: %s", cfg->drbd[i], err);
			goto out;
		}
		log_info("DRBD %s (%s) replicates a disk; promoted here on failover",
			 x->drbd[i].name, x->drbd[i].dev);
	}
	if (cfg->domain || cfg->ctl_path) {
		/* Named from the start: status and metrics before any primary. */
		char path[108];

		if (cfg->ctl_path)
			snprintf(path, sizeof(path), "%s", cfg->ctl_path);
		else
			ctl_path(path, sizeof(path), "ha-receive", cfg->domain);
		x->cmds = (struct ctl_commands){rx_cmds, sizeof(rx_cmds) / sizeof(rx_cmds[0]), x,
						&stop_flag};
		rc = ctl_server_start(path, ctl_dispatch, &x->cmds, &x->ctl);
		if (rc < 0) {
			log_error("control socket %s: %s%s", path, strerror(-rc),
				  rc == -EADDRINUSE ? " (does another ha-receive serve this domain?)"
						    : "");
			goto out;
		}
	}
	if (cfg->restore_path) {
		rc = restore_file(x);
		if (rc == 0)
			rc = 3;
		goto out;
	}
	lfd = sock_tcp_listen(cfg->listen, 4);
	if (lfd < 0) {
		log_error("cannot listen on %s: %s", cfg->listen, sock_tcp_strerror(lfd));
		rc = lfd;
		goto out;
	}
	log_info("listening on %s for a primary (%s)", cfg->listen,
		 cfg->tls ? fo_tls_mode(cfg->tls) : "plain TCP, --insecure");
	service_ready("waiting for a primary on %s", cfg->listen);
	if (cfg->witness)
		log_info("witness: activation waits for the lease from %s", cfg->witness);
	if (cfg->fence_cmd)
		log_info("fencing: activation waits for '%s' to succeed (timeout %u ms)",
			 cfg->fence_cmd, cfg->fence_timeout_ms);
	else if (!cfg->witness)
		log_unsafe("no fencing configured (--fence-cmd or --witness): if the link to the "
			   "primary breaks while the primary still runs (a network partition), this "
			   "host activates a second copy of the domain and both serve clients");
	while (!stop_flag) {
		struct pollfd pfd = {.fd = lfd, .events = POLLIN};

		if (reap(conns, cfg->once))
			break;
		expire(conns, false);
		if (poll(&pfd, 1, 50) > 0)
			accept_one(x, lfd, conns);
	}
	/* No connection may start a session from now on; those still in their
	 * handshake are cut short. */
	pthread_mutex_lock(&x->mu);
	x->closing = true;
	pthread_mutex_unlock(&x->mu);
	expire(conns, true);
	for (unsigned i = 0; i < RX_CONNS; i++) {
		if (!conns[i])
			continue;
		pthread_join(conns[i]->th, NULL);
		pthread_mutex_destroy(&conns[i]->mu);
		free(conns[i]);
	}
	close(lfd);
	if (x->state == RX_ACTIVE)
		rc = x->switched ? 2 : 1;
out:
	ctl_server_stop(x->ctl);
	notify_stop(x->notify);
	for (unsigned i = 0; i < CKPT_DISK_MAX; i++)
		replica_close(x->disks[i]);
	ckbuf_free(x->buf);
	ckpt_decoder_free(x->dec);
	hv_state_free(&x->state_recs);
	pthread_mutex_destroy(&x->mu);
	free(x);
	return rc;
}
