/* A planned switchover (ha-ctl switchover): the domain moves to the
 * secondary with nothing acknowledged lost. The epoch loop takes one last
 * checkpoint and leaves the domain suspended; then, in order:
 *   1. the secondary acknowledges that checkpoint (it holds it committed);
 *   2. with a device to hand over (a DRBD resource): the secondary is
 *      asked whether it can run that checkpoint (PREPARE, READY), then
 *      the domain is stopped here for good (hv_save_ops' stop), and
 *   3. the devices hand over what the secondary's copy needs (the DRBD
 *      resource is demoted, so that the secondary can promote it);
 *   4. HA_SWITCHOVER (GO) tells the secondary to run the domain from that
 *      checkpoint: it does so without fencing (this side waits on a live
 *      link, its domain suspended or gone) and answers with
 *      HA_SWITCHOVER, or HA_ERROR if its copy could not start;
 *   5. without such a device, the domain is stopped only now, as xl
 *      migrate destroys its source once the destination runs.
 * With --postcopy (a migration), that checkpoint carries no pages: after
 * RUNS the pages it left out follow (postcopy_push), those the secondary's
 * domain waits for first, and the domain is stopped here only once the
 * secondary has placed every one (HA_PC_END both ways).
 * Until the domain is stopped, nothing has changed hands: a secondary that
 * refuses (its HA_ERROR) leaves the domain to be resumed here. A link that
 * breaks in between leaves it suspended (or stopped): the secondary, which
 * saw its primary go, activates its copy as after any loss of its
 * primary. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "checkpoint/codec.h"
#include "checkpoint/extdev.h"
#include "checkpoint/stream_format.h"
#include "common/clock.h"
#include "common/log.h"
#include "primary/prot_int.h"

/* How long the secondary may take to acknowledge the last checkpoint, and
 * to activate its copy (DRBD's promotion, disks attached, a Xen standby
 * unpaused or restored); its heartbeats keep the link up meanwhile. */
#define SWITCH_ACK_MS 60000
#define SWITCH_ANSWER_MS 300000

enum wait_end { W_MET, W_REFUSED, W_LOST };

/* Waits (under mu) until DONE says so, the secondary refused (HA_ERROR),
 * or the session was lost (degraded: the link, the down timer) or the
 * deadline passed. */
static enum wait_end wait_for(struct prot *p, bool (*done)(const struct prot *), unsigned ms)
{
	uint64_t until = clk_now_ns() + (uint64_t)ms * NSEC_PER_MSEC;
	enum wait_end w = W_LOST;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		if (done(p)) {
			w = W_MET;
			break;
		}
		if (p->peer_error) {
			w = W_REFUSED;
			break;
		}
		if (p->state != ST_PROTECTED || clk_now_ns() >= until)
			break;
		struct timespec ts = clk_deadline_ts(20);

		pthread_cond_timedwait(&p->cv, &p->mu, &ts);
	}
	pthread_mutex_unlock(&p->mu);
	return w;
}

/* Why the session was lost (prot_degrade's words), read under mu. */
static void reason(struct prot *p, char *buf, size_t len, const char *none)
{
	pthread_mutex_lock(&p->mu);
	snprintf(buf, len, "%s", p->reason[0] ? p->reason : none);
	pthread_mutex_unlock(&p->mu);
}

static bool last_acked(const struct prot *p)
{
	return p->acked >= p->switch_epoch;
}

static bool ready(const struct prot *p)
{
	return p->switch_answer == CKPT_SWITCH_READY || p->switch_answer == CKPT_SWITCH_RUNS;
}

static bool answered(const struct prot *p)
{
	return p->switch_answer == CKPT_SWITCH_RUNS;
}

static enum extdev_op ext_op(const struct prot *p)
{
	return p->cfg->migrate ? EXTDEV_MIGRATE : EXTDEV_SWITCHOVER;
}

/* The secondary refused before anything changed hands: run on here. */
static int resume_here(struct prot *p, uint64_t epoch, const char *why)
{
	/* The external devices go back first: the domain finds them as
	 * before the switchover when it runs again. */
	extdev_rollback(p->cfg->ext, ext_op(p), epoch);
	devset_call(p->devs, DEVSET_PRERESUME, epoch + 1);
	if (p->ops->resume(p->dom) < 0) {
		p->frozen = true;
		log_error("switchover of %s aborted (%s), and resuming it here failed: it stays "
			  "suspended",
			  p->cfg->domain, why);
		return -EIO;
	}
	log_error("switchover of %s aborted: %s; it runs on here, and protection resumes as "
		  "after any loss of the secondary",
		  p->cfg->domain, why);
	return -ECANCELED;
}

/* The outcome is not known here: the domain must not run here again. */
static int unconfirmed(struct prot *p, uint64_t epoch, bool stopped, const char *why)
{
	pthread_mutex_lock(&p->mu);
	p->switch_end = SW_UNCONFIRMED;
	pthread_mutex_unlock(&p->mu);
	p->frozen = true;
	if (extdev_active(p->cfg->ext, ext_op(p)))
		log_error("the external devices are left as they are (neither committed nor "
			  "rolled back): check them once it is known where the domain runs");
	log_error("SWITCHOVER UNCONFIRMED: %s. The secondary %s activates its copy from its last "
		  "committed checkpoint (epoch %llu or the one before) as after any loss of its "
		  "primary. The domain is %s here and ha-protect will not resume it: check %s; "
		  "if the domain does not run there, %s",
		  why, p->cfg->peer, (unsigned long long)epoch,
		  stopped ? "stopped" : "left suspended", p->cfg->peer,
		  stopped ? "its last state is the secondary's copy (ha-receive's log)"
			  : "resume it here by hand (on Xen, first `xl rename` it back from "
			    "NAME--handedover if it was renamed)");
	return -EINPROGRESS;
}

/* The domain stopped for good (hv_save_ops' stop). */
static int stop_here(struct prot *p)
{
	return p->ops->stop ? p->ops->stop(p->dom) : -EOPNOTSUPP;
}

void prot_pc_request(struct prot *p, const uint64_t *pfns, uint32_t n)
{
	pthread_mutex_lock(&p->mu);
	for (uint32_t i = 0; i < n && p->pc_req_len < PC_REQ_MAX; i++)
		p->pc_req[(p->pc_req_head + p->pc_req_len++) % PC_REQ_MAX] = pfns[i];
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

static bool pc_ended(const struct prot *p)
{
	return p->pc_end;
}

/* The next batch of the postcopy: the pages the secondary asked for
 * first, then the next ones in order from *cursor; none sent twice. */
#define PC_BATCH 32
static uint32_t pc_batch(struct prot *p, struct bitmap *left, size_t *cursor, uint64_t *pfns,
			 uint64_t *asked)
{
	uint32_t n = 0;

	pthread_mutex_lock(&p->mu);
	while (p->pc_req_len && n < PC_BATCH) {
		uint64_t pfn = p->pc_req[p->pc_req_head];

		p->pc_req_head = (p->pc_req_head + 1) % PC_REQ_MAX;
		p->pc_req_len--;
		if (pfn < left->nbits && bitmap_test(left, pfn)) {
			bitmap_clear(left, pfn);
			pfns[n++] = pfn;
			(*asked)++;
		}
	}
	pthread_mutex_unlock(&p->mu);
	while (n < PC_BATCH) {
		*cursor = bitmap_next_set(left, *cursor);
		if (*cursor >= left->nbits)
			break;
		bitmap_clear(left, *cursor);
		pfns[n++] = *cursor;
	}
	return n;
}

/* The domain runs there since RAN_AT: sends every page the last
 * checkpoint left out, then HA_PC_END, and waits for the secondary's
 * (every page placed). 0, or -EIO: the domain can run nowhere whole. */
static int postcopy_push(struct prot *p, uint64_t epoch, uint64_t ran_at)
{
	uint64_t pfns[PC_BATCH], asked = 0, sent = 0, total = bitmap_count(&p->pc_need);
	const void *pages[PC_BATCH];
	/* Compressed as the stream is, without deltas: the secondary holds no
	 * older copy of these pages. */
	struct ckpt_codec_config cc = {.cache_pages = 0, .level = p->cfg->level};
	struct ckpt_encoder *enc = NULL;
	size_t cursor = 0;
	char why[400] = "", r[sizeof(p->reason)];
	int rc = 0;

	/* pc_need is consumed: what is still set is still to send. */
	if (p->cfg->compress)
		rc = ckpt_encoder_new(&cc, &enc);
	while (rc == 0) {
		uint32_t n = pc_batch(p, &p->pc_need, &cursor, pfns, &asked);
		struct ckpt_zbatch zb;

		if (n == 0)
			break;
		for (uint32_t i = 0; i < n; i++)
			pages[i] = p->ops->page(p->dom, pfns[i]);
		if (enc) {
			rc = ckpt_encoder_encode(enc, pfns, pages, n, &zb);
			if (rc == 0)
				rc = fo_link_pages(p->link, CKPT_REC_HA_PAGE_DATA_Z, zb.iov, zb.iovcnt,
						   zb.pages);
		} else {
			rc = fo_link_page_data(p->link, pfns, pages, n);
		}
		sent += n;
		pthread_mutex_lock(&p->mu);
		if (rc == 0 && p->state != ST_PROTECTED)
			rc = -ECONNRESET;
		pthread_mutex_unlock(&p->mu);
	}
	uint64_t wire = enc ? ckpt_encoder_stats(enc)->wire_bytes : sent * CKPT_PAGE_SIZE;
	ckpt_encoder_free(enc);
	if (rc == 0) {
		struct ckpt_ha_pc_end e = {.pages = sent};
		struct iovec iov = {&e, sizeof(e)};

		rc = fo_link_record(p->link, CKPT_REC_HA_PC_END, &iov, 1);
	}
	if (rc == 0 && wait_for(p, pc_ended, SWITCH_ANSWER_MS) != W_MET)
		rc = -ECONNRESET;
	if (rc == 0) {
		log_info("POSTCOPY complete: %llu pages (%.1f MiB sent) in %llu ms, %llu of them "
			 "asked for first; the domain waited for %llu",
			 (unsigned long long)sent, (double)wire / 1048576.0,
			 (unsigned long long)((clk_now_ns() - ran_at) / NSEC_PER_MSEC),
			 (unsigned long long)asked, (unsigned long long)p->pc_waited);
		return 0;
	}
	reason(p, r, sizeof(r), strerror(-rc));
	snprintf(why, sizeof(why), "%s", r);
	pthread_mutex_lock(&p->mu);
	p->switch_end = SW_UNCONFIRMED;
	pthread_mutex_unlock(&p->mu);
	p->frozen = true;
	log_error("POSTCOPY FAILED after %llu of %llu pages: %s. Neither host holds the whole "
		  "domain now: %s ran it from epoch %llu without the rest of its pages and stops "
		  "its copy; here it stays suspended as of that epoch, %llu ms before, and "
		  "ha-protect will not resume it. Resume it here only knowing that what clients "
		  "saw of it on %s since is lost",
		  (unsigned long long)sent, (unsigned long long)total, why, p->cfg->peer,
		  (unsigned long long)epoch,
		  (unsigned long long)((clk_now_ns() - ran_at) / NSEC_PER_MSEC), p->cfg->peer);
	return -EIO;
}

int prot_switchover(struct prot *p)
{
	struct ckpt_ha_switchover h;
	struct iovec iov = {&h, sizeof(h)};
	char why[600], r[sizeof(p->reason)];
	uint64_t epoch, t_ack, t_stop, t_end;
	int rc;

	atomic_store(&p->switchover_req, false); /* one attempt per request */
	pthread_mutex_lock(&p->mu);
	epoch = (uint64_t)p->switch_epoch;
	pthread_mutex_unlock(&p->mu);
	log_info("SWITCHOVER to %s: waiting for the acknowledgement of epoch %llu", p->cfg->peer,
		 (unsigned long long)epoch);
	if (p->cfg->postcopy)
		log_info("postcopy: %llu dirty pages (%llu MiB) are left out of the last checkpoint: "
			 "they follow once the domain runs on %s",
			 (unsigned long long)bitmap_count(&p->pc_need),
			 (unsigned long long)(bitmap_count(&p->pc_need) >> 8), p->cfg->peer);

	/* The external devices move what they hold while the domain is
	 * suspended, beside the last checkpoint's transfer. */
	rc = extdev_phase(p->cfg->ext, ext_op(p), EXTDEV_TRANSFER, epoch, r, sizeof(r));
	if (rc < 0) {
		snprintf(why, sizeof(why), "%s", r);
		return resume_here(p, epoch, why);
	}

	/* 1. The last checkpoint committed there. */
	switch (wait_for(p, last_acked, SWITCH_ACK_MS)) {
	case W_MET:
		break;
	case W_REFUSED:
		reason(p, r, sizeof(r), "no reason given");
		snprintf(why, sizeof(why), "the secondary refused the last checkpoint: %s", r);
		return resume_here(p, epoch, why);
	case W_LOST:
		reason(p, r, sizeof(r), "no answer");
		snprintf(why, sizeof(why), "the secondary did not acknowledge the last checkpoint "
					   "(epoch %llu): %s",
			 (unsigned long long)epoch, r);
		/* A postcopy checkpoint never runs there without GO. */
		if (p->cfg->postcopy)
			return resume_here(p, epoch, why);
		return unconfirmed(p, epoch, false, why);
	}
	/* The secondary holds the last state: the external devices commit
	 * before it may run it. */
	rc = extdev_phase(p->cfg->ext, ext_op(p), EXTDEV_COMMIT, epoch, r, sizeof(r));
	if (rc < 0) {
		snprintf(why, sizeof(why), "%s", r);
		return resume_here(p, epoch, why);
	}
	t_ack = t_stop = clk_now_ns();

	/* 2, 3. With a device to hand over (a DRBD resource the secondary
	 * must promote), the domain is stopped first: its disk must be
	 * closed. Otherwise it stays suspended (it cannot run) until the
	 * secondary's copy runs, and is stopped after, as xl migrate destroys
	 * its source only once the destination runs: a shorter downtime, and
	 * a secondary that fails to activate leaves it to be resumed here. */
	bool stop_first = devset_has(p->devs, DEVSET_HANDOVER);

	if (stop_first && p->cfg->postcopy)
		return resume_here(p, epoch, "a postcopy keeps the domain here until its last page "
					     "is sent, and its disk (DRBD) must be handed over "
					     "before: migrate it without --postcopy");

	if (stop_first) {
		/* The secondary says it can run that checkpoint before anything
		 * here is given up (one that does not know switchovers refuses:
		 * the domain then runs on here). */
		h = (struct ckpt_ha_switchover){.epoch = epoch, .step = CKPT_SWITCH_PREPARE};
		rc = fo_link_record(p->link, CKPT_REC_HA_SWITCHOVER, &iov, 1);
		switch (rc < 0 ? W_LOST : wait_for(p, ready, SWITCH_ACK_MS)) {
		case W_MET:
			break;
		case W_REFUSED:
			reason(p, r, sizeof(r), "no reason given");
			snprintf(why, sizeof(why), "the secondary cannot take it over: %s", r);
			return resume_here(p, epoch, why);
		case W_LOST:
			reason(p, r, sizeof(r), rc < 0 ? strerror(-rc) : "no answer");
			snprintf(why, sizeof(why), "no answer to the switchover's first step: %s", r);
			return unconfirmed(p, epoch, false, why);
		}
		/* Nothing to stop for if the secondary went away meanwhile. */
		pthread_mutex_lock(&p->mu);
		int refused = p->peer_error;
		bool up = p->state == ST_PROTECTED;
		pthread_mutex_unlock(&p->mu);
		if (refused || !up) {
			reason(p, r, sizeof(r), "no reason given");
			snprintf(why, sizeof(why), "the secondary %s after the last checkpoint: %s",
				 refused ? "refused" : "was lost", r);
			return refused ? resume_here(p, epoch, why)
				       : unconfirmed(p, epoch, false, why);
		}
		rc = stop_here(p);
		if (rc < 0) {
			snprintf(why, sizeof(why), "the domain could not be stopped here (%s)",
				 strerror(-rc));
			return resume_here(p, epoch, why);
		}
		t_stop = clk_now_ns();
		rc = devset_call(p->devs, DEVSET_HANDOVER, epoch);
		if (rc < 0) {
			snprintf(why, sizeof(why), "a device could not hand over (%s; its messages "
						   "are above), after the domain was stopped here",
				 strerror(-rc));
			return unconfirmed(p, epoch, true, why);
		}
	}

	/* The copy takes the domain's name (Xen): the suspended domain gives
	 * it up first, as xl migrate's source does. */
	if (!stop_first && p->ops->release) {
		rc = p->ops->release(p->dom, true);
		if (rc < 0) {
			snprintf(why, sizeof(why), "the domain could not give up its name here (%s)",
				 strerror(-rc));
			return resume_here(p, epoch, why);
		}
	}

	/* 4. Run it there. */
	h = (struct ckpt_ha_switchover){.epoch = epoch, .step = CKPT_SWITCH_GO};
	rc = fo_link_record(p->link, CKPT_REC_HA_SWITCHOVER, &iov, 1);
	if (rc < 0) {
		snprintf(why, sizeof(why), "HA_SWITCHOVER could not be sent: %s", strerror(-rc));
		return unconfirmed(p, epoch, stop_first, why);
	}
	switch (wait_for(p, answered, SWITCH_ANSWER_MS)) {
	case W_MET:
		break;
	case W_REFUSED:
		reason(p, r, sizeof(r), "no reason given");
		if (!stop_first) {
			/* Its activation failed: the copy did not start. */
			snprintf(why, sizeof(why), "the secondary could not activate its copy: %s", r);
			if (p->ops->release && p->ops->release(p->dom, false) < 0)
				log_error("the domain keeps its --handedover name here: rename it "
					  "back by hand");
			return resume_here(p, epoch, why);
		}
		pthread_mutex_lock(&p->mu);
		p->switch_end = SW_UNCONFIRMED;
		pthread_mutex_unlock(&p->mu);
		log_error("SWITCHOVER FAILED at the secondary: %s. The domain runs nowhere now: "
			  "it was stopped here for its disk to be handed over, and the secondary "
			  "did not start its copy of epoch %llu; its disk (DRBD, Secondary here) "
			  "holds that epoch or later. See %s's log",
			  r, (unsigned long long)epoch, p->cfg->peer);
		return -EIO;
	case W_LOST:
		reason(p, r, sizeof(r), "timed out");
		snprintf(why, sizeof(why), "no answer to HA_SWITCHOVER: %s", r);
		return unconfirmed(p, epoch, stop_first, why);
	}
	t_end = clk_now_ns();
	if (p->cfg->postcopy) {
		rc = postcopy_push(p, epoch, t_end);
		if (rc < 0)
			return rc;
	}
	if (!stop_first) {
		rc = stop_here(p);
		if (rc < 0)
			log_error("the domain runs on %s, but could not be stopped here (%s): it "
				  "stays suspended; destroy it by hand, never resume it",
				  p->cfg->peer, strerror(-rc));
	}
	pthread_mutex_lock(&p->mu);
	p->switch_end = SW_DONE;
	prot_set_state(p, ST_STOPPING);
	pthread_mutex_unlock(&p->mu);
	log_info("SWITCHOVER complete: %s runs on %s from epoch %llu; downtime %llu ms (last "
		 "pause here to the secondary's answer: acknowledged after %llu ms, stopped here "
		 "before it in %llu ms, activated there in %llu ms)",
		 p->cfg->domain, p->cfg->peer, (unsigned long long)epoch,
		 (unsigned long long)((t_end - p->switch_paused_at) / NSEC_PER_MSEC),
		 (unsigned long long)((t_ack - p->switch_paused_at) / NSEC_PER_MSEC),
		 (unsigned long long)((t_stop - t_ack) / NSEC_PER_MSEC),
		 (unsigned long long)((t_end - t_stop) / NSEC_PER_MSEC));
	if (p->cfg->migrate)
		log_info("MIGRATION complete: %s runs on %s; total %llu ms, downtime %llu ms%s",
			 p->cfg->domain, p->cfg->peer,
			 (unsigned long long)((clk_now_ns() - p->session_t0) / NSEC_PER_MSEC),
			 (unsigned long long)((t_end - p->switch_paused_at) / NSEC_PER_MSEC),
			 p->cfg->postcopy ? " (postcopy)" : "");
	notify_event(p->notify, "switched-over", p->cfg->domain, p->cfg->peer, epoch, NULL);
	return 0;
}

/* ha-protect -b --save FILE --max-epochs N --stop: the last checkpoint is
 * written (the sender counts it acknowledged then), the stream ended and
 * the file synced before the domain is stopped, so that a stopped domain
 * always has its state on disk. A failure before the stop resumes it. */
int prot_save_stop(struct prot *p)
{
	char why[400] = "";
	uint64_t epoch;
	int rc;

	prot_request_stop(); /* one session: this is its end */
	pthread_mutex_lock(&p->mu);
	epoch = (uint64_t)p->switch_epoch;
	pthread_mutex_unlock(&p->mu);
	if (wait_for(p, last_acked, SWITCH_ACK_MS) != W_MET)
		reason(p, why, sizeof(why), "it was not written in time");
	else if ((rc = fo_link_end(p->link)) < 0)
		snprintf(why, sizeof(why), "its END could not be written: %s", strerror(-rc));
	else if (p->file_fd >= 0 && fdatasync(p->file_fd) < 0 && errno != EINVAL)
		snprintf(why, sizeof(why), "the file could not be synced: %s", strerror(errno));
	else if ((rc = stop_here(p)) < 0)
		snprintf(why, sizeof(why), "the domain could not be stopped (%s); the file "
					   "holds the checkpoint",
			 strerror(-rc));
	pthread_mutex_lock(&p->mu);
	prot_set_state(p, ST_STOPPING);
	pthread_mutex_unlock(&p->mu);
	if (!why[0]) {
		log_info("SAVED and stopped: %s's checkpoint of epoch %llu is in %s, which "
			 "ha-restore runs",
			 p->cfg->domain, (unsigned long long)epoch, p->cfg->save_path);
		p->stopped_saved = true;
		return 0;
	}
	if (p->ops->resume(p->dom) < 0) {
		p->frozen = true;
		log_error("the save of %s failed (%s), and resuming it failed: it stays suspended",
			  p->cfg->domain, why);
		return -EIO;
	}
	log_error("the save of %s failed at its last checkpoint (epoch %llu): %s; the domain "
		  "runs on here",
		  p->cfg->domain, (unsigned long long)epoch, why);
	return -EIO;
}
