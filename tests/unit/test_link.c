/* Unit tests for failover/: the link over TLS 1.3 (certificates and PSK,
 * refusals, garbage), the --insecure policy, and the fence command runner.
 * Certificates are made with scripts/tls-gen.sh (openssl CLI) in a
 * temporary directory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint/stream.h"
#include "common/clock.h"
#include "common/io.h"
#include "failover/fence.h"
#include "failover/link.h"
#include "failover/tls.h"
#include "failover/witness.h"

static char dir[64];

static void path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static int group_setup(void **state)
{
	const char *src = getenv("HA_SRC") ? getenv("HA_SRC") : ".";

	snprintf(dir, sizeof(dir), "/tmp/ha-test-link.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	/* ca: the pair's CA; other: a CA the hosts do not trust. */
	if (run("sh %s/scripts/tls-gen.sh ca %s && sh %s/scripts/tls-gen.sh cert %s a && "
		"sh %s/scripts/tls-gen.sh cert %s b && mkdir %s/other && "
		"sh %s/scripts/tls-gen.sh ca %s/other && sh %s/scripts/tls-gen.sh cert %s/other "
		"mallory && sh %s/scripts/tls-gen.sh psk %s/psk pair && "
		"sh %s/scripts/tls-gen.sh psk %s/psk2 pair && "
		"sh %s/scripts/tls-gen.sh psk %s/psk3 stranger",
		src, dir, src, dir, src, dir, dir, src, dir, src, dir, src, dir, src, dir, src,
		dir) != 0) {
		fprintf(stderr, "cannot make certificates with %s/scripts/tls-gen.sh (openssl)\n",
			src);
		return -1;
	}
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static int group_teardown(void **state)
{
	run("rm -rf %s", dir);
	return 0;
}

struct side {
	struct fo_tls_config cfg;
	bool server;
	bool plain; /* no TLS at all */
	int fd;
	int rc; /* of fo_link_open */
	char err[320];
	struct fo_link *link;
	char desc[256];
};

static void *open_side(void *arg)
{
	struct side *s = arg;
	struct fo_tls *t = NULL;

	if (!s->plain) {
		s->rc = fo_tls_new(&s->cfg, s->server, &t, s->err, sizeof(s->err));
		if (s->rc < 0) {
			close(s->fd);
			return NULL;
		}
	}
	s->rc = fo_link_open(s->fd, 2000, t, &s->link, s->err, sizeof(s->err));
	if (s->rc == 0)
		snprintf(s->desc, sizeof(s->desc), "%s", fo_link_security(s->link));
	/* Sessions keep what they need from the credentials only while the
	 * credentials live: keep t until the link is freed. */
	if (s->rc < 0) {
		fo_tls_free(t);
		return NULL;
	}
	return t;
}

/* Opens both ends of a socketpair concurrently. Returns the credentials
 * of each side through *ta / *tb (to be freed after the links). */
static void pair(struct side *a, struct side *b, struct fo_tls **ta, struct fo_tls **tb)
{
	int sv[2];
	pthread_t th;
	void *ret;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	a->fd = sv[0];
	b->fd = sv[1];
	a->server = false;
	b->server = true;
	assert_int_equal(pthread_create(&th, NULL, open_side, b), 0);
	*ta = open_side(a);
	if (a->rc < 0 && b->rc == 0)
		shutdown(sv[0], SHUT_RDWR);
	pthread_join(th, &ret);
	*tb = ret;
}

static void close_pair(struct side *a, struct side *b, struct fo_tls *ta, struct fo_tls *tb)
{
	fo_link_free(a->link);
	fo_link_free(b->link);
	fo_tls_free(ta);
	fo_tls_free(tb);
}

/* Both directions carry stream records through the link. */
static void exchange(struct side *a, struct side *b)
{
	struct ckpt_record rec;
	struct ckpt_ha_ack ack = {.epoch = 7, .flags = CKPT_ACK_MEMORY};
	struct iovec iov = {&ack, sizeof(ack)};
	static uint8_t page[4096 * 8];
	uint64_t pfns[8];
	const void *pages[8];

	for (unsigned i = 0; i < sizeof(page); i++)
		page[i] = (uint8_t)(i * 7 + 3);
	for (unsigned i = 0; i < 8; i++) {
		pfns[i] = i * 3;
		pages[i] = page + 4096 * i;
	}
	assert_int_equal(fo_link_headers(a->link, CKPT_IHDR_ID_XEN, CKPT_DHDR_HAVM, 0, 0), 0);
	assert_int_equal(fo_link_page_data(a->link, pfns, pages, 8), 0);
	assert_int_equal(fo_link_checkpoint(a->link, 0), 0);
	assert_int_equal(fo_link_headers(b->link, CKPT_IHDR_ID_BACK, CKPT_DHDR_HAVM, 0, 0), 0);
	assert_int_equal(fo_link_record(b->link, CKPT_REC_HA_ACK, &iov, 1), 0);

	struct ckpt_reader *rb = fo_link_reader(b->link), *ra = fo_link_reader(a->link);
	assert_int_equal(ckpt_reader_headers(rb, CKPT_IHDR_ID_XEN), 0);
	assert_int_equal(ckpt_reader_next(rb, &rec), 0);
	assert_int_equal(rec.type, CKPT_REC_PAGE_DATA);
	assert_int_equal(rec.pages, 8);
	struct ckpt_pages_view v;
	assert_int_equal(ckpt_pages_view(&rec, &v), 0);
	assert_memory_equal(v.data, page, sizeof(page));
	do
		assert_int_equal(ckpt_reader_next(rb, &rec), 0);
	while (rec.type != CKPT_REC_CHECKPOINT);
	assert_int_equal(rec.epoch, 0);

	assert_int_equal(ckpt_reader_headers(ra, CKPT_IHDR_ID_BACK), 0);
	assert_int_equal(ckpt_reader_next(ra, &rec), 0);
	assert_int_equal(rec.type, CKPT_REC_HA_ACK);
	assert_int_equal(((const struct ckpt_ha_ack *)rec.body)->epoch, 7);
}

static void certs(struct side *s, const char *host)
{
	static char bufs[4][3][160];
	static int n;
	char(*b)[160] = bufs[n++ % 4];

	snprintf(b[0], 160, "%s/%s.pem", dir, host);
	snprintf(b[1], 160, "%s/%s.key", dir, host);
	snprintf(b[2], 160, "%s/ca.pem", dir);
	s->cfg.cert = b[0];
	s->cfg.key = b[1];
	s->cfg.ca = b[2];
}

static void test_cert_handshake(void **state)
{
	struct side a = {0}, b = {0};
	struct fo_tls *ta, *tb;

	certs(&a, "a");
	certs(&b, "b");
	pair(&a, &b, &ta, &tb);
	assert_int_equal(a.rc, 0);
	assert_int_equal(b.rc, 0);
	assert_non_null(strstr(a.desc, "TLS 1.3"));
	assert_non_null(strstr(a.desc, "CN=b"));
	assert_non_null(strstr(b.desc, "CN=a"));
	exchange(&a, &b);
	close_pair(&a, &b, ta, tb);
}

static void test_psk_handshake(void **state)
{
	struct side a = {0}, b = {0};
	struct fo_tls *ta, *tb;
	char psk[128];

	path(psk, sizeof(psk), "psk");
	a.cfg.psk = b.cfg.psk = psk;
	pair(&a, &b, &ta, &tb);
	assert_int_equal(a.rc, 0);
	assert_int_equal(b.rc, 0);
	assert_non_null(strstr(a.desc, "PSK identity 'pair'"));
	exchange(&a, &b);
	close_pair(&a, &b, ta, tb);
}

/* A client whose certificate another CA signed is refused, and so is a
 * server the client's CA did not sign. */
static void test_wrong_ca(void **state)
{
	struct side a = {0}, b = {0};
	struct fo_tls *ta, *tb;
	char cert[160], key[160], ca[160];

	certs(&b, "b");
	certs(&a, "a");
	path(cert, sizeof(cert), "other/mallory.pem");
	path(key, sizeof(key), "other/mallory.key");
	a.cfg.cert = cert;
	a.cfg.key = key;
	pair(&a, &b, &ta, &tb);
	printf("server: %s\n", b.err);
	assert_int_equal(b.rc, -EPROTO);
	assert_non_null(strstr(b.err, "certificate was rejected"));
	assert_null(tb);
	/* The server's confirmation never comes: the client is told why. */
	printf("client: %s\n", a.err);
	assert_int_equal(a.rc, -EPROTO);
	assert_non_null(strstr(a.err, "refused"));
	assert_null(ta);

	/* The client trusts another CA only: it rejects the server. */
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	certs(&a, "a");
	certs(&b, "b");
	path(ca, sizeof(ca), "other/ca.pem");
	a.cfg.ca = ca;
	pair(&a, &b, &ta, &tb);
	printf("client: %s\nserver: %s\n", a.err, b.err);
	assert_int_equal(a.rc, -EPROTO);
	assert_non_null(strstr(a.err, "certificate was rejected"));
	assert_true(b.rc < 0);
	assert_non_null(strstr(b.err, "refused"));
}

/* --tls-peer: a certificate the CA signed, but for another host, is
 * refused on either side; one of the names is enough. */
static void test_tls_peer(void **state)
{
	struct side a = {0}, b = {0};
	struct fo_tls *ta, *tb;
	char psk[128], err[320];

	certs(&a, "a");
	certs(&b, "b");
	a.cfg.peer = "b";
	b.cfg.peer = "w,a";
	pair(&a, &b, &ta, &tb);
	assert_int_equal(a.rc, 0);
	assert_int_equal(b.rc, 0);
	close_pair(&a, &b, ta, tb);

	/* The server expects another primary. */
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	certs(&a, "a");
	certs(&b, "b");
	b.cfg.peer = "c";
	pair(&a, &b, &ta, &tb);
	printf("server: %s\nclient: %s\n", b.err, a.err);
	assert_int_equal(b.rc, -EPROTO);
	assert_non_null(strstr(b.err, "none of the names in --tls-peer (c)"));
	assert_true(a.rc < 0);
	assert_non_null(strstr(a.err, "refused"));
	assert_null(ta);
	assert_null(tb);

	/* The client expects another secondary. */
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	certs(&a, "a");
	certs(&b, "b");
	a.cfg.peer = "a";
	pair(&a, &b, &ta, &tb);
	printf("client: %s\nserver: %s\n", a.err, b.err);
	assert_int_equal(a.rc, -EPROTO);
	assert_non_null(strstr(a.err, "none of the names in --tls-peer (a)"));
	assert_true(b.rc < 0);
	assert_null(ta);
	assert_null(tb);

	/* With a PSK there is no name to check. */
	path(psk, sizeof(psk), "psk");
	struct fo_tls_config pc = {.psk = psk, .peer = "b"};
	assert_int_equal(fo_tls_new(&pc, false, &ta, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "--tls-peer"));
}

static void test_wrong_psk(void **state)
{
	struct side a = {0}, b = {0};
	struct fo_tls *ta, *tb;
	char p1[128], p2[128], p3[128];

	path(p1, sizeof(p1), "psk");
	path(p2, sizeof(p2), "psk2"); /* same identity, another key */
	path(p3, sizeof(p3), "psk3"); /* another identity */
	a.cfg.psk = p2;
	b.cfg.psk = p1;
	pair(&a, &b, &ta, &tb);
	printf("client: %s\nserver: %s\n", a.err, b.err);
	assert_true(a.rc < 0);
	assert_true(b.rc < 0);
	assert_true(strstr(b.err, "pre-shared key") || strstr(b.err, "PSK"));

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.cfg.psk = p3;
	b.cfg.psk = p1;
	pair(&a, &b, &ta, &tb);
	printf("client: %s\nserver: %s\n", a.err, b.err);
	assert_true(a.rc < 0);
	assert_true(b.rc < 0);
}

/* A plain (--insecure) primary against a TLS secondary, and the reverse:
 * both sides fail cleanly and say why. */
static void test_plain_vs_tls(void **state)
{
	struct side a = {0}, b = {0};
	char psk[128];

	pthread_t th;
	void *ret;

	path(psk, sizeof(psk), "psk");
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	b.cfg.psk = psk;
	b.server = true;
	b.fd = sv[1];
	assert_int_equal(pthread_create(&th, NULL, open_side, &b), 0);
	struct fo_link *plain;
	assert_int_equal(fo_link_new(sv[0], 2000, &plain), 0);
	assert_int_equal(fo_link_headers(plain, CKPT_IHDR_ID_XEN, CKPT_DHDR_HAVM, 0, 0), 0);
	pthread_join(th, &ret);
	assert_int_equal(b.rc, -EPROTO);
	assert_non_null(strstr(b.err, "does not speak TLS"));
	/* The plain side sees the connection end, not a valid stream. */
	assert_true(ckpt_reader_headers(fo_link_reader(plain), CKPT_IHDR_ID_BACK) < 0);
	fo_link_free(plain);

	/* A TLS client against a plain server. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	memset(&a, 0, sizeof(a));
	a.cfg.psk = psk;
	a.fd = sv[0];
	assert_int_equal(pthread_create(&th, NULL, open_side, &a), 0);
	assert_int_equal(fo_link_new(sv[1], 2000, &plain), 0);
	/* The plain server reads the ClientHello as a stream header. */
	assert_int_equal(ckpt_reader_headers(fo_link_reader(plain), CKPT_IHDR_ID_XEN), -EBADMSG);
	fo_link_headers(plain, CKPT_IHDR_ID_BACK, CKPT_DHDR_HAVM, 0, 0);
	fo_link_free(plain);
	pthread_join(th, &ret);
	assert_true(a.rc < 0);
	assert_true(strstr(a.err, "TLS") != NULL);
}

/* Down timers that differ: the side with the long one (a primary that
 * waits for a fence) learns the other's from its HA_LINK_TIMER and sends
 * heartbeats often enough for it. Before, it sent them every quarter of
 * its own timer, and the short side's reads timed out between them. */
static void test_peer_timer(void **state)
{
	_Atomic uint64_t committed = 0;
	struct fo_link *lng, *shrt;
	struct ckpt_record rec;
	unsigned beats = 0;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(fo_link_new(sv[0], 4000, &lng), 0);
	assert_int_equal(fo_link_new(sv[1], 400, &shrt), 0);
	assert_int_equal(fo_link_headers(lng, CKPT_IHDR_ID_XEN, CKPT_DHDR_HAVM, 0, 0), 0);
	assert_int_equal(fo_link_headers(shrt, CKPT_IHDR_ID_BACK, CKPT_DHDR_HAVM, 0, 0), 0);
	assert_int_equal(fo_link_heartbeat_start(shrt, &committed), 0);
	assert_int_equal(fo_link_heartbeat_start(lng, &committed), 0);

	/* The long side reads the short one's timer (fo_link_next takes it
	 * and returns the next record: the END below). */
	struct ckpt_reader *rl = fo_link_reader(lng);
	assert_int_equal(ckpt_reader_headers(rl, CKPT_IHDR_ID_BACK), 0);
	assert_int_equal(fo_link_end(shrt), 0);
	assert_int_equal(fo_link_next(lng, &rec), 0);
	assert_int_equal(rec.type, CKPT_REC_END);

	/* The short side hears the long one within its 400 ms for 2 s. */
	struct ckpt_reader *rs = fo_link_reader(shrt);
	assert_int_equal(ckpt_reader_headers(rs, CKPT_IHDR_ID_XEN), 0);
	assert_int_equal(ckpt_reader_next(rs, &rec), 0);
	assert_int_equal(rec.type, CKPT_REC_HA_LINK_TIMER);
	assert_int_equal(((const struct ckpt_ha_link_timer *)rec.body)->down_ms, 4000);
	uint64_t end = clk_now_ns() + 2000 * NSEC_PER_MSEC;
	while (clk_now_ns() < end) {
		assert_int_equal(ckpt_reader_next(rs, &rec), 0);
		assert_int_equal(rec.type, CKPT_REC_HA_HEARTBEAT);
		beats++;
	}
	/* Every 100 ms: about 20 in 2 s (not 2 or 3, every 1000 ms). */
	assert_true(beats >= 10);
	fo_link_free(lng);
	fo_link_free(shrt);
}

/* Garbage instead of a handshake, and forged records after one. */
static void test_garbage(void **state)
{
	struct side a = {0}, b = {0};
	struct fo_tls *ta, *tb;
	char psk[128];
	int sv[2];
	pthread_t th;
	void *ret;
	uint8_t junk[4096];

	srand(1);
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)rand();
	path(psk, sizeof(psk), "psk");

	/* Random octets at the listener. */
	for (int round = 0; round < 3; round++) {
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		memset(&b, 0, sizeof(b));
		b.cfg.psk = psk;
		b.server = true;
		b.fd = sv[1];
		assert_int_equal(pthread_create(&th, NULL, open_side, &b), 0);
		/* Round 1 looks like a TLS handshake record header. */
		if (round == 1)
			memcpy(junk, "\x16\x03\x01\x02\x00", 5);
		if (round == 2)
			memcpy(junk, "\x16\x03\x01\x40\x00\x01", 6);
		io_write_full(sv[0], junk, sizeof(junk));
		shutdown(sv[0], SHUT_WR);
		pthread_join(th, &ret);
		assert_true(b.rc < 0);
		assert_null(b.link);
		close(sv[0]);
	}

	/* A forged application-data record after a good handshake. */
	a.cfg.psk = b.cfg.psk = psk;
	memset(&b, 0, sizeof(b));
	b.cfg.psk = psk;
	pair(&a, &b, &ta, &tb);
	assert_int_equal(a.rc, 0);
	assert_int_equal(b.rc, 0);
	memcpy(junk, "\x17\x03\x03\x01\x00", 5);
	/* Straight onto the socket, around the TLS session. */
	assert_int_equal(io_write_full(a.fd, junk, 5 + 256), 0);
	assert_int_equal(ckpt_reader_headers(fo_link_reader(b.link), CKPT_IHDR_ID_XEN), -EBADMSG);
	close_pair(&a, &b, ta, tb);
}

/* One handshake between two credential sets, over a socketpair. */
struct hs {
	struct fo_tls *t;
	int fd, rc;
	struct fo_tls_session *s;
	char err[320];
};

static void *hs_run(void *arg)
{
	struct hs *h = arg;

	h->rc = fo_tls_handshake(h->t, h->fd, &h->s, h->err, sizeof(h->err));
	if (h->rc < 0)
		shutdown(h->fd, SHUT_RDWR);
	return NULL;
}

static void handshake(struct hs *client, struct hs *server)
{
	int sv[2];
	pthread_t th;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	client->fd = sv[0];
	server->fd = sv[1];
	client->s = server->s = NULL;
	assert_int_equal(pthread_create(&th, NULL, hs_run, server), 0);
	hs_run(client);
	pthread_join(th, NULL);
}

static void hs_close(struct hs *h)
{
	fo_tls_session_free(h->s);
	h->s = NULL;
	close(h->fd);
}

/* A reload reads the same files again: new connections use what they hold
 * now, the open ones go on, and a broken file leaves the credentials in
 * use as they were. */
static void test_reload(void **state)
{
	struct fo_tls_config sc = {0}, cc = {0};
	struct hs c = {0}, srv = {0}, c2 = {0}, srv2 = {0};
	char spsk[160], p1[160], p2[160], err[320];
	uint8_t b = 0, out = 0x2a;

	path(spsk, sizeof(spsk), "reload.psk");
	path(p1, sizeof(p1), "psk");
	path(p2, sizeof(p2), "psk2"); /* the same identity, another key */
	assert_int_equal(run("cp %s %s && chmod 600 %s", p1, spsk, spsk), 0);
	sc.psk = spsk;
	cc.psk = p1;
	assert_int_equal(fo_tls_new(&sc, true, &srv.t, err, sizeof(err)), 0);
	assert_int_equal(fo_tls_new(&cc, false, &c.t, err, sizeof(err)), 0);
	handshake(&c, &srv);
	assert_int_equal(c.rc, 0);
	assert_int_equal(srv.rc, 0);

	/* The key is rotated: the server's file now holds psk2's. */
	assert_int_equal(run("cp %s %s", p2, spsk), 0);
	assert_int_equal(fo_tls_reload(srv.t, err, sizeof(err)), 0);
	/* The session made before goes on, on its own key. */
	assert_int_equal(fo_tls_writev(c.s, &(struct iovec){&out, 1}, 1), 0);
	assert_int_equal(fo_tls_read(srv.s, &b, 1), 1);
	assert_int_equal(b, 0x2a);
	/* A client with the old key is refused now, one with the new one not. */
	srv2.t = srv.t;
	c2.t = c.t;
	handshake(&c2, &srv2);
	assert_true(c2.rc < 0);
	assert_true(srv2.rc < 0);
	hs_close(&c2);
	hs_close(&srv2);
	cc.psk = p2;
	assert_int_equal(fo_tls_new(&cc, false, &c2.t, err, sizeof(err)), 0);
	handshake(&c2, &srv2);
	assert_int_equal(c2.rc, 0);
	assert_int_equal(srv2.rc, 0);
	hs_close(&c2);
	hs_close(&srv2);

	/* A broken file: the reload fails, saying why, and the key stays. */
	assert_int_equal(run("echo garbage > %s", spsk), 0);
	assert_int_equal(fo_tls_reload(srv.t, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "IDENTITY:HEXKEY"));
	handshake(&c2, &srv2);
	assert_int_equal(c2.rc, 0);
	assert_int_equal(srv2.rc, 0);
	hs_close(&c2);
	hs_close(&srv2);
	fo_tls_free(c2.t);

	hs_close(&c);
	hs_close(&srv);
	fo_tls_free(c.t);
	fo_tls_free(srv.t);
}

static void test_policy(void **state)
{
	struct fo_tls_config none = {0}, both = {0}, half = {0}, psk = {0};
	struct fo_tls *t = (struct fo_tls *)1;
	char err[320], p[128], bad[128];
	FILE *f;

	assert_int_equal(fo_tls_setup(&none, false, true, &t, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "--insecure"));
	assert_int_equal(fo_tls_setup(&none, true, true, &t, err, sizeof(err)), 0);
	assert_null(t);
	path(p, sizeof(p), "psk");
	psk.psk = p;
	assert_int_equal(fo_tls_setup(&psk, true, true, &t, err, sizeof(err)), -EINVAL);
	both.psk = p;
	both.ca = p;
	assert_int_equal(fo_tls_setup(&both, false, true, &t, err, sizeof(err)), -EINVAL);
	half.cert = p;
	assert_int_equal(fo_tls_setup(&half, false, true, &t, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "--tls-key"));

	/* PSK files: a short key, no identity, not hex. */
	path(bad, sizeof(bad), "bad.psk");
	const char *cases[] = {"pair:00112233\n", "00112233445566778899aabbccddeeff\n",
			       "pair:zz112233445566778899aabbccddeeff\n"};
	for (unsigned i = 0; i < 3; i++) {
		f = fopen(bad, "w");
		assert_non_null(f);
		fputs(cases[i], f);
		fclose(f);
		chmod(bad, 0600);
		psk.psk = bad;
		assert_int_equal(fo_tls_setup(&psk, false, false, &t, err, sizeof(err)), -EINVAL);
	}
	/* Key files other users may read are refused: a PSK, a private key. */
	path(bad, sizeof(bad), "open.psk");
	assert_int_equal(run("cp %s %s && chmod 640 %s", p, bad, bad), 0);
	psk.psk = bad;
	assert_int_equal(fo_tls_setup(&psk, false, false, &t, err, sizeof(err)), -EACCES);
	assert_non_null(strstr(err, "chmod 600"));
	struct fo_tls_config cert = {0};
	char c[128], k[128], ca[128];

	path(c, sizeof(c), "a.pem");
	path(ca, sizeof(ca), "ca.pem");
	path(k, sizeof(k), "open.key");
	assert_int_equal(run("cp %s/a.key %s && chmod 604 %s", dir, k, k), 0);
	cert = (struct fo_tls_config){.cert = c, .key = k, .ca = ca};
	assert_int_equal(fo_tls_setup(&cert, false, true, &t, err, sizeof(err)), -EACCES);
	assert_non_null(strstr(err, "open.key"));
	assert_int_equal(run("chmod 600 %s", k), 0);
	assert_int_equal(fo_tls_setup(&cert, false, true, &t, err, sizeof(err)), 0);
	fo_tls_free(t);
	psk.psk = "/nonexistent/psk";
	assert_true(fo_tls_setup(&psk, false, false, &t, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "/nonexistent/psk"));
}

static void test_fence(void **state)
{
	struct fo_fence_target t = {.domain = "web", .peer = "10.1.2.3:7000", .epoch = 42};
	char why[200], pidf[128];
	uint64_t t0;
	FILE *f;
	int pid = 0;

	assert_int_equal(fo_fence_run("echo fencing $HA_DOMAIN; test \"$HA_DOMAIN\" = web && "
				      "test \"$HA_PEER\" = 10.1.2.3:7000 && test \"$HA_PEER_HOST\" "
				      "= 10.1.2.3 && test \"$HA_EPOCH\" = 42",
				      5000, &t, why, sizeof(why)),
			 0);
	assert_int_equal(fo_fence_run("echo no >&2; exit 3", 5000, &t, why, sizeof(why)), -EIO);
	assert_non_null(strstr(why, "exited 3"));
	assert_int_equal(fo_fence_run("kill -9 $$", 5000, &t, why, sizeof(why)), -EIO);
	assert_non_null(strstr(why, "signal 9"));

	/* A hung fence is killed at the timeout, with what it started. The
	 * timeout leaves the shell time to start its child and write its pid
	 * on a loaded machine (two emulated labs and a sanitizer build beside
	 * it took more than 300 ms). */
	path(pidf, sizeof(pidf), "fence.pid");
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "sleep 30 & echo $! > %s; wait", pidf);
	t0 = clk_now_ns();
	assert_int_equal(fo_fence_run(cmd, 2000, &t, why, sizeof(why)), -ETIMEDOUT);
	assert_true(clk_now_ns() - t0 < 10 * NSEC_PER_SEC);
	f = fopen(pidf, "r");
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%d", &pid), 1);
	fclose(f);
	/* Gone, or a zombie waiting for init to reap it: SIGKILL went out at
	 * the timeout, and a loaded machine may take a moment to run the
	 * victim's exit, so this waits up to 5 s for it. */
	char st[64], line[256] = "";
	bool dead = false;

	snprintf(st, sizeof(st), "/proc/%d/stat", pid);
	for (int i = 0; i < 500 && !dead; i++) {
		f = fopen(st, "r");
		if (!f) {
			dead = true; /* gone */
			break;
		}
		if (!fgets(line, sizeof(line), f))
			line[0] = '\0';
		fclose(f);
		dead = strstr(line, ") Z ") != NULL;
		if (!dead)
			usleep(10000);
	}
	assert_true(dead);
}

static void test_lease_table(void **state)
{
	struct fo_lease_table *t;
	char r[256];

	assert_int_equal(fo_lease_table_new(1000, 2000, 0, &t), 0);
	/* A (re)started witness grants nothing for one maximum TTL. */
	assert_int_equal(fo_lease_handle(t, "LEASE web primary 1000", 1500, r, sizeof(r)),
			 FO_LEASE_DENIED);
	assert_string_equal(r, "DENIED (witness-restarting) 0 1500\n");
	assert_int_equal(fo_lease_handle(t, "LEASE web primary 1000", 3000, r, sizeof(r)),
			 FO_LEASE_NEW_HOLDER);
	assert_string_equal(r, "GRANTED 1 1000\n");
	assert_int_equal(fo_lease_handle(t, "LEASE web secondary 1000", 3500, r, sizeof(r)),
			 FO_LEASE_DENIED);
	assert_string_equal(r, "DENIED primary 1 500\n");
	assert_int_equal(fo_lease_handle(t, "LEASE web primary 1000", 3600, r, sizeof(r)),
			 FO_LEASE_RENEWED);
	assert_string_equal(r, "GRANTED 1 1000\n");
	assert_int_equal(fo_lease_handle(t, "LEASE web secondary 1000", 4599, r, sizeof(r)),
			 FO_LEASE_DENIED);
	assert_string_equal(r, "DENIED primary 1 1\n");
	/* Another pair is independent. */
	assert_int_equal(fo_lease_handle(t, "LEASE db secondary 1000", 4599, r, sizeof(r)),
			 FO_LEASE_NEW_HOLDER);
	/* Expired: the secondary gets it, with a new generation... */
	assert_int_equal(fo_lease_handle(t, "LEASE web secondary 1000", 4600, r, sizeof(r)),
			 FO_LEASE_NEW_HOLDER);
	assert_string_equal(r, "GRANTED 2 1000\n");
	/* ...and the primary is told who holds it. */
	assert_int_equal(fo_lease_handle(t, "LEASE web primary 1000", 4700, r, sizeof(r)),
			 FO_LEASE_DENIED);
	assert_string_equal(r, "DENIED secondary 2 900\n");
	/* Back to the primary only after expiry, with yet another generation. */
	assert_int_equal(fo_lease_handle(t, "LEASE web primary 1000", 5600, r, sizeof(r)),
			 FO_LEASE_NEW_HOLDER);
	assert_string_equal(r, "GRANTED 3 1000\n");
	/* Malformed requests. */
	const char *bad[] = {"LEASE web primary 5000", "LEASE web primary 10", "LEASE web",
			     "LEASE w/b primary 1000", "LEASE web primary 1000 x", "HELLO", ""};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(fo_lease_handle(t, bad[i], 6000, r, sizeof(r)), FO_LEASE_ERROR);
		assert_memory_equal(r, "ERROR ", 6);
	}
	fo_lease_table_free(t);
}

/* A restarted witness counts its generations from a higher base: a holder
 * it grants after the restart never gets a generation a primary still
 * remembers from before, which that primary would take as its own. */
static void test_lease_restart(void **state)
{
	struct fo_lease_table *t;
	char r[256];

	assert_int_equal(fo_lease_table_new(0, 1000, 0, &t), 0);
	assert_int_equal(fo_lease_handle(t, "LEASE web primary 1000", 1000, r, sizeof(r)),
			 FO_LEASE_NEW_HOLDER);
	assert_int_equal(fo_lease_handle(t, "LEASE web secondary 1000", 2100, r, sizeof(r)),
			 FO_LEASE_NEW_HOLDER);
	assert_string_equal(r, "GRANTED 2 1000\n");
	fo_lease_table_free(t);
	/* The restart: the secondary asks first, then the primary. */
	assert_int_equal(fo_lease_table_new(0, 1000, 1000, &t), 0);
	assert_int_equal(fo_lease_handle(t, "LEASE web secondary 1000", 1000, r, sizeof(r)),
			 FO_LEASE_NEW_HOLDER);
	assert_string_equal(r, "GRANTED 1001 1000\n");
	assert_int_equal(fo_lease_handle(t, "LEASE web primary 1000", 1500, r, sizeof(r)),
			 FO_LEASE_DENIED);
	assert_string_equal(r, "DENIED secondary 1001 500\n");
	assert_int_equal(fo_lease_handle(t, "LEASE web primary 1000", 2000, r, sizeof(r)),
			 FO_LEASE_NEW_HOLDER);
	assert_string_equal(r, "GRANTED 1002 1000\n");
	fo_lease_table_free(t);
}

/* The state file: a restarted witness keeps holders, generations and stale
 * marks. The primary that renews after the quiet time keeps its generation
 * (no "superseded"), a stale copy stays stale, and a new holder's
 * generation is above both runs'. */
static void test_lease_state(void **state)
{
	struct fo_lease_table *t;
	char r[256], err[320], file[160], bad[160];
	FILE *f;

	path(file, sizeof(file), "witness.state");
	assert_int_equal(fo_lease_table_new(0, 1000, 0, &t), 0);
	assert_int_equal(fo_lease_table_load(t, file, err, sizeof(err)), -ENOENT);
	assert_false(fo_lease_table_changed(t));
	assert_int_equal(fo_lease_handle(t, "LEASE web primary 1000 protected 00000000000000aa 1",
					 1000, r, sizeof(r)),
			 FO_LEASE_NEW_HOLDER);
	assert_string_equal(r, "GRANTED 1 1000\n");
	assert_true(fo_lease_table_changed(t));
	assert_int_equal(fo_lease_table_save(t, file, err, sizeof(err)), 0);
	assert_false(fo_lease_table_changed(t));
	/* A plain renewal changes nothing durable. */
	assert_int_equal(fo_lease_handle(t, "LEASE web primary 1000", 1100, r, sizeof(r)),
			 FO_LEASE_RENEWED);
	assert_false(fo_lease_table_changed(t));
	assert_int_equal(fo_lease_handle(t, "LEASE db primary 1000 alone 00000000000000bb 7", 1200,
					 r, sizeof(r)),
			 FO_LEASE_NEW_HOLDER);
	assert_int_equal(fo_lease_table_save(t, file, err, sizeof(err)), 0);
	fo_lease_table_free(t);

	/* The restart (another base), and the quiet time. */
	assert_int_equal(fo_lease_table_new(5000, 1000, 1000, &t), 0);
	assert_int_equal(fo_lease_table_load(t, file, err, sizeof(err)), 0);
	assert_int_equal(fo_lease_handle(t, "LEASE web primary 1000", 5500, r, sizeof(r)),
			 FO_LEASE_DENIED);
	assert_int_equal(fo_lease_handle(t, "LEASE web primary 1000 protected 00000000000000aa 2",
					 6000, r, sizeof(r)),
			 FO_LEASE_RENEWED);
	assert_string_equal(r, "GRANTED 1 1000\n");
	/* db's copy stays stale; web changes holder above both bases. */
	assert_int_equal(fo_lease_handle(t, "LEASE db secondary 1000", 6000, r, sizeof(r)),
			 FO_LEASE_DENIED);
	assert_non_null(strstr(r, " stale"));
	assert_int_equal(fo_lease_handle(t, "LEASE web secondary 1000", 7100, r, sizeof(r)),
			 FO_LEASE_NEW_HOLDER);
	assert_string_equal(r, "GRANTED 1001 1000\n");
	fo_lease_table_free(t);

	/* A damaged file is refused, not half read. */
	path(bad, sizeof(bad), "witness.bad");
	const char *cases[] = {"", "ha-witness-state 1\nweb primary x 0 0 00 1\n",
			       "ha-witness-state 1\nweb primary 1 0 0 00000000000000aa 1 junk\n",
			       "ha-witness-state 1\nw/b primary 1 0 0 00000000000000aa 1\n",
			       "ha-witness-state 1\nweb - 1 2 0 00000000000000aa 1\n",
			       "ha-witness-state 1\nweb - 1 0 0 00000000000000aa 1\n"
			       "web - 2 0 0 00000000000000aa 1\n"};
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		f = fopen(bad, "w");
		assert_non_null(f);
		fputs(cases[i], f);
		fclose(f);
		assert_int_equal(fo_lease_table_new(0, 1000, 0, &t), 0);
		assert_int_equal(fo_lease_table_load(t, bad, err, sizeof(err)), -EBADMSG);
		fo_lease_table_free(t);
	}
	/* A save that cannot be made durable fails, and says where. */
	assert_int_equal(fo_lease_table_new(0, 1000, 0, &t), 0);
	assert_int_equal(fo_lease_table_save(t, "/nonexistent/dir/state", err, sizeof(err)),
			 -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/dir/state"));
	fo_lease_table_free(t);
}

/* A primary that runs without its secondary claims "alone" first: from then
 * on the secondary's copy is stale and the secondary never gets the lease,
 * not even after the primary's expired, until a session's first ACK is
 * claimed ("protected"). Claims are ordered per run by seq. */
static void test_lease_claims(void **state)
{
	struct fo_lease_table *t;
	char r[256];

	assert_int_equal(fo_lease_table_new(0, 1000, 0, &t), 0);
	assert_int_equal(
	    fo_lease_handle(t, "LEASE web primary 1000 protected 00000000000000aa 1", 1000, r,
			    sizeof(r)),
	    FO_LEASE_NEW_HOLDER);
	assert_int_equal(fo_lease_handle(t, "LEASE web primary 1000 alone 00000000000000aa 3",
					 1100, r, sizeof(r)),
			 FO_LEASE_RENEWED);
	assert_string_equal(r, "GRANTED 1 1000\n");
	/* While the lease runs, and after it expired: denied as stale. */
	assert_int_equal(fo_lease_handle(t, "LEASE web secondary 1000", 1500, r, sizeof(r)),
			 FO_LEASE_DENIED);
	assert_string_equal(r, "DENIED primary 1 600 stale\n");
	assert_int_equal(fo_lease_handle(t, "LEASE web secondary 1000", 9000, r, sizeof(r)),
			 FO_LEASE_DENIED);
	assert_string_equal(r, "DENIED primary 1 0 stale\n");
	/* An older "protected" of the same run, delayed, changes nothing. */
	assert_int_equal(
	    fo_lease_handle(t, "LEASE web primary 1000 protected 00000000000000aa 2", 9100, r,
			    sizeof(r)),
	    FO_LEASE_RENEWED);
	assert_int_equal(fo_lease_handle(t, "LEASE web secondary 1000", 9200, r, sizeof(r)),
			 FO_LEASE_DENIED);
	assert_string_equal(r, "DENIED primary 1 900 stale\n");
	/* A claim in a request that is denied does not count. */
	assert_int_equal(
	    fo_lease_handle(t, "LEASE web backup 1000 protected 00000000000000bb 9", 9300, r,
			    sizeof(r)),
	    FO_LEASE_DENIED);
	assert_int_equal(fo_lease_handle(t, "LEASE web secondary 1000", 10200, r, sizeof(r)),
			 FO_LEASE_DENIED);
	assert_string_equal(r, "DENIED primary 1 0 stale\n");
	/* The next session's first ACK: the copy is current again. */
	assert_int_equal(
	    fo_lease_handle(t, "LEASE web primary 1000 protected 00000000000000aa 4", 10300, r,
			    sizeof(r)),
	    FO_LEASE_RENEWED);
	assert_int_equal(fo_lease_handle(t, "LEASE web secondary 1000", 10400, r, sizeof(r)),
			 FO_LEASE_DENIED);
	assert_string_equal(r, "DENIED primary 1 900\n");
	assert_int_equal(fo_lease_handle(t, "LEASE web secondary 1000", 11300, r, sizeof(r)),
			 FO_LEASE_NEW_HOLDER);
	/* A new run's claim replaces an old run's, whatever its seq. */
	assert_int_equal(fo_lease_handle(t, "LEASE db primary 1000 alone 00000000000000aa 50",
					 11300, r, sizeof(r)),
			 FO_LEASE_NEW_HOLDER);
	assert_int_equal(
	    fo_lease_handle(t, "LEASE db primary 1000 protected 00000000000000cc 1", 11400, r,
			    sizeof(r)),
	    FO_LEASE_RENEWED);
	assert_int_equal(fo_lease_handle(t, "LEASE db secondary 1000", 12500, r, sizeof(r)),
			 FO_LEASE_NEW_HOLDER);
	/* Malformed claims. */
	const char *bad[] = {"LEASE web primary 1000 alone", "LEASE web primary 1000 alone aa 1",
			     "LEASE web primary 1000 gone 00000000000000aa 1",
			     "LEASE web primary 1000 alone 00000000000000aa 1 x",
			     "LEASE web primary 1000 alone 00000000000000AA 1"};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(fo_lease_handle(t, bad[i], 13000, r, sizeof(r)), FO_LEASE_ERROR);
		assert_memory_equal(r, "ERROR ", 6);
	}
	fo_lease_table_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cert_handshake),
		cmocka_unit_test(test_psk_handshake),
		cmocka_unit_test(test_wrong_ca),
		cmocka_unit_test(test_wrong_psk),
		cmocka_unit_test(test_tls_peer),
		cmocka_unit_test(test_plain_vs_tls),
		cmocka_unit_test(test_peer_timer),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_policy),
		cmocka_unit_test(test_reload),
		cmocka_unit_test(test_fence),
		cmocka_unit_test(test_lease_table),
		cmocka_unit_test(test_lease_restart),
		cmocka_unit_test(test_lease_state),
		cmocka_unit_test(test_lease_claims),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
