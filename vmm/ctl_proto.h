/* ha-vm's control protocol (UNIX stream socket $HA_RUN_DIR/ha-vm/NAME.sock,
 * default /run/ha-vm). Requests and replies are a fixed header and a body;
 * the MEMFD reply carries the guest memory's descriptor (SCM_RIGHTS).
 */
#ifndef HA_VMM_CTL_PROTO_H
#define HA_VMM_CTL_PROTO_H

#include <stdint.h>

#define VMM_CTL_VERSION 3u
#define VMM_CTL_BODY_MAX (64u << 20)

struct vmm_ctl_req {
	uint32_t op;
	uint32_t len; /* body octets that follow */
};

struct vmm_ctl_rep {
	int32_t status; /* 0 or -errno */
	uint32_t len;
};

_Static_assert(sizeof(struct vmm_ctl_req) == 8, "request header");
_Static_assert(sizeof(struct vmm_ctl_rep) == 8, "reply header");

enum vmm_ctl_op {
	VMM_OP_INFO = 1,    /* -> struct vmm_ctl_info */
	VMM_OP_MEMFD,       /* -> empty body + the memfd */
	VMM_OP_PAUSE,
	VMM_OP_RESUME,
	VMM_OP_DIRTY_RESET, /* forget what was dirtied so far */
	VMM_OP_HARVEST,     /* -> bitmap of nr_pages bits in u64 words */
	VMM_OP_GET_STATE,   /* paused -> state blob */
	VMM_OP_ACTIVATE,    /* incoming, body = state blob: load and run */
	VMM_OP_STOP,        /* stop the VM; ha-vm exits */
	/* incoming, body = the bitmap of pages not here yet (nr_pages bits in
	 * u64 words) -> struct vmm_ctl_postcopy + the userfaultfd. The
	 * connection that asked serves the pages: if it closes before
	 * POSTCOPY_END, the guest's memory can never be whole and ha-vm
	 * stops it. */
	VMM_OP_POSTCOPY,
	VMM_OP_POSTCOPY_END, /* every page is in */
};

struct vmm_ctl_postcopy {
	uint64_t base; /* guest memory's address in ha-vm (the userfaultfd's) */
};

#define VMM_INFO_RUNNING 0x1u
#define VMM_INFO_PAUSED 0x2u
#define VMM_INFO_INCOMING 0x4u

struct vmm_ctl_info {
	uint32_t version;
	uint32_t flags;
	uint64_t mem_bytes;
	uint32_t vcpus;
	uint32_t reserved;
	char name[64];
	char tap[16];
	uint64_t exits;
	char disk[248]; /* as given to --disk, "" if none */
	uint8_t mac[6]; /* the guest NIC's, as its boot page says; zero if none */
	uint8_t reserved2[2];
};

_Static_assert(sizeof(struct vmm_ctl_info) == 368, "info body");

#endif
