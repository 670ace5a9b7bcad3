#include "diskrepl/dev.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint/stream_format.h"
#include "common/bitmap.h"
#include "common/clock.h"
#include "common/ctl.h"
#include "common/io.h"
#include "common/log.h"
#include "common/sock.h"
#include "diskrepl/proto.h"

#define FLUSH_TIMEOUT_MS 30000
#define BARRIER_TIMEOUT_MS 1000
#define MAX_RECORD (CKPT_REC_LENGTH_MAX)

struct drdev {
	struct ckpt_dev dev;
	char path[108];
	uint32_t index;
	int fd;
	int ackfd; /* read end of the barrier confirmations (proto.h) */
	struct ckpt_sink sink;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* Commands come from the epoch loop (BARRIER) and the ACK thread
	 * (COMMIT) at once: one at a time on the socket. */
	pthread_mutex_t wmu;
	pthread_t fwd;
	bool fwd_running, synced;
	int64_t barrier; /* last HA_DISK_BARRIER forwarded, -1 none */
	int error;       /* the forwarder stopped: -errno */
	char why[256];
	uint64_t size, sync_total, sync_done, writes, bytes;
	bool full;
};

static void timed_wait(struct drdev *d, unsigned ms)
{
	struct timespec ts = clk_deadline_ts(ms);

	pthread_cond_timedwait(&d->cv, &d->mu, &ts);
}

static void stop_with(struct drdev *d, int rc, const char *why)
{
	pthread_mutex_lock(&d->mu);
	if (!d->error) {
		d->error = rc;
		snprintf(d->why, sizeof(d->why), "%s", why);
	}
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
}

/* Reads one record; the body (padded) lands in *buf. 0, or -errno. */
static int read_record(struct drdev *d, struct drl_rec_hdr *h, uint8_t **buf, size_t *cap)
{
	ssize_t n = io_read_full(d->fd, h, sizeof(*h));
	size_t padded;

	if (n != (ssize_t)sizeof(*h))
		return n < 0 ? (int)n : -EPIPE;
	if (h->length > MAX_RECORD)
		return -EPROTO;
	padded = (h->length + 7u) & ~(size_t)7;
	if (padded > *cap) {
		uint8_t *p = realloc(*buf, padded);

		if (!p)
			return -ENOMEM;
		*buf = p;
		*cap = padded;
	}
	n = io_read_full(d->fd, *buf, padded);
	return n == (ssize_t)padded ? 0 : n < 0 ? (int)n : -EPIPE;
}

static int forward(struct drdev *d, const struct drl_rec_hdr *h, const uint8_t *body)
{
	struct iovec iov = {(void *)body, h->length};

	return d->sink.record(d->sink.ctx, h->type, &iov, 1);
}

static void *fwd_main(void *arg)
{
	struct drdev *d = arg;
	uint8_t *buf = NULL;
	size_t cap = 0;
	char why[200];

	for (;;) {
		struct drl_rec_hdr h;
		int rc = read_record(d, &h, &buf, &cap);

		if (rc < 0) {
			snprintf(why, sizeof(why), "ha-diskrepl ended the attachment (%s)",
				 strerror(-rc));
			stop_with(d, -EPIPE, why);
			break;
		}
		if (h.type == DRL_REC_SYNCED) {
			pthread_mutex_lock(&d->mu);
			d->synced = true;
			pthread_cond_broadcast(&d->cv);
			pthread_mutex_unlock(&d->mu);
			continue;
		}
		if ((h.type != CKPT_REC_HA_DISK_WRITE && h.type != CKPT_REC_HA_DISK_BARRIER) ||
		    (h.type == CKPT_REC_HA_DISK_WRITE &&
		     h.length < sizeof(struct ckpt_ha_disk_write_hdr)) ||
		    (h.type == CKPT_REC_HA_DISK_BARRIER &&
		     h.length != sizeof(struct ckpt_ha_disk_barrier))) {
			snprintf(why, sizeof(why), "ha-diskrepl sent an unexpected record 0x%08x",
				 h.type);
			stop_with(d, -EPROTO, why);
			break;
		}
		if (d->error)
			continue; /* drained: see below */
		rc = forward(d, &h, buf);
		if (rc < 0) {
			/* The session is over (the engine degrades at the next
			 * flush). Keep reading, or ha-diskrepl would block with
			 * the guest's writes behind it; what is dropped here stays
			 * unacknowledged, so it is resynchronised later. */
			snprintf(why, sizeof(why), "writing to the secondary: %s", strerror(-rc));
			stop_with(d, rc, why);
			continue;
		}
		pthread_mutex_lock(&d->mu);
		if (h.type == CKPT_REC_HA_DISK_BARRIER) {
			d->barrier = (int64_t)((const struct ckpt_ha_disk_barrier *)buf)->epoch;
			pthread_cond_broadcast(&d->cv);
		} else {
			const struct ckpt_ha_disk_write_hdr *w = (const void *)buf;

			if (w->flags & CKPT_DISK_SYNC) {
				d->sync_done += w->length;
			} else {
				d->writes++;
				d->bytes += w->length;
			}
		}
		pthread_mutex_unlock(&d->mu);
	}
	free(buf);
	return NULL;
}

static int send_cmd(struct drdev *d, uint32_t op, uint64_t epoch, uint32_t count)
{
	struct drl_cmd c = {.op = op, .epoch = epoch, .disk = d->index, .count = count};
	int rc;

	if (d->fd < 0)
		return -ENOTCONN;
	pthread_mutex_lock(&d->wmu);
	rc = io_write_full(d->fd, &c, sizeof(c));
	pthread_mutex_unlock(&d->wmu);
	return rc;
}

/* The chunks the replica asked for (an HA_DISK_NEED body), as MARK
 * commands: one per run of set bits. */
static int send_marks(struct drdev *d, const uint8_t *need, uint32_t len)
{
	const struct ckpt_ha_disk_need_hdr *h = (const void *)need;
	struct bitmap bits = {.nbits = h->nchunks};
	uint64_t ranges = 0, chunks = 0;
	int rc = 0;

	if (len < sizeof(*h) || len - sizeof(*h) < BITMAP_WORDS(h->nchunks) * 8)
		return -EINVAL;
	/* The words are read in place, through a view (never freed). */
	bits.words = (uint64_t *)(uintptr_t)(need + sizeof(*h));
	for (size_t c = bitmap_next_set(&bits, 0); rc == 0 && c < bits.nbits;) {
		size_t end = c;

		while (end + 1 < bits.nbits && bitmap_test(&bits, end + 1))
			end++;
		uint64_t off = (uint64_t)c * h->chunk, n = (uint64_t)(end - c + 1) * h->chunk;

		while (rc == 0 && n) {
			uint64_t take = n > (UINT64_C(1) << 40) ? UINT64_C(1) << 40 : n;

			rc = send_cmd(d, DRL_MARK, off, (uint32_t)(take / 4096));
			off += take;
			n -= take;
		}
		ranges++;
		chunks += end - c + 1;
		c = bitmap_next_set(&bits, end + 1);
	}
	if (rc == 0)
		rc = send_cmd(d, DRL_MARK_END, 0, 0);
	if (rc == 0)
		log_info("disk %u: resending %llu chunks of %u KiB (%llu ranges) the secondary asked "
			 "for",
			 d->index, (unsigned long long)chunks, h->chunk >> 10,
			 (unsigned long long)ranges);
	return rc;
}

/* ATTACH, handing ha-diskrepl the write end of the confirmation pipe; then
 * the chunks the replica asked for, if any (NEED: an HA_DISK_NEED body). */
static int attach_cmd(struct drdev *d, bool full, const uint8_t *need, uint32_t need_len)
{
	struct drl_cmd c = {.op = DRL_ATTACH,
			    .flags = (full ? DRL_ATTACH_FULL : 0) | (need ? DRL_ATTACH_MARKS : 0),
			    .disk = d->index};
	int p[2], rc;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	rc = sock_send_fd(d->fd, p[1], &c, sizeof(c));
	close(p[1]);
	if (rc == 0 && need)
		rc = send_marks(d, need, need_len);
	if (rc < 0) {
		close(p[0]);
		return rc;
	}
	d->ackfd = p[0];
	return 0;
}

static int dr_connect(struct ckpt_dev *dev, const struct ckpt_sink *sink)
{
	struct drdev *d = dev->priv;
	struct drl_rec_hdr h;
	const uint8_t *need;
	uint8_t *buf = NULL;
	size_t cap = 0;
	int rc;

	d->sink = *sink;
	d->synced = false;
	d->barrier = -1;
	d->error = 0;
	d->why[0] = '\0';
	d->sync_done = d->writes = d->bytes = 0;
	d->fd = sock_unix_connect(d->path);
	if (d->fd < 0) {
		rc = d->fd;
		log_error("disk %u: cannot reach ha-diskrepl at %s: %s (is it serving this disk?)",
			  d->index, d->path, strerror(-rc));
		return rc;
	}
	need = sink->need[d->index];
	/* The need bodies are the session's (freed once it is protected):
	 * used during this connect only, never kept. */
	memset(d->sink.need, 0, sizeof(d->sink.need));
	rc = attach_cmd(d, sink->resync_full, need, sink->need_len[d->index]);
	if (rc == 0)
		rc = read_record(d, &h, &buf, &cap);
	if (rc == 0 && h.type == CKPT_REC_HA_ERROR && h.length >= sizeof(struct ckpt_ha_error_hdr)) {
		const struct ckpt_ha_error_hdr *e = (const void *)buf;

		log_error("disk %u: ha-diskrepl refuses: %.*s", d->index,
			  (int)(h.length - sizeof(*e)), (const char *)(buf + sizeof(*e)));
		rc = e->code ? -(int)e->code : -EPROTO;
	} else if (rc == 0 && (h.type != CKPT_REC_HA_DISK_CONFIG ||
			       h.length != sizeof(struct ckpt_ha_disk_config))) {
		log_error("disk %u: ha-diskrepl answered with record 0x%08x", d->index, h.type);
		rc = -EPROTO;
	} else if (rc == 0) {
		struct ckpt_ha_disk_config *c = (void *)buf;

		d->size = c->size;
		d->sync_total = c->sync_bytes;
		d->full = c->flags & CKPT_DISKCFG_FULL;
		/* The replica's chunks are in this resynchronisation if it
		 * extends the lineage they were asked for against. */
		if (need && !d->full &&
		    !memcmp(c->source_id, ((const struct ckpt_ha_disk_need_hdr *)need)->source_id,
			    sizeof(c->source_id)))
			c->flags |= CKPT_DISKCFG_NEED_MET;
		rc = forward(d, &h, buf);
	} else {
		log_error("disk %u: attaching to ha-diskrepl: %s", d->index, strerror(-rc));
	}
	free(buf);
	if (rc == 0) {
		rc = -pthread_create(&d->fwd, NULL, fwd_main, d);
		d->fwd_running = rc == 0;
	}
	if (rc < 0) {
		close(d->fd);
		d->fd = -1;
		if (d->ackfd >= 0)
			close(d->ackfd);
		d->ackfd = -1;
		return rc;
	}
	log_info("disk %u: attached (%llu MiB); %s resynchronisation of %llu KiB", d->index,
		 (unsigned long long)(d->size >> 20), d->full ? "full" : "incremental",
		 (unsigned long long)(d->sync_total >> 10));
	return 0;
}

static int dr_setup(struct ckpt_dev *dev)
{
	struct drdev *d = dev->priv;
	uint64_t t0 = clk_now_ns(), last = t0;
	int rc = 0;

	pthread_mutex_lock(&d->mu);
	while (!d->synced && !d->error) {
		if (d->sink.cancelled && d->sink.cancelled(d->sink.ctx)) {
			rc = -ECANCELED;
			break;
		}
		timed_wait(d, 100);
		if (clk_now_ns() - last >= 2 * NSEC_PER_SEC) {
			last = clk_now_ns();
			log_info("disk %u: resynchronising, %llu of %llu MiB (%.0f%%)", d->index,
				 (unsigned long long)(d->sync_done >> 20),
				 (unsigned long long)(d->sync_total >> 20),
				 d->sync_total ? 100.0 * (double)d->sync_done / (double)d->sync_total
					       : 100.0);
		}
	}
	if (rc == 0 && d->error) {
		rc = d->error;
		log_error("disk %u: %s", d->index, d->why);
	}
	pthread_mutex_unlock(&d->mu);
	if (rc == 0)
		log_info("disk %u: resynchronised %llu MiB in %llu ms", d->index,
			 (unsigned long long)(d->sync_total >> 20),
			 (unsigned long long)((clk_now_ns() - t0) / NSEC_PER_MSEC));
	return rc;
}

/* The guest is paused: epoch's writes are closed once ha-diskrepl says so
 * (a local round trip of some tens of microseconds; see proto.h). */
static int dr_postsuspend(struct ckpt_dev *dev, uint64_t epoch)
{
	struct drdev *d = dev->priv;
	struct pollfd pfd = {.fd = d->ackfd, .events = POLLIN};
	uint64_t got;
	ssize_t n;
	int rc = send_cmd(d, DRL_BARRIER, epoch, 0);

	if (rc < 0)
		return rc;
	rc = poll(&pfd, 1, BARRIER_TIMEOUT_MS);
	if (rc == 0) {
		log_error("disk %u: ha-diskrepl did not confirm the barrier of epoch %llu within "
			  "%u ms", d->index, (unsigned long long)epoch, BARRIER_TIMEOUT_MS);
		return -ETIMEDOUT;
	}
	n = io_read_full(d->ackfd, &got, sizeof(got));
	if (n != (ssize_t)sizeof(got) || got != epoch) {
		log_error("disk %u: ha-diskrepl %s the barrier of epoch %llu", d->index,
			  n == (ssize_t)sizeof(got) ? "confirmed another epoch than" : "ended before confirming",
			  (unsigned long long)epoch);
		return n < 0 ? (int)n : -EPROTO;
	}
	return 0;
}

static int dr_flush(struct ckpt_dev *dev, uint64_t epoch)
{
	struct drdev *d = dev->priv;
	uint64_t until = clk_now_ns() + (uint64_t)FLUSH_TIMEOUT_MS * NSEC_PER_MSEC;
	int rc = 0;

	pthread_mutex_lock(&d->mu);
	while (d->barrier < (int64_t)epoch && !d->error) {
		if (clk_now_ns() > until) {
			rc = -ETIMEDOUT;
			snprintf(d->why, sizeof(d->why),
				 "ha-diskrepl sent no barrier for epoch %llu within %u ms",
				 (unsigned long long)epoch, FLUSH_TIMEOUT_MS);
			break;
		}
		timed_wait(d, 100);
	}
	if (!rc && d->barrier < (int64_t)epoch)
		rc = d->error;
	if (rc)
		log_error("disk %u: %s", d->index, d->why);
	pthread_mutex_unlock(&d->mu);
	return rc;
}

static int dr_commit(struct ckpt_dev *dev, uint64_t epoch)
{
	return send_cmd(dev->priv, DRL_COMMIT, epoch, 0);
}

static void dr_teardown(struct ckpt_dev *dev)
{
	struct drdev *d = dev->priv;

	if (d->fd >= 0) {
		send_cmd(d, DRL_DETACH, 0, 0);
		shutdown(d->fd, SHUT_RDWR);
	}
	if (d->fwd_running) {
		pthread_join(d->fwd, NULL);
		d->fwd_running = false;
	}
	if (d->fd >= 0) {
		close(d->fd);
		d->fd = -1;
	}
	if (d->ackfd >= 0) {
		close(d->ackfd);
		d->ackfd = -1;
	}
}

static int dr_status(struct ckpt_dev *dev, char *buf, size_t len)
{
	struct drdev *d = dev->priv;

	pthread_mutex_lock(&d->mu);
	if (d->error)
		snprintf(buf, len, "disk %u stopped: %s", d->index, d->why);
	else if (!d->synced)
		snprintf(buf, len, "disk %u resynchronising: %llu of %llu MiB", d->index,
			 (unsigned long long)(d->sync_done >> 20),
			 (unsigned long long)(d->sync_total >> 20));
	else
		snprintf(buf, len, "disk %u mirroring: %llu writes, %llu octets, barrier %lld",
			 d->index, (unsigned long long)d->writes, (unsigned long long)d->bytes,
			 (long long)d->barrier);
	pthread_mutex_unlock(&d->mu);
	return 0;
}

static void dr_destroy(struct ckpt_dev *dev)
{
	struct drdev *d = dev->priv;

	dr_teardown(dev);
	pthread_cond_destroy(&d->cv);
	pthread_mutex_destroy(&d->wmu);
	pthread_mutex_destroy(&d->mu);
	free(d);
}

/* concurrent: flush waits on the forwarder with mu released, BARRIER and
 * COMMIT are written under wmu, the confirmations are read by
 * postsuspend alone: a flush that waits for the network holds no pause. */
static const struct ckpt_dev_ops diskrepl_ops = {
	.kind = "diskrepl",
	.concurrent = true,
	.connect = dr_connect,
	.setup = dr_setup,
	.postsuspend = dr_postsuspend,
	.flush = dr_flush,
	.commit = dr_commit,
	.teardown = dr_teardown,
	.status = dr_status,
	.destroy = dr_destroy,
};

int diskrepl_dev_create(const char *spec, uint32_t index, struct ckpt_dev **out)
{
	struct drdev *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	if (strchr(spec, '/')) {
		snprintf(d->path, sizeof(d->path), "%s", spec);
	} else {
		char ctl[108];

		ctl_path(ctl, sizeof(ctl), "ha-diskrepl", spec);
		snprintf(d->path, sizeof(d->path), "%.*s.attach", (int)(strlen(ctl) - 5), ctl);
	}
	d->index = index;
	d->fd = d->ackfd = -1;
	d->barrier = -1;
	pthread_mutex_init(&d->mu, NULL);
	pthread_mutex_init(&d->wmu, NULL);
	clk_cond_init(&d->cv);
	d->dev.ops = &diskrepl_ops;
	d->dev.priv = d;
	snprintf(d->dev.name, sizeof(d->dev.name), "%s", spec);
	*out = &d->dev;
	return 0;
}
