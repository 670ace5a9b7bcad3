#include "diskrepl/nbdsrv.h"

#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/io.h"
#include "nbd/nbd_proto.h"

#define MAX_OPTION_DATA 4096u

struct conn {
	int fd;
	const struct nbdsrv_export *exp;
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 3, 4))) static int fail(struct conn *c, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, c->errlen, fmt, ap);
	va_end(ap);
	return rc;
}

static int get(struct conn *c, void *buf, size_t len, const char *what)
{
	ssize_t n = io_read_full(c->fd, buf, len);

	if (n < 0)
		return fail(c, (int)n, "reading %s: %s", what, strerror((int)-n));
	if ((size_t)n < len)
		return fail(c, -ECONNRESET, "the client hung up while sending %s", what);
	return 0;
}

static int put(struct conn *c, const void *buf, size_t len)
{
	int rc = io_write_full(c->fd, buf, len);

	return rc < 0 ? fail(c, rc, "writing to the client: %s", strerror(-rc)) : 0;
}

static int opt_reply(struct conn *c, uint32_t opt, uint32_t type, const void *data, uint32_t len)
{
	struct nbd_option_reply r = {
		.magic = htobe64(NBD_REP_MAGIC),
		.option = htobe32(opt),
		.type = htobe32(type),
		.length = htobe32(len),
	};
	int rc = put(c, &r, sizeof(r));

	return rc == 0 && len ? put(c, data, len) : rc;
}

static uint16_t tx_flags(const struct nbdsrv_export *e)
{
	return (uint16_t)(NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
			  NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES |
			  (e->multi_conn ? NBD_FLAG_CAN_MULTI_CONN : 0));
}

static bool name_ok(const struct nbdsrv_export *e, const char *name)
{
	return !*name || !strcmp(name, e->name);
}

/* OPT_INFO / OPT_GO: u32 name length, name, u16 count, u16 info types. */
static int opt_info(struct conn *c, uint32_t opt, const uint8_t *d, uint32_t len, bool *go)
{
	char name[MAX_OPTION_DATA + 1];
	uint32_t nlen;
	uint16_t nreq;
	struct __attribute__((packed)) {
		uint16_t type;
		uint64_t size;
		uint16_t flags;
	} ex = {htobe16(NBD_INFO_EXPORT), htobe64(c->exp->size), htobe16(tx_flags(c->exp))};
	struct __attribute__((packed)) {
		uint16_t type;
		uint32_t min, pref, max;
	} bs = {htobe16(NBD_INFO_BLOCK_SIZE), htobe32(1), htobe32(4096),
		htobe32(NBDSRV_MAX_REQUEST)};
	int rc;

	if (len < 6)
		return opt_reply(c, opt, NBD_REP_ERR_INVALID, NULL, 0);
	memcpy(&nlen, d, 4);
	nlen = be32toh(nlen);
	if (nlen > len - 6)
		return opt_reply(c, opt, NBD_REP_ERR_INVALID, NULL, 0);
	memcpy(name, d + 4, nlen);
	name[nlen] = '\0';
	memcpy(&nreq, d + 4 + nlen, 2);
	nreq = be16toh(nreq);
	if (len != 6 + nlen + 2u * nreq)
		return opt_reply(c, opt, NBD_REP_ERR_INVALID, NULL, 0);
	if (memchr(name, '\0', nlen) || !name_ok(c->exp, name))
		return opt_reply(c, opt, NBD_REP_ERR_UNKNOWN, NULL, 0);
	rc = opt_reply(c, opt, NBD_REP_INFO, &ex, sizeof(ex));
	if (rc == 0)
		rc = opt_reply(c, opt, NBD_REP_INFO, &bs, sizeof(bs));
	if (rc == 0)
		rc = opt_reply(c, opt, NBD_REP_ACK, NULL, 0);
	if (rc == 0 && opt == NBD_OPT_GO)
		*go = true;
	return rc;
}

/* Returns 1 to enter transmission, 0 when the client aborted, -errno. */
static int handshake(struct conn *c)
{
	struct __attribute__((packed)) {
		uint64_t magic, opt;
		uint16_t flags;
	} hello = {htobe64(NBD_MAGIC), htobe64(NBD_IHAVEOPT),
		   htobe16(NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES)};
	uint32_t cflags;
	uint8_t data[MAX_OPTION_DATA];
	int rc;

	rc = put(c, &hello, sizeof(hello));
	if (rc == 0)
		rc = get(c, &cflags, 4, "the client flags");
	if (rc < 0)
		return rc;
	cflags = be32toh(cflags);
	if (!(cflags & NBD_FLAG_C_FIXED_NEWSTYLE) ||
	    (cflags & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)))
		return fail(c, -EPROTO, "unsupported client flags 0x%x (fixed newstyle only)",
			    cflags);

	for (unsigned n = 0; n < 64; n++) {
		struct nbd_option o;
		bool go = false;

		rc = get(c, &o, sizeof(o), "an option");
		if (rc < 0)
			return rc;
		o.magic = be64toh(o.magic);
		o.option = be32toh(o.option);
		o.length = be32toh(o.length);
		if (o.magic != NBD_IHAVEOPT)
			return fail(c, -EPROTO, "bad option magic 0x%llx",
				    (unsigned long long)o.magic);
		if (o.length > MAX_OPTION_DATA)
			return fail(c, -EPROTO, "option %u carries %u octets (at most %u)", o.option,
				    o.length, MAX_OPTION_DATA);
		rc = get(c, data, o.length, "option data");
		if (rc < 0)
			return rc;
		switch (o.option) {
		case NBD_OPT_EXPORT_NAME: {
			char name[MAX_OPTION_DATA + 1];
			struct __attribute__((packed)) {
				uint64_t size;
				uint16_t flags;
			} r = {htobe64(c->exp->size), htobe16(tx_flags(c->exp))};
			uint8_t zeros[124] = {0};

			memcpy(name, data, o.length);
			name[o.length] = '\0';
			if (!name_ok(c->exp, name))
				return fail(c, -ENOENT, "no export named '%s'", name);
			rc = put(c, &r, sizeof(r));
			if (rc == 0 && !(cflags & NBD_FLAG_C_NO_ZEROES))
				rc = put(c, zeros, sizeof(zeros));
			return rc < 0 ? rc : 1;
		}
		case NBD_OPT_ABORT:
			opt_reply(c, o.option, NBD_REP_ACK, NULL, 0);
			return 0;
		case NBD_OPT_LIST: {
			uint32_t nlen = htobe32((uint32_t)strlen(c->exp->name));
			uint8_t buf[4 + 256];

			if (o.length) {
				rc = opt_reply(c, o.option, NBD_REP_ERR_INVALID, NULL, 0);
				break;
			}
			memcpy(buf, &nlen, 4);
			memcpy(buf + 4, c->exp->name, be32toh(nlen));
			rc = opt_reply(c, o.option, NBD_REP_SERVER, buf, 4 + be32toh(nlen));
			if (rc == 0)
				rc = opt_reply(c, o.option, NBD_REP_ACK, NULL, 0);
			break;
		}
		case NBD_OPT_INFO:
		case NBD_OPT_GO:
			rc = opt_info(c, o.option, data, o.length, &go);
			if (rc == 0 && go)
				return 1;
			break;
		case NBD_OPT_STARTTLS:
			rc = opt_reply(c, o.option, NBD_REP_ERR_POLICY, NULL, 0);
			break;
		default: /* structured replies, meta contexts, ...: simple replies only */
			rc = opt_reply(c, o.option, NBD_REP_ERR_UNSUP, NULL, 0);
			break;
		}
		if (rc < 0)
			return rc;
	}
	return fail(c, -EPROTO, "too many options without choosing an export");
}

static uint32_t nbd_errno(int rc)
{
	switch (-rc) {
	case 0:
		return 0;
	case EPERM:
	case EROFS:
		return NBD_EPERM;
	case ENOMEM:
		return NBD_ENOMEM;
	case EINVAL:
		return NBD_EINVAL;
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
		return NBD_ENOSPC;
	case EOPNOTSUPP:
		return NBD_ENOTSUP;
	case ESHUTDOWN:
		return NBD_ESHUTDOWN;
	default:
		return NBD_EIO;
	}
}

static int reply(struct conn *c, uint64_t cookie, int rc, const void *data, uint32_t len)
{
	struct nbd_simple_reply r = {
		.magic = htobe32(NBD_SIMPLE_REPLY_MAGIC),
		.error = htobe32(nbd_errno(rc)),
		.cookie = cookie,
	};
	int w = put(c, &r, sizeof(r));

	return w == 0 && rc == 0 && len ? put(c, data, len) : w;
}

static int transmission(struct conn *c)
{
	const struct nbdsrv_ops *ops = c->exp->ops;
	void *ctx = c->exp->ctx;
	uint8_t *buf = NULL;
	size_t bufsz = 0;
	int rc = 0;

	for (;;) {
		struct nbd_request q;
		uint16_t type, flags;
		uint64_t off;
		uint32_t len;
		int res;

		rc = get(c, &q, sizeof(q), "a request");
		if (rc < 0)
			break;
		if (be32toh(q.magic) != NBD_REQUEST_MAGIC) {
			rc = fail(c, -EPROTO, "bad request magic 0x%08x", be32toh(q.magic));
			break;
		}
		type = be16toh(q.type);
		flags = be16toh(q.flags);
		off = be64toh(q.offset);
		len = be32toh(q.length);
		if (type == NBD_CMD_DISC) {
			rc = 0;
			break;
		}
		bool in_range = off <= c->exp->size && len <= c->exp->size - off;
		bool has_data = type == NBD_CMD_WRITE;

		if (len > NBDSRV_MAX_REQUEST && (has_data || type == NBD_CMD_READ)) {
			rc = fail(c, -EPROTO, "a %u-octet request (at most %u)", len,
				  NBDSRV_MAX_REQUEST);
			break;
		}
		if ((has_data || type == NBD_CMD_READ) && bufsz < len) {
			uint8_t *p = realloc(buf, len);

			if (!p) {
				rc = fail(c, -ENOMEM, "out of memory for a %u-octet request", len);
				break;
			}
			buf = p;
			bufsz = len;
		}
		if (has_data) {
			rc = get(c, buf, len, "write data");
			if (rc < 0)
				break;
		}
		if ((flags & ~(NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE)) ||
		    ((flags & NBD_CMD_FLAG_NO_HOLE) && type != NBD_CMD_WRITE_ZEROES)) {
			res = -EINVAL;
		} else if (type != NBD_CMD_FLUSH && !in_range) {
			res = type == NBD_CMD_READ || type == NBD_CMD_CACHE ? -EINVAL : -ENOSPC;
		} else {
			bool fua = flags & NBD_CMD_FLAG_FUA;

			switch (type) {
			case NBD_CMD_READ:
				res = ops->read(ctx, buf, len, off);
				break;
			case NBD_CMD_WRITE:
				/* Nothing to write (or to mirror: an empty
				 * write record is malformed on the link). */
				res = len ? ops->write(ctx, buf, len, off, fua)
					  : fua ? ops->flush(ctx)
						: 0;
				break;
			case NBD_CMD_FLUSH:
				res = ops->flush(ctx);
				break;
			case NBD_CMD_TRIM:
				res = len ? ops->trim(ctx, len, off) : 0;
				if (res == 0 && fua)
					res = ops->flush(ctx);
				break;
			case NBD_CMD_WRITE_ZEROES:
				res = len ? ops->zero(ctx, len, off, fua) : 0;
				break;
			case NBD_CMD_CACHE:
				res = 0;
				break;
			default:
				res = -EINVAL;
				break;
			}
		}
		rc = reply(c, q.cookie, res, buf, type == NBD_CMD_READ ? len : 0);
		if (rc < 0)
			break;
	}
	free(buf);
	return rc;
}

int nbdsrv_serve(int fd, const struct nbdsrv_export *exp, char *err, size_t errlen)
{
	struct conn c = {.fd = fd, .exp = exp, .err = err, .errlen = errlen};
	int rc;

	err[0] = '\0';
	rc = handshake(&c);
	if (rc <= 0)
		return rc;
	return transmission(&c);
}
