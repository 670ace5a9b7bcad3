/* The back channel of a protected domain: the secondary's ACK of epoch N
 * releases N's output (invariant 1); its errors, END and silence end the
 * session. Each acknowledged epoch feeds the interval controller. */
#include <errno.h>
#include <stdlib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "checkpoint/stream.h"
#include "common/clock.h"
#include "common/hist.h"
#include "common/log.h"
#include "primary/prot_int.h"

/* ------------------------------------------------------------------ */
/* --interval auto: each acknowledged epoch feeds the controller (interval.h),
 * whose answer the epoch loop's next deadline uses. Called under p->mu. */

void prot_interval_feed(struct prot *p, uint64_t epoch, uint64_t acked_at)
{
	const struct epoch_rec *r = &p->rec[epoch % LAT_RING];
	struct ival_est e;
	unsigned before = atomic_load(&p->interval_ms), next;

	/* The ACK overtook the sender's bookkeeping (or a very old epoch);
	 * epoch 0 carries the end of pre-copy: no steady-state figure. */
	if (!p->auto_on || r->epoch != epoch || !r->sent || epoch == 0)
		return;
	struct ival_obs o = {
		.period_ns = p->paused_at[epoch % LAT_RING] - p->paused_at[(epoch - 1) % LAT_RING],
		.pause_ns = r->pause_ns,
		.pages = r->pages,
		.send_ns = r->send_ns,
		.ack_ns = acked_at - p->paused_at[epoch % LAT_RING],
	};
	/* One line per epoch at debug level: a trace to replay in tests. */
	log_debug("interval obs: period_ns %llu pause_ns %llu pages %llu send_ns %llu ack_ns %llu "
		  "interval_ms %u",
		  (unsigned long long)o.period_ns, (unsigned long long)o.pause_ns,
		  (unsigned long long)o.pages, (unsigned long long)o.send_ns,
		  (unsigned long long)o.ack_ns, before);
	next = ival_update(&p->ival, &o);
	ival_estimate(&p->ival, &e);
	if (next != before) {
		atomic_store(&p->interval_ms, next);
		log_info("interval %u -> %u ms (auto): dirty %.1f pages/ms, %.1f us/page, ACK "
			 "fixed part %.0f us (tail %.0f us); added p99 predicted %.1f ms, target "
			 "%u ms",
			 before, next, e.rate_ppms, e.cost_us, e.base_us, e.base_hi_us,
			 e.predicted_us / 1000, p->cfg->sla_p99_ms);
	}
	if (e.unreachable != p->unreachable_logged) {
		p->unreachable_logged = e.unreachable;
		if (e.unreachable)
			log_warn("the p99 target of %u ms is out of reach: even %u ms epochs are "
				 "predicted to add %.1f ms (ACK fixed part %.1f ms); raise "
				 "--sla-p99, or look at the link to the secondary and its load",
				 p->cfg->sla_p99_ms, p->cfg->interval_min_ms,
				 ival_predict_us(&p->ival, p->cfg->interval_min_ms) / 1000,
				 e.base_hi_us / 1000);
		else
			log_info("the p99 target of %u ms is within reach again",
				 p->cfg->sla_p99_ms);
	}
}

void *prot_acker_main(void *arg)
{
	struct prot *p = arg;
	struct ckpt_reader *r = fo_link_reader(p->link);
	struct ckpt_record rec;
	int rc;

	rc = ckpt_reader_headers(r, CKPT_IHDR_ID_BACK);
	if (rc < 0) {
		prot_degrade(p, "%s%s",
			rc == -EAGAIN ? "the secondary does not answer" : ckpt_reader_error(r),
			rc != -EAGAIN && !p->cfg->tls
			    ? " (a secondary that wants TLS answers a plain --insecure primary "
			      "like this: give both hosts the same --tls-* settings)"
			    : "");
		return NULL;
	}
	for (;;) {
		rc = fo_link_next(p->link, &rec);
		if (rc < 0) {
			if (rc == -EAGAIN)
				prot_degrade(p, "no heartbeat or ACK from the secondary for %u ms",
					p->cfg->timeout_ms);
			else
				prot_degrade(p, "back channel: %s", ckpt_reader_error(r));
			return NULL;
		}
		if (rec.type == CKPT_REC_HA_ERROR) {
			const struct ckpt_ha_error_hdr *h = (const void *)rec.body;
			pthread_mutex_lock(&p->mu);
			p->peer_error = h->code ? (int)h->code : EIO;
			pthread_mutex_unlock(&p->mu);

			if (h->code == ESTALE) {
				/* A replica that is no base for an incremental resync. */
				pthread_mutex_lock(&p->mu);
				p->resync_full = true;
				pthread_mutex_unlock(&p->mu);
			}
			prot_degrade(p, "the secondary reports: %.*s (%s)",
				(int)(rec.length - sizeof(*h)), (const char *)(rec.body + sizeof(*h)),
				strerror((int)h->code));
			return NULL;
		}
		if (rec.type == CKPT_REC_HA_DISK_NEED) {
			/* Failback: chunks the replica asks for again (the HA_ERROR
			 * that follows ends this session; the next one resends them). */
			const struct ckpt_ha_disk_need_hdr *h = (const void *)rec.body;
			uint8_t *copy = malloc(rec.length);

			if (!copy) {
				prot_degrade(p, "out of memory for the chunks disk %u asks for", h->disk);
				return NULL;
			}
			memcpy(copy, rec.body, rec.length);
			pthread_mutex_lock(&p->mu);
			free(p->need[h->disk]);
			p->need[h->disk] = copy;
			p->need_len[h->disk] = rec.length;
			pthread_mutex_unlock(&p->mu);
			log_info("disk %u: the secondary's replica is this disk's old primary image: it "
				 "asks again for the chunks it may hold that were never committed here",
				 h->disk);
			continue;
		}
		if (rec.type == CKPT_REC_END) {
			/* While stopping: the secondary read our END and discards
			 * its copy. Otherwise it stopped on its own. */
			pthread_mutex_lock(&p->mu);
			bool stopping = p->state == ST_STOPPING;
			p->end_confirmed = stopping;
			pthread_cond_broadcast(&p->cv);
			pthread_mutex_unlock(&p->mu);
			if (!stopping)
				prot_degrade(p, "the secondary stopped");
			return NULL;
		}
		if (rec.type == CKPT_REC_HA_SWITCHOVER) {
			/* The secondary's answers (switchover.c): READY, then RUNS. */
			const struct ckpt_ha_switchover *h = (const void *)rec.body;
			pthread_mutex_lock(&p->mu);
			bool ours = p->switch_epoch >= 0 && h->epoch == (uint64_t)p->switch_epoch &&
				    (h->step == CKPT_SWITCH_READY || h->step == CKPT_SWITCH_RUNS);
			if (ours)
				p->switch_answer = h->step;
			pthread_cond_broadcast(&p->cv);
			pthread_mutex_unlock(&p->mu);
			if (!ours) {
				prot_degrade(p, "protocol error: HA_SWITCHOVER step %u of epoch %llu, "
						"none asked",
					     h->step, (unsigned long long)h->epoch);
				return NULL;
			}
			/* A postcopy goes on: the pages the copy lacks follow. */
			if (h->step == CKPT_SWITCH_RUNS && !p->cfg->postcopy)
				return NULL;
			continue;
		}
		if (rec.type == CKPT_REC_HA_PC_REQ && p->cfg->postcopy) {
			const struct ckpt_ha_pc_req_hdr *h = (const void *)rec.body;

			prot_pc_request(p, (const uint64_t *)(h + 1), h->count);
			continue;
		}
		if (rec.type == CKPT_REC_HA_PC_END && p->cfg->postcopy) {
			pthread_mutex_lock(&p->mu);
			p->pc_end = true;
			p->pc_waited = ((const struct ckpt_ha_pc_end *)rec.body)->pages;
			pthread_cond_broadcast(&p->cv);
			pthread_mutex_unlock(&p->mu);
			return NULL;
		}
		if (rec.type != CKPT_REC_HA_ACK)
			continue;

		const struct ckpt_ha_ack *a = (const void *)rec.body;
		uint32_t need = CKPT_ACK_MEMORY | (p->cfg->need_disk_ack ? CKPT_ACK_DISK : 0);

		pthread_mutex_lock(&p->mu);
		bool in_order = (int64_t)a->epoch == p->acked + 1 && a->epoch < p->next_epoch;
		pthread_mutex_unlock(&p->mu);
		if (!in_order || (a->flags & need) != need) {
			prot_degrade(p, "protocol error: ACK of epoch %llu (flags 0x%x) after epoch %lld",
				(unsigned long long)a->epoch, a->flags, (long long)p->acked);
			return NULL;
		}
		/* Invariant 1: the output of epoch N leaves only now. */
		prot_event(p, "ack", (int64_t)a->epoch);
		if (devset_call(p->devs, DEVSET_COMMIT, a->epoch) < 0) {
			prot_degrade(p, "releasing the output of epoch %llu failed",
				(unsigned long long)a->epoch);
			return NULL;
		}
		prot_event(p, "released", (int64_t)a->epoch);
		/* --migrate: the copy is built there; the next checkpoint is the
		 * last here. */
		pthread_mutex_lock(&p->mu);
		bool ask = p->cfg->migrate && p->switch_epoch < 0;
		pthread_mutex_unlock(&p->mu);
		if (ask && !atomic_load(&p->switchover_req)) {
			log_info("MIGRATION: the secondary holds epoch %llu; the next checkpoint is "
				 "the last here",
				 (unsigned long long)a->epoch);
			atomic_store(&p->switchover_req, true);
		}
		uint64_t now = clk_now_ns();
		pthread_mutex_lock(&p->mu);
		p->resync_full = false;
		p->acked = (int64_t)a->epoch;
		atomic_store(&p->committed, a->epoch);
		p->stats.ack_ns_last = now - p->paused_at[a->epoch % LAT_RING];
		p->stats.ack_ns_sum += p->stats.ack_ns_last;
		p->stats.acks++;
		p->stats.ack_at_ns = now;
		hist_add(&p->stats.ack_us, p->stats.ack_ns_last / 1000);
		prot_interval_feed(p, a->epoch, now);
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
		/* The secondary's copy is current again: tell the witness. */
		if (a->epoch == 0 && p->lease)
			lease_protected(p->lease);
	}
}
