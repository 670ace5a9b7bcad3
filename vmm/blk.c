#include "vmm/blk.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "nbd/nbd.h"

struct blk_ops {
	int (*read)(struct blk *b, void *buf, size_t len, uint64_t off);
	int (*write)(struct blk *b, const void *buf, size_t len, uint64_t off, bool fua);
	int (*flush)(struct blk *b);
	void (*close)(struct blk *b);
};

struct blk {
	const struct blk_ops *ops;
	uint64_t size;
	int fd;
	struct nbd_client *nbd;
	char target[256], export[128]; /* NBD: to reconnect */
};

static int file_read(struct blk *b, void *buf, size_t len, uint64_t off)
{
	ssize_t n = pread(b->fd, buf, len, (off_t)off);

	return n < 0 ? -errno : (size_t)n == len ? 0 : -EIO;
}

static int file_write(struct blk *b, const void *buf, size_t len, uint64_t off, bool fua)
{
	ssize_t n = pwrite(b->fd, buf, len, (off_t)off);

	if (n < 0)
		return -errno;
	if ((size_t)n != len)
		return -EIO;
	return fua && fdatasync(b->fd) < 0 ? -errno : 0;
}

static int file_flush(struct blk *b)
{
	return fdatasync(b->fd) < 0 ? -errno : 0;
}

static void file_close(struct blk *b)
{
	close(b->fd);
}

static const struct blk_ops file_ops = {file_read, file_write, file_flush, file_close};

#define NBD_TIMEOUT_MS 5000

/* A request that failed in transport broke the connection (its reply may
 * still come, out of step): the next request opens a new one. The guest
 * saw that one request fail, as with any disk that timed out. */
static int nbd_ready(struct blk *b)
{
	struct nbd_client *c;
	int rc;

	if (b->nbd && !nbd_client_broken(b->nbd))
		return 0;
	rc = nbd_client_connect(b->target, b->export, NBD_TIMEOUT_MS, &c);
	if (rc < 0) {
		log_error("disk: cannot reconnect to nbd:%s: %s", b->target, strerror(-rc));
		return rc;
	}
	if (nbd_client_size(c) != b->size) {
		log_error("disk: nbd:%s came back with another size", b->target);
		nbd_client_close(c);
		return -EIO;
	}
	nbd_client_close(b->nbd);
	b->nbd = c;
	log_warn("disk: reconnected to nbd:%s after a failed request", b->target);
	return 0;
}

static int nbd_read(struct blk *b, void *buf, size_t len, uint64_t off)
{
	int rc = nbd_ready(b);

	return rc < 0 ? rc : nbd_client_pread(b->nbd, buf, len, off);
}

static int nbd_write(struct blk *b, const void *buf, size_t len, uint64_t off, bool fua)
{
	int rc = nbd_ready(b);

	if (rc < 0)
		return rc;
	rc = nbd_client_pwrite(b->nbd, buf, len, off, fua);

	/* Without FUA support, durability needs a flush. */
	if (rc == 0 && fua && !nbd_client_can_fua(b->nbd))
		rc = nbd_client_flush(b->nbd);
	return rc;
}

static int nbd_flush(struct blk *b)
{
	int rc = nbd_ready(b);

	return rc < 0 ? rc : nbd_client_flush(b->nbd);
}

static void nbd_close(struct blk *b)
{
	nbd_client_close(b->nbd);
}

static const struct blk_ops nbd_ops = {nbd_read, nbd_write, nbd_flush, nbd_close};

int blk_open(const char *spec, struct blk **out)
{
	struct blk *b = calloc(1, sizeof(*b));
	int rc;

	if (!b)
		return -ENOMEM;
	if (!strncmp(spec, "nbd:", 4)) {
		char target[256];
		const char *hash = strchr(spec + 4, '#');
		size_t n = hash ? (size_t)(hash - spec - 4) : strlen(spec + 4);

		if (n >= sizeof(target) || (hash && strlen(hash + 1) >= sizeof(b->export))) {
			free(b);
			return -ENAMETOOLONG;
		}
		memcpy(target, spec + 4, n);
		target[n] = '\0';
		snprintf(b->target, sizeof(b->target), "%s", target);
		snprintf(b->export, sizeof(b->export), "%s", hash ? hash + 1 : "");
		rc = nbd_client_connect(target, b->export, NBD_TIMEOUT_MS, &b->nbd);
		if (rc < 0) {
			free(b);
			return rc;
		}
		b->ops = &nbd_ops;
		b->size = nbd_client_size(b->nbd);
	} else {
		b->fd = open(spec, O_RDWR | O_CLOEXEC);
		if (b->fd < 0) {
			rc = -errno;
			log_error("disk %s: %s", spec, strerror(errno));
			free(b);
			return rc;
		}
		off_t end = lseek(b->fd, 0, SEEK_END);
		b->ops = &file_ops;
		b->size = end > 0 ? (uint64_t)end : 0;
	}
	*out = b;
	return 0;
}

void blk_close(struct blk *b)
{
	if (!b)
		return;
	b->ops->close(b);
	free(b);
}

uint64_t blk_size(const struct blk *b)
{
	return b->size;
}

int blk_read(struct blk *b, void *buf, size_t len, uint64_t off)
{
	return b->ops->read(b, buf, len, off);
}

int blk_write(struct blk *b, const void *buf, size_t len, uint64_t off, bool fua)
{
	return b->ops->write(b, buf, len, off, fua);
}

int blk_flush(struct blk *b)
{
	return b->ops->flush(b);
}
