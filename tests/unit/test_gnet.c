/* The guests' network stack and services, on the host: hand-built frames
 * against an independent checksum, and every malformed class dropped. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "vmm/guest/gnet.h"
#include "vmm/guest/svc.h"

static const uint8_t MY_MAC[6] = {0x52, 0x54, 0x00, 0xaa, 0x00, 0x01};
static const uint8_t PEER_MAC[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x07};
#define MY_IP 0x0a420064u   /* 10.66.0.100 */
#define PEER_IP 0x0a420003u /* 10.66.0.3 */

static uint8_t sent[4][2048];
static size_t sent_len[4];
static int nsent;
static char got[512];
static size_t got_len;
static uint32_t got_src;
static uint16_t got_sport;

static void tx(void *ctx, const void *f, size_t len)
{
	assert_true(nsent < 4 && len <= sizeof(sent[0]));
	memcpy(sent[nsent], f, len);
	sent_len[nsent++] = len;
}

static void on_udp(void *ctx, struct gnet *n, uint32_t src, uint16_t sport, uint16_t dport,
		   const void *data, size_t len)
{
	memcpy(got, data, len);
	got_len = len;
	got_src = src;
	got_sport = sport;
}

/* RFC 1071, written independently of the stack's own code. */
static uint16_t ref_csum(const uint8_t *p, size_t len, uint32_t sum)
{
	for (size_t i = 0; i < len; i++)
		sum += (i & 1) ? p[i] : (uint32_t)p[i] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static size_t eth(uint8_t *f, const uint8_t *dst, uint16_t type)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, PEER_MAC, 6);
	f[12] = (uint8_t)(type >> 8);
	f[13] = (uint8_t)type;
	return 14;
}

static size_t ipv4(uint8_t *ip, uint8_t proto, size_t payload, uint32_t dst)
{
	memset(ip, 0, 20);
	ip[0] = 0x45;
	ip[2] = (uint8_t)((20 + payload) >> 8);
	ip[3] = (uint8_t)(20 + payload);
	ip[8] = 64;
	ip[9] = proto;
	uint32_t s = htonl(PEER_IP), d = htonl(dst);
	memcpy(ip + 12, &s, 4);
	memcpy(ip + 16, &d, 4);
	uint16_t c = htons(ref_csum(ip, 20, 0));
	memcpy(ip + 10, &c, 2);
	return 20;
}

/* A UDP datagram from the peer to us; checksum optional. */
static size_t udp_frame(uint8_t *f, uint16_t dport, const char *data, bool with_csum)
{
	size_t n = eth(f, MY_MAC, 0x0800), len = strlen(data);
	uint8_t *ip = f + n, *u = ip + 20;

	ipv4(ip, 17, 8 + len, MY_IP);
	u[0] = 0x9c;
	u[1] = 0x40; /* 40000 */
	u[2] = (uint8_t)(dport >> 8);
	u[3] = (uint8_t)dport;
	u[4] = 0;
	u[5] = (uint8_t)(8 + len);
	u[6] = u[7] = 0;
	memcpy(u + 8, data, len);
	if (with_csum) {
		uint8_t ph[12];
		uint32_t s = htonl(PEER_IP), d = htonl(MY_IP);
		memcpy(ph, &s, 4);
		memcpy(ph + 4, &d, 4);
		ph[8] = 0;
		ph[9] = 17;
		ph[10] = 0;
		ph[11] = (uint8_t)(8 + len);
		uint32_t sum = 0;
		for (int i = 0; i < 12; i += 2)
			sum += (uint32_t)ph[i] << 8 | ph[i + 1];
		uint16_t c = htons(ref_csum(u, 8 + len, sum));
		memcpy(u + 6, &c, 2);
	}
	return n + 20 + 8 + len;
}

static struct gnet net;

static int setup(void **state)
{
	nsent = 0;
	got_len = 0;
	gnet_init(&net, MY_MAC, MY_IP, 0xffffff00u, 0, tx, NULL);
	assert_int_equal(gnet_udp_bind(&net, 7000, on_udp, NULL), 0);
	return 0;
}

static void test_arp_request_reply(void **state)
{
	static const uint8_t bc[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	uint8_t f[60] = {0};
	size_t n = eth(f, bc, 0x0806);
	uint8_t *a = f + n;
	uint32_t spa = htonl(PEER_IP), tpa = htonl(MY_IP);

	a[1] = 1;
	a[2] = 0x08;
	a[4] = 6;
	a[5] = 4;
	a[7] = 1; /* request */
	memcpy(a + 8, PEER_MAC, 6);
	memcpy(a + 14, &spa, 4);
	memcpy(a + 24, &tpa, 4);
	gnet_input(&net, f, 60);
	assert_int_equal(nsent, 1);
	assert_int_equal(sent_len[0], 60);
	assert_memory_equal(sent[0], PEER_MAC, 6);
	assert_memory_equal(sent[0] + 6, MY_MAC, 6);
	assert_int_equal(sent[0][14 + 7], 2); /* reply */
	assert_memory_equal(sent[0] + 14 + 8, MY_MAC, 6);
	assert_memory_equal(sent[0] + 14 + 14, &tpa, 4);
	assert_memory_equal(sent[0] + 14 + 18, PEER_MAC, 6);
	assert_memory_equal(sent[0] + 14 + 24, &spa, 4);
	/* A request for someone else: learned from, not answered. */
	tpa = htonl(MY_IP + 1);
	memcpy(a + 24, &tpa, 4);
	gnet_input(&net, f, 60);
	assert_int_equal(nsent, 1);
}

static void test_icmp_echo(void **state)
{
	uint8_t f[128];
	size_t n = eth(f, MY_MAC, 0x0800);
	uint8_t *ip = f + n, *icmp = ip + 20;

	ipv4(ip, 1, 8 + 16, MY_IP);
	memset(icmp, 0, 24);
	icmp[0] = 8;
	icmp[5] = 7; /* id */
	icmp[7] = 1; /* seq */
	memcpy(icmp + 8, "payload-16-bytes", 16);
	uint16_t c = htons(ref_csum(icmp, 24, 0));
	memcpy(icmp + 2, &c, 2);
	gnet_input(&net, f, n + 20 + 24);
	assert_int_equal(nsent, 1);
	uint8_t *rip = sent[0] + 14, *ricmp = rip + 20;
	assert_int_equal(ricmp[0], 0);
	assert_memory_equal(ricmp + 4, icmp + 4, 20);
	assert_int_equal(ref_csum(ricmp, 24, 0), 0);
	assert_int_equal(ref_csum(rip, 20, 0), 0);
	assert_memory_equal(rip + 16, ip + 12, 4); /* back to the sender */
	/* A corrupted echo is dropped. */
	icmp[9] ^= 1;
	uint64_t drops = net.stats.rx_dropped;
	gnet_input(&net, f, n + 20 + 24);
	assert_int_equal(nsent, 1);
	assert_int_equal(net.stats.rx_dropped, drops + 1);
}

static void test_udp_delivery_and_reply(void **state)
{
	uint8_t f[256];
	size_t n = udp_frame(f, 7000, "INC c1 1", true);

	gnet_input(&net, f, n);
	assert_int_equal(got_len, 8);
	assert_memory_equal(got, "INC c1 1", 8);
	assert_int_equal(got_src, PEER_IP);
	assert_int_equal(got_sport, 40000);
	/* The sender's MAC was learned: a reply goes straight out. */
	assert_int_equal(gnet_udp_send(&net, PEER_IP, 7000, 40000, "OK 1 1", 6), 0);
	assert_int_equal(nsent, 1);
	assert_memory_equal(sent[0], PEER_MAC, 6);
	uint8_t *ip = sent[0] + 14, *u = ip + 20;
	assert_int_equal(ref_csum(ip, 20, 0), 0);
	/* Verify the UDP checksum with the pseudo-header. */
	uint32_t sum = 0;
	for (int i = 12; i < 20; i += 2)
		sum += (uint32_t)ip[i] << 8 | ip[i + 1];
	sum += 17 + 14;
	assert_int_equal(ref_csum(u, 14, sum), 0);
	assert_memory_equal(u + 8, "OK 1 1", 6);
	/* No checksum (0) is accepted for UDP over IPv4. */
	n = udp_frame(f, 7000, "GET", false);
	got_len = 0;
	gnet_input(&net, f, n);
	assert_int_equal(got_len, 3);
	/* Unbound port: counted. */
	n = udp_frame(f, 9999, "x", true);
	gnet_input(&net, f, n);
	assert_int_equal(net.stats.udp_unbound, 1);
}

static void test_send_to_unknown_mac_arps_first(void **state)
{
	assert_int_equal(gnet_udp_send(&net, 0x0a420009u, 1, 2, "hi", 2), -GNET_EAGAIN);
	assert_int_equal(nsent, 1);
	assert_int_equal(sent[0][12], 0x08);
	assert_int_equal(sent[0][13], 0x06);
	/* Off-link without a gateway: refused. */
	assert_int_equal(gnet_udp_send(&net, 0x0b000001u, 1, 2, "hi", 2), -GNET_EINVAL);
	gnet_announce(&net);
	assert_int_equal(nsent, 2);
}

static void test_malformed_frames_dropped(void **state)
{
	uint8_t f[256];
	size_t n = udp_frame(f, 7000, "INC c1 1", true);
	uint8_t bad[256];
	struct {
		const char *what;
		size_t off, len;
		uint8_t val;
	} cases[] = {
		{"short frame", 0, 10, 0},
		{"IP options", 14, 0, 0x46},
		{"IPv6 version", 14, 0, 0x60},
		{"total length too big", 17, 0, 250},
		{"bad IP checksum", 24, 0, 0x12},
		{"fragment", 20, 0, 0x20},
		{"UDP length too big", 14 + 20 + 5, 0, 200},
		{"bad UDP checksum", 14 + 20 + 8, 0, 'X'},
		{"not for us (IP)", 14 + 19, 0, 0x99},
		{"not for us (MAC)", 0, 0, 0x00},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t before = net.stats.rx_dropped;

		memcpy(bad, f, n);
		bad[cases[i].off] = cases[i].val;
		got_len = 0;
		gnet_input(&net, bad, cases[i].len ? cases[i].len : n);
		if (got_len != 0 || net.stats.rx_dropped != before + 1)
			fail_msg("%s: not dropped", cases[i].what);
	}
	assert_int_equal(nsent, 0);
}

static void test_counter_exactly_once(void **state)
{
	static struct svc_counter c;
	char r[SVC_REPLY_MAX];
	size_t n;

	svc_counter_init(&c);
	n = svc_counter_handle(&c, "INC a 1", 7, r, sizeof(r));
	assert_int_equal(n, 6);
	assert_memory_equal(r, "OK 1 1", 6);
	n = svc_counter_handle(&c, "INC b 1", 7, r, sizeof(r));
	assert_memory_equal(r, "OK 1 2", n);
	/* A retry is answered from memory: no second increment. */
	n = svc_counter_handle(&c, "INC a 1", 7, r, sizeof(r));
	assert_memory_equal(r, "OK 1 1", n);
	assert_int_equal(c.value, 2);
	n = svc_counter_handle(&c, "INC a 2", 7, r, sizeof(r));
	assert_memory_equal(r, "OK 2 3", n);
	n = svc_counter_handle(&c, "INC a 1", 7, r, sizeof(r));
	assert_memory_equal(r, "ERR stale 1 last 2", n);
	n = svc_counter_handle(&c, "GET", 3, r, sizeof(r));
	assert_memory_equal(r, "VAL 3", n);
	/* Malformed requests. */
	const char *bad[] = {"", "INC", "INC a", "INC a x", "INC a 0", "DEC a 1",
			     "INC aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 1", "INC a 99999999999999999999"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = svc_counter_handle(&c, bad[i], strlen(bad[i]), r, sizeof(r));
		assert_true(n >= 3 && memcmp(r, "ERR", 3) == 0);
	}
	assert_int_equal(c.value, 3);
	/* More clients than slots: the least recently used is forgotten. */
	for (int i = 0; i < SVC_COUNTER_CLIENTS + 5; i++) {
		char q[32];
		int len = snprintf(q, sizeof(q), "INC x%d 1", i);
		svc_counter_handle(&c, q, (size_t)len, r, sizeof(r));
	}
	assert_int_equal(c.value, 3 + SVC_COUNTER_CLIENTS + 5);
	/* Replies never overflow a small buffer. */
	n = svc_counter_handle(&c, "GET", 3, r, 2);
	assert_int_equal(n, 2);
}

static void test_kv(void **state)
{
	static struct svc_kv kv;
	static uint8_t mem[8 * 512];
	char r[SVC_REPLY_MAX];
	size_t n;

	assert_true(svc_kv_table_bytes(8) <= sizeof(mem));
	svc_kv_init(&kv, mem, 8);
	n = svc_kv_handle(&kv, "GET k", 5, r, sizeof(r));
	assert_memory_equal(r, "MISS", n);
	n = svc_kv_handle(&kv, "PUT k v1", 8, r, sizeof(r));
	assert_memory_equal(r, "OK", n);
	n = svc_kv_handle(&kv, "PUT k v2", 8, r, sizeof(r));
	n = svc_kv_handle(&kv, "GET k", 5, r, sizeof(r));
	assert_memory_equal(r, "VAL v2", n);
	for (int i = 0; i < 7; i++) {
		char q[32];
		int len = snprintf(q, sizeof(q), "PUT key%d %d", i, i);
		n = svc_kv_handle(&kv, q, (size_t)len, r, sizeof(r));
		assert_memory_equal(r, "OK", n);
	}
	n = svc_kv_handle(&kv, "PUT extra 1", 11, r, sizeof(r));
	assert_memory_equal(r, "ERR full", n);
	n = svc_kv_handle(&kv, "GET key6", 8, r, sizeof(r));
	assert_memory_equal(r, "VAL 6", n);
	n = svc_kv_handle(&kv, "PUT", 3, r, sizeof(r));
	assert_true(memcmp(r, "ERR", 3) == 0);
	assert_int_equal(kv.used, 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_arp_request_reply, setup),
		cmocka_unit_test_setup(test_icmp_echo, setup),
		cmocka_unit_test_setup(test_udp_delivery_and_reply, setup),
		cmocka_unit_test_setup(test_send_to_unknown_mac_arps_first, setup),
		cmocka_unit_test_setup(test_malformed_frames_dropped, setup),
		cmocka_unit_test(test_counter_exactly_once),
		cmocka_unit_test(test_kv),
	};
	return cmocka_run_group_tests_name("gnet", tests, NULL, NULL);
}
