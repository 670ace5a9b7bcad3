/* libFuzzer harness: the local control protocols.
 *
 * The first octet's low bit picks the side fuzzed:
 *
 *   0  the daemons' control server (common/ctl.c, ctl_serve_fd): the rest
 *      of the input is what a client sends. The handler echoes what it
 *      was given; the harness checks that the request line was split into
 *      cmd and arg as ctl.h describes (the first line, at most 255
 *      octets, cut at the first space) and that the reply reaches the
 *      client whole, including "error: ..." for a failing handler. The
 *      commands "fail" and "big" make the handler fail without a word, or
 *      answer 64 KiB.
 *
 *   1  the client of ha-vm's control socket (vmm/vmm_ctl.c), as ha-protect
 *      and ha-receive use it: octets 1-4 choose four calls, octet 5 where
 *      a memory descriptor comes along (in 8-octet units, 0: none), and
 *      the rest is what "ha-vm" answers. Checked: results are 0 or -errno,
 *      no descriptor or memory leaks, a successful INFO carries terminated
 *      strings, a state blob comes back on success within the size limit.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/ctl.h"
#include "common/io.h"
#include "common/log.h"
#include "common/sock.h"
#include "vmm/vmm_ctl.h"

#define MAX_INPUT 65536u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64], vm_sock[128];
static int vm_listen = -1, memfd = -1;

_Noreturn static void bug(const char *what)
{
	fprintf(stderr, "fuzz_ctl: %s\n", what);
	abort();
}

static void cleanup(void)
{
	char p[128];

	unlink(vm_sock);
	snprintf(p, sizeof(p), "%s/ha-vm", dir);
	rmdir(p);
	rmdir(dir);
}

static void setup(void)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

	log_set_level(LOG_LVL_ERROR);
	signal(SIGPIPE, SIG_IGN);
	snprintf(dir, sizeof(dir), "%s/fuzz_ctl.XXXXXX", base);
	if (!mkdtemp(dir))
		bug("cannot make a scratch directory");
	setenv("HA_RUN_DIR", dir, 1);
	vmm_ctl_path(vm_sock, sizeof(vm_sock), "fuzz");
	sock_mkdir_parents(vm_sock);
	vm_listen = sock_unix_listen(vm_sock, 4);
	memfd = memfd_create("fuzz_ctl", MFD_CLOEXEC);
	if (vm_listen < 0 || memfd < 0 || ftruncate(memfd, 65536) < 0)
		bug("cannot set up the scratch sockets");
	atexit(cleanup);
}

/* Open descriptors among the first 256: a leak in the code under test
 * changes the count. */
static int open_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 256; fd++)
		n += fcntl(fd, F_GETFD) >= 0;
	return n;
}

/* ---- the daemons' control server ---------------------------------- */

static int echo(void *ctx, const char *cmd, const char *arg, FILE *out)
{
	if (!strcmp(cmd, "fail"))
		return -EINVAL;
	if (!strcmp(cmd, "big")) {
		for (int i = 0; i < 1024; i++)
			fprintf(out, "%063d\n", i);
		return 0;
	}
	fprintf(out, "cmd=%s\narg=%s\n", cmd, arg);
	return 0;
}

static void fuzz_server(const uint8_t *data, size_t size)
{
	char line[256], want[600], *arg;
	static char got[70000];
	size_t n = size < 255 ? size : 255, glen = 0;
	int sv[2], rc;
	ssize_t r;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return;
	if (io_write_full(sv[1], data, size) < 0)
		bug("cannot send the request");
	shutdown(sv[1], SHUT_WR);
	rc = ctl_serve_fd(sv[0], echo, NULL);
	close(sv[0]);
	while ((r = read(sv[1], got + glen, sizeof(got) - 1 - glen)) > 0)
		glen += (size_t)r;
	close(sv[1]);
	got[glen] = '\0';
	if (size == 0) {
		if (rc != -ENODATA || glen)
			bug("an empty request was answered");
		return;
	}
	if (rc < 0)
		bug("a request was not answered");

	/* The request as ctl.h describes it, worked out independently. */
	memcpy(line, data, n);
	line[n] = '\0';
	for (size_t i = 0; i < n; i++)
		if (line[i] == '\r' || line[i] == '\n') {
			line[i] = '\0';
			break;
		}
	arg = strchr(line, ' ');
	if (arg)
		*arg++ = '\0';
	if (!strcmp(line, "fail"))
		snprintf(want, sizeof(want), "error: %s\n", strerror(EINVAL));
	else if (!strcmp(line, "big"))
		snprintf(want, sizeof(want), "%063d\n", 0);
	else
		snprintf(want, sizeof(want), "cmd=%s\narg=%s\n", line, arg ? arg : "");
	if (!strcmp(line, "big") ? glen != 1024 * 64 || memcmp(got, want, 64)
				 : glen != strlen(want) || memcmp(got, want, glen))
		bug("the reply differs from what the request asked");
}

/* ---- the client of ha-vm's control socket ------------------------- */

static void check_rc(int rc)
{
	if (rc > 0 || rc < -4095)
		bug("a call returned neither 0 nor -errno");
}

static void fuzz_vm_client(const uint8_t *data, size_t size)
{
	static const uint8_t state[40] = {1, 2, 3};
	struct vmm_ctl *c = NULL;
	size_t at;
	int fd, before = open_fds();

	if (size < 5)
		return;
	if (vmm_ctl_connect("fuzz", &c) < 0)
		bug("cannot connect to the scratch socket");
	fd = sock_tcp_accept(vm_listen);
	if (fd < 0)
		bug("cannot accept on the scratch socket");
	/* The answers, the descriptor riding on the octets from "at" on. */
	at = (size_t)data[4] * 8;
	if (!data[4] || at >= size - 5) {
		if (io_write_full(fd, data + 5, size - 5) < 0)
			bug("cannot send the answers");
	} else if (io_write_full(fd, data + 5, at) < 0 ||
		   sock_send_fd(fd, memfd, data + 5 + at, size - 5 - at) < 0) {
		bug("cannot send the answers");
	}
	shutdown(fd, SHUT_WR);

	for (int i = 0; i < 4; i++) {
		struct vmm_ctl_info info;
		uint64_t bm[4] = {0}, len = 0;
		uint8_t *mem = NULL;
		void *blob = NULL;
		size_t blen = 0;
		int rc;

		switch (data[i] % 9) {
		case 0:
			rc = vmm_ctl_info(c, &info);
			if (rc == 0 && (!memchr(info.name, 0, sizeof(info.name)) ||
					!memchr(info.tap, 0, sizeof(info.tap)) ||
					!memchr(info.disk, 0, sizeof(info.disk))))
				bug("INFO returned a string without its end");
			break;
		case 1:
			rc = vmm_ctl_map(c, &mem, &len);
			if (rc == 0 && (!mem || !len))
				bug("a mapping without memory");
			break;
		case 2:
			rc = vmm_ctl_pause(c);
			break;
		case 3:
			rc = vmm_ctl_resume(c);
			break;
		case 4:
			rc = vmm_ctl_dirty_reset(c);
			break;
		case 5:
			rc = vmm_ctl_harvest(c, bm, 4);
			break;
		case 6:
			rc = vmm_ctl_get_state(c, &blob, &blen);
			if (rc == 0 && (!blob || blen > VMM_CTL_BODY_MAX))
				bug("GET_STATE succeeded without a blob");
			if (rc == 0)
				free(blob); /* on failure nothing is left (LeakSanitizer) */
			break;
		case 7:
			rc = vmm_ctl_activate(c, state, sizeof(state));
			break;
		default:
			rc = vmm_ctl_stop(c);
			break;
		}
		check_rc(rc);
	}
	vmm_ctl_close(c);
	close(fd);
	if (open_fds() != before)
		bug("a descriptor leaked");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;

	if (!ready) {
		setup();
		ready = true;
	}
	if (size < 1 || size > MAX_INPUT)
		return 0;
	if (data[0] & 1)
		fuzz_vm_client(data + 1, size - 1);
	else
		fuzz_server(data + 1, size - 1);
	return 0;
}
