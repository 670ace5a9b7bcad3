#include "failover/link.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/sock.h"

struct fo_link {
	int fd;
	unsigned down_ms;
	struct fo_tls_session *tls; /* NULL: plain */
	struct ckpt_transport tr;
	pthread_mutex_t wmu;
	struct ckpt_writer *w;
	struct ckpt_reader *r;

	pthread_t hb_thread;
	bool hb_running;
	pthread_mutex_t hb_mu;
	pthread_cond_t hb_cv;
	bool stopping;
	const _Atomic uint64_t *committed;
	uint64_t hb_seq;
	unsigned peer_down_ms; /* under hb_mu; 0: not told */
};

static int tr_writev(void *priv, const struct iovec *iov, int cnt)
{
	return fo_tls_writev(priv, iov, cnt);
}

static ssize_t tr_read(void *priv, void *buf, size_t len)
{
	return fo_tls_read(priv, buf, len);
}

static void set_timeout(int fd, int opt, unsigned ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

	setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv));
}

int fo_link_new(int fd, unsigned down_ms, struct fo_link **out)
{
	return fo_link_open(fd, down_ms, NULL, out, NULL, 0);
}

int fo_link_open(int fd, unsigned down_ms, struct fo_tls *tls, struct fo_link **out, char *err,
		 size_t errlen)
{
	struct fo_link *l = calloc(1, sizeof(*l));
	struct timeval tv = {.tv_sec = down_ms / 1000, .tv_usec = (down_ms % 1000) * 1000};
	/* Writes may stall while a live peer is busy (creating the incoming
	 * domain, applying a large checkpoint): its heartbeats still arrive, so
	 * reads alone decide that it is dead; writes only get a generous bound. */
	unsigned wr_ms = down_ms * 10 > 2000 ? down_ms * 10 : 2000;
	struct timeval wtv = {.tv_sec = wr_ms / 1000, .tv_usec = (wr_ms % 1000) * 1000};
	int rc;

	if (!l) {
		close(fd);
		return -ENOMEM;
	}
	l->fd = fd;
	l->down_ms = down_ms;
	pthread_mutex_init(&l->wmu, NULL);
	pthread_mutex_init(&l->hb_mu, NULL);
	clk_cond_init(&l->hb_cv);
	/* Not a socket (a file for -b/--save): no timers apply. */
	if (down_ms) {
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &wtv, sizeof(wtv));
		sock_tcp_tune(fd);
	}
	rc = ckpt_writer_new(fd, &l->w);
	if (rc == 0)
		rc = ckpt_reader_new_fd(fd, &l->r);
	if (rc == 0 && tls) {
		/* A handshake costs a few round trips and signatures: give a
		 * loaded host more than the down timer. */
		unsigned hs_ms = down_ms * 4 > 5000 ? down_ms * 4 : 5000;

		set_timeout(fd, SO_RCVTIMEO, hs_ms);
		rc = fo_tls_handshake(tls, fd, &l->tls, err, errlen);
		set_timeout(fd, SO_RCVTIMEO, down_ms);
		if (rc == 0) {
			l->tr = (struct ckpt_transport){tr_writev, tr_read, l->tls};
			ckpt_writer_set_transport(l->w, &l->tr);
			ckpt_reader_set_transport(l->r, &l->tr);
		}
	}
	if (rc < 0) {
		fo_link_free(l);
		return rc;
	}
	*out = l;
	return 0;
}

void fo_link_shutdown(struct fo_link *l)
{
	pthread_mutex_lock(&l->hb_mu);
	l->stopping = true;
	pthread_cond_broadcast(&l->hb_cv);
	pthread_mutex_unlock(&l->hb_mu);
	shutdown(l->fd, SHUT_RDWR);
}

void fo_link_free(struct fo_link *l)
{
	if (!l)
		return;
	fo_link_shutdown(l);
	if (l->hb_running)
		pthread_join(l->hb_thread, NULL);
	ckpt_writer_free(l->w);
	ckpt_reader_free(l->r);
	fo_tls_session_free(l->tls);
	close(l->fd);
	pthread_cond_destroy(&l->hb_cv);
	pthread_mutex_destroy(&l->hb_mu);
	pthread_mutex_destroy(&l->wmu);
	free(l);
}

int fo_link_headers(struct fo_link *l, uint32_t ihdr_id, uint32_t domain_type, uint32_t xen_major,
		    uint32_t xen_minor)
{
	int rc;

	pthread_mutex_lock(&l->wmu);
	rc = ckpt_writer_headers(l->w, ihdr_id, domain_type, xen_major, xen_minor);
	pthread_mutex_unlock(&l->wmu);
	return rc;
}

/* Heartbeats every quarter of the shorter down timer (under hb_mu). */
static uint64_t hb_period_ns(const struct fo_link *l)
{
	unsigned ms = l->down_ms;

	if (l->peer_down_ms && l->peer_down_ms < ms)
		ms = l->peer_down_ms;
	return (uint64_t)(ms / 4 ? ms / 4 : 1) * NSEC_PER_MSEC;
}

static void *hb_main(void *arg)
{
	struct fo_link *l = arg;
	uint64_t next;

	pthread_mutex_lock(&l->hb_mu);
	next = clk_now_ns() + hb_period_ns(l);
	while (!l->stopping) {
		uint64_t period = hb_period_ns(l), now = clk_now_ns();

		/* The peer's timer may have come in shorter meanwhile. */
		if (next > now + period)
			next = now + period;
		struct timespec ts = clk_ts(next);

		if (pthread_cond_timedwait(&l->hb_cv, &l->hb_mu, &ts) != ETIMEDOUT)
			continue;
		pthread_mutex_unlock(&l->hb_mu);

		struct ckpt_ha_heartbeat hb = {
		    .seq = ++l->hb_seq,
		    .sent_ns = clk_now_ns(),
		    .committed_epoch = atomic_load(l->committed),
		};
		struct iovec iov = {&hb, sizeof(hb)};
		int rc = fo_link_record(l, CKPT_REC_HA_HEARTBEAT, &iov, 1);

		pthread_mutex_lock(&l->hb_mu);
		if (rc < 0) {
			/* The reader side notices too and decides what it means. */
			log_debug("heartbeat not sent: %s", strerror(-rc));
			break;
		}
		next += period;
		if (next < clk_now_ns())
			next = clk_now_ns() + period;
	}
	pthread_mutex_unlock(&l->hb_mu);
	return NULL;
}

int fo_link_heartbeat_start(struct fo_link *l, const _Atomic uint64_t *committed)
{
	struct ckpt_ha_link_timer t = {.down_ms = l->down_ms};
	struct iovec iov = {&t, sizeof(t)};
	int rc;

	rc = fo_link_record(l, CKPT_REC_HA_LINK_TIMER, &iov, 1);
	if (rc < 0)
		return rc;
	l->committed = committed;
	rc = pthread_create(&l->hb_thread, NULL, hb_main, l);
	if (rc)
		return -rc;
	l->hb_running = true;
	return 0;
}

static void peer_timer(struct fo_link *l, const struct ckpt_record *rec)
{
	const struct ckpt_ha_link_timer *t = (const void *)rec->body;
	bool shorter;

	pthread_mutex_lock(&l->hb_mu);
	l->peer_down_ms = t->down_ms;
	shorter = t->down_ms && t->down_ms < l->down_ms;
	pthread_cond_broadcast(&l->hb_cv);
	pthread_mutex_unlock(&l->hb_mu);
	if (shorter)
		log_info("the peer's down timer is %u ms, shorter than this side's %u ms: "
			 "heartbeats every %u ms",
			 t->down_ms, l->down_ms, t->down_ms / 4 ? t->down_ms / 4 : 1);
}

int fo_link_next(struct fo_link *l, struct ckpt_record *rec)
{
	int rc;

	for (;;) {
		rc = ckpt_reader_next(l->r, rec);
		if (rc < 0 || (rec->type != CKPT_REC_HA_LINK_TIMER &&
			       rec->type != CKPT_REC_HA_HEARTBEAT))
			return rc;
		if (rec->type == CKPT_REC_HA_LINK_TIMER)
			peer_timer(l, rec);
	}
}

int fo_link_record(struct fo_link *l, uint32_t type, const struct iovec *iov, int iovcnt)
{
	int rc;

	pthread_mutex_lock(&l->wmu);
	rc = ckpt_writer_record(l->w, type, iov, iovcnt);
	pthread_mutex_unlock(&l->wmu);
	return rc;
}

int fo_link_pages(struct fo_link *l, uint32_t type, const struct iovec *iov, int iovcnt,
		  uint32_t npages)
{
	int rc;

	pthread_mutex_lock(&l->wmu);
	rc = ckpt_writer_pages(l->w, type, iov, iovcnt, npages);
	pthread_mutex_unlock(&l->wmu);
	return rc;
}

int fo_link_page_data(struct fo_link *l, const uint64_t *pfns, const void *const *pages,
		      uint32_t count)
{
	int rc;

	pthread_mutex_lock(&l->wmu);
	rc = ckpt_writer_page_data(l->w, pfns, pages, count);
	pthread_mutex_unlock(&l->wmu);
	return rc;
}

int fo_link_checkpoint(struct fo_link *l, uint64_t epoch)
{
	int rc;

	pthread_mutex_lock(&l->wmu);
	rc = ckpt_writer_checkpoint(l->w, epoch);
	pthread_mutex_unlock(&l->wmu);
	return rc;
}

int fo_link_end(struct fo_link *l)
{
	int rc;

	pthread_mutex_lock(&l->wmu);
	rc = ckpt_writer_end(l->w);
	pthread_mutex_unlock(&l->wmu);
	return rc;
}

void fo_link_tee(struct fo_link *l, int fd)
{
	pthread_mutex_lock(&l->wmu);
	ckpt_writer_set_tee(l->w, fd);
	pthread_mutex_unlock(&l->wmu);
}

uint64_t fo_link_bytes_sent(struct fo_link *l)
{
	uint64_t n;

	pthread_mutex_lock(&l->wmu);
	n = ckpt_writer_offset(l->w);
	pthread_mutex_unlock(&l->wmu);
	return n;
}

const char *fo_link_security(const struct fo_link *l)
{
	return l->tls ? fo_tls_session_desc(l->tls) : "plain TCP (--insecure)";
}

struct ckpt_reader *fo_link_reader(struct fo_link *l)
{
	return l->r;
}
