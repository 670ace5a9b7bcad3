/* ha-vm benchmark, through the control socket as the replication core sees
 * it: pause/resume latency; harvest + copy of N dirty pages beside a plain
 * memcpy of the same pages (measured in the same run); guest write speed
 * beside the same loop on the host. Needs /dev/kvm and $HA_BUILD. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "vmm/guest/abi.h"
#include "vmm/vmm_ctl.h"

#define PAGE 4096u

struct mailbox {
	uint64_t magic, pass, writes, working_set;
};

static char vmm[512];

static pid_t spawn_vm(const char *name, const char *mem, const char *per_ms, const char *ws)
{
	char a0[64], a1[64];
	pid_t pid;

	snprintf(a0, sizeof(a0), "0=%s", per_ms);
	snprintf(a1, sizeof(a1), "1=%s", ws);
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(null, 2);
		execl(vmm, vmm, "run", "--name", name, "--mem", mem, "--guest", "dirty", "--arg",
		      a0, "--arg", a1, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static struct vmm_ctl *connect_vm(const char *name)
{
	struct vmm_ctl *c;

	for (int i = 0; i < 500; i++) {
		if (vmm_ctl_connect(name, &c) == 0)
			return c;
		clk_sleep_until_ns(clk_now_ns() + 10 * NSEC_PER_MSEC);
	}
	fprintf(stderr, "bench_vmm: ha-vm %s did not start\n", name);
	exit(1);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void pause_latency(void)
{
	pid_t pid = spawn_vm("bvp", "16M", "20", "1000");
	struct vmm_ctl *c = connect_vm("bvp");
	enum { N = 1000 };
	static uint64_t p[N], r[N];

	clk_sleep_until_ns(clk_now_ns() + 100 * NSEC_PER_MSEC);
	for (int i = 0; i < N; i++) {
		uint64_t t0 = clk_now_ns();
		vmm_ctl_pause(c);
		uint64_t t1 = clk_now_ns();
		vmm_ctl_resume(c);
		r[i] = clk_now_ns() - t1;
		p[i] = t1 - t0;
		clk_sleep_until_ns(clk_now_ns() + 200 * NSEC_PER_USEC);
	}
	qsort(p, N, 8, cmp_u64);
	qsort(r, N, 8, cmp_u64);
	printf("pause (request to vCPU parked, over the socket): p50 %6.1f us  p99 %6.1f us\n",
	       p[N / 2] / 1e3, p[N * 99 / 100] / 1e3);
	printf("resume (request to reply):                      p50 %6.1f us  p99 %6.1f us\n\n",
	       r[N / 2] / 1e3, r[N * 99 / 100] / 1e3);
	vmm_ctl_stop(c);
	vmm_ctl_close(c);
	waitpid(pid, NULL, 0);
}

static void harvest_copy(void)
{
	static const unsigned counts[] = {100, 1000, 10000, 100000};
	pid_t pid = spawn_vm("bvh", "512M", "20000", "100000");
	struct vmm_ctl *c = connect_vm("bvh");
	uint8_t *mem, *stage = malloc((size_t)100000 * PAGE);
	uint64_t len;
	struct mailbox *mb;

	vmm_ctl_map(c, &mem, &len);
	size_t nwords = (len / PAGE + 63) / 64;
	uint64_t *bm = calloc(nwords, 8);
	mb = (struct mailbox *)(mem + HAVM_GPA_HEAP);
	/* First touch of every page, outside the measurement. */
	memset(stage, 1, (size_t)100000 * PAGE);
	clk_sleep_until_ns(clk_now_ns() + 300 * NSEC_PER_MSEC);

	printf("%-8s %12s %12s %12s %10s\n", "pages", "harvest us", "+copy us", "memcpy us",
	       "ratio");
	for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
		uint64_t best_h = ~0ull, best_hc = ~0ull, best_m = ~0ull, got = 0;

		for (int rep = 0; rep < 5; rep++) {
			vmm_ctl_pause(c);
			vmm_ctl_dirty_reset(c);
			uint64_t w0 = mb->writes;
			vmm_ctl_resume(c);
			/* The guest writes pages in order: wait for counts[k] more. */
			while (mb->writes - w0 < counts[k])
				clk_sleep_until_ns(clk_now_ns() + 200 * NSEC_PER_USEC);
			vmm_ctl_pause(c);
			uint64_t t0 = clk_now_ns();
			memset(bm, 0, nwords * 8);
			vmm_ctl_harvest(c, bm, nwords);
			uint64_t t1 = clk_now_ns();
			size_t n = 0;
			for (size_t w = 0; w < nwords; w++)
				for (uint64_t b = bm[w]; b; b &= b - 1) {
					size_t pfn = w * 64 + (size_t)__builtin_ctzll(b);
					if (n < 100000)
						memcpy(stage + n++ * PAGE, mem + pfn * PAGE, PAGE);
				}
			uint64_t t2 = clk_now_ns();
			/* Baseline: a plain memcpy of the same pages. */
			size_t m = 0;
			for (size_t w = 0; w < nwords; w++)
				for (uint64_t b = bm[w]; b; b &= b - 1) {
					size_t pfn = w * 64 + (size_t)__builtin_ctzll(b);
					if (m < 100000)
						memcpy(stage + m++ * PAGE, mem + pfn * PAGE, PAGE);
				}
			uint64_t t3 = clk_now_ns();
			vmm_ctl_resume(c);
			got = n;
			best_h = t1 - t0 < best_h ? t1 - t0 : best_h;
			best_hc = t2 - t0 < best_hc ? t2 - t0 : best_hc;
			best_m = t3 - t2 < best_m ? t3 - t2 : best_m;
		}
		printf("%-8llu %12.1f %12.1f %12.1f %9.2fx\n", (unsigned long long)got,
		       best_h / 1e3, best_hc / 1e3, best_m / 1e3, (double)best_hc / (double)best_m);
	}
	printf("ratio = (harvest + copy) / memcpy of the same pages, best of 5\n\n");
	vmm_ctl_stop(c);
	vmm_ctl_close(c);
	waitpid(pid, NULL, 0);
	free(stage);
	free(bm);
}

static void guest_speed(void)
{
	enum { WS = 4096 };
	pid_t pid = spawn_vm("bvs", "64M", "100000000", "4096");
	struct vmm_ctl *c = connect_vm("bvs");
	uint8_t *mem, *host = aligned_alloc(PAGE, (size_t)WS * PAGE);
	uint64_t len;

	vmm_ctl_map(c, &mem, &len);
	volatile struct mailbox *mb = (void *)(mem + HAVM_GPA_HEAP);
	clk_sleep_until_ns(clk_now_ns() + 200 * NSEC_PER_MSEC);
	uint64_t w0 = mb->writes, t0 = clk_now_ns();
	clk_sleep_until_ns(t0 + 500 * NSEC_PER_MSEC);
	double guest = (double)(mb->writes - w0) / ((clk_now_ns() - t0) / 1e9);
	vmm_ctl_stop(c);
	vmm_ctl_close(c);
	waitpid(pid, NULL, 0);

	/* The same loop on the host: one u64 per page, a counter in memory. */
	volatile uint64_t writes = 0;
	uint64_t next = 0, t = clk_now_ns(), pass = 1;
	memset(host, 0, (size_t)WS * PAGE);
	while (clk_now_ns() - t < 500 * NSEC_PER_MSEC)
		for (int i = 0; i < 100000; i++) {
			*(volatile uint64_t *)(host + next * PAGE) = pass;
			writes++;
			if (++next == WS) {
				next = 0;
				pass++;
			}
		}
	double native = (double)writes / ((clk_now_ns() - t) / 1e9);
	printf("guest write loop: %.1f M writes/s; same loop on the host: %.1f M writes/s; "
	       "ratio %.2f\n",
	       guest / 1e6, native / 1e6, guest / native);
	free(host);
}

int main(void)
{
	const char *build = getenv("HA_BUILD");
	char dir[64];

	if (access("/dev/kvm", R_OK | W_OK) != 0) {
		printf("bench_vmm: SKIP: /dev/kvm is missing\n");
		return 0;
	}
	snprintf(vmm, sizeof(vmm), "%s/bin/ha-vm", build ? build : "build/default");
	snprintf(dir, sizeof(dir), "/tmp/ha-bench-vmm.%d", (int)getpid());
	setenv("HA_RUN_DIR", dir, 1);
	signal(SIGPIPE, SIG_IGN);
	printf("ha-vm benchmark (1 vCPU, guest at CPL3)\n\n");
	pause_latency();
	harvest_copy();
	guest_speed();
	return 0;
}
