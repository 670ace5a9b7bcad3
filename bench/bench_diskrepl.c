/* Replicated disk benchmark: write throughput and per-write latency
 *   local   pwrite to the image file itself (the baseline)
 *   nbd     through ha-diskrepl's NBD export, nothing attached (the bitmap
 *           tracks changes)
 *   mirror  through ha-diskrepl while attached: every write is also
 *           forwarded into a replica with its journal, with epochs closed
 *           every 20 ms (barrier, flush, journal commit with fdatasync,
 *           apply) the way ha-protect and ha-receive do
 * for 4 KiB random writes and 64 KiB sequential writes, all measured in the
 * same run; figures are ratios against local. Needs $HA_BUILD. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint/stream_format.h"
#include "common/clock.h"
#include "diskrepl/dev.h"
#include "diskrepl/replica.h"
#include "nbd/nbd.h"

#define SIZE (64u << 20)
#define EPOCH_MS 20

static char dir[] = "/tmp/ha-bench-diskrepl.XXXXXX";
static char img[300], rep[300], nbd[300], attach[300], bin[512];

struct secondary {
	pthread_mutex_t mu;
	struct replica *r;
	int failed;
};

static int sink_record(void *ctx, uint32_t type, const struct iovec *iov, int iovcnt)
{
	struct secondary *s = ctx;
	const uint8_t *b = iov[0].iov_base;
	int rc;

	(void)iovcnt;
	pthread_mutex_lock(&s->mu);
	rc = replica_take(s->r, type, b);
	if (rc < 0 && !s->failed) {
		s->failed = rc;
		fprintf(stderr, "bench_diskrepl: replica: %s\n", replica_error(s->r));
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

/* Closes an epoch every EPOCH_MS while a workload runs. */
struct epochs {
	struct ckpt_dev *dev;
	struct secondary *sec;
	atomic_bool stop;
	uint64_t closed;
	uint64_t barrier_ns[4096]; /* postsuspend: the pause-path cost */
	int rc;
};

static void *epoch_main(void *arg)
{
	struct epochs *e = arg;

	while (!atomic_load(&e->stop) && e->rc == 0) {
		uint64_t n = e->closed;

		clk_sleep_until_ns(clk_now_ns() + EPOCH_MS * NSEC_PER_MSEC);
		uint64_t t0 = clk_now_ns();

		e->rc = e->dev->ops->postsuspend(e->dev, n);
		if (n < 4096)
			e->barrier_ns[n] = clk_now_ns() - t0;
		if (e->rc == 0)
			e->rc = e->dev->ops->flush(e->dev, n);
		if (e->rc == 0) {
			pthread_mutex_lock(&e->sec->mu);
			e->rc = replica_commit(e->sec->r, n);
			if (e->rc == 0)
				e->rc = replica_apply(e->sec->r);
			pthread_mutex_unlock(&e->sec->mu);
		}
		if (e->rc == 0)
			e->rc = e->dev->ops->commit(e->dev, n);
		e->closed++;
	}
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct result {
	double mbps, p50_us, p99_us;
};

/* One workload: n writes of len octets, random or sequential offsets,
 * through fd (local) or c (NBD); ends with a flush so that what is timed is
 * durable in the same sense on both paths. */
static struct result run(int fd, struct nbd_client *c, uint32_t len, unsigned n, bool random_off)
{
	uint64_t *lat = malloc(n * sizeof(*lat));
	uint8_t *buf = malloc(len);
	uint64_t t0, nslots = SIZE / len;
	struct result r;

	srandom(1);
	for (uint32_t i = 0; i < len; i++)
		buf[i] = (uint8_t)random();
	t0 = clk_now_ns();
	for (unsigned i = 0; i < n; i++) {
		uint64_t off = (random_off ? (uint64_t)random() % nslots : i % nslots) * len;
		uint64_t s = clk_now_ns();
		int rc;

		buf[0] = (uint8_t)i;
		rc = c ? nbd_client_pwrite(c, buf, len, off, false)
		       : (pwrite(fd, buf, len, (off_t)off) == (ssize_t)len ? 0 : -errno);
		if (rc < 0) {
			fprintf(stderr, "bench_diskrepl: write: %s\n", strerror(-rc));
			exit(1);
		}
		lat[i] = clk_now_ns() - s;
	}
	if (c ? nbd_client_flush(c) < 0 : fdatasync(fd) < 0) {
		fprintf(stderr, "bench_diskrepl: flush failed\n");
		exit(1);
	}
	r.mbps = (double)len * n / 1e6 / ((double)(clk_now_ns() - t0) / 1e9);
	qsort(lat, n, sizeof(*lat), cmp_u64);
	r.p50_us = (double)lat[n / 2] / 1e3;
	r.p99_us = (double)lat[n * 99 / 100] / 1e3;
	free(lat);
	free(buf);
	return r;
}

static pid_t start_diskrepl(void)
{
	char path[600];
	pid_t pid;

	snprintf(path, sizeof(path), "%s/ha-diskrepl", bin);
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 1);
		dup2(null, 2);
		execl(path, "ha-diskrepl", "--name", "bd", "--image", img, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		if (access(attach, F_OK) == 0 && access(nbd, F_OK) == 0)
			return pid;
		clk_sleep_until_ns(clk_now_ns() + 10 * NSEC_PER_MSEC);
	}
	fprintf(stderr, "bench_diskrepl: ha-diskrepl did not start (%s)\n", path);
	exit(1);
}

static void print_row(const char *name, const struct result *r, const struct result *base)
{
	printf("  %-7s %9.1f MB/s %6.2fx   p50 %7.1f us  p99 %7.1f us   p50 %6.2fx\n", name,
	       r->mbps, r->mbps / base->mbps, r->p50_us, r->p99_us, r->p50_us / base->p50_us);
}

int main(void)
{
	static const struct {
		const char *name;
		uint32_t len;
		unsigned n;
		bool random_off;
	} loads[] = {
		{"4 KiB random writes", 4096, 20000, true},
		{"64 KiB sequential writes", 65536, 2048, false},
	};
	const char *build = getenv("HA_BUILD");
	struct secondary sec = {.mu = PTHREAD_MUTEX_INITIALIZER};
	char target[320], err[256], cmd[400];
	struct ckpt_dev *dev;
	pid_t drl;
	int fd;

	snprintf(bin, sizeof(bin), "%s/bin", build ? build : "build/default");
	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(dir))
		return 1;
	snprintf(img, sizeof(img), "%s/disk.img", dir);
	snprintf(rep, sizeof(rep), "%s/replica.img", dir);
	snprintf(nbd, sizeof(nbd), "%s/ha-diskrepl/bd.nbd", dir);
	snprintf(attach, sizeof(attach), "%s/ha-diskrepl/bd.attach", dir);
	snprintf(target, sizeof(target), "unix:%s", nbd);
	setenv("HA_RUN_DIR", dir, 1);
	fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, SIZE) < 0)
		return 1;
	drl = start_diskrepl();

	printf("replicated disk: writes through ha-diskrepl vs the image file alone "
	       "(%u MiB image, epochs of %u ms)\n", SIZE >> 20, EPOCH_MS);
	for (size_t i = 0; i < sizeof(loads) / sizeof(loads[0]); i++) {
		struct result local, plain, mirror;
		struct nbd_client *c;
		static struct epochs ep;
		pthread_t th;

		local = run(fd, NULL, loads[i].len, loads[i].n, loads[i].random_off);
		if (nbd_client_connect(target, "bd", 5000, &c) < 0) {
			fprintf(stderr, "bench_diskrepl: cannot connect to ha-diskrepl\n");
			return 1;
		}
		plain = run(-1, c, loads[i].len, loads[i].n, loads[i].random_off);

		if (replica_open(rep, NULL, 0, &sec.r, err, sizeof(err)) < 0 ||
		    diskrepl_dev_create(attach, 0, &dev) < 0) {
			fprintf(stderr, "bench_diskrepl: %s\n", err);
			return 1;
		}
		struct ckpt_sink sink = {.record = sink_record, .ctx = &sec};

		if (dev->ops->connect(dev, &sink) < 0 || dev->ops->setup(dev) < 0) {
			fprintf(stderr, "bench_diskrepl: cannot attach\n");
			return 1;
		}
		memset(&ep, 0, sizeof(ep));
		ep.dev = dev;
		ep.sec = &sec;
		pthread_create(&th, NULL, epoch_main, &ep);
		mirror = run(-1, c, loads[i].len, loads[i].n, loads[i].random_off);
		atomic_store(&ep.stop, true);
		pthread_join(th, NULL);
		if (ep.rc < 0 || sec.failed) {
			fprintf(stderr, "bench_diskrepl: epoch failed: %s\n", strerror(-ep.rc));
			return 1;
		}
		dev->ops->destroy(dev);
		replica_close(sec.r);
		sec.r = NULL;
		nbd_client_close(c);

		printf("%s (%u writes):\n", loads[i].name, loads[i].n);
		print_row("local", &local, &local);
		print_row("nbd", &plain, &local);
		print_row("mirror", &mirror, &local);
		uint64_t nb = ep.closed < 4096 ? ep.closed : 4096;

		qsort(ep.barrier_ns, nb, sizeof(uint64_t), cmp_u64);
		printf("  (mirror: %llu epochs; barrier on the pause path p50 %.1f us, max %.1f us)\n",
		       (unsigned long long)ep.closed, (double)ep.barrier_ns[nb / 2] / 1e3,
		       (double)ep.barrier_ns[nb - 1] / 1e3);
	}
	printf("ratio = figure / local's in the same run (throughput: higher is better; "
	       "latency: lower is better)\n\n");
	kill(drl, SIGTERM);
	waitpid(drl, NULL, 0);
	close(fd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : 1;
}
