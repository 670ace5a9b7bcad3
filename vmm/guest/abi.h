/* The contract between ha-vm and its guests: I/O ports and the boot
 * information page. Guests run in 64-bit mode at CPL3 with IOPL 3 and talk
 * to the VMM only through these ports (every access is a VM exit handled
 * synchronously by the vCPU thread) and through the pages named here.
 *
 * Guest physical layout (identity-mapped, 2 MiB pages, user-accessible):
 *   0x001000 GDT          0x002000 PML4, PDPT, PDs
 *   0x010000 boot info    0x020000 NIC RX buffer   0x021000 NIC TX buffer
 *   0x080000 top of stack (grows down)
 *   0x100000 guest program (up to 1 MiB), then .bss
 *   0x200000 .. end of RAM: free for the guest (heap_start in boot info)
 */
#ifndef HA_VMM_GUEST_ABI_H
#define HA_VMM_GUEST_ABI_H

#include <stdint.h>

#define HAVM_GPA_GDT 0x1000u
#define HAVM_GPA_PML4 0x2000u
#define HAVM_GPA_BOOTINFO 0x10000u
#define HAVM_GPA_NIC_RX 0x20000u
#define HAVM_GPA_NIC_TX 0x21000u
#define HAVM_GPA_STACK_TOP 0x80000u
#define HAVM_GPA_CODE 0x100000u
#define HAVM_CODE_MAX 0x100000u
#define HAVM_GPA_HEAP 0x200000u
#define HAVM_NIC_BUF 2048u

/* out8: one character of console output (lines go to the VMM's log). */
#define HAVM_PORT_CONSOLE 0x3f8
/* out32 N: wait until a frame can be received, an event is pending, or N
 * microseconds pass, whichever comes first. Keeps an idle guest off the CPU. */
#define HAVM_PORT_IDLE 0x500
/* in32: pending events, cleared by the read (HAVM_EV_*). */
#define HAVM_PORT_EVENTS 0x504
/* out32 LEN: transmit LEN octets from the TX buffer. */
#define HAVM_PORT_NIC_TX 0x510
/* in32: receive one frame into the RX buffer; its length, 0 if none. */
#define HAVM_PORT_NIC_RX 0x514
/* out32 CODE: the guest is done; the VMM stops with that status. */
#define HAVM_PORT_EXIT 0x520

/* out32 GPA: run the block request at GPA (struct havm_blk_req) now; the
 * VMM writes its status (and, for INFO, the disk size) back into it. */
#define HAVM_PORT_BLK 0x530

#define HAVM_BLK_READ 0u
#define HAVM_BLK_WRITE 1u
#define HAVM_BLK_FLUSH 2u
#define HAVM_BLK_INFO 3u
#define HAVM_BLK_MAX (1u << 20) /* octets per request */
#define HAVM_BLK_FUA 0x1u       /* flags: the write is durable on return */

struct havm_blk_req {
	uint32_t op;
	int32_t status;  /* out: 0 or -errno (-ENODEV 19: no disk) */
	uint64_t offset; /* octets, 512-aligned */
	uint64_t buf;    /* guest physical address of the data */
	uint32_t len;    /* octets, 512-aligned, <= HAVM_BLK_MAX */
	uint32_t flags;
	uint64_t size;   /* out (INFO): disk size in octets */
};

/* The domain was moved to another host (activated after a failover or a
 * migration): announce yourself on the network again. */
#define HAVM_EV_MOVED 0x1u

#define HAVM_BOOT_MAGIC UINT64_C(0x544f4f424d564148) /* "HAVMBOOT" */

struct havm_bootinfo {
	uint64_t magic;
	uint64_t mem_bytes;
	uint64_t heap_start;
	uint64_t tsc_khz;
	uint8_t mac[6];
	uint8_t has_nic;
	uint8_t reserved;
	uint32_t ip;      /* host byte order; 0: no address */
	uint32_t netmask;
	uint32_t gateway;
	uint64_t arg[4];  /* guest-specific parameters (--arg) */
	char name[64];
};

#endif
