/* Replication link benchmark: throughput of checkpoint records (raw 4 KiB
 * PAGE_DATA, as a -u stream sends them) through failover/link.c over TCP
 * on the loopback, plain (--insecure) vs TLS 1.3 (PSK and certificates are
 * the same record layer after the handshake), measured in the same run and
 * reported as a ratio. Also says whether kernel TLS could be used.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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
#include "common/sock.h"
#include "failover/link.h"
#include "failover/tls.h"

#define MIB (1024ull * 1024)
#define TOTAL (256 * MIB)
#define BATCH 256 /* pages per PAGE_DATA record */
#define ROUNDS 3

static uint8_t *pages;

static unsigned next_u8(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return (unsigned)(*x >> 56);
}
static uint64_t pfns[BATCH];
static const void *ptrs[BATCH];

struct rx_arg {
	int lfd;
	struct fo_tls *tls;
	int rc;
	uint64_t bytes;
};

static void *rx_main(void *arg)
{
	struct rx_arg *a = arg;
	struct fo_link *l;
	struct ckpt_reader *r;
	struct ckpt_record rec;
	char err[320];
	int fd = sock_tcp_accept(a->lfd);

	a->rc = fd < 0 ? fd : fo_link_open(fd, 5000, a->tls, &l, err, sizeof(err));
	if (a->rc < 0) {
		fprintf(stderr, "bench_link: receiver: %s\n", a->rc == -EPROTO ? err : "accept");
		return NULL;
	}
	r = fo_link_reader(l);
	a->rc = ckpt_reader_headers(r, CKPT_IHDR_ID_XEN);
	while (a->rc == 0) {
		a->rc = ckpt_reader_next(r, &rec);
		if (a->rc < 0 || rec.type == CKPT_REC_END)
			break;
		a->bytes += rec.length;
	}
	if (a->rc < 0)
		fprintf(stderr, "bench_link: receiver: %s\n", ckpt_reader_error(r));
	fo_link_free(l);
	return NULL;
}

/* One transfer of TOTAL octets of pages; returns MB/s, or -1. */
static double transfer(struct fo_tls *ctls, struct fo_tls *stls, char *desc, size_t desclen)
{
	int lfd = sock_tcp_listen("127.0.0.1:0", 1);
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	char hp[64], err[320];
	struct rx_arg a = {.lfd = lfd, .tls = stls};
	struct fo_link *l;
	pthread_t th;
	uint64_t t0, sent = 0;
	int rc;

	if (lfd < 0 || getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0)
		return -1;
	snprintf(hp, sizeof(hp), "127.0.0.1:%u", ntohs(sa.sin_port));
	pthread_create(&th, NULL, rx_main, &a);
	int fd = sock_tcp_connect(hp, 2000);
	rc = fd < 0 ? fd : fo_link_open(fd, 5000, ctls, &l, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "bench_link: %s\n", rc == -EPROTO ? err : strerror(-rc));
		pthread_join(th, NULL);
		close(lfd);
		return -1;
	}
	snprintf(desc, desclen, "%s", fo_link_security(l));
	t0 = clk_now_ns();
	rc = fo_link_headers(l, CKPT_IHDR_ID_XEN, CKPT_DHDR_HAVM, 0, 0);
	for (uint64_t pfn = 0; rc == 0 && sent < TOTAL; pfn += BATCH) {
		for (unsigned i = 0; i < BATCH; i++)
			pfns[i] = pfn + i;
		rc = fo_link_page_data(l, pfns, ptrs, BATCH);
		sent += (uint64_t)BATCH * CKPT_PAGE_SIZE;
	}
	if (rc == 0)
		rc = fo_link_end(l);
	pthread_join(th, NULL);
	uint64_t ns = clk_now_ns() - t0;
	fo_link_free(l);
	close(lfd);
	if (rc < 0 || a.rc < 0)
		return -1;
	return (double)sent / 1e6 / ((double)ns / 1e9);
}

/* Whether this kernel offers the "tls" upper layer protocol at all. */
static const char *ktls_state(void)
{
	int lfd = sock_tcp_listen("127.0.0.1:0", 1);
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	char hp[64];
	static char why[128];
	int fd, rc;

	if (lfd < 0 || getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0)
		return "unknown";
	snprintf(hp, sizeof(hp), "127.0.0.1:%u", ntohs(sa.sin_port));
	fd = sock_tcp_connect(hp, 2000);
	rc = fd < 0 ? -1 : setsockopt(fd, SOL_TCP, TCP_ULP, "tls", sizeof("tls"));
	snprintf(why, sizeof(why), "%s",
		 rc == 0	   ? "available (not used by this build)"
		 : errno == ENOENT ? "not available: this kernel has no tls module"
				   : strerror(errno));
	if (fd >= 0)
		close(fd);
	close(lfd);
	return why;
}

int main(void)
{
	char dir[] = "/tmp/ha-bench-link.XXXXXX", psk[96], desc[256] = "";
	struct fo_tls_config tc = {.psk = psk};
	struct fo_tls *ctls = NULL, *stls = NULL;
	double plain[ROUNDS], tls[ROUNDS];
	char err[320];
	FILE *f;

	signal(SIGPIPE, SIG_IGN);
	pages = malloc(BATCH * CKPT_PAGE_SIZE);
	if (!pages || !mkdtemp(dir))
		return 1;
	/* Incompressible contents (TLS does not compress; neither does TCP). */
	uint64_t x = 0x9E3779B97F4A7C15ull;
	for (size_t i = 0; i < BATCH * CKPT_PAGE_SIZE / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		((uint64_t *)pages)[i] = x;
	}
	for (unsigned i = 0; i < BATCH; i++)
		ptrs[i] = pages + (size_t)i * CKPT_PAGE_SIZE;
	snprintf(psk, sizeof(psk), "%s/psk", dir);
	f = fopen(psk, "w");
	if (!f)
		return 1;
	fchmod(fileno(f), 0600);
	fprintf(f, "bench:");
	for (int i = 0; i < 32; i++)
		fprintf(f, "%02x", (unsigned)(next_u8(&x)));
	fprintf(f, "\n");
	fclose(f);
	if (fo_tls_new(&tc, false, &ctls, err, sizeof(err)) < 0 ||
	    fo_tls_new(&tc, true, &stls, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_link: %s\n", err);
		return 1;
	}

	printf("replication link throughput, %llu MiB of raw 4 KiB pages per run over TCP "
	       "loopback, %d runs alternating (best):\n",
	       (unsigned long long)(TOTAL / MIB), ROUNDS);
	for (int i = 0; i < ROUNDS; i++) {
		char d[256];

		plain[i] = transfer(NULL, NULL, d, sizeof(d));
		tls[i] = transfer(ctls, stls, desc, sizeof(desc));
		if (plain[i] < 0 || tls[i] < 0)
			return 1;
	}
	double bp = 0, bt = 0;
	for (int i = 0; i < ROUNDS; i++) {
		bp = plain[i] > bp ? plain[i] : bp;
		bt = tls[i] > bt ? tls[i] : bt;
	}
	printf("  plain TCP (--insecure)  %7.0f MB/s  (runs:", bp);
	for (int i = 0; i < ROUNDS; i++)
		printf(" %.0f", plain[i]);
	printf(")\n  %-23s %7.0f MB/s  (runs:", "TLS 1.3", bt);
	for (int i = 0; i < ROUNDS; i++)
		printf(" %.0f", tls[i]);
	printf(")\n  negotiated: %s\n", desc);
	printf("  TLS / plain throughput ratio: %.2f\n", bt / bp);
	printf("  kernel TLS offload: %s\n", ktls_state());
	fo_tls_free(ctls);
	fo_tls_free(stls);
	unlink(psk);
	rmdir(dir);
	free(pages);
	return 0;
}
