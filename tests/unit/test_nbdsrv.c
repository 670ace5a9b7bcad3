/* The NBD server (diskrepl/nbdsrv.c) against a client that speaks the
 * protocol byte for byte over a socketpair: requests that carry nothing
 * reach no backend operation that would mirror them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/io.h"
#include "diskrepl/nbdsrv.h"
#include "nbd/nbd_proto.h"

#define SIZE 65536u

struct calls {
	unsigned write, zero, trim, flush;
	uint32_t last_len;
};

static int b_read(void *ctx, void *buf, uint32_t len, uint64_t off)
{
	memset(buf, 0, len);
	return 0;
}

static int b_write(void *ctx, const void *buf, uint32_t len, uint64_t off, bool fua)
{
	struct calls *c = ctx;

	c->write++;
	c->last_len = len;
	return 0;
}

static int b_zero(void *ctx, uint32_t len, uint64_t off, bool fua)
{
	((struct calls *)ctx)->zero++;
	return 0;
}

static int b_trim(void *ctx, uint32_t len, uint64_t off)
{
	((struct calls *)ctx)->trim++;
	return 0;
}

static int b_flush(void *ctx)
{
	((struct calls *)ctx)->flush++;
	return 0;
}

static const struct nbdsrv_ops ops = {b_read, b_write, b_zero, b_trim, b_flush};

struct server {
	int fd;
	struct nbdsrv_export exp;
	int rc;
	char err[256];
};

static void *serve_main(void *arg)
{
	struct server *s = arg;

	s->rc = nbdsrv_serve(s->fd, &s->exp, s->err, sizeof(s->err));
	return NULL;
}

static void put16(uint8_t **p, uint16_t v)
{
	v = htobe16(v);
	memcpy(*p, &v, 2);
	*p += 2;
}

static void put32(uint8_t **p, uint32_t v)
{
	v = htobe32(v);
	memcpy(*p, &v, 4);
	*p += 4;
}

static void put64(uint8_t **p, uint64_t v)
{
	v = htobe64(v);
	memcpy(*p, &v, 8);
	*p += 8;
}

/* One request; returns the error field of its simple reply. */
static uint32_t request(int fd, uint16_t flags, uint16_t type, uint64_t off, uint32_t len,
			uint64_t cookie)
{
	uint8_t q[28], *p = q, r[16];
	uint32_t err;
	uint64_t ck;

	put32(&p, NBD_REQUEST_MAGIC);
	put16(&p, flags);
	put16(&p, type);
	put64(&p, cookie);
	put64(&p, off);
	put32(&p, len);
	assert_int_equal(io_write_full(fd, q, sizeof(q)), 0);
	assert_int_equal(io_read_full(fd, r, sizeof(r)), (ssize_t)sizeof(r));
	memcpy(&err, r + 4, 4);
	memcpy(&ck, r + 8, 8);
	assert_int_equal(be64toh(ck), cookie);
	return be32toh(err);
}

static void test_empty_requests(void **state)
{
	struct calls c = {0};
	struct server s = {.exp = {.name = "d0", .size = SIZE, .ops = &ops, .ctx = &c}};
	uint8_t greet[18], hs[64], *p = hs, info[10];
	pthread_t th;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	s.fd = sv[0];
	assert_int_equal(pthread_create(&th, NULL, serve_main, &s), 0);
	/* Fixed newstyle, no zeroes; NBD_OPT_EXPORT_NAME "d0". */
	assert_int_equal(io_read_full(sv[1], greet, sizeof(greet)), (ssize_t)sizeof(greet));
	put32(&p, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
	put64(&p, NBD_IHAVEOPT);
	put32(&p, NBD_OPT_EXPORT_NAME);
	put32(&p, 2);
	memcpy(p, "d0", 2);
	p += 2;
	assert_int_equal(io_write_full(sv[1], hs, (size_t)(p - hs)), 0);
	assert_int_equal(io_read_full(sv[1], info, sizeof(info)), (ssize_t)sizeof(info));

	/* A zero-length write succeeds and writes (mirrors) nothing... */
	assert_int_equal(request(sv[1], 0, NBD_CMD_WRITE, 4096, 0, 1), 0);
	assert_int_equal(c.write, 0);
	/* ...with FUA it is a flush... */
	assert_int_equal(request(sv[1], NBD_CMD_FLAG_FUA, NBD_CMD_WRITE, 0, 0, 2), 0);
	assert_int_equal(c.write, 0);
	assert_int_equal(c.flush, 1);
	/* ...as empty trims and zeroes are nothing. */
	assert_int_equal(request(sv[1], 0, NBD_CMD_TRIM, 0, 0, 3), 0);
	assert_int_equal(request(sv[1], 0, NBD_CMD_WRITE_ZEROES, 0, 0, 4), 0);
	assert_int_equal(c.trim + c.zero, 0);
	/* A real write still reaches the backend. */
	uint8_t q[28 + 512], *w = q;

	put32(&w, NBD_REQUEST_MAGIC);
	put16(&w, 0);
	put16(&w, NBD_CMD_WRITE);
	put64(&w, 5);
	put64(&w, 512);
	put32(&w, 512);
	memset(w, 0xab, 512);
	assert_int_equal(io_write_full(sv[1], q, sizeof(q)), 0);
	uint8_t r[16];
	assert_int_equal(io_read_full(sv[1], r, sizeof(r)), (ssize_t)sizeof(r));
	assert_int_equal(c.write, 1);
	assert_int_equal(c.last_len, 512);

	/* NBD_CMD_DISC: a clean end. */
	uint8_t d[28], *dp = d;

	put32(&dp, NBD_REQUEST_MAGIC);
	put16(&dp, 0);
	put16(&dp, NBD_CMD_DISC);
	put64(&dp, 6);
	put64(&dp, 0);
	put32(&dp, 0);
	assert_int_equal(io_write_full(sv[1], d, sizeof(d)), 0);
	pthread_join(th, NULL);
	assert_int_equal(s.rc, 0);
	close(sv[0]);
	close(sv[1]);
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_requests),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
