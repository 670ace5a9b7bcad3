#include "diskrepl/source.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "checkpoint/stream_format.h"
#include "common/bitmap.h"
#include "common/clock.h"
#include "common/io.h"
#include "common/log.h"
#include "common/report.h"
#include "common/sock.h"
#include "diskrepl/dirtylog.h"
#include "diskrepl/proto.h"

/* How often, at most, the bitmap file is rewritten to clear the chunks
 * the replica has caught up with. */
#define DIRTYLOG_REWRITE_NS (10 * NSEC_PER_SEC)

struct extent {
	uint64_t epoch, off;
	uint32_t len;
};

struct source {
	char path[PATH_MAX];
	int img;
	uint64_t size;
	uint32_t chunk;
	bool can_punch;

	pthread_mutex_t mu;
	struct bitmap dirty; /* chunks the replica may lack (see source.h) */
	bool base_known;     /* a replica of this lineage completed a commit */
	uint8_t lineage[16];

	/* --bitmap FILE (dirtylog.h); NULL: none. recent: chunks written since
	 * the file was last rewritten, kept set by the next rewrite so that a
	 * chunk the guest keeps writing is not marked again and again. */
	struct dirtylog *log;
	struct bitmap recent, cover;
	uint64_t log_rewritten_ns;

	/* The attachment, if any. */
	int afd; /* -1: detached; writes only under mu */
	int ackfd; /* barrier confirmations (see proto.h), -1 none */
	bool attached, synced, committed_once;
	uint32_t disk;
	uint64_t epoch, epoch_writes;
	struct bitmap snap; /* what this attachment resynchronises */
	struct extent *pend;
	size_t npend, cappend;
	uint64_t sync_total, sync_done;
	pthread_t sync_thread;
	bool sync_running;

	/* Counters for status. */
	uint64_t writes, write_bytes, mirrored, attaches, barriers, commits;
	uint64_t attached_at_ns;
	char last_detach[200];
};

uint64_t source_size(const struct source *s)
{
	return s->size;
}

static uint64_t nchunks(const struct source *s)
{
	return (s->size + s->chunk - 1) / s->chunk;
}

static void mark_range(struct source *s, uint64_t off, uint64_t len)
{
	if (!len)
		return;
	for (uint64_t c = off / s->chunk; c <= (off + len - 1) / s->chunk; c++)
		bitmap_set(&s->dirty, c);
}

/* The bitmap file cannot be kept up to date: it must not be believed at
 * the next start. Its header is made to say "no base" (then the next start
 * copies the whole disk); if even that fails, the file goes. */
static void log_lost(struct source *s, const char *what, int err)
{
	static const uint8_t none[16];

	log_error("the bitmap file %s cannot be %s (%s): it is given up; the next start of "
		  "ha-diskrepl copies the whole disk",
		  dirtylog_path(s->log), what, strerror(-err));
	if (dirtylog_set_base(s->log, none, false) < 0 && unlink(dirtylog_path(s->log)) < 0)
		log_error("the bitmap file %s can be neither reset nor removed (%s): remove it "
			  "by hand before ha-diskrepl starts again",
			  dirtylog_path(s->log), strerror(errno));
	dirtylog_close(s->log);
	s->log = NULL;
}

/* Before the image changes at [off, off+len) (mu held). */
static void log_mark(struct source *s, uint64_t off, uint64_t len)
{
	int rc;

	if (!s->log || !len)
		return;
	rc = dirtylog_mark(s->log, off / s->chunk, (off + len - 1) / s->chunk);
	if (rc < 0) {
		log_lost(s, "written", rc);
		return;
	}
	for (uint64_t c = off / s->chunk; c <= (off + len - 1) / s->chunk; c++)
		bitmap_set(&s->recent, c);
}

/* Rewrites the file with what the replica may lack (mu held): the bitmap,
 * the unacknowledged writes, and the chunks written lately. */
static void log_rewrite(struct source *s)
{
	int rc;

	if (!s->log)
		return;
	bitmap_zero(&s->cover);
	bitmap_or(&s->cover, &s->dirty);
	bitmap_or(&s->cover, &s->recent);
	for (size_t i = 0; i < s->npend; i++)
		for (uint64_t c = s->pend[i].off / s->chunk;
		     s->pend[i].len && c <= (s->pend[i].off + s->pend[i].len - 1) / s->chunk; c++)
			bitmap_set(&s->cover, c);
	rc = dirtylog_rewrite(s->log, &s->cover);
	if (rc < 0) {
		log_lost(s, "rewritten", rc);
		return;
	}
	bitmap_zero(&s->recent);
	s->log_rewritten_ns = clk_now_ns();
}

static int log_base(struct source *s)
{
	int rc;

	if (!s->log)
		return 0;
	rc = dirtylog_set_base(s->log, s->lineage, s->base_known);
	if (rc < 0)
		log_lost(s, "written", rc);
	return rc;
}

/* Ends the attachment (mu held): what the secondary has not acknowledged
 * goes back into the bitmap. */
static void detach_locked(struct source *s, const char *why)
{
	if (!s->attached)
		return;
	for (size_t i = 0; i < s->npend; i++)
		mark_range(s, s->pend[i].off, s->pend[i].len);
	s->npend = 0;
	if (s->afd >= 0)
		shutdown(s->afd, SHUT_RDWR);
	s->afd = -1;
	if (s->ackfd >= 0)
		close(s->ackfd);
	s->ackfd = -1;
	s->attached = false;
	snprintf(s->last_detach, sizeof(s->last_detach), "%s", why);
	log_info("detached (%s): %zu chunks to resynchronise next time%s", why,
		 bitmap_count(&s->dirty), s->base_known ? "" : " (a full copy is needed)");
}

/* Sends one record to the attachment (mu held); a failure detaches. */
static int emit(struct source *s, uint32_t type, const void *body, size_t blen, const void *data,
		size_t dlen)
{
	static const uint8_t pad[8];
	struct drl_rec_hdr h = {.type = type, .length = (uint32_t)(blen + dlen)};
	size_t padlen = (8 - (blen + dlen) % 8) % 8;
	struct iovec iov[4] = {
		{&h, sizeof(h)}, {(void *)body, blen}, {(void *)data, dlen}, {(void *)pad, padlen}};
	int rc;

	if (!s->attached)
		return -ENOTCONN;
	rc = io_writev_full(s->afd, iov, 4);
	if (rc < 0) {
		char why[120];

		snprintf(why, sizeof(why), "ha-protect is gone or stuck: %s", strerror(-rc));
		detach_locked(s, why);
	}
	return rc;
}

/* A guest change of [off, off+len): mirror it or remember it (mu held). */
static void track(struct source *s, uint64_t off, uint32_t len, uint16_t flags, const void *data)
{
	if (s->attached) {
		struct ckpt_ha_disk_write_hdr h = {.epoch = s->epoch, .offset = off, .length = len,
						   .disk = (uint16_t)s->disk, .flags = flags};

		if (s->npend == s->cappend) {
			size_t cap = s->cappend ? s->cappend * 2 : 1024;
			struct extent *p = realloc(s->pend, cap * sizeof(*p));

			if (!p) {
				detach_locked(s, "out of memory tracking writes");
				mark_range(s, off, len);
				return;
			}
			s->pend = p;
			s->cappend = cap;
		}
		s->pend[s->npend++] = (struct extent){s->epoch, off, len};
		if (emit(s, CKPT_REC_HA_DISK_WRITE, &h, sizeof(h), data,
			 flags & CKPT_DISK_ZERO ? 0 : len) == 0) {
			s->epoch_writes++;
			s->mirrored += len;
		}
		return;
	}
	mark_range(s, off, len);
}

/* ------------------------------------------------------------------ */
/* The NBD backend. */

static int src_read(void *ctx, void *buf, uint32_t len, uint64_t off)
{
	struct source *s = ctx;

	return io_pread_all(s->img, buf, len, off);
}

static int src_write(void *ctx, const void *buf, uint32_t len, uint64_t off, bool fua)
{
	struct source *s = ctx;
	int rc;

	pthread_mutex_lock(&s->mu);
	log_mark(s, off, len);
	rc = io_pwrite_all(s->img, buf, len, off);
	if (rc == 0) {
		track(s, off, len, fua ? CKPT_DISK_FUA : 0, buf);
		s->writes++;
		s->write_bytes += len;
	}
	pthread_mutex_unlock(&s->mu);
	if (rc == 0 && fua && fdatasync(s->img) < 0)
		rc = -errno;
	return rc;
}

static int zero_local(struct source *s, uint64_t off, uint64_t len)
{
	static const uint8_t zeros[65536];

	if (s->can_punch &&
	    fallocate(s->img, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
		return 0;
	while (len) {
		size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
		int rc = io_pwrite_all(s->img, zeros, n, off);

		if (rc < 0)
			return rc;
		off += n;
		len -= n;
	}
	return 0;
}

static int src_zero(void *ctx, uint32_t len, uint64_t off, bool fua)
{
	struct source *s = ctx;
	int rc;

	pthread_mutex_lock(&s->mu);
	log_mark(s, off, len);
	rc = zero_local(s, off, len);
	if (rc == 0) {
		track(s, off, len, (uint16_t)(CKPT_DISK_ZERO | (fua ? CKPT_DISK_FUA : 0)), NULL);
		s->writes++;
	}
	pthread_mutex_unlock(&s->mu);
	if (rc == 0 && fua && fdatasync(s->img) < 0)
		rc = -errno;
	return rc;
}

/* A trim that frees space reads as zeros afterwards: mirrored as such. One
 * the file system cannot do changes nothing and is not mirrored. */
static int src_trim(void *ctx, uint32_t len, uint64_t off)
{
	struct source *s = ctx;

	if (!s->can_punch)
		return 0;
	pthread_mutex_lock(&s->mu);
	log_mark(s, off, len);
	if (fallocate(s->img, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) ==
	    0)
		track(s, off, len, CKPT_DISK_ZERO, NULL);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

static int src_flush(void *ctx)
{
	struct source *s = ctx;

	return fdatasync(s->img) < 0 ? -errno : 0;
}

const struct nbdsrv_ops source_nbd_ops = {
	.read = src_read,
	.write = src_write,
	.zero = src_zero,
	.trim = src_trim,
	.flush = src_flush,
};

/* ------------------------------------------------------------------ */
/* Attachments. */

static bool all_zero(const uint8_t *p, size_t n)
{
	const uint64_t *w = (const uint64_t *)p;

	for (size_t i = 0; i < n / 8; i++)
		if (w[i])
			return false;
	for (size_t i = n & ~(size_t)7; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* Streams the current contents of every chunk in snap, then SYNCED. Each
 * chunk is read and sent under the mutex, so it lands in the stream
 * between the guest writes it includes and those it does not. */
static void *sync_main(void *arg)
{
	struct source *s = arg;
	uint8_t *buf = malloc(s->chunk);
	uint64_t t0 = clk_now_ns(), last = t0;

	for (size_t c = bitmap_next_set(&s->snap, 0); buf && c < s->snap.nbits;
	     c = bitmap_next_set(&s->snap, c + 1)) {
		uint64_t off = (uint64_t)c * s->chunk;
		uint32_t len = (uint32_t)(s->size - off < s->chunk ? s->size - off : s->chunk);
		int rc;

		pthread_mutex_lock(&s->mu);
		if (!s->attached) {
			pthread_mutex_unlock(&s->mu);
			goto out;
		}
		rc = io_pread_all(s->img, buf, len, off);
		if (rc < 0) {
			detach_locked(s, "cannot read the image for resynchronisation");
			pthread_mutex_unlock(&s->mu);
			goto out;
		}
		bool z = all_zero(buf, len);
		struct ckpt_ha_disk_write_hdr h = {
			.epoch = s->epoch, .offset = off, .length = len, .disk = (uint16_t)s->disk,
			.flags = (uint16_t)(CKPT_DISK_SYNC | (z ? CKPT_DISK_ZERO : 0))};

		rc = emit(s, CKPT_REC_HA_DISK_WRITE, &h, sizeof(h), buf, z ? 0 : len);
		if (rc == 0)
			s->sync_done += len;
		pthread_mutex_unlock(&s->mu);
		if (rc < 0)
			goto out;
		if (clk_now_ns() - last > 2 * NSEC_PER_SEC) {
			double secs = (double)((last = clk_now_ns()) - t0) / 1e9;
			double rate = (double)s->sync_done / secs; /* octets/s */

			log_info("resynchronising: %llu of %llu MiB (%llu%%), %.1f MiB/s, about %.0f s "
				 "left",
				 (unsigned long long)(s->sync_done >> 20),
				 (unsigned long long)(s->sync_total >> 20),
				 (unsigned long long)(s->sync_total ? s->sync_done * 100 / s->sync_total
								    : 100),
				 rate / 1048576.0,
				 rate > 0 ? (double)(s->sync_total - s->sync_done) / rate : 0.0);
		}
	}
	pthread_mutex_lock(&s->mu);
	if (buf && s->attached) {
		uint64_t done = s->sync_done;

		s->synced = true;
		if (emit(s, DRL_REC_SYNCED, &done, sizeof(done), NULL, 0) == 0)
			log_info("resynchronised %llu MiB in %llu ms",
				 (unsigned long long)(done >> 20),
				 (unsigned long long)((clk_now_ns() - t0) / NSEC_PER_MSEC));
	} else if (!buf) {
		detach_locked(s, "out of memory for resynchronisation");
	}
	pthread_mutex_unlock(&s->mu);
out:
	free(buf);
	return NULL;
}

static void refuse(int fd, int code, const char *msg)
{
	struct ckpt_ha_error_hdr e = {.code = (uint32_t)code};
	size_t len = sizeof(e) + strlen(msg);
	struct drl_rec_hdr h = {.type = CKPT_REC_HA_ERROR, .length = (uint32_t)len};
	static const uint8_t pad[8];
	struct iovec iov[4] = {{&h, sizeof(h)},
			       {&e, sizeof(e)},
			       {(void *)msg, strlen(msg)},
			       {(void *)pad, (8 - len % 8) % 8}};

	io_writev_full(fd, iov, 4);
}

static int start(struct source *s, int fd, const struct drl_cmd *cmd)
{
	bool full = !s->base_known || (cmd->flags & DRL_ATTACH_FULL);
	struct ckpt_ha_disk_config c = {.disk = cmd->disk, .size = s->size};
	int rc;

	if (s->attached) {
		refuse(fd, EBUSY, "this disk is already attached to a protection session");
		return -EBUSY;
	}
	if (cmd->disk >= CKPT_DISK_MAX) {
		refuse(fd, EINVAL, "disk index out of range");
		return -EINVAL;
	}
	if (full) {
		if (getrandom(s->lineage, sizeof(s->lineage), 0) != sizeof(s->lineage)) {
			refuse(fd, EIO, "no randomness for a lineage id");
			return -EIO;
		}
		s->base_known = false;
		/* Until its first commit, a restart means another full copy. */
		log_base(s);
		for (size_t c2 = 0; c2 < s->snap.nbits; c2++)
			bitmap_set(&s->snap, c2);
		c.flags = CKPT_DISKCFG_FULL;
	} else {
		bitmap_zero(&s->snap);
		bitmap_or(&s->snap, &s->dirty);
	}
	s->sync_total = 0;
	for (size_t ch = bitmap_next_set(&s->snap, 0); ch < s->snap.nbits;
	     ch = bitmap_next_set(&s->snap, ch + 1)) {
		uint64_t off = (uint64_t)ch * s->chunk;

		s->sync_total += s->size - off < s->chunk ? s->size - off : s->chunk;
	}
	memcpy(c.source_id, s->lineage, sizeof(c.source_id));
	c.sync_bytes = s->sync_total;
	s->afd = fd;
	s->attached = true;
	s->synced = s->committed_once = false;
	s->disk = cmd->disk;
	s->epoch = s->epoch_writes = 0;
	s->npend = 0;
	s->sync_done = 0;
	s->attaches++;
	s->attached_at_ns = clk_now_ns();
	rc = emit(s, CKPT_REC_HA_DISK_CONFIG, &c, sizeof(c), NULL, 0);
	if (rc < 0)
		return rc;
	log_info("attached as disk %u: %s resynchronisation of %llu KiB", cmd->disk,
		 full ? "full" : "incremental", (unsigned long long)(s->sync_total >> 10));
	rc = -pthread_create(&s->sync_thread, NULL, sync_main, s);
	if (rc < 0) {
		detach_locked(s, "cannot start the resynchronisation");
		return rc;
	}
	s->sync_running = true;
	return 0;
}

/* The MARK commands after an ATTACH with MARKS: chunks the replica asked
 * for (a failback: what the old primary wrote that was never committed
 * here), marked as if written, so that the resynchronisation planned next
 * includes them. */
static int take_marks(struct source *s, int fd)
{
	struct drl_cmd cmd;
	uint64_t ranges = 0, octets = 0;

	for (;;) {
		if (io_read_full(fd, &cmd, sizeof(cmd)) != (ssize_t)sizeof(cmd))
			return -EPROTO;
		if (cmd.op == DRL_MARK_END)
			break;
		if (cmd.op != DRL_MARK)
			return -EPROTO;
		uint64_t off = cmd.epoch, len = (uint64_t)cmd.count * 4096;

		if (off >= s->size)
			continue;
		if (len > s->size - off)
			len = s->size - off;
		pthread_mutex_lock(&s->mu);
		log_mark(s, off, len);
		mark_range(s, off, len);
		pthread_mutex_unlock(&s->mu);
		ranges++;
		octets += len;
	}
	if (ranges)
		log_info("the replica asks for %llu KiB in %llu ranges again (its image may hold "
			 "writes never committed here): marked for the resynchronisation",
			 (unsigned long long)(octets >> 10), (unsigned long long)ranges);
	return 0;
}

int source_attach(struct source *s, int fd)
{
	struct drl_cmd cmd;
	struct timeval tv = {.tv_sec = 30};
	int ackfd = -1;
	ssize_t n;
	int rc;

	/* A writer stuck for this long means ha-protect is hung: detach. */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	n = sock_recv_fd(fd, &ackfd, &cmd, sizeof(cmd));
	if (n > 0 && n < (ssize_t)sizeof(cmd) &&
	    io_read_full(fd, (uint8_t *)&cmd + n, sizeof(cmd) - (size_t)n) ==
		    (ssize_t)(sizeof(cmd) - (size_t)n))
		n = sizeof(cmd);
	if (n != (ssize_t)sizeof(cmd) || cmd.op != DRL_ATTACH || ackfd < 0) {
		refuse(fd, EPROTO, "expected ATTACH with its confirmation pipe");
		if (ackfd >= 0)
			close(ackfd);
		return -EPROTO;
	}
	rc = (cmd.flags & DRL_ATTACH_MARKS) ? take_marks(s, fd) : 0;
	if (rc < 0) {
		refuse(fd, EPROTO, "expected MARK commands, then MARK_END");
		close(ackfd);
		return rc;
	}
	pthread_mutex_lock(&s->mu);
	rc = start(s, fd, &cmd);
	if (rc == 0)
		s->ackfd = ackfd;
	else
		close(ackfd);
	pthread_mutex_unlock(&s->mu);
	if (rc < 0)
		return rc;

	const char *why = "ha-protect detached";
	for (;;) {
		n = io_read_full(fd, &cmd, sizeof(cmd));
		if (n != (ssize_t)sizeof(cmd)) {
			why = "ha-protect hung up";
			break;
		}
		pthread_mutex_lock(&s->mu);
		if (!s->attached) {
			pthread_mutex_unlock(&s->mu);
			why = s->last_detach;
			break;
		}
		if (cmd.op == DRL_DETACH) {
			pthread_mutex_unlock(&s->mu);
			break;
		}
		if (cmd.op == DRL_BARRIER) {
			struct ckpt_ha_disk_barrier b = {.epoch = cmd.epoch,
							 .writes = s->epoch_writes,
							 .disk = s->disk};

			uint64_t e = cmd.epoch;

			/* Confirmed before the record is emitted: mu is held until
			 * then, so no later write can slip in ahead of the barrier. */
			if (!s->synced || cmd.epoch != s->epoch) {
				detach_locked(s, "a barrier out of order or before the "
						 "resynchronisation ended");
			} else if (io_write_full(s->ackfd, &e, sizeof(e)) < 0) {
				detach_locked(s, "ha-protect closed its barrier confirmations");
			} else if (emit(s, CKPT_REC_HA_DISK_BARRIER, &b, sizeof(b), NULL, 0) == 0) {
				s->epoch++;
				s->epoch_writes = 0;
				s->barriers++;
			}
		} else if (cmd.op == DRL_COMMIT && cmd.epoch >= s->epoch) {
			/* The secondary cannot have committed an epoch that is
			 * still open: taking it would forget writes it lacks. */
			detach_locked(s, "a commit of an epoch not closed by its barrier");
		} else if (cmd.op == DRL_COMMIT) {
			size_t k = 0;

			for (size_t i = 0; i < s->npend; i++)
				if (s->pend[i].epoch > cmd.epoch)
					s->pend[k++] = s->pend[i];
			s->npend = k;
			if (!s->committed_once) {
				/* The replica now holds the resynchronised base. */
				bitmap_zero(&s->dirty);
				bool was_known = s->base_known;

				s->committed_once = s->base_known = true;
				log_rewrite(s);
				if (!was_known)
					log_base(s);
			} else if (s->log &&
				   clk_now_ns() - s->log_rewritten_ns >= DIRTYLOG_REWRITE_NS) {
				log_rewrite(s);
			}
			s->commits++;
		} else {
			detach_locked(s, "an unknown command");
		}
		pthread_mutex_unlock(&s->mu);
	}
	pthread_mutex_lock(&s->mu);
	detach_locked(s, why);
	pthread_mutex_unlock(&s->mu);
	if (s->sync_running) {
		pthread_join(s->sync_thread, NULL);
		s->sync_running = false;
	}
	return 0;
}

void source_save(struct source *s)
{
	pthread_mutex_lock(&s->mu);
	if (s->base_known)
		log_rewrite(s);
	pthread_mutex_unlock(&s->mu);
}

void source_status(struct source *s, FILE *out)
{
	pthread_mutex_lock(&s->mu);
	fprintf(out, "image: %s\nsize: %llu\nchunk: %u\n", s->path, (unsigned long long)s->size,
		s->chunk);
	if (s->attached) {
		fprintf(out, "state: %s (disk %u, epoch %llu)\n",
			s->synced ? "mirroring" : "resynchronising", s->disk,
			(unsigned long long)s->epoch);
		fprintf(out, "sync: %llu of %llu octets\n", (unsigned long long)s->sync_done,
			(unsigned long long)s->sync_total);
	} else {
		fprintf(out, "state: detached%s%s%s\n", s->last_detach[0] ? " (" : "",
			s->last_detach, s->last_detach[0] ? ")" : "");
	}
	fprintf(out, "bitmap_file: %s\n",
		s->log ? dirtylog_path(s->log) : "none (a restart copies the whole disk)");
	fprintf(out, "base: %s\nchunks_to_resync: %zu\n",
		s->base_known ? "replica known (incremental)" : "none (full copy next)",
		s->base_known ? bitmap_count(&s->dirty) : (size_t)nchunks(s));
	fprintf(out, "unacknowledged_writes: %zu\n", s->npend);
	fprintf(out, "writes: %llu\nwrite_bytes: %llu\nmirrored_bytes: %llu\n",
		(unsigned long long)s->writes, (unsigned long long)s->write_bytes,
		(unsigned long long)s->mirrored);
	fprintf(out, "attaches: %llu\nbarriers: %llu\ncommits: %llu\n",
		(unsigned long long)s->attaches, (unsigned long long)s->barriers,
		(unsigned long long)s->commits);
	pthread_mutex_unlock(&s->mu);
}

/* --bitmap: what the file says becomes the starting state. */
static int open_log(struct source *s, const char *path, const struct stat *img, char *err,
		    size_t errlen)
{
	struct dirtylog_base base;
	int rc;

	rc = bitmap_init(&s->recent, nchunks(s));
	if (rc == 0)
		rc = bitmap_init(&s->cover, nchunks(s));
	if (rc < 0) {
		snprintf(err, errlen, "out of memory for the change bitmap");
		return rc;
	}
	rc = dirtylog_open(path, s->size, s->chunk, img, &s->dirty, &base, &s->log, err, errlen);
	if (rc < 0)
		return rc;
	if (base.known) {
		s->base_known = true;
		memcpy(s->lineage, base.lineage, sizeof(s->lineage));
		log_info("bitmap file %s: %zu of %llu chunks to resynchronise", path,
			 bitmap_count(&s->dirty), (unsigned long long)nchunks(s));
	} else {
		bitmap_zero(&s->dirty);
		log_info("bitmap file %s: no replica base recorded%s%s: the next protection copies "
			 "the whole disk",
			 path, base.why_not[0] ? ", as " : "", base.why_not);
	}
	return 0;
}

void source_report(struct source *s, struct report *r)
{
	static const char *const states[] = {"detached", "resynchronising", "mirroring"};

	pthread_mutex_lock(&s->mu);
	report_str(r, "image", s->path);
	report_gauge(r, "size_bytes", (double)s->size, "the disk's size");
	report_state(r, "state", states, 3, !s->attached ? 0 : s->synced ? 2 : 1,
		     "the disk's replication state (1: the current one)");
	report_str(r, "last_detach", s->last_detach[0] ? s->last_detach : NULL);
	report_bool(r, "base_known", s->base_known,
		    "the replica holds a complete base: the next resync is incremental");
	report_str(r, "bitmap_file", s->log ? dirtylog_path(s->log) : NULL);
	report_gauge(r, "resync_pending_bytes",
		     (double)(s->base_known ? bitmap_count(&s->dirty) * s->chunk : s->size),
		     "what the next resynchronisation copies (chunks marked, or the whole disk)");
	report_begin(r, "resync");
	report_gauge(r, "total_bytes", (double)(s->attached ? s->sync_total : 0),
		     "this attachment's resynchronisation: its size");
	report_gauge(r, "done_bytes", (double)(s->attached ? s->sync_done : 0),
		     "this attachment's resynchronisation: what is sent");
	report_end(r);
	report_gauge(r, "unacknowledged_writes", (double)s->npend,
		     "mirrored writes of epochs the secondary has not committed");
	report_counter(r, "writes", s->writes, "guest writes");
	report_counter(r, "write_bytes", s->write_bytes, "octets the guest wrote");
	report_counter(r, "mirrored_bytes", s->mirrored, "octets mirrored to the secondary");
	report_counter(r, "attaches", s->attaches, "protection sessions attached");
	report_counter(r, "barriers", s->barriers, "epochs closed");
	report_counter(r, "commits", s->commits, "epochs the secondary committed");
	pthread_mutex_unlock(&s->mu);
}

int source_open(const char *image, uint32_t chunk, const char *bitmap_path,
		const uint8_t *lineage, struct source **out, char *err, size_t errlen)
{
	struct source *s = calloc(1, sizeof(*s));
	struct stat sb;
	int rc;

	*out = NULL;
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->img = s->afd = s->ackfd = -1;
	s->chunk = chunk;
	snprintf(s->path, sizeof(s->path), "%s", image);
	pthread_mutex_init(&s->mu, NULL);
	if (chunk < 4096 || (chunk & (chunk - 1))) {
		snprintf(err, errlen, "the chunk size must be a power of two of at least 4 KiB");
		rc = -EINVAL;
		goto fail;
	}
	s->img = open(image, O_RDWR | O_CLOEXEC);
	if (s->img < 0 || fstat(s->img, &sb) < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot open %s: %s", image, strerror(errno));
		goto fail;
	}
	if (S_ISBLK(sb.st_mode)) {
		if (ioctl(s->img, BLKGETSIZE64, &s->size) < 0) {
			rc = -errno;
			snprintf(err, errlen, "%s: cannot read its size: %s", image, strerror(errno));
			goto fail;
		}
	} else if (S_ISREG(sb.st_mode)) {
		s->size = (uint64_t)sb.st_size;
		s->can_punch = true;
	} else {
		rc = -EINVAL;
		snprintf(err, errlen, "%s is neither a file nor a block device", image);
		goto fail;
	}
	if (s->size == 0) {
		rc = -EINVAL;
		snprintf(err, errlen, "%s is empty", image);
		goto fail;
	}
	rc = bitmap_init(&s->dirty, nchunks(s));
	if (rc == 0)
		rc = bitmap_init(&s->snap, nchunks(s));
	if (rc < 0) {
		snprintf(err, errlen, "out of memory for the change bitmap");
		goto fail;
	}
	if (bitmap_path) {
		rc = open_log(s, bitmap_path, &sb, err, errlen);
		if (rc < 0)
			goto fail;
	}
	if (lineage) {
		/* The image is a complete copy of that lineage as it stands (a
		 * replica activated at its last commit): changes are tracked
		 * against it from here. */
		memcpy(s->lineage, lineage, sizeof(s->lineage));
		s->base_known = true;
		log_base(s);
	}
	*out = s;
	return 0;
fail:
	source_close(s);
	return rc;
}

void source_close(struct source *s)
{
	if (!s)
		return;
	dirtylog_close(s->log);
	if (s->img >= 0)
		close(s->img);
	bitmap_destroy(&s->recent);
	bitmap_destroy(&s->cover);
	bitmap_destroy(&s->dirty);
	bitmap_destroy(&s->snap);
	free(s->pend);
	pthread_mutex_destroy(&s->mu);
	free(s);
}
