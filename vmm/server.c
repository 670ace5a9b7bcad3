#include "vmm/server.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/io.h"
#include "common/log.h"
#include "common/sock.h"
#include "vmm/ctl_proto.h"

#define MAX_CLIENTS 8

static int reply(int fd, int status, const void *body, size_t len, int pass_fd)
{
	struct vmm_ctl_rep rep = {.status = status, .len = (uint32_t)len};
	int rc;

	if (pass_fd >= 0)
		rc = sock_send_fd(fd, pass_fd, &rep, sizeof(rep));
	else
		rc = io_write_full(fd, &rep, sizeof(rep));
	if (rc == 0 && len)
		rc = io_write_full(fd, body, len);
	return rc;
}

/* Serves one request; returns <0 to drop the client, 1 to stop the VM.
 * *pc_fd: the client serving a postcopy (-1 none). */
static int serve(struct vm *vm, int fd, int *pc_fd)
{
	struct vmm_ctl_req req;
	uint8_t *body = NULL;
	ssize_t n = io_read_full(fd, &req, sizeof(req));
	int rc = 0, ret = 0;

	if (n <= 0 || (size_t)n < sizeof(req))
		return -1;
	if (req.len > VMM_CTL_BODY_MAX) {
		reply(fd, -EMSGSIZE, NULL, 0, -1);
		return -1;
	}
	if (req.len) {
		body = malloc(req.len);
		if (!body || io_read_full(fd, body, req.len) != (ssize_t)req.len) {
			free(body);
			return -1;
		}
	}
	switch (req.op) {
	case VMM_OP_INFO: {
		struct vmm_ctl_info info = {
			.version = VMM_CTL_VERSION,
			.mem_bytes = vm_mem_bytes(vm),
			.vcpus = 1,
			.exits = vm_exits(vm),
		};
		info.flags = (vm_incoming(vm) ? VMM_INFO_INCOMING : VMM_INFO_RUNNING) |
			     (vm_paused(vm) ? VMM_INFO_PAUSED : 0);
		snprintf(info.name, sizeof(info.name), "%s", vm_name(vm));
		snprintf(info.tap, sizeof(info.tap), "%s", vm_tap(vm));
		snprintf(info.disk, sizeof(info.disk), "%s", vm_disk(vm));
		memcpy(info.mac, vm_mac(vm), sizeof(info.mac));
		rc = reply(fd, 0, &info, sizeof(info), -1);
		break;
	}
	case VMM_OP_MEMFD:
		rc = reply(fd, 0, NULL, 0, vm_memfd(vm));
		break;
	case VMM_OP_PAUSE:
		rc = reply(fd, vm_pause(vm), NULL, 0, -1);
		break;
	case VMM_OP_RESUME:
		rc = reply(fd, vm_resume(vm), NULL, 0, -1);
		break;
	case VMM_OP_DIRTY_RESET:
		rc = reply(fd, vm_dirty_reset(vm), NULL, 0, -1);
		break;
	case VMM_OP_HARVEST: {
		size_t len = (vm_mem_bytes(vm) / 4096 + 63) / 64 * 8;
		uint64_t *bm = calloc(1, len);
		int st = bm ? vm_harvest(vm, bm) : -ENOMEM;

		rc = reply(fd, st, bm, st == 0 ? len : 0, -1);
		free(bm);
		break;
	}
	case VMM_OP_GET_STATE: {
		void *blob = NULL;
		size_t len = 0;
		int st = vm_save_state(vm, &blob, &len);

		rc = reply(fd, st, blob, st == 0 ? len : 0, -1);
		free(blob);
		break;
	}
	case VMM_OP_ACTIVATE: {
		int st = vm_activate(vm, body, req.len);

		if (st == 0)
			log_info("activated: the guest runs here now");
		else
			log_error("activation failed: %s", strerror(-st));
		rc = reply(fd, st, NULL, 0, -1);
		break;
	}
	case VMM_OP_POSTCOPY: {
		struct vmm_ctl_postcopy pc = {0};
		int ufd = -1, st = vm_postcopy_start(vm, (const uint64_t *)body, req.len / 8, &ufd,
						     &pc.base);

		if (st == 0 && req.len % 8)
			st = -EINVAL;
		if (st == 0)
			*pc_fd = fd;
		rc = reply(fd, st, &pc, st == 0 ? sizeof(pc) : 0, st == 0 ? ufd : -1);
		break;
	}
	case VMM_OP_POSTCOPY_END: {
		int st = vm_postcopy_end(vm);

		if (st == 0 || st == -ENOENT)
			*pc_fd = -1;
		rc = reply(fd, st, NULL, 0, -1);
		break;
	}
	case VMM_OP_STOP:
		reply(fd, 0, NULL, 0, -1);
		ret = 1;
		break;
	default:
		rc = reply(fd, -EOPNOTSUPP, NULL, 0, -1);
		break;
	}
	free(body);
	return rc < 0 ? -1 : ret;
}

int vmm_serve(struct vm *vm, const char *path)
{
	struct pollfd p[1 + MAX_CLIENTS];
	int nclients = 0, lfd, pc_fd = -1;
	sock_mkdir_parents(path);
	lfd = sock_unix_listen(path, 8);
	if (lfd < 0) {
		log_error("control socket %s: %s%s", path, strerror(-lfd),
			  lfd == -EADDRINUSE ? " (a VM of that name is running)" : "");
		return lfd;
	}
	chmod(path, 0600);
	p[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
	for (;;) {
		if (poll(p, (nfds_t)(1 + nclients), 100) < 0 && errno != EINTR)
			break;
		if (vm_wait_done(vm))
			break;
		if (p[0].revents & POLLIN) {
			int fd = sock_tcp_accept(lfd);
			uid_t uid;

			if (fd >= 0 && (sock_peer_cred(fd, NULL, &uid, NULL) < 0 ||
					(uid != 0 && uid != geteuid()))) {
				log_warn("control socket: refusing uid %u", (unsigned)uid);
				close(fd);
			} else if (fd >= 0 && nclients == MAX_CLIENTS) {
				close(fd);
			} else if (fd >= 0) {
				p[1 + nclients++] = (struct pollfd){.fd = fd, .events = POLLIN};
			}
		}
		for (int i = 1; i <= nclients; i++) {
			int rc;

			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			rc = serve(vm, p[i].fd, &pc_fd);
			if (rc == 1)
				goto stop;
			if (rc < 0 && p[i].fd == pc_fd && vm_postcopy_active(vm)) {
				log_error("postcopy: the process placing the guest's pages went away "
					  "before the last: its memory can never be whole here; "
					  "stopping it");
				goto stop;
			}
			if (rc < 0) {
				close(p[i].fd);
				p[i] = p[nclients--];
				i--;
			}
		}
	}
stop:
	if (vm_postcopy_active(vm)) {
		/* Its vCPU may wait for a page that never comes: no orderly stop. */
		log_error("stopped in the middle of a postcopy: the guest's memory is not whole "
			  "here; it ends now");
		unlink(path);
		_exit(70);
	}
	for (int i = 1; i <= nclients; i++)
		close(p[i].fd);
	close(lfd);
	unlink(path);
	vm_stop(vm);
	return vm_wait(vm);
}
