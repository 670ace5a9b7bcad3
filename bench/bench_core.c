/* Replication core benchmark: pause time of ha-protect's epochs against the
 * floor (dirty harvest + memcpy of the same pages, measured on the same VM
 * in the same run), and sustained epochs per second for an idle guest, to
 * a file and to a real secondary on loopback. Needs /dev/kvm and $HA_BUILD. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/ctl.h"
#include "vmm/guest/abi.h"
#include "vmm/vmm_ctl.h"

#define PAGE 4096u

static char bin[512], run_dir[64];

static pid_t spawn(const char *const argv[])
{
	pid_t pid = fork();

	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(null, 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

static void sleep_ms(unsigned ms)
{
	clk_sleep_until_ns(clk_now_ns() + ms * NSEC_PER_MSEC);
}

static pid_t start_vm(const char *name, unsigned per_ms, unsigned ws, struct vmm_ctl **c)
{
	char path[600], a0[32], a1[32];
	snprintf(path, sizeof(path), "%s/ha-vm", bin);
	snprintf(a0, sizeof(a0), "0=%u", per_ms);
	snprintf(a1, sizeof(a1), "1=%u", ws);
	const char *argv[] = {path, "run", "--name", name, "--mem", "256M", "--guest", "dirty",
			"--arg", a0, "--arg", a1, NULL};
	pid_t pid = spawn(argv);

	for (int i = 0; i < 500 && vmm_ctl_connect(name, c) < 0; i++)
		sleep_ms(10);
	sleep_ms(200);
	return pid;
}

/* From a daemon's status: "key: N" (avg = 0) or the avg of "key: last N avg M". */
static double status_num(const char *ctl, const char *key, int avg)
{
	char *buf = NULL, *p;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	double v = -1, last;

	ctl_request(ctl, "status", f);
	fclose(f);
	p = buf ? strstr(buf, key) : NULL;
	if (p && avg)
		sscanf(p + strlen(key), " last %lf avg %lf", &last, &v);
	else if (p)
		sscanf(p + strlen(key), " %lf", &v);
	free(buf);
	return v;
}

/* The floor: harvest and copy what the guest dirtied in one interval. */
static void floor_cost(struct vmm_ctl *c, unsigned interval_ms, double *us, double *pages)
{
	uint8_t *mem;
	uint64_t len;
	vmm_ctl_map(c, &mem, &len);
	size_t nwords = (len / PAGE + 63) / 64;
	uint64_t *bm = calloc(nwords, 8);
	uint8_t *stage = malloc(len);
	double sum_us = 0, sum_pages = 0;
	const int reps = 20;

	memset(stage, 1, len);
	for (int r = 0; r < reps; r++) {
		vmm_ctl_pause(c);
		vmm_ctl_dirty_reset(c);
		vmm_ctl_resume(c);
		sleep_ms(interval_ms);
		uint64_t t0 = clk_now_ns();
		vmm_ctl_pause(c);
		memset(bm, 0, nwords * 8);
		vmm_ctl_harvest(c, bm, nwords);
		size_t n = 0;
		for (size_t w = 0; w < nwords; w++)
			for (uint64_t b = bm[w]; b; b &= b - 1)
				memcpy(stage + n++ * PAGE,
				       mem + (w * 64 + (size_t)__builtin_ctzll(b)) * PAGE, PAGE);
		vmm_ctl_resume(c);
		sum_us += (clk_now_ns() - t0) / 1e3;
		sum_pages += (double)n;
	}
	*us = sum_us / reps;
	*pages = sum_pages / reps;
	free(bm);
	free(stage);
}

static void pause_vs_floor(void)
{
	static const unsigned rates[] = {10, 100, 1000};
	const unsigned interval = 10;

	printf("pause time (ha-protect -F -n -b, interval %u ms) vs the floor (pause + harvest +\n"
	       "memcpy of the same pages + resume, same VM, same run)\n\n", interval);
	printf("%-9s %9s %9s %11s %9s %9s %8s\n", "guest", "pages/ep", "pause us", "floor pages",
	       "floor us", "ratio", "target");
	for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
		struct vmm_ctl *c;
		pid_t vm = start_vm("bcp", rates[i], 50000, &c);
		double floor_us, floor_pages;
		char path[600], ctl[128], iv[16];

		floor_cost(c, interval, &floor_us, &floor_pages);
		snprintf(path, sizeof(path), "%s/ha-protect", bin);
		snprintf(ctl, sizeof(ctl), "%s/bcp-protect.sock", run_dir);
		snprintf(iv, sizeof(iv), "%u", interval);
		const char *argv[] = {path, "-F", "-n", "-b", "-i", iv, "--ctl", ctl, "kvm:bcp", NULL};
		pid_t p = spawn(argv);
		sleep_ms(3000);
		double pause = status_num(ctl, "pause_us:", 1);
		double pages = status_num(ctl, "pages_per_epoch:", 0);
		kill(p, SIGTERM);
		waitpid(p, NULL, 0);
		vmm_ctl_stop(c);
		vmm_ctl_close(c);
		waitpid(vm, NULL, 0);
		/* Compare per page: the two runs see slightly different epochs. */
		double floor_at = floor_pages > 0 ? floor_us * pages / floor_pages : floor_us;
		double target = 1.2 * floor_at + 200;
		printf("%4u/ms %11.0f %9.0f %11.0f %9.0f %8.2fx %8s\n", rates[i], pages, pause,
		       floor_pages, floor_us, pause / floor_at, pause <= target ? "met" : "MISSED");
	}
	printf("ratio = pause / floor scaled to the epoch's page count; "
	       "target: pause <= 1.2 x floor + 0.2 ms\n\n");
}

static void epochs_per_second(void)
{
	struct vmm_ctl *c;
	pid_t vm = start_vm("bce", 1, 100, &c);
	char path[600], rx[600], ctl[128];
	double eps_file, eps_peer, ack;

	snprintf(path, sizeof(path), "%s/ha-protect", bin);
	snprintf(rx, sizeof(rx), "%s/ha-receive", bin);
	snprintf(ctl, sizeof(ctl), "%s/bce-protect.sock", run_dir);
	const char *pargv[] = {path, "-F", "-n", "-b", "-i", "1", "--ctl", ctl, "kvm:bce", NULL};
	pid_t p = spawn(pargv);
	sleep_ms(1000);
	double e0 = status_num(ctl, "epoch:", 0);
	sleep_ms(2000);
	eps_file = (status_num(ctl, "epoch:", 0) - e0) / 2.0;
	kill(p, SIGTERM);
	waitpid(p, NULL, 0);

	char rxdir[128];
	snprintf(rxdir, sizeof(rxdir), "HA_RUN_DIR=%s/rx", run_dir);
	const char *rargv[] = {rx,	"--insecure", "--listen", "127.0.0.1:7991",
			       "--timeout", "500",	      NULL};
	putenv(rxdir);
	pid_t r = spawn(rargv);
	char own[128];
	snprintf(own, sizeof(own), "HA_RUN_DIR=%s", run_dir);
	putenv(own);
	sleep_ms(300);
	const char *pargv2[] = {path,	  "--insecure", "-F",  "-n",     "-i",
				"1",	  "--timeout",	"500", "--ctl",  ctl,
				"kvm:bce", "127.0.0.1:7991", NULL};
	p = spawn(pargv2);
	sleep_ms(1500);
	e0 = status_num(ctl, "epoch:", 0);
	sleep_ms(2000);
	eps_peer = (status_num(ctl, "epoch:", 0) - e0) / 2.0;
	ack = status_num(ctl, "ack_latency_us:", 1);
	kill(p, SIGTERM);
	waitpid(p, NULL, 0);
	kill(r, SIGTERM);
	waitpid(r, NULL, 0);
	vmm_ctl_stop(c);
	vmm_ctl_close(c);
	waitpid(vm, NULL, 0);
	printf("idle guest, interval 1 ms: %.0f epochs/s to a file, %.0f epochs/s to a secondary\n"
	       "on loopback (ACK latency avg %.0f us); target >= 100/s on 2 cores\n",
	       eps_file, eps_peer, ack);
}

int main(void)
{
	const char *build = getenv("HA_BUILD");

	if (access("/dev/kvm", R_OK | W_OK) != 0) {
		printf("bench_core: SKIP: /dev/kvm is missing\n");
		return 0;
	}
	snprintf(bin, sizeof(bin), "%s/bin", build ? build : "build/default");
	snprintf(run_dir, sizeof(run_dir), "/tmp/ha-bench-core.%d", (int)getpid());
	setenv("HA_RUN_DIR", run_dir, 1);
	signal(SIGPIPE, SIG_IGN);
	printf("replication core benchmark\n\n");
	pause_vs_floor();
	epochs_per_second();
	return 0;
}
