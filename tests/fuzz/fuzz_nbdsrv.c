/* libFuzzer harness: the NBD server (diskrepl/nbdsrv.c), handshake and
 * transmission phase, serving an in-memory disk to a "client" whose octets
 * are the fuzzer's input, over a socketpair. A helper thread feeds the
 * input and drains the replies so that neither side can block the other.
 *
 * The first octet configures the run:
 *   bit 0    the harness sends a valid fixed-newstyle handshake (OPT_GO)
 *            first, so the input starts in the transmission phase
 *   bits 1-2 the disk's size: 64 KiB, 0, 4097 octets, 2^63 - 1 (virtual:
 *            only its first 64 KiB is backed)
 *   bits 3-5 backend calls that fail (read, write, flush/zero/trim)
 *
 * Checked: the server calls the backend only for ranges inside the disk,
 * reads and writes within the request limit; it returns 0 or -errno, with a message
 * whenever it fails; and ASan/UBSan.
 */
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "diskrepl/nbdsrv.h"
#include "nbd/nbd_proto.h"

#define BACKED 65536u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct disk {
	uint64_t size;
	uint8_t *mem; /* BACKED octets, exactly: ASan catches any overrun */
	bool fail_read, fail_write, fail_other;
};

_Noreturn static void bug(const char *what, uint64_t off, uint64_t len)
{
	fprintf(stderr, "fuzz_nbdsrv: %s (offset %llu, length %llu)\n", what,
		(unsigned long long)off, (unsigned long long)len);
	abort();
}

/* Reads and writes carry data, so their length is bounded; a trim or a
 * zeroing may cover any range of the disk. */
static void check(const struct disk *d, uint64_t len, uint64_t off, bool data)
{
	if (off > d->size || len > d->size - off)
		bug("backend called outside the disk", off, len);
	if (data && len > NBDSRV_MAX_REQUEST)
		bug("backend called beyond the request limit", off, len);
}

/* Octets past the backed part read as 0xa5 and ignore writes. */
static int d_read(void *ctx, void *buf, uint32_t len, uint64_t off)
{
	struct disk *d = ctx;

	check(d, len, off, true);
	if (d->fail_read)
		return -EIO;
	if (!len) /* buf may be NULL for an empty read */
		return 0;
	memset(buf, 0xa5, len);
	if (off < BACKED)
		memcpy(buf, d->mem + off, off + len > BACKED ? BACKED - off : len);
	return 0;
}

static int d_write(void *ctx, const void *buf, uint32_t len, uint64_t off, bool fua)
{
	struct disk *d = ctx;

	check(d, len, off, true);
	if (d->fail_write)
		return -ENOSPC;
	if (len && off < BACKED) /* buf may be NULL for an empty write */
		memcpy(d->mem + off, buf, off + len > BACKED ? BACKED - off : len);
	return 0;
}

static int d_zero(void *ctx, uint32_t len, uint64_t off, bool fua)
{
	struct disk *d = ctx;

	check(d, len, off, false);
	if (d->fail_other)
		return -EIO;
	if (off < BACKED)
		memset(d->mem + off, 0, off + len > BACKED ? BACKED - off : len);
	return 0;
}

static int d_trim(void *ctx, uint32_t len, uint64_t off)
{
	struct disk *d = ctx;

	check(d, len, off, false);
	return d->fail_other ? -EOPNOTSUPP : 0;
}

static int d_flush(void *ctx)
{
	struct disk *d = ctx;

	return d->fail_other ? -EIO : 0;
}

static const struct nbdsrv_ops ops = {
	.read = d_read,
	.write = d_write,
	.zero = d_zero,
	.trim = d_trim,
	.flush = d_flush,
};

struct feeder {
	int fd;
	const uint8_t *pre, *p;
	size_t prelen, len;
};

/* Writes the handshake prefix and the input, then drains replies to EOF. */
static void feed(struct feeder *f)
{
	static uint8_t sink[65536];
	bool wr = true;

	for (;;) {
		struct pollfd p = {.fd = f->fd, .events = POLLIN | (wr ? POLLOUT : 0)};

		if (poll(&p, 1, -1) < 0)
			break;
		if (p.revents & POLLIN) {
			ssize_t n = read(f->fd, sink, sizeof(sink));

			if (n <= 0)
				break;
		}
		if (wr && (p.revents & (POLLOUT | POLLERR | POLLHUP))) {
			const uint8_t *src = f->prelen ? f->pre : f->p;
			size_t left = f->prelen ? f->prelen : f->len;
			ssize_t n = left ? send(f->fd, src, left, MSG_NOSIGNAL | MSG_DONTWAIT) : 0;

			if (n < 0 && errno != EAGAIN) {
				wr = false;
			} else if (n > 0 && f->prelen) {
				f->pre += n;
				f->prelen -= (size_t)n;
			} else if (n > 0) {
				f->p += n;
				f->len -= (size_t)n;
			}
			if (wr && !f->prelen && !f->len) {
				shutdown(f->fd, SHUT_WR);
				wr = false;
			}
		}
	}
}

/* One feeder thread for the whole run (a thread per input costs more than
 * the input under ASan): it takes a job, feeds it, reports it done. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct feeder *job;
static bool job_done;

static void *feeder_main(void *arg)
{
	(void)arg;
	for (;;) {
		struct feeder *f;

		pthread_mutex_lock(&mu);
		while (!job)
			pthread_cond_wait(&cv, &mu);
		f = job;
		pthread_mutex_unlock(&mu);
		feed(f);
		pthread_mutex_lock(&mu);
		job = NULL;
		job_done = true;
		pthread_cond_broadcast(&cv);
		pthread_mutex_unlock(&mu);
	}
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t sizes[4] = {BACKED, 0, 4097, INT64_MAX};
	static struct disk d;
	static uint8_t hs[4 + 16 + 6];
	struct nbdsrv_export exp = {.name = "disk0", .ops = &ops, .ctx = &d};
	struct feeder f;
	static pthread_t th;
	char err[256];
	int sv[2], rc;

	if (!d.mem) {
		struct nbd_option o = {htobe64(NBD_IHAVEOPT), htobe32(NBD_OPT_GO), htobe32(6)};
		uint32_t cflags = htobe32(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);

		log_set_level(LOG_LVL_ERROR);
		signal(SIGPIPE, SIG_IGN);
		d.mem = malloc(BACKED);
		if (!d.mem)
			abort();
		/* Flags, then OPT_GO for the default export ("") asking nothing. */
		memcpy(hs, &cflags, 4);
		memcpy(hs + 4, &o, sizeof(o));
		memset(hs + 20, 0, 6);
		if (pthread_create(&th, NULL, feeder_main, NULL))
			abort();
	}
	if (size < 1 || size > 1 << 20)
		return 0;
	memset(d.mem, 0, BACKED);
	d.size = sizes[(data[0] >> 1) & 3];
	d.fail_read = data[0] & 0x08;
	d.fail_write = data[0] & 0x10;
	d.fail_other = data[0] & 0x20;
	exp.size = d.size;
	exp.multi_conn = data[0] & 0x40;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	f = (struct feeder){.fd = sv[1], .pre = hs, .prelen = data[0] & 1 ? sizeof(hs) : 0,
			    .p = data + 1, .len = size - 1};
	/* Most inputs fit in the socket's buffer at once: then the server never
	 * waits for the feeder to be scheduled. */
	for (int i = 0; i < 2; i++) {
		const uint8_t **src = i ? &f.p : &f.pre;
		size_t *left = i ? &f.len : &f.prelen;
		ssize_t n = *left ? send(sv[1], *src, *left, MSG_NOSIGNAL | MSG_DONTWAIT) : 0;

		if (n > 0) {
			*src += n;
			*left -= (size_t)n;
		}
		if (*left)
			break;
	}
	pthread_mutex_lock(&mu);
	job = &f;
	job_done = false;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	rc = nbdsrv_serve(sv[0], &exp, err, sizeof(err));
	/* Hanging up ends the feeder's job whatever it was doing. */
	shutdown(sv[0], SHUT_RDWR);
	pthread_mutex_lock(&mu);
	while (!job_done)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	close(sv[0]);
	close(sv[1]);
	if (rc > 0)
		bug("nbdsrv_serve returned a positive value", 0, (uint64_t)rc);
	if (rc < 0 && !err[0])
		bug("nbdsrv_serve failed without saying why", 0, (uint64_t)-rc);
	return 0;
}
