/* NBD client (see nbd.h). */
#include "nbd/nbd.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/io.h"
#include "common/log.h"
#include "common/sock.h"
#include "nbd/nbd_proto.h"

#define NBD_CHUNK (32u << 20) /* largest request sent; bigger ones are split */

struct nbd_client {
	int fd;
	uint64_t size;
	uint16_t flags;
	uint64_t cookie;
	/* A request whose reply never came in time (or a reply out of step)
	 * leaves the connection out of sync: nothing more goes over it. */
	bool broken;
};

static int rd(struct nbd_client *c, void *buf, size_t len)
{
	ssize_t n = io_read_full(c->fd, buf, len);

	if (n < 0)
		return (int)n;
	return (size_t)n == len ? 0 : -ECONNRESET;
}

static int skip(struct nbd_client *c, size_t len)
{
	char buf[256];

	while (len) {
		size_t n = len < sizeof(buf) ? len : sizeof(buf);
		int rc = rd(c, buf, n);

		if (rc < 0)
			return rc;
		len -= n;
	}
	return 0;
}

static int send_option(struct nbd_client *c, uint32_t opt, const struct iovec *body, int cnt)
{
	struct nbd_option h = {.magic = htobe64(NBD_IHAVEOPT), .option = htobe32(opt)};
	struct iovec iov[8];
	size_t len = 0;

	for (int i = 0; i < cnt; i++)
		len += body[i].iov_len;
	h.length = htobe32((uint32_t)len);
	iov[0] = (struct iovec){&h, sizeof(h)};
	for (int i = 0; i < cnt; i++)
		iov[i + 1] = body[i];
	return io_writev_full(c->fd, iov, cnt + 1);
}

/* NBD_OPT_GO: returns 0, -EOPNOTSUPP (fall back), -ENOENT or another error. */
static int opt_go(struct nbd_client *c, const char *export)
{
	uint32_t nlen = htobe32((uint32_t)strlen(export));
	uint16_t ninfo = htobe16(1), info = htobe16(NBD_INFO_EXPORT);
	struct iovec body[4] = {{&nlen, 4}, {(void *)export, strlen(export)}, {&ninfo, 2},
				{&info, 2}};
	bool have_info = false;
	int rc = send_option(c, NBD_OPT_GO, body, 4);

	_Static_assert(sizeof(body) / sizeof(body[0]) < 8, "option iovecs");

	if (rc < 0)
		return rc;
	for (int replies = 0; replies < 64; replies++) {
		struct nbd_option_reply r;
		uint32_t type, len;

		rc = rd(c, &r, sizeof(r));
		if (rc < 0)
			return rc;
		type = be32toh(r.type);
		len = be32toh(r.length);
		if (be64toh(r.magic) != NBD_REP_MAGIC || be32toh(r.option) != NBD_OPT_GO ||
		    len > 4096) {
			log_error("nbd: malformed option reply (magic, option or length %u)", len);
			return -EPROTO;
		}
		if (type == NBD_REP_ACK)
			return have_info && len == 0 ? 0 : -EPROTO;
		if (type == NBD_REP_INFO) {
			uint8_t d[12];
			uint16_t it;

			if (len < 2)
				return -EPROTO;
			rc = rd(c, &it, 2);
			if (rc == 0 && be16toh(it) == NBD_INFO_EXPORT) {
				if (len != 12)
					return -EPROTO;
				rc = rd(c, d, 10);
				memcpy(&c->size, d, 8);
				c->size = be64toh(c->size);
				memcpy(&c->flags, d + 8, 2);
				c->flags = be16toh(c->flags);
				have_info = true;
			} else if (rc == 0) {
				rc = skip(c, len - 2);
			}
			if (rc < 0)
				return rc;
			continue;
		}
		rc = skip(c, len);
		if (rc < 0)
			return rc;
		if (type == NBD_REP_ERR_UNSUP)
			return -EOPNOTSUPP;
		if (type == NBD_REP_ERR_UNKNOWN)
			return -ENOENT;
		if (type & NBD_REP_FLAG_ERROR)
			return -EACCES;
		return -EPROTO;
	}
	return -EPROTO;
}

static int opt_export_name(struct nbd_client *c, const char *export, bool no_zeroes)
{
	struct iovec body = {(void *)export, strlen(export)};
	uint8_t d[10];
	int rc = send_option(c, NBD_OPT_EXPORT_NAME, &body, 1);

	if (rc == 0)
		rc = rd(c, d, 10);
	if (rc == 0 && !no_zeroes)
		rc = skip(c, 124);
	if (rc < 0)
		return rc == -ECONNRESET ? -ENOENT : rc; /* servers hang up on unknown names */
	memcpy(&c->size, d, 8);
	c->size = be64toh(c->size);
	memcpy(&c->flags, d + 8, 2);
	c->flags = be16toh(c->flags);
	return 0;
}

static int connect_target(const char *target, int timeout_ms)
{
	if (!strncmp(target, "unix:", 5))
		return sock_unix_connect(target + 5);
	return sock_tcp_connect(target, timeout_ms);
}

int nbd_client_connect(const char *target, const char *export, int timeout_ms,
		       struct nbd_client **out)
{
	int fd = connect_target(target, timeout_ms);
	int rc;

	if (fd < 0)
		return fd;
	rc = nbd_client_connect_fd(fd, export, timeout_ms, out);
	if (rc < 0)
		log_error("nbd %s: export '%s': %s", target, export,
			  rc == -ENOENT ? "no such export"
			  : rc == -EPROTO ? "not an NBD server (or a broken one)"
					  : strerror(-rc));
	return rc;
}

int nbd_client_connect_fd(int fd, const char *export, int timeout_ms, struct nbd_client **out)
{
	struct nbd_client *c = calloc(1, sizeof(*c));
	struct {
		uint64_t magic, opt;
		uint16_t flags;
	} __attribute__((packed)) hello;
	uint32_t cflags;
	int rc;

	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	c->fd = fd;
	if (timeout_ms > 0) {
		struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};

		setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	rc = rd(c, &hello, sizeof(hello));
	if (rc < 0)
		goto err;
	if (be64toh(hello.magic) != NBD_MAGIC || be64toh(hello.opt) != NBD_IHAVEOPT ||
	    !(be16toh(hello.flags) & NBD_FLAG_FIXED_NEWSTYLE)) {
		rc = -EPROTO;
		goto err;
	}
	bool no_zeroes = be16toh(hello.flags) & NBD_FLAG_NO_ZEROES;
	cflags = htobe32(NBD_FLAG_C_FIXED_NEWSTYLE | (no_zeroes ? NBD_FLAG_C_NO_ZEROES : 0));
	rc = send(c->fd, &cflags, 4, MSG_NOSIGNAL) == 4 ? 0 : -EPIPE;
	if (rc == 0)
		rc = opt_go(c, export);
	if (rc == -EOPNOTSUPP)
		rc = opt_export_name(c, export, no_zeroes);
	if (rc < 0)
		goto err;
	*out = c;
	return 0;
err:
	close(c->fd);
	free(c);
	return rc;
}

void nbd_client_close(struct nbd_client *c)
{
	if (!c)
		return;
	struct nbd_request req = {.magic = htobe32(NBD_REQUEST_MAGIC), .type = htobe16(NBD_CMD_DISC)};

	if (!c->broken)
		io_write_full(c->fd, &req, sizeof(req));
	close(c->fd);
	free(c);
}

uint64_t nbd_client_size(const struct nbd_client *c)
{
	return c->size;
}

bool nbd_client_read_only(const struct nbd_client *c)
{
	return c->flags & NBD_FLAG_READ_ONLY;
}

bool nbd_client_can_flush(const struct nbd_client *c)
{
	return c->flags & NBD_FLAG_SEND_FLUSH;
}

bool nbd_client_can_fua(const struct nbd_client *c)
{
	return c->flags & NBD_FLAG_SEND_FUA;
}

bool nbd_client_can_trim(const struct nbd_client *c)
{
	return c->flags & NBD_FLAG_SEND_TRIM;
}

/* One request and its simple reply. */
static int command(struct nbd_client *c, uint16_t type, uint16_t flags, uint64_t off,
		   uint32_t len, const void *wbuf, void *rbuf)
{
	struct nbd_request req = {
		.magic = htobe32(NBD_REQUEST_MAGIC),
		.flags = htobe16(flags),
		.type = htobe16(type),
		.cookie = htobe64(++c->cookie),
		.offset = htobe64(off),
		.length = htobe32(len),
	};
	struct iovec iov[2] = {{&req, sizeof(req)}, {(void *)wbuf, wbuf ? len : 0}};
	struct nbd_simple_reply rep;
	int rc;

	if (c->broken)
		return -ENOTCONN;
	rc = io_writev_full(c->fd, iov, wbuf ? 2 : 1);
	if (rc == 0)
		rc = rd(c, &rep, sizeof(rep));
	if (rc < 0) {
		c->broken = true;
		return rc;
	}
	if (be32toh(rep.magic) != NBD_SIMPLE_REPLY_MAGIC || be64toh(rep.cookie) != c->cookie) {
		log_error("nbd: malformed reply (magic 0x%08x)", be32toh(rep.magic));
		c->broken = true;
		return -EPROTO;
	}
	if (rep.error) {
		uint32_t e = be32toh(rep.error);

		/* NBD's error values are errno numbers; any other is an I/O
		 * error (and 2^31 would not even negate). */
		return e < 4096 ? -(int)e : -EIO;
	}
	if (rbuf)
		rc = rd(c, rbuf, len);
	if (rc < 0)
		c->broken = true;
	return rc;
}

bool nbd_client_broken(const struct nbd_client *c)
{
	return c->broken;
}

static int check_range(struct nbd_client *c, uint64_t off, size_t len)
{
	return off > c->size || len > c->size - off ? -EINVAL : 0;
}

int nbd_client_pread(struct nbd_client *c, void *buf, size_t len, uint64_t off)
{
	int rc = check_range(c, off, len);

	for (size_t done = 0; rc == 0 && done < len;) {
		uint32_t n = len - done > NBD_CHUNK ? NBD_CHUNK : (uint32_t)(len - done);

		rc = command(c, NBD_CMD_READ, 0, off + done, n, NULL, (char *)buf + done);
		done += n;
	}
	return rc;
}

int nbd_client_pwrite(struct nbd_client *c, const void *buf, size_t len, uint64_t off, bool fua)
{
	int rc = check_range(c, off, len);

	if (rc == 0 && nbd_client_read_only(c))
		rc = -EROFS;
	for (size_t done = 0; rc == 0 && done < len;) {
		uint32_t n = len - done > NBD_CHUNK ? NBD_CHUNK : (uint32_t)(len - done);

		rc = command(c, NBD_CMD_WRITE, fua && nbd_client_can_fua(c) ? NBD_CMD_FLAG_FUA : 0,
			     off + done, n, (const char *)buf + done, NULL);
		done += n;
	}
	return rc;
}

int nbd_client_flush(struct nbd_client *c)
{
	if (!nbd_client_can_flush(c))
		return 0;
	return command(c, NBD_CMD_FLUSH, 0, 0, 0, NULL, NULL);
}

int nbd_client_trim(struct nbd_client *c, uint64_t off, uint32_t len)
{
	int rc = check_range(c, off, len);

	if (rc < 0)
		return rc;
	if (!nbd_client_can_trim(c))
		return -EOPNOTSUPP;
	return command(c, NBD_CMD_TRIM, 0, off, len, NULL, NULL);
}
