#include "vmm/vmm_ctl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/io.h"
#include "common/sock.h"

struct vmm_ctl {
	int fd;
	uint8_t *mem;
	uint64_t mem_len;
};

void vmm_ctl_path(char *buf, size_t len, const char *name)
{
	const char *base = getenv("HA_RUN_DIR");

	snprintf(buf, len, "%s/ha-vm/%s.sock", base ? base : "/run", name);
}

int vmm_ctl_connect(const char *name, struct vmm_ctl **out)
{
	char path[108];
	struct vmm_ctl *c;
	int fd;

	vmm_ctl_path(path, sizeof(path), name);
	fd = sock_unix_connect(path);
	if (fd < 0)
		return fd;
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	c->fd = fd;
	*out = c;
	return 0;
}

void vmm_ctl_close(struct vmm_ctl *c)
{
	if (!c)
		return;
	if (c->mem)
		munmap(c->mem, c->mem_len);
	close(c->fd);
	free(c);
}

/* One exchange. The reply body goes to out (at most cap octets; a larger
 * body is an error) or, if *alloc is set, into a malloc'ed buffer. */
static int call(struct vmm_ctl *c, uint32_t op, const void *body, size_t len, void *out,
		size_t cap, void **alloc, size_t *got, int *fd)
{
	struct vmm_ctl_req req = {.op = op, .len = (uint32_t)len};
	struct iovec iov[2] = {{&req, sizeof(req)}, {(void *)body, len}};
	struct vmm_ctl_rep rep;
	ssize_t n;
	int rc;

	rc = io_writev_full(c->fd, iov, len ? 2 : 1);
	if (rc < 0)
		return rc;
	if (fd) {
		n = sock_recv_fd(c->fd, fd, &rep, sizeof(rep));
		if (n >= 0 && (size_t)n < sizeof(rep))
			n = io_read_full(c->fd, (char *)&rep + n, sizeof(rep) - (size_t)n) +
			    n;
	} else {
		n = io_read_full(c->fd, &rep, sizeof(rep));
	}
	if (n < 0)
		return (int)n;
	if ((size_t)n < sizeof(rep))
		return -ECONNRESET;
	/* A status is 0 or -errno: anything else is not ha-vm speaking. */
	if (rep.status > 0 || rep.status < -4095 || rep.len > VMM_CTL_BODY_MAX ||
	    (!alloc && rep.len > cap))
		return -EPROTO;
	if (alloc) {
		*alloc = malloc(rep.len ? rep.len : 1);
		if (!*alloc)
			return -ENOMEM;
		out = *alloc;
	}
	n = io_read_full(c->fd, out, rep.len);
	if (n < 0 || (size_t)n < rep.len) {
		if (alloc) {
			free(*alloc);
			*alloc = NULL;
		}
		return n < 0 ? (int)n : -ECONNRESET;
	}
	if (got)
		*got = rep.len;
	if (rep.status < 0 && alloc) {
		free(*alloc);
		*alloc = NULL;
	}
	return rep.status;
}

int vmm_ctl_info(struct vmm_ctl *c, struct vmm_ctl_info *info)
{
	size_t got;
	int rc = call(c, VMM_OP_INFO, NULL, 0, info, sizeof(*info), NULL, &got, NULL);

	if (rc == 0 && got != sizeof(*info))
		return -EPROTO;
	/* Callers print these: an unterminated one would run past its field. */
	if (rc == 0 && (!memchr(info->name, '\0', sizeof(info->name)) ||
			!memchr(info->tap, '\0', sizeof(info->tap)) ||
			!memchr(info->disk, '\0', sizeof(info->disk))))
		return -EPROTO;
	return rc;
}

int vmm_ctl_map(struct vmm_ctl *c, uint8_t **mem, uint64_t *len)
{
	struct vmm_ctl_info info;
	int fd = -1, rc;

	rc = vmm_ctl_info(c, &info);
	if (rc < 0)
		return rc;
	rc = call(c, VMM_OP_MEMFD, NULL, 0, NULL, 0, NULL, NULL, &fd);
	if (rc < 0 || fd < 0) {
		if (fd >= 0) /* a refusal may still carry one */
			close(fd);
		return rc < 0 ? rc : -EPROTO;
	}
	c->mem = mmap(NULL, info.mem_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (c->mem == MAP_FAILED) {
		c->mem = NULL;
		return -errno;
	}
	c->mem_len = info.mem_bytes;
	*mem = c->mem;
	*len = c->mem_len;
	return 0;
}

int vmm_ctl_pause(struct vmm_ctl *c)
{
	return call(c, VMM_OP_PAUSE, NULL, 0, NULL, 0, NULL, NULL, NULL);
}

int vmm_ctl_resume(struct vmm_ctl *c)
{
	return call(c, VMM_OP_RESUME, NULL, 0, NULL, 0, NULL, NULL, NULL);
}

int vmm_ctl_dirty_reset(struct vmm_ctl *c)
{
	return call(c, VMM_OP_DIRTY_RESET, NULL, 0, NULL, 0, NULL, NULL, NULL);
}

int vmm_ctl_harvest(struct vmm_ctl *c, uint64_t *bitmap, size_t nwords)
{
	uint64_t *tmp = NULL;
	size_t got = 0;
	int rc = call(c, VMM_OP_HARVEST, NULL, 0, NULL, 0, (void **)&tmp, &got, NULL);

	if (rc < 0)
		return rc;
	if (got != nwords * 8) {
		free(tmp);
		return -EPROTO;
	}
	for (size_t i = 0; i < nwords; i++)
		bitmap[i] |= tmp[i];
	free(tmp);
	return 0;
}

int vmm_ctl_get_state(struct vmm_ctl *c, void **blob, size_t *len)
{
	return call(c, VMM_OP_GET_STATE, NULL, 0, NULL, 0, blob, len, NULL);
}

int vmm_ctl_activate(struct vmm_ctl *c, const void *blob, size_t len)
{
	return call(c, VMM_OP_ACTIVATE, blob, len, NULL, 0, NULL, NULL, NULL);
}

int vmm_ctl_stop(struct vmm_ctl *c)
{
	return call(c, VMM_OP_STOP, NULL, 0, NULL, 0, NULL, NULL, NULL);
}

int vmm_ctl_postcopy(struct vmm_ctl *c, const uint64_t *need, size_t nwords, int *uffd,
		     uint64_t *base)
{
	struct vmm_ctl_postcopy pc;
	size_t got = 0;
	int fd = -1;
	int rc = call(c, VMM_OP_POSTCOPY, need, nwords * 8, &pc, sizeof(pc), NULL, &got, &fd);

	if (rc == 0 && (fd < 0 || got != sizeof(pc)))
		rc = -EPROTO;
	if (rc < 0) {
		if (fd >= 0)
			close(fd);
		return rc;
	}
	*uffd = fd;
	*base = pc.base;
	return 0;
}

int vmm_ctl_postcopy_end(struct vmm_ctl *c)
{
	return call(c, VMM_OP_POSTCOPY_END, NULL, 0, NULL, 0, NULL, NULL, NULL);
}
