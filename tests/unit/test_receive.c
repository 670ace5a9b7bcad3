/* Unit tests for secondary/receive.c's connections: the real rx_run on
 * loopback TCP over TLS (a PSK made by scripts/tls-gen.sh), with a scripted
 * restore backend that only counts the incoming domains it is asked for.
 * Clients that connect and stay silent, trickle bytes or send garbage never
 * keep a primary out of the session slot, and one address hammering cuts
 * only its own connections short; a second primary is refused EBUSY; a
 * handshake is cut short at its bound. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "checkpoint/stream.h"
#include "checkpoint/stream_format.h"
#include "common/clock.h"
#include "common/ctl.h"
#include "failover/link.h"
#include "failover/tls.h"
#include "secondary/receive.h"

#define DOWN_MS 1000u
/* receive.c's bound of one handshake for DOWN_MS: TLS, then the headers. */
#define HANDSHAKE_MS (5000u + DOWN_MS)

static char dir[64], psk[96], ctl[96];
static unsigned short port;
static struct fo_tls *srv_tls, *cli_tls;
static struct rx_config cfg;
static char listen_at[32];
static pthread_t rx_th;
static int rx_rc;

/* ---- the scripted restore backend ---- */

static _Atomic int creates;
static _Atomic unsigned create_ms; /* how long creating a domain takes */

static int c_create(const struct hv_info *info, struct hv_copy **out)
{
	static int token;

	(void)info;
	if (atomic_load(&create_ms))
		usleep(atomic_load(&create_ms) * 1000);
	atomic_fetch_add(&creates, 1);
	*out = (struct hv_copy *)&token;
	return 0;
}

static uint8_t *c_page(struct hv_copy *c, uint64_t pfn)
{
	static uint8_t page[4096];

	(void)c;
	(void)pfn;
	return page;
}

static int c_activate(struct hv_copy *c, const struct hv_state *st)
{
	(void)c;
	(void)st;
	return -ENOSYS;
}

static void c_close(struct hv_copy *c)
{
	(void)c;
}

static const struct hv_restore_ops ops = {
	.create = c_create, .page = c_page, .activate = c_activate, .close = c_close};

/* ---- clients ---- */

/* A connection from 127.0.0.FROM. */
static int tcp_connect_from(unsigned from)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct sockaddr_in b = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK - 1 + from)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&b, sizeof(b)), 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

static int tcp_connect(void)
{
	return tcp_connect_from(1);
}

/* A primary: TLS, the stream's headers and the domain's configuration. */
static struct fo_link *primary(const char *name)
{
	struct ckpt_ha_domain_config dc = {.nr_pages = 16, .vcpus = 1};
	struct iovec iov = {&dc, sizeof(dc)};
	struct fo_link *l;
	char err[256];

	snprintf(dc.name, sizeof(dc.name), "%s", name);
	assert_int_equal(fo_link_open(tcp_connect(), DOWN_MS, cli_tls, &l, err, sizeof(err)), 0);
	assert_int_equal(fo_link_headers(l, CKPT_IHDR_ID_XEN, CKPT_DHDR_HAVM, 0, 0), 0);
	assert_int_equal(fo_link_record(l, CKPT_REC_HA_DOMAIN_CONFIG, &iov, 1), 0);
	return l;
}

static bool wait_creates(int n, unsigned ms)
{
	for (uint64_t end = clk_now_ns() + ms * NSEC_PER_MSEC; clk_now_ns() < end;) {
		if (atomic_load(&creates) >= n)
			return true;
		usleep(10000);
	}
	return atomic_load(&creates) >= n;
}

/* Waits until the secondary waits for a primary again (its session slot is
 * free then), as its control socket says. */
static void wait_waiting(void)
{
	for (int i = 0; i < 500; i++) {
		char *buf = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&buf, &len);
		bool waiting;

		assert_non_null(f);
		ctl_request(ctl, "status", f);
		fclose(f);
		waiting = buf && strstr(buf, "state: waiting for a primary");
		free(buf);
		if (waiting)
			return;
		usleep(10000);
	}
	fail_msg("the secondary did not go back to waiting for a primary");
}

/* Whether FD is hung up on (EOF or reset) within MS. */
static bool hung_up_within(int fd, unsigned ms)
{
	for (uint64_t end = clk_now_ns() + ms * NSEC_PER_MSEC; clk_now_ns() < end;) {
		struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
		char b[256];

		if (poll(&p, 1, 20) > 0) {
			ssize_t n = recv(fd, b, sizeof(b), MSG_DONTWAIT);

			if (n == 0 || (n < 0 && errno != EAGAIN))
				return true;
		}
	}
	return false;
}

/* ---- rx_run ---- */

static void *rx_main(void *arg)
{
	(void)arg;
	rx_rc = rx_run(&cfg, &ops);
	return NULL;
}

static int group_setup(void **state)
{
	const char *src = getenv("HA_SRC") ? getenv("HA_SRC") : ".";
	struct fo_tls_config tc = {0};
	char cmd[512], err[256];

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/ha-test-receive.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(psk, sizeof(psk), "%s/psk", dir);
	snprintf(ctl, sizeof(ctl), "%s/rx.sock", dir);
	snprintf(cmd, sizeof(cmd), "sh %s/scripts/tls-gen.sh psk %s pair >/dev/null", src, psk);
	if (system(cmd) != 0)
		return -1;
	tc.psk = psk;
	if (fo_tls_new(&tc, true, &srv_tls, err, sizeof(err)) < 0 ||
	    fo_tls_new(&tc, false, &cli_tls, err, sizeof(err)) < 0) {
		fprintf(stderr, "tls: %s\n", err);
		return -1;
	}
	port = (unsigned short)(20000 + getpid() % 20000);
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%u", port);
	cfg = (struct rx_config){.listen = listen_at, .timeout_ms = DOWN_MS,
				 .max_ckpt_bytes = 1 << 20, .ctl_path = ctl, .tls = srv_tls};
	if (pthread_create(&rx_th, NULL, rx_main, NULL))
		return -1;
	/* Listening once a plain connection is accepted. */
	for (int i = 0; i < 200; i++) {
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
					.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		int rc = connect(fd, (struct sockaddr *)&a, sizeof(a));

		close(fd);
		if (rc == 0)
			return 0;
		usleep(10000);
	}
	return -1;
}

static int group_teardown(void **state)
{
	char cmd[128];

	(void)state;
	rx_request_stop();
	pthread_join(rx_th, NULL);
	fo_tls_free(srv_tls);
	fo_tls_free(cli_tls);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 && rx_rc == 0 ? 0 : -1;
}

/* ---- the tests ---- */

/* More silent clients than the handshakes allowed at once, then a primary:
 * it is served at once, not after the silent ones time out. */
static void test_silent_clients_do_not_hold_the_slot(void **state)
{
	int silent[12];
	int before = atomic_load(&creates);
	uint64_t t0;

	(void)state;
	for (int i = 0; i < 12; i++)
		silent[i] = tcp_connect();
	usleep(200000);
	t0 = clk_now_ns();
	struct fo_link *l = primary("web");
	assert_true(wait_creates(before + 1, HANDSHAKE_MS / 2));
	assert_true(clk_now_ns() - t0 < (uint64_t)HANDSHAKE_MS / 2 * NSEC_PER_MSEC);
	fo_link_free(l);
	wait_waiting();
	for (int i = 0; i < 12; i++)
		close(silent[i]);
}

/* One address hammers with silent connections: only its own are cut
 * short (at most 2 of them wait at once), never another address's. */
static void test_one_address_cuts_only_its_own(void **state)
{
	int silent[20], open_ = 0;
	int before = atomic_load(&creates);

	(void)state;
	for (int i = 0; i < 20; i++)
		silent[i] = tcp_connect_from(2);
	struct fo_link *l = primary("web");
	assert_true(wait_creates(before + 1, HANDSHAKE_MS / 2));
	usleep(300000);
	for (int i = 0; i < 20; i++)
		open_ += !hung_up_within(silent[i], 10);
	printf("silent connections from 127.0.0.2 still open: %d of 20\n", open_);
	assert_true(open_ <= 2);
	fo_link_free(l);
	wait_waiting();
	for (int i = 0; i < 20; i++)
		close(silent[i]);
}

/* A primary holds the slot: a second one is told EBUSY. */
static void test_second_primary_refused_busy(void **state)
{
	_Atomic uint64_t none = UINT64_MAX;
	int before = atomic_load(&creates);
	struct ckpt_record rec;

	(void)state;
	struct fo_link *a = primary("web");
	assert_int_equal(fo_link_heartbeat_start(a, &none), 0);
	assert_true(wait_creates(before + 1, 3000));
	struct fo_link *b = primary("other");
	struct ckpt_reader *r = fo_link_reader(b);

	assert_int_equal(ckpt_reader_headers(r, CKPT_IHDR_ID_BACK), 0);
	assert_int_equal(fo_link_next(b, &rec), 0);
	assert_int_equal(rec.type, CKPT_REC_HA_ERROR);
	assert_int_equal(((const struct ckpt_ha_error_hdr *)rec.body)->code, EBUSY);
	assert_int_equal(atomic_load(&creates), before + 1);
	fo_link_free(b);
	fo_link_free(a);
	wait_waiting();
}

/* A client that trickles a byte every 400 ms (each within the down timer)
 * is cut off at the handshake's bound, and garbage at once; a primary is
 * served meanwhile. */
static void test_trickler_cut_at_the_bound(void **state)
{
	int before = atomic_load(&creates);
	uint64_t t0 = clk_now_ns(), took_ms;
	/* Each from an address of its own: only the bound may cut them. */
	int t = tcp_connect_from(3), g = tcp_connect_from(4);
	/* A TLS record header announcing a 512-octet handshake record. */
	const char hdr[5] = {0x16, 0x03, 0x01, 0x02, 0x00};
	char junk[4096];
	bool cut = false;

	(void)state;
	assert_int_equal(send(t, hdr, sizeof(hdr), MSG_NOSIGNAL), (ssize_t)sizeof(hdr));
	memset(junk, 0x5a, sizeof(junk));
	assert_int_equal(send(g, junk, sizeof(junk), MSG_NOSIGNAL), (ssize_t)sizeof(junk));
	assert_true(hung_up_within(g, 2000));
	struct fo_link *l = primary("web");
	assert_true(wait_creates(before + 1, 3000));
	fo_link_free(l);
	wait_waiting();
	for (unsigned ms = 0; ms < HANDSHAKE_MS + 2000 && !cut; ms += 400) {
		if (send(t, "\x01", 1, MSG_NOSIGNAL) != 1)
			cut = true;
		else
			cut = hung_up_within(t, 400);
	}
	took_ms = (clk_now_ns() - t0) / NSEC_PER_MSEC;
	assert_true(cut);
	assert_true(took_ms >= HANDSHAKE_MS - 500);
	close(t);
	close(g);
}

/* A primary whose down timer is far shorter than the secondary's, and a
 * domain that takes longer than it to create: the primary's timer, sent
 * before the configuration (as ha-protect does), sets the secondary's
 * heartbeats before the creation starts, so the primary hears one within
 * its timer all along. Sent after the configuration, the secondary learns
 * it only once the domain exists: its first heartbeat comes at its own
 * pace, too late (what made a primary with --timeout 150 against one with
 * 3000 degrade while the incoming VM was created). */
static unsigned longest_silence_ms(bool timer_first)
{
	_Atomic uint64_t none = UINT64_MAX;
	struct ckpt_ha_domain_config dc = {.nr_pages = 16, .vcpus = 1};
	struct iovec iov = {&dc, sizeof(dc)};
	struct ckpt_record rec;
	struct fo_link *l;
	char err[256];
	uint64_t last, end, worst = 0;
	int before = atomic_load(&creates);

	snprintf(dc.name, sizeof(dc.name), "web");
	/* The primary's own timer: 200 ms, the secondary's DOWN_MS (1000). */
	assert_int_equal(fo_link_open(tcp_connect(), 200, cli_tls, &l, err, sizeof(err)), 0);
	assert_int_equal(fo_link_headers(l, CKPT_IHDR_ID_XEN, CKPT_DHDR_HAVM, 0, 0), 0);
	if (timer_first)
		assert_int_equal(fo_link_heartbeat_start(l, &none), 0);
	assert_int_equal(fo_link_record(l, CKPT_REC_HA_DOMAIN_CONFIG, &iov, 1), 0);
	if (!timer_first)
		assert_int_equal(fo_link_heartbeat_start(l, &none), 0);
	assert_int_equal(ckpt_reader_headers(fo_link_reader(l), CKPT_IHDR_ID_BACK), 0);
	/* The gaps between the secondary's records, read one at a time. */
	last = clk_now_ns();
	end = last + 1500 * NSEC_PER_MSEC;
	while (clk_now_ns() < end) {
		int rc = ckpt_reader_next(fo_link_reader(l), &rec);

		/* A read fails once nothing came for the link's timer (its
		 * socket's receive timeout): that silence counts too. */
		if (clk_now_ns() - last > worst)
			worst = clk_now_ns() - last;
		if (rc < 0)
			break;
		last = clk_now_ns();
	}
	assert_true(wait_creates(before + 1, 3000));
	fo_link_free(l);
	wait_waiting();
	return (unsigned)(worst / NSEC_PER_MSEC);
}

static void test_slow_create_keeps_the_primary_alive(void **state)
{
	unsigned first, after;

	(void)state;
	atomic_store(&create_ms, 1000);
	first = longest_silence_ms(true);
	after = longest_silence_ms(false);
	atomic_store(&create_ms, 0);
	printf("longest silence during a 1000 ms creation: %u ms with the timer first, %u ms "
	       "with it after the configuration\n",
	       first, after);
	assert_true(first < 200);
	assert_true(after >= 200);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_silent_clients_do_not_hold_the_slot),
		cmocka_unit_test(test_one_address_cuts_only_its_own),
		cmocka_unit_test(test_second_primary_refused_busy),
		cmocka_unit_test(test_trickler_cut_at_the_bound),
		cmocka_unit_test(test_slow_create_keeps_the_primary_alive),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
