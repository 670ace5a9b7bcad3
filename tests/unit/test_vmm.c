/* ha-vm through its control socket, with real KVM: the dirty-log invariant
 * of the KVM selftests, state transfer into a second (incoming) ha-vm
 * process, and bad requests. Skips (77) without /dev/kvm; tests/run.sh
 * reads the marker below and runs it in the KVM lab where /dev/kvm is
 * missing, as it does the scripts marked "# needs: kvm". */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/io.h"
#include "common/sock.h"
#include "vmm/guest/abi.h"
#include "vmm/vmm_ctl.h"

/* Read by tests/run.sh (grep on this binary): this test needs KVM. */
__attribute__((used)) static const char needs_kvm[] = "\n# needs: kvm\n";

#define PAGE 4096u

static char run_dir[64];
static char vmm[512];

struct mailbox {
	uint64_t magic, pass, writes, working_set;
};

static pid_t spawn(const char *const *args)
{
	pid_t pid = fork();

	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (!getenv("TEST_VERBOSE")) {
			dup2(null, 1);
			dup2(null, 2);
		}
		execv(vmm, (char *const *)args);
		_exit(127);
	}
	return pid;
}

static struct vmm_ctl *wait_for(const char *name)
{
	struct vmm_ctl *c;

	for (int i = 0; i < 300; i++) {
		if (vmm_ctl_connect(name, &c) == 0)
			return c;
		clk_sleep_until_ns(clk_now_ns() + 10 * NSEC_PER_MSEC);
	}
	fail_msg("ha-vm %s did not come up", name);
	return NULL;
}

static void sleep_ms(unsigned ms)
{
	clk_sleep_until_ns(clk_now_ns() + ms * NSEC_PER_MSEC);
}

static void test_dirty_log_invariant_and_state_transfer(void **state)
{
	const char *a_args[] = {vmm, "run", "--name", "tva", "--mem", "16M", "--guest", "dirty",
				"--arg", "0=40", "--arg", "1=1500", NULL};
	const char *b_args[] = {vmm, "run", "--name", "tvb", "--mem", "16M", "--incoming", NULL};
	pid_t a = spawn(a_args), b;
	struct vmm_ctl *ca = wait_for("tva"), *cb;
	uint8_t *mem, *memb, *shadow;
	uint64_t len, lenb, pages, dirty_total = 0, clean_checked = 0;
	size_t nwords;
	uint64_t *bm;
	struct vmm_ctl_info info;

	assert_int_equal(vmm_ctl_info(ca, &info), 0);
	assert_int_equal(info.mem_bytes, 16u << 20);
	assert_int_equal(vmm_ctl_map(ca, &mem, &len), 0);
	pages = len / PAGE;
	nwords = (pages + 63) / 64;
	bm = calloc(nwords, 8);
	shadow = malloc(len);

	/* Let the guest start, then take a reference copy. */
	sleep_ms(100);
	assert_int_equal(vmm_ctl_pause(ca), 0);
	assert_int_equal(vmm_ctl_dirty_reset(ca), 0);
	memcpy(shadow, mem, len);
	assert_int_equal(vmm_ctl_resume(ca), 0);

	for (int it = 0; it < 60; it++) {
		sleep_ms(3 + it % 7);
		assert_int_equal(vmm_ctl_pause(ca), 0);
		memset(bm, 0, nwords * 8);
		assert_int_equal(vmm_ctl_harvest(ca, bm, nwords), 0);
		for (uint64_t p = 0; p < pages; p++) {
			bool dirty = (bm[p / 64] >> (p % 64)) & 1;

			if (!dirty) {
				/* A page not reported must not have changed. */
				if (memcmp(mem + p * PAGE, shadow + p * PAGE, PAGE) != 0)
					fail_msg("iteration %d: page %llu changed but was not "
						 "reported dirty",
						 it, (unsigned long long)p);
				clean_checked++;
			} else {
				dirty_total++;
				memcpy(shadow + p * PAGE, mem + p * PAGE, PAGE);
			}
		}
		assert_int_equal(vmm_ctl_resume(ca), 0);
	}
	/* The guest dirties ~40 pages per ms: every iteration saw many. */
	assert_true(dirty_total > 60 * 40);
	assert_true(clean_checked > 0);

	/* State transfer: pause A, copy memory and state into incoming B. */
	b = spawn(b_args);
	cb = wait_for("tvb");
	assert_int_equal(vmm_ctl_map(cb, &memb, &lenb), 0);
	assert_int_equal(lenb, len);
	assert_int_equal(vmm_ctl_info(cb, &info), 0);
	assert_true(info.flags & VMM_INFO_INCOMING);

	assert_int_equal(vmm_ctl_pause(ca), 0);
	void *blob;
	size_t blen;
	assert_int_equal(vmm_ctl_get_state(ca, &blob, &blen), 0);
	memcpy(memb, mem, len);
	const struct havm_bootinfo *bi = (const void *)(mem + HAVM_GPA_BOOTINFO);
	const volatile struct mailbox *mba = (const void *)(mem + bi->heap_start);
	const volatile struct mailbox *mbb = (const void *)(memb + bi->heap_start);
	uint64_t writes_at_pause = mba->writes;
	assert_int_equal(vmm_ctl_stop(ca), 0);
	vmm_ctl_close(ca);
	waitpid(a, NULL, 0);

	assert_int_equal(vmm_ctl_activate(cb, blob, blen), 0);
	free(blob);
	sleep_ms(300);
	/* The guest continued exactly where it stopped, in another process. */
	assert_true(mbb->writes > writes_at_pause);
	assert_int_equal(mbb->magic, 0x5954524944ull);
	uint64_t w1 = mbb->writes;
	sleep_ms(100);
	assert_true(mbb->writes > w1);
	/* A second activation is refused. */
	assert_int_equal(vmm_ctl_activate(cb, "x", 1), -EBUSY);

	assert_int_equal(vmm_ctl_stop(cb), 0);
	vmm_ctl_close(cb);
	waitpid(b, NULL, 0);
	free(bm);
	free(shadow);
}

static void test_bad_requests(void **state)
{
	const char *args[] = {vmm, "run", "--name", "tvc", "--mem", "8M", "--guest", "dirty",
			      NULL};
	pid_t pid = spawn(args);
	struct vmm_ctl *c = wait_for("tvc");
	struct vmm_ctl_info info;
	void *blob;
	size_t len;
	char path[108];
	int fd, status;

	/* State of a running VM: refused. Activation of a running VM: refused. */
	assert_int_equal(vmm_ctl_get_state(c, &blob, &len), -EBUSY);
	assert_int_equal(vmm_ctl_activate(c, "junk", 4), -EBUSY);
	/* Garbage on another connection: an unknown op is answered, an absurd
	 * length closes that connection, and the VM carries on. */
	vmm_ctl_path(path, sizeof(path), "tvc");
	fd = sock_unix_connect(path);
	assert_true(fd >= 0);
	struct vmm_ctl_req req = {.op = 999, .len = 0};
	struct vmm_ctl_rep rep;
	assert_int_equal(io_write_full(fd, &req, sizeof(req)), 0);
	assert_int_equal(io_read_full(fd, &rep, sizeof(rep)), (ssize_t)sizeof(rep));
	assert_int_equal(rep.status, -EOPNOTSUPP);
	req = (struct vmm_ctl_req){.op = VMM_OP_ACTIVATE, .len = 0xffffffffu};
	assert_int_equal(io_write_full(fd, &req, sizeof(req)), 0);
	assert_int_equal(io_read_full(fd, &rep, sizeof(rep)), (ssize_t)sizeof(rep));
	assert_int_equal(rep.status, -EMSGSIZE);
	char b;
	assert_int_equal(io_read_full(fd, &b, 1), 0); /* closed */
	close(fd);
	assert_int_equal(vmm_ctl_info(c, &info), 0);
	assert_int_equal(info.flags & VMM_INFO_RUNNING, VMM_INFO_RUNNING);
	assert_int_equal(vmm_ctl_stop(c), 0);
	vmm_ctl_close(c);
	waitpid(pid, &status, 0);
	/* A name already in use is refused by the second VM. */
}

struct disk_mailbox {
	uint64_t magic, seq, checks, mismatch, errors;
};

/* A disk guest moved into an incoming ha-vm on the same disk: disk and
 * memory agree, and it keeps writing. spec: the --disk argument. */
static void disk_transfer(const char *spec)
{
	const char *a_args[] = {vmm, "run", "--name", "tda", "--mem", "8M", "--guest", "disk",
				"--disk", spec, NULL};
	const char *b_args[] = {vmm, "run", "--name", "tdb", "--mem", "8M", "--incoming",
				"--disk", spec, NULL};
	pid_t a = spawn(a_args), b;
	struct vmm_ctl *ca = wait_for("tda"), *cb;
	uint8_t *mem, *memb;
	uint64_t len, lenb;
	void *blob;
	size_t blen;

	assert_int_equal(vmm_ctl_map(ca, &mem, &len), 0);
	const struct havm_bootinfo *bi = (const void *)(mem + HAVM_GPA_BOOTINFO);
	uint64_t heap = bi->heap_start;
	volatile struct disk_mailbox *mba = (void *)(mem + heap);
	for (int i = 0; i < 100 && mba->seq < 50; i++)
		sleep_ms(20);
	assert_true(mba->seq >= 50);
	assert_int_equal(mba->errors, 0);

	b = spawn(b_args);
	cb = wait_for("tdb");
	assert_int_equal(vmm_ctl_map(cb, &memb, &lenb), 0);
	assert_int_equal(vmm_ctl_pause(ca), 0);
	assert_int_equal(vmm_ctl_get_state(ca, &blob, &blen), 0);
	memcpy(memb, mem, len);
	uint64_t seq = mba->seq;
	assert_int_equal(vmm_ctl_stop(ca), 0);
	vmm_ctl_close(ca);
	waitpid(a, NULL, 0);
	assert_int_equal(vmm_ctl_activate(cb, blob, blen), 0);
	free(blob);
	volatile struct disk_mailbox *mbb = (void *)(memb + heap);
	for (int i = 0; i < 100 && mbb->checks == 0; i++)
		sleep_ms(10);
	sleep_ms(100);
	assert_int_equal(mbb->checks, 1);
	assert_int_equal(mbb->mismatch, 0);
	assert_int_equal(mbb->errors, 0);
	assert_true(mbb->seq > seq);
	assert_int_equal(vmm_ctl_stop(cb), 0);
	vmm_ctl_close(cb);
	waitpid(b, NULL, 0);
}

static void test_disk_file(void **state)
{
	char path[128], cmd[256];

	snprintf(path, sizeof(path), "%s/disk.img", run_dir);
	snprintf(cmd, sizeof(cmd), "mkdir -p %s && truncate -s 1M %s", run_dir, path);
	assert_int_equal(system(cmd), 0);
	disk_transfer(path);
	/* The guest's blocks are in the file. */
	int fd = open(path, O_RDONLY);
	uint64_t magic;
	assert_int_equal(pread(fd, &magic, 8, 4096), 8);
	assert_int_equal(magic, 0x4b534944u);
	close(fd);
}

static void test_disk_nbd(void **state)
{
	char path[96], spec[128], cmd[640];

	if (system("command -v qemu-nbd >/dev/null") != 0)
		skip();
	snprintf(path, sizeof(path), "%s/nbd.img", run_dir);
	snprintf(cmd, sizeof(cmd),
		 "mkdir -p %s && truncate -s 1M %s && qemu-nbd --fork --persistent "
		 "--shared=2 --pid-file=%s/nbd.pid -k %s/nbd.sock -f raw -x vd %s",
		 run_dir, path, run_dir, run_dir, path);
	assert_int_equal(system(cmd), 0);
	snprintf(spec, sizeof(spec), "nbd:unix:%s/nbd.sock#vd", run_dir);
	disk_transfer(spec);
	snprintf(cmd, sizeof(cmd), "kill $(cat %s/nbd.pid)", run_dir);
	(void)!system(cmd);
}

static void test_disk_bad_spec(void **state)
{
	const char *args[] = {vmm, "run", "--name", "tdx", "--mem", "8M", "--guest", "disk",
			      "--disk", "/nonexistent/disk.img", NULL};
	int status;
	pid_t pid = spawn(args);

	waitpid(pid, &status, 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) != 0);
}

int main(void)
{
	const char *build = getenv("HA_BUILD");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dirty_log_invariant_and_state_transfer),
		cmocka_unit_test(test_bad_requests),
		cmocka_unit_test(test_disk_file),
		cmocka_unit_test(test_disk_nbd),
		cmocka_unit_test(test_disk_bad_spec),
	};

	if (access("/dev/kvm", R_OK | W_OK) != 0) {
		printf("SKIP: /dev/kvm is missing or not accessible: cannot run ha-vm here\n");
		return 77;
	}
	snprintf(vmm, sizeof(vmm), "%s/bin/ha-vm", build ? build : "build/default");
	snprintf(run_dir, sizeof(run_dir), "/tmp/ha-test-vmm.%d", (int)getpid());
	setenv("HA_RUN_DIR", run_dir, 1);
	signal(SIGPIPE, SIG_IGN);
	int rc = cmocka_run_group_tests_name("vmm", tests, NULL, NULL);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", run_dir);
	(void)!system(cmd);
	return rc;
}
