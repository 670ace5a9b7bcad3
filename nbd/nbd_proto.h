/* NBD wire format (the standard protocol, fixed newstyle, simple replies).
 * Big-endian on the wire. Shared by the client (nbd/) and the server
 * (diskrepl/nbdsrv.c). */
#ifndef HA_NBD_NBD_PROTO_H
#define HA_NBD_NBD_PROTO_H

#include <stdint.h>

#define NBD_MAGIC UINT64_C(0x4e42444d41474943)    /* "NBDMAGIC" */
#define NBD_IHAVEOPT UINT64_C(0x49484156454F5054) /* "IHAVEOPT" */
#define NBD_REP_MAGIC UINT64_C(0x0003e889045565a9)
#define NBD_REQUEST_MAGIC 0x25609513u
#define NBD_SIMPLE_REPLY_MAGIC 0x67446698u

#define NBD_FLAG_FIXED_NEWSTYLE 0x1u
#define NBD_FLAG_NO_ZEROES 0x2u
#define NBD_FLAG_C_FIXED_NEWSTYLE 0x1u
#define NBD_FLAG_C_NO_ZEROES 0x2u

#define NBD_OPT_EXPORT_NAME 1u
#define NBD_OPT_ABORT 2u
#define NBD_OPT_LIST 3u
#define NBD_OPT_STARTTLS 5u
#define NBD_OPT_INFO 6u
#define NBD_OPT_GO 7u
#define NBD_OPT_STRUCTURED_REPLY 8u

#define NBD_REP_ACK 1u
#define NBD_REP_SERVER 2u
#define NBD_REP_INFO 3u
#define NBD_REP_FLAG_ERROR 0x80000000u
#define NBD_REP_ERR_UNSUP (NBD_REP_FLAG_ERROR | 1u)
#define NBD_REP_ERR_POLICY (NBD_REP_FLAG_ERROR | 2u)
#define NBD_REP_ERR_INVALID (NBD_REP_FLAG_ERROR | 3u)
#define NBD_REP_ERR_UNKNOWN (NBD_REP_FLAG_ERROR | 6u)

#define NBD_INFO_EXPORT 0u
#define NBD_INFO_BLOCK_SIZE 3u

#define NBD_FLAG_HAS_FLAGS 0x1u
#define NBD_FLAG_READ_ONLY 0x2u
#define NBD_FLAG_SEND_FLUSH 0x4u
#define NBD_FLAG_SEND_FUA 0x8u
#define NBD_FLAG_SEND_TRIM 0x20u
#define NBD_FLAG_SEND_WRITE_ZEROES 0x40u
#define NBD_FLAG_CAN_MULTI_CONN 0x100u

#define NBD_CMD_READ 0u
#define NBD_CMD_WRITE 1u
#define NBD_CMD_DISC 2u
#define NBD_CMD_FLUSH 3u
#define NBD_CMD_TRIM 4u
#define NBD_CMD_CACHE 5u
#define NBD_CMD_WRITE_ZEROES 6u
#define NBD_CMD_FLAG_FUA 0x1u
#define NBD_CMD_FLAG_NO_HOLE 0x2u

/* Error values in replies (the protocol's, not the host's errno). */
#define NBD_EPERM 1u
#define NBD_EIO 5u
#define NBD_ENOMEM 12u
#define NBD_EINVAL 22u
#define NBD_ENOSPC 28u
#define NBD_EOVERFLOW 75u
#define NBD_ENOTSUP 95u
#define NBD_ESHUTDOWN 108u

struct nbd_option {
	uint64_t magic;
	uint32_t option;
	uint32_t length;
} __attribute__((packed));
_Static_assert(sizeof(struct nbd_option) == 16, "option header");

struct nbd_option_reply {
	uint64_t magic;
	uint32_t option;
	uint32_t type;
	uint32_t length;
} __attribute__((packed));
_Static_assert(sizeof(struct nbd_option_reply) == 20, "option reply header");

struct nbd_request {
	uint32_t magic;
	uint16_t flags;
	uint16_t type;
	uint64_t cookie;
	uint64_t offset;
	uint32_t length;
} __attribute__((packed));
_Static_assert(sizeof(struct nbd_request) == 28, "request header");

struct nbd_simple_reply {
	uint32_t magic;
	uint32_t error;
	uint64_t cookie;
} __attribute__((packed));
_Static_assert(sizeof(struct nbd_simple_reply) == 16, "simple reply header");

#endif
