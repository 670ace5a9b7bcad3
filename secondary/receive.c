#include "secondary/receive.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include "checkpoint/codec.h"
#include "checkpoint/stream.h"
#include "common/clock.h"
#include "common/ctl.h"
#include "common/io.h"
#include "common/log.h"
#include "common/sock.h"
#include "failover/fence.h"
#include "diskrepl/drbd.h"
#include "failover/link.h"
#include "failover/witness.h"
#include "diskrepl/replica.h"
#include "secondary/ckbuf.h"

static volatile sig_atomic_t stop_flag;

void rx_request_stop(void)
{
	stop_flag = 1;
}

enum rx_state { RX_WAITING, RX_SYNCING, RX_PROTECTED, RX_FENCING, RX_FAILING_OVER, RX_ACTIVE };
static const char *const rx_state_names[] = {"waiting for a primary", "syncing", "protected",
					     "fencing the primary (not active)", "failing over",
					     "active (failed over)"};

struct rx {
	const struct rx_config *cfg;
	const struct hv_ops *ops;
	pthread_mutex_t mu;
	enum rx_state state;
	char domain[64];
	char peer[64];
	_Atomic uint64_t committed; /* UINT64_MAX: none */
	uint64_t checkpoints, pages, bytes, apply_ns_last, failover_ms;
	unsigned fence_attempts;
	char fence_result[420];
	char last_error[320];
	struct ctl_server *ctl;
	struct ctl_commands cmds;

	/* The current session. */
	struct hv_dom *dom;
	struct hv_state state_recs;
	struct ckbuf *buf;
	struct ckpt_decoder *dec;
	struct replica *disks[CKPT_DISK_MAX];
	bool disk_on[CKPT_DISK_MAX]; /* configured by this session's primary */
	struct drbd_res drbd[CKPT_DISK_MAX];
	unsigned drbd_seen; /* HA_DRBD_DISK records of this session */
};

#define DRBD_PROMOTE_TIMEOUT_MS 30000

static void set_state(struct rx *x, enum rx_state s)
{
	pthread_mutex_lock(&x->mu);
	x->state = s;
	pthread_mutex_unlock(&x->mu);
}

static int cmd_status(void *ctx, const char *arg, FILE *out)
{
	struct rx *x = ctx;
	uint64_t c = atomic_load(&x->committed);

	(void)arg;
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
	{"status", "status", cmd_status},
};

static uint8_t *page_of(void *ctx, uint64_t pfn)
{
	struct rx *x = ctx;

	return x->ops->page(x->dom, pfn);
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

/* Runs the fence command until it reports the primary fenced. Returns 0
 * then, or -ECANCELED when a stop was requested first: the domain stays
 * passive. */
static int fence(struct rx *x, uint64_t epoch)
{
	const struct rx_config *c = x->cfg;
	struct fo_fence_target t = {.domain = x->domain, .peer = x->peer, .epoch = epoch};

	set_state(x, RX_FENCING);
	for (unsigned attempt = 1; !stop_flag; attempt++) {
		char why[200];
		uint64_t t0 = clk_now_ns();
		int rc;

		log_warn("fencing the primary %s before activating (attempt %u)", x->peer, attempt);
		rc = fo_fence_run(c->fence_cmd, c->fence_timeout_ms, &t, why, sizeof(why));
		pthread_mutex_lock(&x->mu);
		x->fence_attempts = attempt;
		snprintf(x->fence_result, sizeof(x->fence_result), "%s", why);
		pthread_mutex_unlock(&x->mu);
		if (rc == 0) {
			log_info("the primary %s is fenced (%s, %llu ms)", x->peer, why,
				 (unsigned long long)((clk_now_ns() - t0) / NSEC_PER_MSEC));
			return 0;
		}
		log_error("fencing the primary %s failed: %s; NOT activating (it may still run "
			  "and serve). Retrying in %u ms; fix the fence device, or power the "
			  "primary off and let the retry succeed, or stop this secondary",
			  x->peer, why, c->fence_retry_ms);
		pthread_mutex_lock(&x->mu);
		snprintf(x->last_error, sizeof(x->last_error), "fencing failed: %s", why);
		pthread_mutex_unlock(&x->mu);
		for (uint64_t until = clk_now_ns() + (uint64_t)c->fence_retry_ms * NSEC_PER_MSEC;
		     !stop_flag && clk_now_ns() < until;)
			usleep(20000);
	}
	log_warn("stop requested while fencing: the domain was not activated here");
	return -ECANCELED;
}

/* Asks the witness for the pair's lease until it is granted. Returns 0
 * then; -EALREADY when the primary renewed its lease meanwhile (it is
 * alive: this copy must not run); -ECANCELED on a stop. */
static int witness_wait(struct rx *x)
{
	const struct rx_config *c = x->cfg;
	uint64_t last_expiry = 0;
	unsigned renewals = 0;

	set_state(x, RX_FENCING);
	for (unsigned attempt = 1; !stop_flag; attempt++) {
		struct fo_lease_reply rep;
		char err[400];
		uint64_t now = clk_now_ns() / NSEC_PER_MSEC, wait_ms = c->fence_retry_ms;
		int rc = fo_witness_ask(c->witness, c->witness_tls, x->domain, "secondary",
					c->witness_ttl_ms, NULL, 1000, &rep, err, sizeof(err));

		pthread_mutex_lock(&x->mu);
		x->fence_attempts = attempt;
		if (rc < 0)
			snprintf(x->fence_result, sizeof(x->fence_result), "%s", err);
		else
			snprintf(x->fence_result, sizeof(x->fence_result),
				 "witness: %s (holder %s)", rep.granted ? "granted" : "denied",
				 rep.holder);
		pthread_mutex_unlock(&x->mu);
		if (rc == 0 && rep.granted) {
			log_info("the witness granted the lease (generation %llu): the primary is "
				 "off or cut off from the witness too",
				 (unsigned long long)rep.generation);
			return 0;
		}
		if (rc == 0 && rep.stale) {
			log_warn("the witness says the primary ran without this secondary since "
				 "its last checkpoint (it released output this copy does not "
				 "have): activating it would forget what clients saw. Not "
				 "activating; discarding this copy. If the primary is gone for "
				 "good, its last state is lost with it: recover by hand");
			return -EALREADY;
		}
		if (rc < 0) {
			log_error("%s; NOT activating: without the witness the primary may still "
				  "run. Retrying in %u ms",
				  err, c->fence_retry_ms);
		} else {
			uint64_t expiry = now + rep.ms;

			/* The same lease expires at the same time; a later expiry
			 * means its holder renewed it. Twice in a row, so that the
			 * last renewal of a primary that was dying when it sent
			 * it does not count: it is alive. */
			if (last_expiry && expiry > last_expiry + c->witness_ttl_ms / 4 &&
			    !strcmp(rep.holder, "primary"))
				renewals++;
			else
				renewals = 0;
			if (renewals >= 2) {
				log_warn(
				    "the primary still renews its lease with the witness: it is "
				    "alive behind a partition and keeps serving; not activating. "
				    "Discarding this copy; the primary re-protects when the link "
				    "is back");
				return -EALREADY;
			}
			last_expiry = expiry;
			log_warn("the witness denies the lease: %s holds it for %u ms more "
				 "(generation %llu); waiting for it to expire",
				 rep.holder, rep.ms, (unsigned long long)rep.generation);
			wait_ms = rep.ms + 50;
		}
		for (uint64_t until = clk_now_ns() + wait_ms * NSEC_PER_MSEC;
		     !stop_flag && clk_now_ns() < until;)
			usleep(20000);
	}
	log_warn("stop requested while waiting for the witness: the domain was not activated");
	return -ECANCELED;
}

/* Returns 1 when the domain runs here, -EALREADY when the primary is
 * known alive (discard the copy), another -errno when it was not
 * activated. */
static int failover(struct rx *x, const char *why)
{
	uint64_t t0 = clk_now_ns(), epoch = atomic_load(&x->committed);
	int rc;

	if (x->cfg->witness) {
		rc = witness_wait(x);
		if (rc < 0)
			return rc;
	}
	if (x->cfg->fence_cmd && fence(x, epoch) < 0)
		return -ECANCELED;
	if (x->cfg->witness || x->cfg->fence_cmd)
		log_info("fencing took %llu ms",
			 (unsigned long long)((clk_now_ns() - t0) / NSEC_PER_MSEC));
	t0 = clk_now_ns(); /* activation time alone */
	set_state(x, RX_FAILING_OVER);
	log_warn("FAILOVER: %s; activating the domain at epoch %llu", why,
		 (unsigned long long)epoch);
	if (!x->cfg->fence_cmd && !x->cfg->witness)
		log_warn("no fencing configured: if the primary is alive behind a partition, two "
			 "copies of the domain may now run");
	for (unsigned i = 0; i < x->cfg->ndrbd; i++) {
		char err[sizeof(x->last_error)];

		uint64_t until = clk_now_ns() + (uint64_t)DRBD_PROMOTE_TIMEOUT_MS * NSEC_PER_MSEC;

		while ((rc = drbd_promote(&x->drbd[i], DRBD_PROMOTE_TIMEOUT_MS, err, sizeof(err))) ==
			       -EBUSY &&
		       clk_now_ns() < until && !stop_flag) {
			log_warn("%s; retrying", err);
			clk_sleep_until_ns(clk_now_ns() + NSEC_PER_SEC);
		}
		if (rc < 0) {
			log_error("%s; not resuming the domain without its disk", err);
			snprintf(x->last_error, sizeof(x->last_error), "%s", err);
			return -EIO;
		}
		log_info("DRBD %s is Primary here: %s is the domain's disk", x->drbd[i].name,
			 x->drbd[i].dev);
	}
	for (unsigned i = 0; i < CKPT_DISK_MAX; i++) {
		if (!x->disk_on[i])
			continue;
		rc = replica_failover(x->disks[i]);
		if (rc < 0) {
			log_error("disk %u: %s; not resuming the domain on a disk that does not "
				  "match its memory",
				  i, replica_error(x->disks[i]));
			snprintf(x->last_error, sizeof(x->last_error), "disk %u: %s", i,
				 replica_error(x->disks[i]));
			return -EIO;
		}
		log_info("disk %u: replica %s is at epoch %llu", i, replica_path(x->disks[i]),
			 (unsigned long long)epoch);
	}
	rc = x->ops->activate(x->dom, &x->state_recs);
	if (rc < 0) {
		log_error("activation failed: %s; the domain cannot be resumed here", strerror(-rc));
		snprintf(x->last_error, sizeof(x->last_error), "activation failed: %s",
			 strerror(-rc));
		return rc;
	}
	pthread_mutex_lock(&x->mu);
	x->failover_ms = (clk_now_ns() - t0) / NSEC_PER_MSEC;
	x->state = RX_ACTIVE;
	pthread_mutex_unlock(&x->mu);
	log_info("FAILOVER complete: the domain runs here from epoch %llu (activation %llu ms)",
		 (unsigned long long)epoch, (unsigned long long)x->failover_ms);
	x->ops->close(x->dom);
	x->dom = NULL;
	return 1;
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
	if (rc < 0 || !precopy)
		return rc;
	/* Nothing is committed yet: pre-copy pages go straight to the domain. */
	struct hv_state none = {0};
	rc = ckbuf_commit(x->buf, x->dec, page_of, x, &none, err, errlen);
	hv_state_free(&none);
	return rc;
}

/* Returns 1 when the domain was activated here, 0 when the session ended
 * without failover, 2 when the peer failed the TLS handshake (it was never
 * a session), -errno on a local failure. */
static int session(struct rx *x, int fd, const char *peer)
{
	struct fo_link *l;
	struct ckpt_reader *r;
	struct ckpt_record rec;
	char err[320] = "";
	bool have_ckpt = false;
	int rc;

	rc = fo_link_open(fd, x->cfg->timeout_ms, x->cfg->tls, &l, err, sizeof(err));
	if (rc < 0) {
		log_error("refusing the connection from %s: %s", peer,
			  err[0] ? err : strerror(-rc));
		return 2;
	}
	if (x->cfg->tls)
		log_info("connection from %s: %s", peer, fo_link_security(l));
	r = fo_link_reader(l);
	atomic_store(&x->committed, UINT64_MAX);
	memset(x->disk_on, 0, sizeof(x->disk_on));
	x->drbd_seen = 0;
	snprintf(x->peer, sizeof(x->peer), "%s", peer);
	set_state(x, RX_SYNCING);

	rc = ckpt_reader_headers(r, CKPT_IHDR_ID_XEN);
	if (rc < 0) {
		snprintf(err, sizeof(err), "%s", ckpt_reader_error(r));
		goto refuse;
	}
	/* Answer at once, so the primary's down timer sees a live secondary
	 * while the incoming domain is being created. */
	rc = fo_link_headers(l, CKPT_IHDR_ID_BACK, ckpt_reader_info(r)->domain_type, 0, 0);
	if (rc == 0)
		rc = fo_link_heartbeat_start(l, &x->committed);
	if (rc < 0)
		goto out;
	rc = fo_link_next(l, &rec);
	if (rc < 0) {
		snprintf(err, sizeof(err), "%s", ckpt_reader_error(r));
		goto refuse;
	}
	const struct ckpt_stream_info *info = ckpt_reader_info(r);
	if (rec.type != CKPT_REC_HA_DOMAIN_CONFIG) {
		snprintf(err, sizeof(err), "the stream does not start with a domain configuration");
		rc = -EBADMSG;
		goto refuse;
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
	if (x->disks[0])
		snprintf(hi.disk, sizeof(hi.disk), "%s", replica_path(x->disks[0]));
	else if (x->cfg->ndrbd)
		snprintf(hi.disk, sizeof(hi.disk), "%s", x->drbd[0].dev);
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
	rc = x->ops->create_incoming(&hi, &x->dom);
	if (rc < 0) {
		snprintf(err, sizeof(err), "cannot create the incoming domain: %s", strerror(-rc));
		goto refuse;
	}
	log_info("receiving %s (%llu pages, %u vCPUs) from %s", hi.name,
		 (unsigned long long)hi.nr_pages, hi.vcpus, peer);

	for (;;) {
		rc = fo_link_next(l, &rec);
		if (rc < 0) {
			snprintf(err, sizeof(err), "%s",
				 rc == -EAGAIN ? "no data or heartbeat from the primary within the "
						 "down timer"
					       : ckpt_reader_error(r));
			goto lost;
		}
		if (stop_flag) {
			snprintf(err, sizeof(err), "stop requested");
			rc = -ECANCELED;
			goto lost;
		}
		switch (rec.type) {
		case CKPT_REC_HA_TRAILER:
			continue;
		case CKPT_REC_END:
			/* Answered with END: the primary may then release what it
			 * holds, since this copy will never run. */
			log_info("the primary stopped protection cleanly; discarding the copy");
			fo_link_end(l);
			rc = 0;
			goto out;
		case CKPT_REC_CHECKPOINT: {
			uint64_t t0 = clk_now_ns(), pages = ckbuf_pages(x->buf);

			log_set_epoch(rec.epoch);
			if (x->drbd_seen < x->cfg->ndrbd) {
				snprintf(err, sizeof(err),
					 "this secondary has DRBD %s (--drbd) for the domain's disk, "
					 "but the primary does not replicate a disk with DRBD "
					 "(ha-protect --disk drbd:RES)",
					 x->drbd[x->drbd_seen].name);
				rc = -ENODEV;
				goto local_failure;
			}
			rc = disks_check(x, err, sizeof(err));
			if (rc == 0) {
				rc = disks_commit(x, rec.epoch, err, sizeof(err));
				if (rc < 0) /* the disks committed before the failing one */
					disks_rollback(x, rec.epoch);
			}
			if (rc == -EPROTO)
				goto lost;
			if (rc < 0)
				goto local_failure;
			rc = ckbuf_commit(x->buf, x->dec, page_of, x, &x->state_recs, err,
					  sizeof(err));
			if (rc == 0 && !x->state_recs.nrecs) {
				snprintf(err, sizeof(err), "checkpoint without domain state");
				rc = -EBADMSG;
			}
			if (rc < 0) {
				/* Memory stays at the last committed epoch: so must the disks,
				 * after a restart too. */
				disks_rollback(x, rec.epoch);
				goto lost;
			}
			atomic_store(&x->committed, rec.epoch);
			rc = send_ack(l, rec.epoch);
			pthread_mutex_lock(&x->mu);
			x->checkpoints++;
			x->pages += pages;
			x->apply_ns_last = clk_now_ns() - t0;
			x->state = RX_PROTECTED;
			pthread_mutex_unlock(&x->mu);
			if (!have_ckpt)
				log_info("first checkpoint committed: %s is protected", hi.name);
			have_ckpt = true;
			if (rc < 0) {
				snprintf(err, sizeof(err), "sending ACK: %s", strerror(-rc));
				goto lost;
			}
			rc = disks_apply(x, err, sizeof(err));
			if (rc < 0)
				goto local_failure;
			continue;
		}
		case CKPT_REC_PAGE_DATA:
		case CKPT_REC_HA_PAGE_DATA_Z:
			pthread_mutex_lock(&x->mu);
			x->bytes += rec.length;
			pthread_mutex_unlock(&x->mu);
			rc = take_record(x, &rec, !have_ckpt && x->state_recs.nrecs == 0 &&
							 ckpt_reader_last_epoch(r) == UINT64_MAX,
					 err, sizeof(err));
			if (rc < 0)
				goto lost;
			continue;
		case CKPT_REC_HA_DRBD_DISK: {
			const struct ckpt_ha_drbd_disk *d = (const void *)rec.body;

			if (x->drbd_seen >= x->cfg->ndrbd) {
				snprintf(err, sizeof(err),
					 "the primary's disk is DRBD resource %s (minor %u there) and "
					 "this secondary has no --drbd for it: it could not resume the "
					 "domain on its disk; start ha-receive with --drbd RES (the "
					 "resource here)",
					 d->resource, le32toh(d->minor));
				rc = -ENODEV;
				goto local_failure;
			}
			log_info("the primary's disk is DRBD %s (minor %u there); here DRBD %s (%s)",
				 d->resource, le32toh(d->minor), x->drbd[x->drbd_seen].name,
				 x->drbd[x->drbd_seen].dev);
			x->drbd_seen++;
			continue;
		}
		case CKPT_REC_HA_DISK_CONFIG:
		case CKPT_REC_HA_DISK_WRITE:
		case CKPT_REC_HA_DISK_BARRIER:
			if (rec.type == CKPT_REC_HA_DISK_WRITE) {
				pthread_mutex_lock(&x->mu);
				x->bytes += rec.length;
				pthread_mutex_unlock(&x->mu);
			}
			rc = take_disk_record(x, &rec, err, sizeof(err));
			if (rc == -EPROTO)
				goto lost;
			if (rc < 0)
				goto local_failure;
			continue;
		default:
			/* Domain state records (HA_VMM_STATE, Xen's context records). */
			rc = take_record(x, &rec, false, err, sizeof(err));
			if (rc < 0)
				goto lost;
			continue;
		}
	}

local_failure:
	/* The primary is alive: tell it why this copy cannot go on. */
	log_error("cannot keep the copy: %s; the primary is told and runs degraded", err);
	snprintf(x->last_error, sizeof(x->last_error), "%s", err);
	send_error(l, -rc, err);
	goto out;
refuse:
	log_error("refusing the stream from %s: %s", peer, err);
	if (fo_link_bytes_sent(l) == 0)
		fo_link_headers(l, CKPT_IHDR_ID_BACK, CKPT_DHDR_HAVM, 0, 0);
	send_error(l, -rc, err);
	goto out;
lost:
	ckbuf_reset(x->buf);
	snprintf(x->last_error, sizeof(x->last_error), "%s", err);
	fo_link_shutdown(l);
	if (have_ckpt && rc != -ECANCELED) {
		log_error("primary lost: %s", err);
		if (failover(x, err) == -EALREADY)
			goto out; /* the primary lives: discard the copy, wait for it */
		fo_link_free(l);
		log_set_epoch(LOG_NO_EPOCH);
		return x->dom == NULL && x->state == RX_ACTIVE ? 1 : -EIO;
	}
	if (rc != -ECANCELED)
		log_error("the primary went away before the first checkpoint: %s; nothing to "
			  "resume, waiting for a new primary", err);
out:
	ckbuf_reset(x->buf);
	if (x->dom) {
		if (x->ops->destroy)
			x->ops->destroy(x->dom);
		x->ops->close(x->dom);
		x->dom = NULL;
	}
	hv_state_free(&x->state_recs);
	fo_link_free(l);
	set_state(x, RX_WAITING);
	log_set_epoch(LOG_NO_EPOCH);
	return 0;
}

/* Tells a second primary that this secondary is taken, then hangs up. */
static void refuse_busy(int fd, const char *domain, struct fo_tls *x_tls)
{
	struct fo_link *l;
	char msg[160];

	if (fo_link_open(fd, 1000, x_tls, &l, msg, sizeof(msg)) < 0)
		return;
	snprintf(msg, sizeof(msg), "this secondary is already protecting %s", domain);
	fo_link_headers(l, CKPT_IHDR_ID_BACK, CKPT_DHDR_HAVM, 0, 0);
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
	fo_link_free(l);
}

struct session_arg {
	struct rx *x;
	int fd;
	char peer[64];
	int result;
	_Atomic bool done;
};

static void *session_main(void *arg)
{
	struct session_arg *a = arg;

	a->result = session(a->x, a->fd, a->peer);
	atomic_store(&a->done, true);
	return NULL;
}

int rx_run(const struct rx_config *cfg, const struct hv_ops *ops)
{
	struct rx *x = calloc(1, sizeof(*x));
	struct session_arg *cur = NULL;
	pthread_t th;
	int lfd, rc = 0;

	if (!x)
		return -ENOMEM;
	x->cfg = cfg;
	x->ops = ops;
	pthread_mutex_init(&x->mu, NULL);
	atomic_store(&x->committed, UINT64_MAX);
	snprintf(x->domain, sizeof(x->domain), "(none yet)");
	if (ckbuf_new(cfg->max_ckpt_bytes, &x->buf) < 0 || ckpt_decoder_new(&x->dec) < 0) {
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
	lfd = sock_tcp_listen(cfg->listen, 4);
	if (lfd < 0) {
		log_error("cannot listen on %s: %s", cfg->listen, sock_tcp_strerror(lfd));
		rc = lfd;
		goto out;
	}
	log_info("listening on %s for a primary (%s)", cfg->listen,
		 cfg->tls ? fo_tls_mode(cfg->tls) : "plain TCP, --insecure");
	if (cfg->witness)
		log_info("witness: activation waits for the lease from %s", cfg->witness);
	if (cfg->fence_cmd)
		log_info("fencing: activation waits for '%s' to succeed (timeout %u ms)",
			 cfg->fence_cmd, cfg->fence_timeout_ms);
	else if (!cfg->witness)
		log_warn("UNSAFE: no fencing configured (--fence-cmd or --witness): if the link to "
			 "the primary "
			 "breaks while the primary still runs (a network partition), this host "
			 "activates a second copy of the domain and both serve clients");
	while (!stop_flag) {
		struct pollfd pfd = {.fd = lfd, .events = POLLIN};

		if (cur && atomic_load(&cur->done)) {
			pthread_join(th, NULL);
			int res = cur->result;
			free(cur);
			cur = NULL;
			if (res == 1) {
				rc = 0;
				break; /* failed over: the domain runs here now */
			}
			if (cfg->once && res != 2)
				break;
		}
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
		char host[64] = "?", serv[16] = "";

		if (fd < 0)
			continue;
		getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), serv, sizeof(serv),
			    NI_NUMERICHOST | NI_NUMERICSERV);
		if (cur && atomic_load(&cur->done)) {
			/* Ended since the last look (a refused handshake ends at
			 * once): not a reason to turn this primary away. */
			pthread_join(th, NULL);
			int res = cur->result;
			free(cur);
			cur = NULL;
			if (res == 1 || (cfg->once && res != 2)) {
				close(fd);
				rc = 0;
				break;
			}
		}
		if (cur) {
			log_warn("refusing a second primary from %s: already protecting %s", host,
				 x->domain);
			refuse_busy(fd, x->domain, cfg->tls);
			continue;
		}
		cur = calloc(1, sizeof(*cur));
		if (!cur) {
			close(fd);
			continue;
		}
		cur->x = x;
		cur->fd = fd;
		snprintf(cur->peer, sizeof(cur->peer), "%s:%s", host, serv);
		if (pthread_create(&th, NULL, session_main, cur)) {
			close(fd);
			free(cur);
			cur = NULL;
		}
	}
	if (cur) {
		pthread_join(th, NULL);
		free(cur);
	}
	close(lfd);
out:
	ctl_server_stop(x->ctl);
	for (unsigned i = 0; i < CKPT_DISK_MAX; i++)
		replica_close(x->disks[i]);
	ckbuf_free(x->buf);
	ckpt_decoder_free(x->dec);
	hv_state_free(&x->state_recs);
	pthread_mutex_destroy(&x->mu);
	free(x);
	return rc;
}
