/* Taking over from a lost primary: nothing runs here until the primary is
 * fenced or the witness's lease is ours, and the disks are at the memory's
 * epoch. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "failover/fence.h"
#include "failover/witness.h"
#include "secondary/rx_int.h"

/* Runs the fence command until it reports the primary fenced. Returns 0
 * then, or -ECANCELED when a stop was requested first: the domain stays
 * passive. */
static int fence(struct rx *x, uint64_t epoch)
{
	const struct rx_config *c = x->cfg;
	struct fo_fence_target t = {.domain = x->domain, .peer = x->peer, .epoch = epoch};

	rx_set_state(x, RX_FENCING);
	for (unsigned attempt = 1; !rx_stop_requested(); attempt++) {
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
		notify_event(x->notify, "fence-failed", x->domain, x->peer, epoch, why);
		log_error("fencing the primary %s failed: %s; NOT activating (it may still run "
			  "and serve). Retrying in %u ms; fix the fence device, or power the "
			  "primary off and let the retry succeed, or stop this secondary",
			  x->peer, why, c->fence_retry_ms);
		pthread_mutex_lock(&x->mu);
		snprintf(x->last_error, sizeof(x->last_error), "fencing failed: %s", why);
		pthread_mutex_unlock(&x->mu);
		clk_sleep_until_or(clk_now_ns() + (uint64_t)c->fence_retry_ms * NSEC_PER_MSEC,
				   rx_stop_requested);
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

	rx_set_state(x, RX_FENCING);
	for (unsigned attempt = 1; !rx_stop_requested(); attempt++) {
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
		clk_sleep_until_or(clk_now_ns() + wait_ms * NSEC_PER_MSEC, rx_stop_requested);
	}
	log_warn("stop requested while waiting for the witness: the domain was not activated");
	return -ECANCELED;
}

/* A failover's external devices: their four phases with the committed
 * EPOCH, before anything is activated. 0 with *XD to roll back should a
 * later step fail (NULL: no devices); -EREMOTEIO when one failed (the
 * others were rolled back): the copy must not run. */
static int ext_failover(struct rx *x, uint64_t epoch, struct extdev **xd)
{
	char why[300];
	int rc;

	*xd = NULL;
	if (!x->cfg->n_ext)
		return 0;
	rc = extdev_new(x->cfg->ext, x->cfg->n_ext, x->cfg->ext_timeout_ms, x->domain, x->peer, xd,
			why, sizeof(why));
	for (int ph = EXTDEV_CHECK; rc == 0 && ph <= EXTDEV_COMMIT; ph++)
		rc = extdev_phase(*xd, EXTDEV_FAILOVER, ph, epoch, why, sizeof(why));
	if (rc == 0)
		return 0;
	extdev_free(*xd);
	*xd = NULL;
	log_error("FAILOVER REFUSED: %s; not activating: the devices that had passed a phase "
		  "were rolled back, and this copy does not run",
		  why);
	pthread_mutex_lock(&x->mu);
	snprintf(x->last_error, sizeof(x->last_error), "refused by an external device: %.200s",
		 why);
	pthread_mutex_unlock(&x->mu);
	return -EREMOTEIO;
}

/* Promotes the disks and activates the last committed checkpoint (epoch):
 * a failover once the primary is fenced, or a switchover the primary
 * handed over (PLANNED). 1 when the domain runs here, else -errno. */
enum how { FAILOVER, SWITCHOVER, RESTORE };

static int activate(struct rx *x, const char *why, uint64_t epoch, enum how how)
{
	static const char *const names[] = {"FAILOVER", "SWITCHOVER", "RESTORE"};
	const char *what = names[how];
	bool planned = how != FAILOVER;
	uint64_t t0 = clk_now_ns(); /* activation time alone */
	struct extdev *xd = NULL;
	int rc;

	rx_set_state(x, RX_FAILING_OVER);
	log_warn("%s: %s; activating the domain at epoch %llu", what, why,
		 (unsigned long long)epoch);
	if (how != RESTORE)
		notify_event(x->notify, planned ? "switchover-started" : "failover-started",
			     x->domain, x->peer, epoch, why);
	if (!planned && !x->cfg->fence_cmd && !x->cfg->witness)
		log_unsafe("no fencing configured: if the primary is alive behind a partition, two "
			   "copies of the domain may now run");
	if (how == FAILOVER) {
		rc = ext_failover(x, epoch, &xd);
		if (rc < 0)
			return rc;
	}
	for (unsigned i = 0; i < x->cfg->ndrbd; i++) {
		char err[sizeof(x->last_error)];

		uint64_t until = clk_now_ns() + (uint64_t)DRBD_PROMOTE_TIMEOUT_MS * NSEC_PER_MSEC;

		while ((rc = drbd_promote(&x->drbd[i], DRBD_PROMOTE_TIMEOUT_MS, err, sizeof(err))) ==
			       -EBUSY &&
		       clk_now_ns() < until && !rx_stop_requested()) {
			log_warn("%s; retrying", err);
			clk_sleep_until_ns(clk_now_ns() + NSEC_PER_SEC);
		}
		if (rc < 0) {
			log_error("%s; not resuming the domain without its disk", err);
			snprintf(x->last_error, sizeof(x->last_error), "%s", err);
			rc = -EIO;
			goto out;
		}
		log_info("DRBD %s is Primary here: %s is the domain's disk", x->drbd[i].name,
			 x->drbd[i].dev);
	}
	for (unsigned i = 0; i < CKPT_DISK_MAX; i++) {
		uint8_t lineage[16];
		bool complete;

		if (!x->disk_on[i])
			continue;
		/* What the replica is a complete copy of, before the failover
		 * forgets it: a served replica goes on from there. */
		complete = replica_lineage(x->disks[i], lineage);
		rc = replica_failover(x->disks[i]);
		if (rc < 0) {
			log_error("disk %u: %s; not resuming the domain on a disk that does not "
				  "match its memory",
				  i, replica_error(x->disks[i]));
			snprintf(x->last_error, sizeof(x->last_error), "disk %u: %s", i,
				 replica_error(x->disks[i]));
			rc = -EIO;
			goto out;
		}
		log_info("disk %u: replica %s is at epoch %llu", i, replica_path(x->disks[i]),
			 (unsigned long long)epoch);
		if (x->cfg->serve[i]) {
			char err[sizeof(x->last_error) - 16];

			rc = rx_serve_disk(x->cfg->serve[i], replica_path(x->disks[i]),
					   x->cfg->bitmaps[i], complete ? lineage : NULL, err,
					   sizeof(err));
			if (rc < 0) {
				log_error("disk %u: %s; not resuming the domain without its disk", i,
					  err);
				snprintf(x->last_error, sizeof(x->last_error), "disk %u: %s", i, err);
				goto out;
			}
		}
	}
	rc = x->ops->activate(x->copy, &x->state_recs);
	if (rc < 0) {
		log_error("activation failed: %s; the domain cannot be resumed here", strerror(-rc));
		snprintf(x->last_error, sizeof(x->last_error), "activation failed: %s",
			 strerror(-rc));
		goto out;
	}
	pthread_mutex_lock(&x->mu);
	x->failover_ms = (clk_now_ns() - t0) / NSEC_PER_MSEC;
	x->switched = how == SWITCHOVER;
	x->restored = how == RESTORE;
	rx_set_state_locked(x, RX_ACTIVE);
	pthread_mutex_unlock(&x->mu);
	log_info("%s complete: the domain runs here from epoch %llu (activation %llu ms)", what,
		 (unsigned long long)epoch, (unsigned long long)x->failover_ms);
	/* The handle stays open until the session ends (receive.c): a
	 * postcopy still serves the copy. */
	rc = 1;
out:
	/* The devices that moved to this host go back: the domain did not. */
	if (rc < 0)
		extdev_rollback(xd, EXTDEV_FAILOVER, epoch);
	extdev_free(xd);
	return rc;
}

/* Returns 1 when the domain runs here, -EALREADY when the primary is
 * known alive (discard the copy), another -errno when it was not
 * activated. */
static int take_over(struct rx *x, const char *why, uint64_t epoch)
{
	uint64_t t0 = clk_now_ns();
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
	return activate(x, why, epoch, FAILOVER);
}

int rx_switch_over(struct rx *x)
{
	uint64_t epoch = atomic_load(&x->committed);
	char reason[sizeof(x->last_error) + 40];
	int rc = activate(x, "the primary handed its domain over (suspended for good there)",
			  epoch, SWITCHOVER);

	if (rc == 1) {
		snprintf(reason, sizeof(reason), "activation took %llu ms",
			 (unsigned long long)x->failover_ms);
		notify_event(x->notify, "switchover-complete", x->domain, x->peer, epoch, reason);
	} else {
		pthread_mutex_lock(&x->mu);
		snprintf(reason, sizeof(reason), "%s", x->last_error);
		pthread_mutex_unlock(&x->mu);
		notify_event(x->notify, "switchover-failed", x->domain, x->peer, epoch, reason);
	}
	return rc;
}

int rx_take_over(struct rx *x, const char *why)
{
	uint64_t epoch = atomic_load(&x->committed);
	char reason[sizeof(x->last_error) + 40];
	int rc;

	notify_event(x->notify, "primary-lost", x->domain, x->peer, epoch, why);
	rc = take_over(x, why, epoch);
	if (rc == 1) {
		snprintf(reason, sizeof(reason), "activation took %llu ms",
			 (unsigned long long)x->failover_ms);
		notify_event(x->notify, "failover-complete", x->domain, x->peer, epoch, reason);
	} else if (rc == -EALREADY) {
		notify_event(x->notify, "failover-refused", x->domain, x->peer, epoch,
			     "the witness says the primary is alive, or ran without this copy: "
			     "the copy is discarded");
	} else {
		pthread_mutex_lock(&x->mu);
		snprintf(reason, sizeof(reason), "%s",
			 rc == -ECANCELED ? "stopped before activating" : x->last_error);
		pthread_mutex_unlock(&x->mu);
		notify_event(x->notify, "failover-failed", x->domain, x->peer, epoch, reason);
	}
	return rc;
}

int rx_restore(struct rx *x)
{
	char why[300];

	snprintf(why, sizeof(why), "%.250s ends", x->cfg->restore_path);
	return activate(x, why, atomic_load(&x->committed), RESTORE);
}
