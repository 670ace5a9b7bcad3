/* The pipeline of a protected domain: pre-copy, then every epoch the pause
 * path (pause, harvest, copy, state, device barrier, resume) on the epoch
 * loop's thread, and the sender thread that ships each staged epoch while
 * the guest runs on. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "checkpoint/extdev.h"
#include "checkpoint/stream.h"
#include "common/clock.h"
#include "common/log.h"
#include "primary/prot_int.h"

/* ------------------------------------------------------------------ */
/* Sending pages: compressed (the encoder copies each page once) or raw. */

static int send_pages(struct prot *p, const uint64_t *pfns, const void *const *pages, uint32_t n)
{
	for (uint32_t off = 0; off < n; off += BATCH) {
		uint32_t cnt = n - off < BATCH ? n - off : BATCH;
		int rc;

		if (p->cfg->compress) {
			struct ckpt_zbatch zb;

			rc = ckpt_encoder_encode(p->enc, pfns + off, pages + off, cnt, &zb);
			if (rc == 0)
				rc = fo_link_pages(p->link, CKPT_REC_HA_PAGE_DATA_Z, zb.iov,
						   zb.iovcnt, zb.pages);
		} else {
			rc = fo_link_page_data(p->link, pfns + off, pages + off, cnt);
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Pre-copy sends pages of the running guest: raw pages go through a bounce
 * buffer so the checksum and the octets sent see the same copy. */
/* Logs a pre-copy round's progress (every SYNC_LOG_NS). */
#define SYNC_LOG_NS (5 * NSEC_PER_SEC)

static void sync_advance(struct prot *p, uint64_t pos, uint64_t pages, uint64_t *last_log)
{
	uint64_t now = clk_now_ns();
	struct prot_sync s;

	pthread_mutex_lock(&p->mu);
	p->sync.pos = pos;
	p->sync.pages += pages;
	s = p->sync;
	pthread_mutex_unlock(&p->mu);
	if (now - *last_log >= SYNC_LOG_NS && pos < s.total) {
		unsigned pct;
		double mibs;
		long eta;

		*last_log = now;
		prot_sync_progress(&s, now, &pct, &mibs, &eta);
		log_info("pre-copy round %u: %u%%, %llu MiB sent, %.1f MiB/s, about %ld s left",
			 s.round, pct, (unsigned long long)(s.pages >> 8), mibs, eta);
	}
}

static void sync_round(struct prot *p, unsigned round, uint64_t total)
{
	pthread_mutex_lock(&p->mu);
	p->sync = (struct prot_sync){
		.active = true, .round = round, .total = total, .t0_ns = clk_now_ns()};
	pthread_mutex_unlock(&p->mu);
}

static int send_live(struct prot *p, const uint64_t *pfns, uint32_t n)
{
	struct slot *bounce = &p->slots[0];
	uint64_t last_log = clk_now_ns();

	uint64_t *batch = bounce->pfns;

	for (uint32_t off = 0; off < n;) {
		uint32_t cnt = 0;
		int rc;

		/* Holes in the guest's physical map (page() is NULL) are skipped. */
		for (; off < n && cnt < BATCH; off++) {
			const uint8_t *src = p->ops->page(p->dom, pfns[off]);

			if (!src)
				continue;
			batch[cnt] = pfns[off];
			if (p->cfg->compress) {
				bounce->ptrs[cnt] = src;
			} else {
				memcpy(bounce->pages + (size_t)cnt * CKPT_PAGE_SIZE, src,
				       CKPT_PAGE_SIZE);
				bounce->ptrs[cnt] = bounce->pages + (size_t)cnt * CKPT_PAGE_SIZE;
			}
			cnt++;
		}
		if (cnt)
			rc = send_pages(p, batch, bounce->ptrs, cnt);
		else
			rc = 0;
		if (rc < 0)
			return rc;
		sync_advance(p, off, cnt, &last_log);
	}
	return 0;
}

int prot_send_config(struct prot *p)
{
	struct ckpt_ha_domain_config c = {
		.nr_pages = p->info.nr_pages,
		.vcpus = p->info.vcpus,
		.flags = CKPT_CFG_TRAILERS | (p->cfg->compress ? CKPT_CFG_COMPRESSED : 0),
	};
	struct iovec iov = {&c, sizeof(c)};

	struct hv_state st = {0};
	int rc;

	snprintf(c.name, sizeof(c.name), "%s", p->info.name);
	memcpy(c.mac, p->info.mac, 6);
	rc = fo_link_record(p->link, CKPT_REC_HA_DOMAIN_CONFIG, &iov, 1);
	if (rc == 0 && p->ops->stream_start)
		rc = p->ops->stream_start(p->dom, &st);
	for (uint32_t i = 0; rc == 0 && i < st.nrecs; i++) {
		struct iovec r = {st.buf + st.recs[i].off, st.recs[i].len};

		rc = fo_link_record(p->link, st.recs[i].type, &r, 1);
	}
	hv_state_free(&st);
	return rc;
}

void *prot_sender_main(void *arg)
{
	struct prot *p = arg;

	for (;;) {
		struct slot *s;
		int rc = 0;

		pthread_mutex_lock(&p->mu);
		/* Started just before the session turns PROTECTED: SYNC waits too,
		 * or an early start would end the sender before its first epoch. */
		while (!p->qlen && (p->state == ST_PROTECTED || p->state == ST_SYNC))
			pthread_cond_wait(&p->cv, &p->mu);
		if (!p->qlen || p->state == ST_DEGRADED) {
			pthread_mutex_unlock(&p->mu);
			break;
		}
		s = &p->slots[p->q[p->qhead]];
		pthread_mutex_unlock(&p->mu);

		log_set_epoch(s->epoch);
		uint64_t before = fo_link_bytes_sent(p->link), t_send = clk_now_ns();
		rc = send_pages(p, s->pfns, s->ptrs, s->npages);
		for (uint32_t i = 0; rc == 0 && i < s->st.nrecs; i++) {
			struct iovec iov = {s->st.buf + s->st.recs[i].off, s->st.recs[i].len};

			rc = fo_link_record(p->link, s->st.recs[i].type, &iov, 1);
		}
		/* Disk writes and barriers of this epoch precede its CHECKPOINT. */
		if (rc == 0) {
			rc = devset_call(p->devs, DEVSET_FLUSH, s->epoch);
			/* A device failed, not the link (or not only): the secondary
			 * is told that this primary lives on, unprotected, so it
			 * discards its copy instead of taking over. */
			if (rc < 0 && fo_link_end(p->link) == 0) {
				prot_degrade(p, "a checkpoint device failed at epoch %llu: %s",
					(unsigned long long)s->epoch, strerror(-rc));
				break;
			}
		}
		if (rc == 0)
			rc = fo_link_checkpoint(p->link, s->epoch);
		if (rc < 0) {
			prot_degrade(p, "sending epoch %llu failed: %s", (unsigned long long)s->epoch,
				strerror(-rc));
			break;
		}
		uint64_t wire = fo_link_bytes_sent(p->link) - before;
		uint64_t send_ns = clk_now_ns() - t_send;

		if (p->cfg->blackhole) {
			if (devset_call(p->devs, DEVSET_COMMIT, s->epoch) < 0)
				prot_degrade(p, "releasing the output of epoch %llu failed",
					(unsigned long long)s->epoch);
			else
				prot_event(p, "released", (int64_t)s->epoch);
		}
		pthread_mutex_lock(&p->mu);
		p->qhead = (p->qhead + 1) % NSLOTS;
		p->qlen--;
		s->busy = false;
		p->sent = (int64_t)s->epoch;
		if (p->rec[s->epoch % LAT_RING].epoch == s->epoch) {
			p->rec[s->epoch % LAT_RING].send_ns = send_ns;
			p->rec[s->epoch % LAT_RING].sent = true;
		}
		p->stats.wire_sum += wire;
		p->stats.raw_sum += (uint64_t)s->npages * CKPT_PAGE_SIZE;
		if (p->cfg->blackhole) {
			p->acked = (int64_t)s->epoch;
			atomic_store(&p->committed, s->epoch);
			prot_interval_feed(p, s->epoch, clk_now_ns());
		}
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
	}
	log_set_epoch(LOG_NO_EPOCH);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* The pause path: only harvesting and copying happen while paused. */

/* HA_VERIFY (ha-ctl verify): a hash of every page the domain holds, taken
 * in the pause of the checkpoint it goes with, so that the secondary can
 * compare its copy of that checkpoint page by page. It lengthens that one
 * pause by a pass over the guest's memory. */
static int add_verify(struct prot *p, struct hv_state *st)
{
	struct ckpt_ha_verify_hdr *h;
	uint64_t *e, n = 0;
	size_t cap = 4096;
	int rc;

	h = malloc(sizeof(*h) + cap * 16);
	if (!h)
		return -ENOMEM;
	for (uint64_t pfn = 0; pfn < p->info.nr_pages; pfn++) {
		const uint8_t *src = p->ops->page(p->dom, pfn);

		if (!src)
			continue;
		if (n == cap) {
			void *g = realloc(h, sizeof(*h) + cap * 2 * 16);

			if (!g) {
				free(h);
				return -ENOMEM;
			}
			h = g;
			cap *= 2;
		}
		e = (uint64_t *)(h + 1) + 2 * n++;
		e[0] = pfn;
		e[1] = XXH3_64bits(src, CKPT_PAGE_SIZE);
	}
	*h = (struct ckpt_ha_verify_hdr){.count = (uint32_t)n};
	rc = hv_state_add(st, CKPT_REC_HA_VERIFY, h, sizeof(*h) + n * 16);
	free(h);
	return rc;
}

/* --postcopy: the pages dirty at the last checkpoint, left out of it
 * (HA_POSTCOPY among its state records; kept in pc_need for the push).
 * In the pause: no log line here (switchover.c says it). */
static int add_postcopy(struct prot *p, struct hv_state *st)
{
	size_t words = BITMAP_WORDS(p->dirty.nbits), len = sizeof(struct ckpt_ha_postcopy_hdr) + words * 8;
	struct ckpt_ha_postcopy_hdr *h = malloc(len);
	int rc;

	if (!h)
		return -ENOMEM;
	bitmap_destroy(&p->pc_need);
	rc = bitmap_init(&p->pc_need, p->dirty.nbits);
	if (rc < 0) {
		free(h);
		return rc;
	}
	/* Holes in the guest's physical map have no page to send. */
	for (size_t b = bitmap_next_set(&p->dirty, 0); b < p->dirty.nbits;
	     b = bitmap_next_set(&p->dirty, b + 1))
		if (p->ops->page(p->dom, b))
			bitmap_set(&p->pc_need, b);
	*h = (struct ckpt_ha_postcopy_hdr){.nr_pages = p->pc_need.nbits,
					   .count = bitmap_count(&p->pc_need)};
	memcpy(h + 1, p->pc_need.words, words * 8);
	rc = hv_state_add(st, CKPT_REC_HA_POSTCOPY, h, len);
	free(h);
	return rc;
}

/* FINAL: the last checkpoint of a switchover: the domain is not resumed. */
static int checkpoint_epoch(struct prot *p, struct slot *s, uint64_t epoch, bool final,
			    uint64_t *paused_at, uint64_t *resumed_at)
{
	const char *what;
	uint64_t t0 = clk_now_ns(), t1, t_closed;
	uint32_t n = 0;
	int rc;

	what = "pause";
	rc = p->ops->pause(p->dom);
	if (rc < 0)
		goto fail;
	bitmap_zero(&p->dirty);
	what = "dirty harvest";
	rc = p->ops->harvest(p->dom, &p->dirty);
	if (rc < 0)
		goto fail_resume;
	hv_state_clear(&s->st);
	if (final && p->cfg->postcopy) {
		/* Postcopy: the pages dirty now follow after the switchover. */
		what = "postcopy";
		rc = add_postcopy(p, &s->st);
		if (rc < 0)
			goto fail_resume;
	}
	for (size_t b = bitmap_next_set(&p->dirty, 0); !(final && p->cfg->postcopy) &&
						       b < p->dirty.nbits;
	     b = bitmap_next_set(&p->dirty, b + 1)) {
		const uint8_t *src = p->ops->page(p->dom, b);

		if (!src) /* a hole in the guest's physical map */
			continue;
		memcpy(s->pages + (size_t)n * CKPT_PAGE_SIZE, src, CKPT_PAGE_SIZE);
		s->pfns[n] = b;
		s->ptrs[n] = s->pages + (size_t)n * CKPT_PAGE_SIZE;
		n++;
	}
	what = "state capture";
	rc = p->ops->save_state(p->dom, &s->st);
	if (rc < 0)
		goto fail_resume;
	if (atomic_exchange(&p->verify_req, false)) {
		what = "verification";
		rc = add_verify(p, &s->st);
		if (rc < 0)
			goto fail_resume;
		log_info("epoch %llu carries a verification of every page", (unsigned long long)epoch);
	}
	what = "device barrier";
	rc = devset_call(p->devs, DEVSET_POSTSUSPEND, epoch);
	if (rc < 0)
		goto fail_resume;
	/* Stamped now, written once the guest runs again (no write while it
	 * is paused). */
	t_closed = clk_now_ns();
	if (final) {
		/* It stays suspended: the secondary runs it from this epoch. */
		log_info("epoch %llu is the last checkpoint here: the domain stays suspended and "
			 "is handed over to %s",
			 (unsigned long long)epoch, p->cfg->peer);
	} else {
		devset_call(p->devs, DEVSET_PRERESUME, epoch);
		what = "resume";
		rc = p->ops->resume(p->dom);
		if (rc < 0) {
			p->frozen = true;
			goto fail;
		}
	}
	t1 = clk_now_ns();
	*paused_at = t0;
	*resumed_at = t1;
	prot_event_at(p, t_closed, "closed", (int64_t)epoch);

	s->epoch = epoch;
	s->npages = n;
	p->paused_at[epoch % LAT_RING] = t0;
	p->stats.epochs++;
	p->stats.pause_ns_last = t1 - t0;
	p->stats.pause_ns_sum += t1 - t0;
	if (t1 - t0 > p->stats.pause_ns_max)
		p->stats.pause_ns_max = t1 - t0;
	p->stats.pages_sum += n;
	pthread_mutex_lock(&p->mu);
	hist_add(&p->stats.pause_us, (t1 - t0) / 1000);
	p->rec[epoch % LAT_RING] = (struct epoch_rec){.epoch = epoch, .pause_ns = t1 - t0, .pages = n};
	pthread_mutex_unlock(&p->mu);
	return 0;

fail_resume:
	if (p->ops->resume(p->dom) < 0)
		p->frozen = true;
fail:
	if (rc == -ESHUTDOWN)
		p->guest_ended = true;
	log_error("epoch %llu: %s failed: %s", (unsigned long long)epoch, what,
		  rc == -ESHUTDOWN ? "the guest shut down, rebooted or crashed" : strerror(-rc));
	return rc;
}

/* Before a switchover's last pause (the domain still runs): the external
 * devices check (a switchover; a migration's checked at its start) and
 * prepare. 0: the last checkpoint goes ahead; 1: a device refused a
 * switchover, which is called off (rolled back; protection goes on);
 * -ECANCELED: it refused a migration, which ends here (the session ends
 * with END: the secondary discards its copy). */
static int ext_prepare(struct prot *p, uint64_t epoch)
{
	bool migrate = p->cfg->migrate;
	enum extdev_op op = migrate ? EXTDEV_MIGRATE : EXTDEV_SWITCHOVER;
	char why[300];
	int rc = 0;

	if (!migrate) {
		extdev_begin(p->cfg->ext, op);
		rc = extdev_phase(p->cfg->ext, op, EXTDEV_CHECK, epoch, why, sizeof(why));
	}
	if (rc == 0)
		rc = extdev_phase(p->cfg->ext, op, EXTDEV_PREPARE, epoch, why, sizeof(why));
	if (rc == 0)
		return 0;
	if (!migrate) {
		atomic_store(&p->switchover_req, false);
		log_error("switchover of %s called off: %s; the devices were rolled back and the "
			  "domain runs on here, protected",
			  p->cfg->domain, why);
		return 1;
	}
	pthread_mutex_lock(&p->mu);
	snprintf(p->reason, sizeof(p->reason), "%.200s (the devices were rolled back)", why);
	pthread_mutex_unlock(&p->mu);
	return -ECANCELED;
}

int prot_epoch_loop(struct prot *p)
{
	uint64_t deadline = clk_now_ns();

	for (;;) {
		struct slot *s = NULL;
		bool stretched = false;

		pthread_mutex_lock(&p->mu);
		for (;;) {
			uint64_t inflight = p->next_epoch - (uint64_t)(p->acked + 1);

			if (p->state != ST_PROTECTED || prot_stop_requested())
				break;
			for (unsigned i = 0; i < NSLOTS && !s; i++)
				if (!p->slots[i].busy)
					s = &p->slots[i];
			if (s && inflight < p->cfg->max_inflight)
				break;
			s = NULL;
			stretched = true;
			struct timespec ts = clk_deadline_ts(20);

			pthread_cond_timedwait(&p->cv, &p->mu, &ts);
		}
		if (stretched)
			p->stats.stretched++;
		pthread_mutex_unlock(&p->mu);
		if (!s)
			return 0;

		/* Sleep to the period's deadline, noticing a stop request. */
		if (clk_sleep_until_or(deadline, prot_stop_requested))
			return 0;

		uint64_t epoch = p->next_epoch, paused_at = 0, resumed_at = 0;
		int rc;
		/* The last checkpoint leaves the domain suspended: a switchover's,
		 * or that of a save that stops it (--stop). */
		bool final = atomic_load(&p->switchover_req) || p->cfg->postcopy ||
			     (p->cfg->stop_at_end && epoch + 1 >= p->cfg->max_epochs);
		log_set_epoch(epoch);
		if (final && (atomic_load(&p->switchover_req) || p->cfg->postcopy) && p->cfg->ext) {
			rc = ext_prepare(p, epoch);
			if (rc < 0)
				return rc;
			final = rc == 0;
		}
		rc = checkpoint_epoch(p, s, epoch, final, &paused_at, &resumed_at);
		if (rc < 0)
			return rc;
		if (final) {
			pthread_mutex_lock(&p->mu);
			s->busy = true;
			p->q[(p->qhead + p->qlen) % NSLOTS] = (unsigned)(s - p->slots);
			p->qlen++;
			p->next_epoch++;
			p->switch_epoch = (int64_t)epoch;
			p->switch_paused_at = paused_at;
			pthread_cond_broadcast(&p->cv);
			pthread_mutex_unlock(&p->mu);
			return PROT_LOOP_SWITCHOVER;
		}
		/* The guest runs at least as long as it was paused
		 * (ival_next_pause_ns): a slow suspend stretches the period. */
		deadline = ival_next_pause_ns(paused_at, resumed_at, atomic_load(&p->interval_ms));
		if (deadline - paused_at > (uint64_t)atomic_load(&p->interval_ms) * NSEC_PER_MSEC) {
			pthread_mutex_lock(&p->mu);
			p->stats.long_pauses++;
			pthread_mutex_unlock(&p->mu);
		}
		pthread_mutex_lock(&p->mu);
		s->busy = true;
		p->q[(p->qhead + p->qlen) % NSLOTS] = (unsigned)(s - p->slots);
		p->qlen++;
		p->next_epoch++;
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
		if (p->cfg->max_epochs && p->next_epoch >= p->cfg->max_epochs)
			prot_request_stop();
	}
}

/* ------------------------------------------------------------------ */

int prot_precopy(struct prot *p)
{
	uint64_t *pfns = p->slots[1].pfns;
	uint64_t prev = p->info.nr_pages, t0 = clk_now_ns();
	int rc;

	rc = p->ops->dirty_start(p->dom);
	if (rc < 0) {
		log_error("cannot start dirty tracking: %s", strerror(-rc));
		return rc;
	}
	for (uint64_t i = 0; i < p->info.nr_pages; i++)
		pfns[i] = i;
	/* nr_pages spans the physical map, holes included: the pages present
	 * are known once walked. */
	log_info("pre-copy round 0: every page present in a %llu MiB physical map",
		 (unsigned long long)(p->info.nr_pages >> 8));
	sync_round(p, 0, p->info.nr_pages);
	rc = send_live(p, pfns, (uint32_t)p->info.nr_pages);
	if (rc == 0)
		log_info("pre-copy round 0: %llu pages present (%llu MiB) sent in %llu ms",
			 (unsigned long long)p->sync.pages, (unsigned long long)(p->sync.pages >> 8),
			 (unsigned long long)((clk_now_ns() - t0) / NSEC_PER_MSEC));
	for (unsigned round = 1; rc == 0 && round <= p->cfg->precopy_rounds; round++) {
		uint32_t n = 0;

		if (!prot_running(p, ST_SYNC)) {
			rc = -ECANCELED;
			break;
		}
		bitmap_zero(&p->dirty);
		rc = p->ops->harvest(p->dom, &p->dirty);
		if (rc < 0)
			break;
		for (size_t b = bitmap_next_set(&p->dirty, 0); b < p->dirty.nbits;
		     b = bitmap_next_set(&p->dirty, b + 1))
			pfns[n++] = b;
		log_info("pre-copy round %u: %u dirty pages", round, n);
		if (n == 0)
			break;
		sync_round(p, round, n);
		rc = send_live(p, pfns, n);
		if (rc < 0)
			break;
		/* Converged: what is left fits comfortably in one pause; or it
		 * does not converge (the guest dirties as fast as we send). */
		if (n <= p->cfg->converge_pages) {
			log_info("pre-copy converged: %u dirty pages, at most %u", n,
				 p->cfg->converge_pages);
			break;
		}
		if (n >= prev) {
			log_info("pre-copy does not converge (%u dirty pages after %llu): the guest "
				 "writes as fast as they are sent; stopping after round %u",
				 n, (unsigned long long)prev, round);
			break;
		}
		prev = n;
		if (round == p->cfg->precopy_rounds)
			log_info("pre-copy does not converge within %u rounds (--precopy-rounds): "
				 "%u pages were dirty in the last",
				 round, n);
	}
	pthread_mutex_lock(&p->mu);
	p->sync.active = false;
	pthread_mutex_unlock(&p->mu);
	if (rc < 0) {
		if (rc != -ECANCELED && prot_running(p, ST_SYNC))
			prot_degrade(p, "pre-copy failed: %s", strerror(-rc));
		return rc;
	}
	log_info("pre-copy done in %llu ms; first checkpoint follows",
		 (unsigned long long)((clk_now_ns() - t0) / NSEC_PER_MSEC));
	return 0;
}
