/* Postcopy on the destination of a migration (docs/architecture.md,
 * "Postcopy"). The domain runs before every page is here: the pages the
 * last checkpoint left out were dropped from its memory, and its
 * userfaultfd reports the first touch of each. Two threads serve it:
 *   faults  reads the userfaultfd: a page the source still owes is asked
 *           for (HA_PC_REQ) and waited for; a page the source never sent
 *           is zero and placed at once; one already placed is woken;
 *   reader  reads the link: PAGE_DATA (or HA_PAGE_DATA_Z, compressed
 *           without deltas) pages are placed (UFFDIO_COPY, a
 *           whole page at once, waking whoever waits for it), until the
 *           source's HA_PC_END.
 * A page the domain waits for longer than the stall bound, a link that
 * breaks, or an end with pages missing fails the postcopy: the domain can
 * never be whole here, and is stopped. */
#include <errno.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "checkpoint/codec.h"
#include "checkpoint/stream.h"
#include "common/bitmap.h"
#include "common/clock.h"
#include "common/log.h"
#include "failover/link.h"
#include "secondary/rx_int.h"

#define PC_WAITERS_MAX 64

struct rx_postcopy {
	struct rx *x;
	struct fo_link *l;
	int uffd;
	uint64_t base, nr, count, t0;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* Under mu. */
	struct bitmap need, placed, asked;
	uint64_t nplaced, pushed, zeros, waited, wait_max_ns, wait_sum_ns;
	struct pc_waiter {
		uint64_t pfn, since;
	} waiters[PC_WAITERS_MAX];
	unsigned nwaiters;
	bool ended; /* the reader stopped: done, or rc says why not */
	int rc;
	char err[300];
	atomic_bool stop;
	struct ckpt_decoder *dec;
	uint8_t scratch[CKPT_PAGE_SIZE]; /* a decoded page (the reader's) */
	pthread_t reader, faults;
	bool reader_on, faults_on;
};

static const uint8_t zero_page[CKPT_PAGE_SIZE];

/* The first failure wins; the threads stop. Called with mu held. */
__attribute__((format(printf, 3, 4))) static void pc_fail(struct rx_postcopy *pc, int rc,
							   const char *fmt, ...)
{
	va_list ap;

	if (pc->rc == 0) {
		pc->rc = rc;
		va_start(ap, fmt);
		vsnprintf(pc->err, sizeof(pc->err), fmt, ap);
		va_end(ap);
	}
	pc->ended = true;
	atomic_store(&pc->stop, true);
	pthread_cond_broadcast(&pc->cv);
}

/* Places one page: 0, or -errno (-EEXIST: it was already there). */
static int place(struct rx_postcopy *pc, uint64_t pfn, const void *data)
{
	struct uffdio_copy c = {
		.dst = pc->base + pfn * CKPT_PAGE_SIZE,
		.src = (uint64_t)(uintptr_t)data,
		.len = CKPT_PAGE_SIZE,
	};

	for (;;) {
		if (ioctl(pc->uffd, UFFDIO_COPY, &c) == 0)
			return 0;
		if (errno != EAGAIN)
			return -errno;
		/* The domain's memory map changed meanwhile: again. */
		c.copy = 0;
	}
}

/* A page the source sent: placed, and whoever waited for it counted. */
static int take_page(struct rx_postcopy *pc, uint64_t pfn, const uint8_t *data)
{
	int rc;

	if (pfn >= pc->nr || !bitmap_test(&pc->need, pfn))
		return -EPROTO;
	rc = place(pc, pfn, data);
	if (rc < 0 && rc != -EEXIST)
		return rc;
	pthread_mutex_lock(&pc->mu);
	if (!bitmap_test(&pc->placed, pfn)) {
		bitmap_set(&pc->placed, pfn);
		pc->nplaced++;
	}
	pc->pushed++;
	for (unsigned i = 0; i < pc->nwaiters; i++) {
		if (pc->waiters[i].pfn != pfn)
			continue;
		uint64_t w = clk_now_ns() - pc->waiters[i].since;

		pc->wait_sum_ns += w;
		if (w > pc->wait_max_ns)
			pc->wait_max_ns = w;
		pc->waiters[i--] = pc->waiters[--pc->nwaiters];
	}
	pthread_mutex_unlock(&pc->mu);
	return 0;
}

static void *reader_main(void *arg)
{
	struct rx_postcopy *pc = arg;
	struct ckpt_record rec;

	while (!atomic_load(&pc->stop)) {
		int rc = fo_link_next(pc->l, &rec);

		if (rc < 0) {
			pthread_mutex_lock(&pc->mu);
			pc_fail(pc, rc, "the link to the source: %s",
				rc == -EAGAIN ? "no data or heartbeat within the down timer"
					      : ckpt_reader_error(fo_link_reader(pc->l))[0]
						    ? ckpt_reader_error(fo_link_reader(pc->l))
						    : strerror(-rc));
			pthread_mutex_unlock(&pc->mu);
			break;
		}
		if (rec.type == CKPT_REC_PAGE_DATA || rec.type == CKPT_REC_HA_PAGE_DATA_Z) {
			struct ckpt_pages_view v;
			struct ckpt_page_iter it;
			struct ckpt_page pg;

			rc = ckpt_pages_view(&rec, &v);
			if (rc == 0)
				ckpt_page_iter_init(&it, &v);
			while (rc == 0 && ckpt_page_iter_next(&it, &pg)) {
				/* No deltas: this side holds no older copy of them. */
				if (pg.encoding == CKPT_ENC_RAW && pg.length == CKPT_PAGE_SIZE)
					rc = take_page(pc, pg.pfn, pg.payload);
				else if (pg.encoding == CKPT_ENC_XOR_ZSTD || pg.encoding == CKPT_ENC_RAW)
					rc = -EPROTO;
				else if ((rc = ckpt_decode_page(pc->dec, pg.encoding, pg.payload,
								pg.length, NULL, pc->scratch)) == 0)
					rc = take_page(pc, pg.pfn, pc->scratch);
			}
			if (rc < 0) {
				pthread_mutex_lock(&pc->mu);
				pc_fail(pc, rc, "placing a page: %s",
					rc == -EPROTO ? "the source sent a page it did not leave "
							"out, not a whole page, or a delta"
					: rc == -EBADMSG ? "a compressed page does not decode"
							 : strerror(-rc));
				pthread_mutex_unlock(&pc->mu);
				break;
			}
			continue;
		}
		pthread_mutex_lock(&pc->mu);
		if (rec.type == CKPT_REC_HA_PC_END && pc->nplaced == pc->count) {
			pc->ended = true;
			pthread_cond_broadcast(&pc->cv);
		} else if (rec.type == CKPT_REC_HA_PC_END) {
			pc_fail(pc, -EPROTO, "the source ended the postcopy with %llu of %llu pages "
					     "not sent",
				(unsigned long long)(pc->count - pc->nplaced),
				(unsigned long long)pc->count);
		} else {
			pc_fail(pc, -EPROTO, "a %s record in the middle of the postcopy",
				ckpt_rec_name(rec.type));
		}
		pthread_mutex_unlock(&pc->mu);
		break;
	}
	return NULL;
}

/* One fault: what the page is decides. 0 or -errno. */
static int on_fault(struct rx_postcopy *pc, uint64_t addr)
{
	uint64_t pfn = (addr - pc->base) / CKPT_PAGE_SIZE;
	struct ckpt_ha_pc_req_hdr h = {.count = 1};
	struct iovec iov[2] = {{&h, sizeof(h)}, {&pfn, sizeof(pfn)}};
	bool ask = false, wake = false;
	int rc = 0;

	if (addr < pc->base || pfn >= pc->nr)
		return -EFAULT;
	pthread_mutex_lock(&pc->mu);
	if (!bitmap_test(&pc->need, pfn)) {
		/* Never sent, never written here: a zero page. */
		pthread_mutex_unlock(&pc->mu);
		rc = place(pc, pfn, zero_page);
		pthread_mutex_lock(&pc->mu);
		pc->zeros += rc == 0;
		pthread_mutex_unlock(&pc->mu);
		return rc == -EEXIST ? 0 : rc;
	}
	if (bitmap_test(&pc->placed, pfn)) {
		wake = true;
	} else {
		if (pc->nwaiters < PC_WAITERS_MAX)
			pc->waiters[pc->nwaiters++] = (struct pc_waiter){pfn, clk_now_ns()};
		if (!bitmap_test(&pc->asked, pfn)) {
			bitmap_set(&pc->asked, pfn);
			pc->waited++;
			ask = true;
		}
	}
	pthread_mutex_unlock(&pc->mu);
	if (wake) {
		struct uffdio_range r = {.start = pc->base + pfn * CKPT_PAGE_SIZE,
					 .len = CKPT_PAGE_SIZE};

		if (ioctl(pc->uffd, UFFDIO_WAKE, &r) < 0)
			return -errno;
	}
	if (ask)
		rc = fo_link_record(pc->l, CKPT_REC_HA_PC_REQ, iov, 2);
	return rc;
}

static void *faults_main(void *arg)
{
	struct rx_postcopy *pc = arg;
	uint64_t bound = (uint64_t)pc->x->cfg->postcopy_stall_ms * NSEC_PER_MSEC;

	while (!atomic_load(&pc->stop)) {
		struct pollfd pfd = {.fd = pc->uffd, .events = POLLIN};
		struct uffd_msg m;
		int rc = 0;

		if (poll(&pfd, 1, 50) > 0) {
			ssize_t n = read(pc->uffd, &m, sizeof(m));

			if (n == (ssize_t)sizeof(m) && m.event == UFFD_EVENT_PAGEFAULT)
				rc = on_fault(pc, m.arg.pagefault.address & ~(uint64_t)(CKPT_PAGE_SIZE - 1));
			else if (n < 0 && errno != EAGAIN && errno != EINTR)
				rc = -errno;
		}
		pthread_mutex_lock(&pc->mu);
		if (rc < 0)
			pc_fail(pc, rc, "serving the domain's page faults: %s", strerror(-rc));
		for (unsigned i = 0; i < pc->nwaiters && !pc->rc; i++)
			if (clk_now_ns() - pc->waiters[i].since > bound)
				pc_fail(pc, -ETIMEDOUT, "the domain waited more than %u ms for page "
							"%llu (--postcopy-stall)",
					pc->x->cfg->postcopy_stall_ms,
					(unsigned long long)pc->waiters[i].pfn);
		pthread_mutex_unlock(&pc->mu);
	}
	return NULL;
}

static void pc_free(struct rx_postcopy *pc)
{
	atomic_store(&pc->stop, true);
	/* The reader may wait on the link: it is shut down by now. */
	if (pc->faults_on)
		pthread_join(pc->faults, NULL);
	if (pc->reader_on)
		pthread_join(pc->reader, NULL);
	if (pc->uffd >= 0)
		close(pc->uffd);
	ckpt_decoder_free(pc->dec);
	bitmap_destroy(&pc->need);
	bitmap_destroy(&pc->placed);
	bitmap_destroy(&pc->asked);
	pthread_cond_destroy(&pc->cv);
	pthread_mutex_destroy(&pc->mu);
	free(pc);
}

int rx_postcopy_begin(struct rx *x, struct fo_link *l, const struct ckpt_ha_postcopy_hdr *h,
		      struct rx_postcopy **out, char *err, size_t errlen)
{
	struct rx_postcopy *pc;
	size_t words = BITMAP_WORDS(h->nr_pages);
	int rc;

	if (!x->ops->postcopy_start) {
		snprintf(err, errlen, "this backend cannot run a domain before all its pages are "
				      "here: migrate it without --postcopy");
		return -EOPNOTSUPP;
	}
	pc = calloc(1, sizeof(*pc));
	if (!pc)
		return -ENOMEM;
	pc->x = x;
	pc->l = l;
	pc->uffd = -1;
	pc->nr = h->nr_pages;
	pc->count = h->count;
	pc->t0 = clk_now_ns();
	pthread_mutex_init(&pc->mu, NULL);
	pthread_cond_init(&pc->cv, NULL);
	rc = bitmap_init(&pc->need, h->nr_pages);
	if (rc == 0)
		rc = bitmap_init(&pc->placed, h->nr_pages);
	if (rc == 0)
		rc = bitmap_init(&pc->asked, h->nr_pages);
	if (rc == 0)
		rc = ckpt_decoder_new(&pc->dec);
	if (rc < 0) {
		snprintf(err, errlen, "out of memory for the postcopy's bitmaps");
		goto fail;
	}
	memcpy(pc->need.words, h + 1, words * 8);
	rc = x->ops->postcopy_start(x->copy, pc->need.words, words, &pc->uffd, &pc->base);
	if (rc < 0) {
		snprintf(err, errlen, "the incoming domain cannot take a postcopy: %s (its VMM's "
				      "log says more)",
			 strerror(-rc));
		goto fail;
	}
	rc = -pthread_create(&pc->faults, NULL, faults_main, pc);
	pc->faults_on = rc == 0;
	if (rc == 0) {
		rc = -pthread_create(&pc->reader, NULL, reader_main, pc);
		pc->reader_on = rc == 0;
	}
	if (rc < 0) {
		snprintf(err, errlen, "cannot start the postcopy's threads: %s", strerror(-rc));
		goto fail;
	}
	log_info("postcopy: %llu of %llu pages follow from the primary; the domain waits for "
		 "each it touches first (at most %u ms)",
		 (unsigned long long)pc->count, (unsigned long long)pc->nr,
		 x->cfg->postcopy_stall_ms);
	*out = pc;
	return 0;
fail:
	pc_free(pc);
	return rc;
}

void rx_postcopy_abort(struct rx_postcopy *pc)
{
	fo_link_shutdown(pc->l);
	pc_free(pc);
}

int rx_postcopy_finish(struct rx_postcopy *pc)
{
	struct rx *x = pc->x;
	int rc;

	pthread_mutex_lock(&pc->mu);
	while (!pc->ended)
		pthread_cond_wait(&pc->cv, &pc->mu);
	rc = pc->rc;
	pthread_mutex_unlock(&pc->mu);
	/* Every page is here: the domain runs on its own. The registration
	 * is dropped while faults are still served, so none is left waiting. */
	if (rc == 0) {
		rc = x->ops->postcopy_end(x->copy);
		if (rc < 0) {
			pthread_mutex_lock(&pc->mu);
			pc_fail(pc, rc, "ending the postcopy in the VMM: %s", strerror(-rc));
			pthread_mutex_unlock(&pc->mu);
		}
	}
	atomic_store(&pc->stop, true);
	if (rc == 0) {
		struct ckpt_ha_pc_end e = {.pages = pc->waited};
		struct iovec iov = {&e, sizeof(e)};

		if (fo_link_record(pc->l, CKPT_REC_HA_PC_END, &iov, 1) < 0)
			log_warn("postcopy: the domain is whole, but the primary could not be told so");
		log_info("POSTCOPY complete in %llu ms: %llu pages placed, the domain waited for "
			 "%llu of them (%.1f ms on average, at most %.1f ms), %llu zero pages",
			 (unsigned long long)((clk_now_ns() - pc->t0) / NSEC_PER_MSEC),
			 (unsigned long long)pc->nplaced, (unsigned long long)pc->waited,
			 pc->waited ? (double)pc->wait_sum_ns / (double)pc->waited / 1e6 : 0.0,
			 (double)pc->wait_max_ns / 1e6, (unsigned long long)pc->zeros);
	} else {
		log_error("POSTCOPY FAILED: %s, with %llu of %llu pages placed. The domain can "
			  "never be whole here and is stopped; the primary keeps it suspended as "
			  "of the switchover (its log says what is left)",
			  pc->err, (unsigned long long)pc->nplaced, (unsigned long long)pc->count);
		snprintf(x->last_error, sizeof(x->last_error), "postcopy failed: %.280s", pc->err);
	}
	fo_link_shutdown(pc->l);
	pc_free(pc);
	return rc;
}
