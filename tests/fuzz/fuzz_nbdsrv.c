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
 * reads and writes within the request limit; it returns 0 or -errno, with
 * a message whenever it fails; and ASan/UBSan. When the harness shook
 * hands, also what the client receives: the handshake's replies octet for
 * octet, then exactly one simple reply per request it sent before the
 * session ended (DISC, a request the server cannot frame, the end of the
 * input), in order, with its cookie, an error exactly when the request is
 * invalid or the backend failed it, and data only after a good READ.
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
	fprintf(stderr, "fuzz_nbdsrv: %s (%llu, %llu)\n", what,
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
	if (!len) /* an empty write is the server's to answer, not the backend's */
		bug("backend called for an empty write", off, len);
	if (d->fail_write)
		return -ENOSPC;
	if (off < BACKED)
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

/* ---- what the client must receive ---------------------------------- */

#define MAX_EXPECT 65536

struct expect {
	uint64_t cookie; /* as sent */
	uint32_t data;   /* octets after the header (a good READ) */
	bool ok;
};

struct checker {
	bool on;
	uint8_t hs[128]; /* the handshake's replies */
	size_t hslen, hspos;
	struct expect *exp;
	size_t nexp, i;     /* replies expected, current one */
	uint8_t hdr[16];
	size_t hdrpos;
	uint64_t skip;      /* data octets left of the current reply */
};

static void put(uint8_t **p, const void *v, size_t n)
{
	memcpy(*p, v, n);
	*p += n;
}

/* The replies to OPT_GO for "" asking no information: the export, then
 * its block sizes, then ACK (nbdsrv.h: simple replies only). */
static void expect_handshake(struct checker *c, const struct disk *d, bool multi)
{
	uint16_t tx = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
		      NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES |
		      (multi ? NBD_FLAG_CAN_MULTI_CONN : 0);
	uint8_t *p = c->hs;
	uint64_t v64;
	uint32_t v32;
	uint16_t v16;

	v64 = htobe64(NBD_MAGIC), put(&p, &v64, 8);
	v64 = htobe64(NBD_IHAVEOPT), put(&p, &v64, 8);
	v16 = htobe16(NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES), put(&p, &v16, 2);
	for (int r = 0; r < 3; r++) {
		static const uint32_t types[3] = {NBD_REP_INFO, NBD_REP_INFO, NBD_REP_ACK};
		static const uint32_t lens[3] = {12, 14, 0};

		v64 = htobe64(NBD_REP_MAGIC), put(&p, &v64, 8);
		v32 = htobe32(NBD_OPT_GO), put(&p, &v32, 4);
		v32 = htobe32(types[r]), put(&p, &v32, 4);
		v32 = htobe32(lens[r]), put(&p, &v32, 4);
		if (r == 0) {
			v16 = htobe16(NBD_INFO_EXPORT), put(&p, &v16, 2);
			v64 = htobe64(d->size), put(&p, &v64, 8);
			v16 = htobe16(tx), put(&p, &v16, 2);
		} else if (r == 1) {
			v16 = htobe16(NBD_INFO_BLOCK_SIZE), put(&p, &v16, 2);
			v32 = htobe32(1), put(&p, &v32, 4);
			v32 = htobe32(4096), put(&p, &v32, 4);
			v32 = htobe32(NBDSRV_MAX_REQUEST), put(&p, &v32, 4);
		}
	}
	c->hslen = (size_t)(p - c->hs);
}

/* Works out, from the requests in the input, the reply to each one. */
static void expect_replies(struct checker *c, const struct disk *d, const uint8_t *in,
			   size_t len)
{
	size_t pos = 0;

	c->nexp = 0;
	while (len - pos >= sizeof(struct nbd_request) && c->nexp < MAX_EXPECT) {
		struct nbd_request q;
		struct expect *e = &c->exp[c->nexp];
		uint16_t type, flags;
		uint64_t off;
		uint32_t n;
		bool flags_ok, in_range, ok;

		memcpy(&q, in + pos, sizeof(q));
		pos += sizeof(q);
		type = be16toh(q.type);
		flags = be16toh(q.flags);
		off = be64toh(q.offset);
		n = be32toh(q.length);
		if (be32toh(q.magic) != NBD_REQUEST_MAGIC || type == NBD_CMD_DISC)
			break; /* no reply: the session ends */
		if ((type == NBD_CMD_READ || type == NBD_CMD_WRITE) && n > NBDSRV_MAX_REQUEST)
			break;
		if (type == NBD_CMD_WRITE) {
			if (len - pos < n)
				break;
			pos += n;
		}
		flags_ok = !(flags & ~(NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE)) &&
			   (!(flags & NBD_CMD_FLAG_NO_HOLE) || type == NBD_CMD_WRITE_ZEROES);
		in_range = off <= d->size && n <= d->size - off;
		switch (type) {
		case NBD_CMD_READ:
			ok = in_range && !d->fail_read;
			break;
		case NBD_CMD_WRITE: /* an empty write does nothing; FUA flushes */
			ok = in_range && !(n ? d->fail_write
					     : d->fail_other && (flags & NBD_CMD_FLAG_FUA));
			break;
		case NBD_CMD_FLUSH: /* offset and length mean nothing */
			ok = !d->fail_other;
			break;
		case NBD_CMD_TRIM: /* an empty trim does nothing; FUA flushes */
			ok = in_range && !(d->fail_other && (n || (flags & NBD_CMD_FLAG_FUA)));
			break;
		case NBD_CMD_WRITE_ZEROES:
			ok = in_range && !(d->fail_other && n);
			break;
		case NBD_CMD_CACHE:
			ok = in_range;
			break;
		default:
			ok = false;
			break;
		}
		e->ok = ok && flags_ok;
		e->cookie = q.cookie;
		e->data = e->ok && type == NBD_CMD_READ ? n : 0;
		c->nexp++;
	}
	if (c->nexp == MAX_EXPECT)
		c->on = false; /* too many to follow: check the handshake only */
}

static void check_octets(struct checker *c, const uint8_t *p, size_t n)
{
	while (n) {
		if (c->hspos < c->hslen) {
			size_t k = c->hslen - c->hspos < n ? c->hslen - c->hspos : n;

			if (memcmp(p, c->hs + c->hspos, k))
				bug("the handshake's replies differ from the protocol's", c->hspos, k);
			c->hspos += k;
			p += k;
			n -= k;
			continue;
		}
		if (!c->on)
			return;
		if (c->skip) {
			size_t k = c->skip < n ? (size_t)c->skip : n;

			c->skip -= k;
			p += k;
			n -= k;
			continue;
		}
		if (c->i == c->nexp)
			bug("a reply to no request", c->i, n);
		while (n && c->hdrpos < sizeof(c->hdr)) {
			c->hdr[c->hdrpos++] = *p++;
			n--;
		}
		if (c->hdrpos == sizeof(c->hdr)) {
			struct nbd_simple_reply r;
			const struct expect *e = &c->exp[c->i];

			memcpy(&r, c->hdr, sizeof(r));
			if (be32toh(r.magic) != NBD_SIMPLE_REPLY_MAGIC)
				bug("a reply without the simple reply magic", c->i, 0);
			if (r.cookie != e->cookie)
				bug("a reply out of order (cookie)", c->i, 0);
			if ((r.error == 0) != e->ok)
				bug(e->ok ? "an error for a good request" : "success for a bad request",
				    c->i, be32toh(r.error));
			c->skip = e->data;
			c->hdrpos = 0;
			c->i++;
		}
	}
}

static void check_end(const struct checker *c)
{
	if (c->hspos != c->hslen)
		bug("the handshake's replies were cut short", c->hspos, c->hslen);
	if (!c->on)
		return;
	if (c->hdrpos || c->skip)
		bug("a reply was cut short", c->i, c->skip);
	if (c->i != c->nexp)
		bug("requests went unanswered", c->i, c->nexp);
}

/* ---- feeding the server --------------------------------------------- */

struct feeder {
	int fd;
	const uint8_t *pre, *p;
	size_t prelen, len;
	struct checker *chk;
};

/* Writes the handshake prefix and the input, then drains replies to EOF. */
static void feed(struct feeder *f)
{
	static uint8_t sink[65536];
	bool wr = true;

	for (;;) {
		struct pollfd p = {.fd = f->fd, .events = POLLIN | (wr ? POLLOUT : 0)};

		if (poll(&p, 1, -1) < 0) {
			if (errno == EINTR) /* libFuzzer's timer signal */
				continue;
			break;
		}
		if (p.revents & POLLIN) {
			ssize_t n = read(f->fd, sink, sizeof(sink));

			if (n <= 0)
				break;
			check_octets(f->chk, sink, (size_t)n);
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
	static struct checker chk;
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
		chk.exp = malloc(MAX_EXPECT * sizeof(*chk.exp));
		if (!d.mem || !chk.exp)
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
	chk.on = data[0] & 1;
	chk.hslen = chk.hspos = chk.i = chk.hdrpos = 0;
	chk.skip = 0;
	if (chk.on) {
		expect_handshake(&chk, &d, exp.multi_conn);
		expect_replies(&chk, &d, data + 1, size - 1);
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	f = (struct feeder){.fd = sv[1], .pre = hs, .prelen = data[0] & 1 ? sizeof(hs) : 0,
			    .p = data + 1, .len = size - 1, .chk = &chk};
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
	check_end(&chk);
	close(sv[0]);
	close(sv[1]);
	if (rc > 0)
		bug("nbdsrv_serve returned a positive value", 0, (uint64_t)rc);
	if (rc < 0 && !err[0])
		bug("nbdsrv_serve failed without saying why", 0, (uint64_t)-rc);
	return 0;
}
