/* Wire structures of the checkpoint stream. Nothing but the wire format:
 * see docs/stream-format.md for the specification. All multi-octet fields
 * are little-endian except in the image header, which is big-endian.
 *
 * One byte-order rule for the code: the hosts are little-endian (asserted
 * below: x86-64, like every hypervisor this drives), so the structs below
 * are read and written as they are, by every module; only the image
 * header is converted, where the stream's headers are read and written.
 */
#ifndef HA_CHECKPOINT_STREAM_FORMAT_H
#define HA_CHECKPOINT_STREAM_FORMAT_H

#include <stdint.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "the stream's records are little-endian and used as host structs: a "
	       "big-endian host needs conversions in stream.c, stream_write.c and every "
	       "module that builds or reads a record body");

#define CKPT_PAGE_SHIFT 12
#define CKPT_PAGE_SIZE (1u << CKPT_PAGE_SHIFT)

/* Image header (big-endian on the wire). */
struct ckpt_image_hdr {
	uint64_t marker;
	uint32_t id;
	uint32_t version;
	uint16_t options;
	uint16_t reserved1;
	uint32_t reserved2;
};
_Static_assert(sizeof(struct ckpt_image_hdr) == 24, "image header size");

#define CKPT_IHDR_MARKER UINT64_C(0xFFFFFFFFFFFFFFFF)
#define CKPT_IHDR_ID_XEN 0x58454E46u  /* "XENF": forward stream */
#define CKPT_IHDR_ID_BACK 0x4841424Bu /* "HABK": back channel */
#define CKPT_IHDR_VERSION 3u
#define CKPT_IHDR_VERSION_MIN 2u
#define CKPT_IHDR_BACK_VERSION 1u
#define CKPT_IHDR_OPT_BIG_ENDIAN 0x0001u

struct ckpt_domain_hdr {
	uint32_t type;
	uint16_t page_shift;
	uint16_t reserved;
	uint32_t xen_major;
	uint32_t xen_minor;
};
_Static_assert(sizeof(struct ckpt_domain_hdr) == 16, "domain header size");

#define CKPT_DHDR_X86_PV 0x00000001u
#define CKPT_DHDR_X86_HVM 0x00000002u
#define CKPT_DHDR_X86_PVH 0x00000003u
#define CKPT_DHDR_HAVM 0x4841564Du /* "HAVM": an ha-vm guest on KVM */

struct ckpt_rec_hdr {
	uint32_t type;
	uint32_t length;
};
_Static_assert(sizeof(struct ckpt_rec_hdr) == 8, "record header size");

#define CKPT_REC_OPTIONAL 0x80000000u
#define CKPT_REC_LENGTH_MAX (128u << 20)
#define CKPT_REC_ALIGN 8u

/* Xen's record types. */
#define CKPT_REC_END 0x00000000u
#define CKPT_REC_PAGE_DATA 0x00000001u
#define CKPT_REC_X86_PV_INFO 0x00000002u
#define CKPT_REC_X86_PV_P2M_FRAMES 0x00000003u
#define CKPT_REC_X86_PV_VCPU_BASIC 0x00000004u
#define CKPT_REC_X86_PV_VCPU_EXTENDED 0x00000005u
#define CKPT_REC_X86_PV_VCPU_XSAVE 0x00000006u
#define CKPT_REC_SHARED_INFO 0x00000007u
#define CKPT_REC_X86_TSC_INFO 0x00000008u
#define CKPT_REC_HVM_CONTEXT 0x00000009u
#define CKPT_REC_HVM_PARAMS 0x0000000Au
#define CKPT_REC_TOOLSTACK 0x0000000Bu
#define CKPT_REC_X86_PV_VCPU_MSRS 0x0000000Cu
#define CKPT_REC_VERIFY 0x0000000Du
#define CKPT_REC_CHECKPOINT 0x0000000Eu
#define CKPT_REC_CHECKPOINT_DIRTY_PFN_LIST 0x0000000Fu
#define CKPT_REC_STATIC_DATA_END 0x00000010u
#define CKPT_REC_X86_CPUID_POLICY 0x00000011u
#define CKPT_REC_X86_MSR_POLICY 0x00000012u

/* ha-protect's private range: 0x4841xxxx, optional ones with bit 31. */
#define CKPT_REC_HA_DOMAIN_CONFIG 0xC8410001u
#define CKPT_REC_HA_VMM_STATE 0x48410002u
#define CKPT_REC_HA_PAGE_DATA_Z 0x48410003u
#define CKPT_REC_HA_TRAILER 0xC8410004u
#define CKPT_REC_HA_DISK_WRITE 0x48410005u
#define CKPT_REC_HA_DISK_BARRIER 0x48410006u
#define CKPT_REC_HA_DISK_CONFIG 0x48410007u
#define CKPT_REC_HA_XEN_CONFIG 0xC8410008u /* libxl's JSON configuration of a Xen domain */
#define CKPT_REC_HA_DRBD_DISK 0x48410009u /* a disk the primary replicates with stock DRBD */
#define CKPT_REC_HA_ACK 0x48410010u
#define CKPT_REC_HA_HEARTBEAT 0xC8410011u
#define CKPT_REC_HA_ERROR 0x48410012u
#define CKPT_REC_HA_LINK_TIMER 0xC8410013u /* the sender's down timer */
#define CKPT_REC_HA_VERIFY 0xC8410014u /* a hash of every page, for a verification */
#define CKPT_REC_HA_SWITCHOVER 0x48410015u /* a planned handover of the domain */
#define CKPT_REC_HA_DISK_NEED 0x48410016u /* back channel: chunks a replica may lack */
#define CKPT_REC_HA_POSTCOPY 0x48410017u /* the pages a postcopy checkpoint leaves out */
#define CKPT_REC_HA_PC_REQ 0x48410018u /* back channel: pages the destination waits for */
#define CKPT_REC_HA_PC_END 0x48410019u /* every left-out page sent / placed */

/* HA_SWITCHOVER (ha-ctl switchover), about epoch, the last checkpoint the
 * secondary acknowledged; the primary's domain is suspended for good at
 * its end. Steps, forward: PREPARE (the secondary is to say whether it can
 * run that checkpoint; sent before the primary stops its domain to hand a
 * disk over), GO (run it: the domain is suspended or stopped there).
 * Back: READY (the answer to PREPARE), RUNS (it runs here now). */
struct ckpt_ha_switchover {
	uint64_t epoch;
	uint32_t step;
	uint32_t reserved;
};
_Static_assert(sizeof(struct ckpt_ha_switchover) == 16, "switchover size");
#define CKPT_SWITCH_PREPARE 1u
#define CKPT_SWITCH_GO 2u
#define CKPT_SWITCH_READY 3u
#define CKPT_SWITCH_RUNS 4u

/* HA_POSTCOPY, among the state records of a migration's last checkpoint
 * (ha-protect --migrate --postcopy): the checkpoint carries no pages;
 * those set in the bitmap that follows (nr_pages bits in 64-bit words,
 * least significant bit first; count of them set) were written since the
 * secondary last received them and come after HA_SWITCHOVER (GO), as
 * PAGE_DATA records pushed in the background or asked for with HA_PC_REQ.
 * Such a checkpoint is never a failover's: the copy lacks those pages. */
struct ckpt_ha_postcopy_hdr {
	uint64_t nr_pages;
	uint64_t count;
};
_Static_assert(sizeof(struct ckpt_ha_postcopy_hdr) == 16, "postcopy header size");

/* HA_PC_REQ (back channel, postcopy): the destination's domain touched
 * these pages, which are not there yet: they go before the rest. */
struct ckpt_ha_pc_req_hdr {
	uint32_t count;
	uint32_t reserved;
	/* uint64_t pfns[count]; */
};
_Static_assert(sizeof(struct ckpt_ha_pc_req_hdr) == 8, "postcopy request size");

/* HA_PC_END: forward, every page HA_POSTCOPY named has been sent (pages:
 * how many PAGE_DATA pages that took); back, every one is placed (pages:
 * how many the domain waited for). */
struct ckpt_ha_pc_end {
	uint64_t pages;
	uint64_t reserved;
};
_Static_assert(sizeof(struct ckpt_ha_pc_end) == 16, "postcopy end size");

/* HA_VERIFY, among a checkpoint's state records (ha-ctl verify): every
 * page the primary's domain holds at that checkpoint, with the XXH3-64 of
 * its 4096 octets; the secondary compares its committed copy. */
struct ckpt_ha_verify_hdr {
	uint32_t count;
	uint32_t reserved;
	/* struct { uint64_t pfn, hash; } entries[count], pfns ascending; */
};
_Static_assert(sizeof(struct ckpt_ha_verify_hdr) == 8, "verify header size");

/* PAGE_DATA and HA_PAGE_DATA_Z. */
struct ckpt_page_data_hdr {
	uint32_t count;
	uint32_t reserved;
	/* uint64_t pfn[count]; then the pages */
};
_Static_assert(sizeof(struct ckpt_page_data_hdr) == 8, "page data header size");

#define CKPT_PFN_MASK UINT64_C(0x000FFFFFFFFFFFFF)
#define CKPT_PFN_RESERVED_MASK UINT64_C(0x0FF0000000000000)
#define CKPT_PFN_TYPE_SHIFT 60
#define CKPT_PFN_TYPE_NOTAB 0x0u
#define CKPT_PFN_TYPE_L4TAB 0x4u
#define CKPT_PFN_TYPE_BROKEN 0xDu
#define CKPT_PFN_TYPE_XALLOC 0xEu
#define CKPT_PFN_TYPE_XTAB 0xFu

struct ckpt_page_z_desc {
	uint64_t pfn; /* as a PAGE_DATA pfn entry; data types only */
	uint32_t encoding;
	uint32_t length;
};
_Static_assert(sizeof(struct ckpt_page_z_desc) == 16, "compressed page descriptor size");

#define CKPT_ENC_RAW 0u
#define CKPT_ENC_ZERO 1u
#define CKPT_ENC_ZSTD 2u
#define CKPT_ENC_XOR_ZSTD 3u
#define CKPT_ENC_MAX CKPT_ENC_XOR_ZSTD

struct ckpt_tsc_info {
	uint32_t mode;
	uint32_t khz;
	uint64_t nsec;
	uint32_t incarnation;
	uint32_t reserved;
};
_Static_assert(sizeof(struct ckpt_tsc_info) == 24, "TSC info size");

struct ckpt_hvm_params_hdr {
	uint32_t count;
	uint32_t reserved;
	/* struct { uint64_t index, value; } entries[count]; */
};
_Static_assert(sizeof(struct ckpt_hvm_params_hdr) == 8, "HVM params header size");

struct ckpt_ha_domain_config {
	uint64_t nr_pages;
	uint32_t vcpus;
	uint32_t flags;
	char name[64];
	uint8_t mac[6];
	uint8_t reserved[2];
};
_Static_assert(sizeof(struct ckpt_ha_domain_config) == 88, "domain config size");

#define CKPT_CFG_TRAILERS 0x1u
#define CKPT_CFG_COMPRESSED 0x2u
#define CKPT_CFG_KNOWN (CKPT_CFG_TRAILERS | CKPT_CFG_COMPRESSED)

struct ckpt_ha_vmm_state_hdr {
	uint32_t format;
	uint32_t reserved;
	/* opaque ha-vm state */
};
_Static_assert(sizeof(struct ckpt_ha_vmm_state_hdr) == 8, "vmm state header size");

struct ckpt_ha_trailer {
	uint64_t epoch;
	uint64_t checksum;
	uint32_t records;
	uint32_t algorithm;
	uint64_t pages;
};
_Static_assert(sizeof(struct ckpt_ha_trailer) == 32, "trailer size");

#define CKPT_CSUM_XXH3_64 1u

/* A replicated disk joins the stream: sent before any of its writes. */
struct ckpt_ha_disk_config {
	uint32_t disk;  /* index, 0..CKPT_DISK_MAX-1 */
	uint32_t flags; /* CKPT_DISKCFG_* */
	uint64_t size;  /* octets */
	uint8_t source_id[16]; /* identity of the primary's image and its history */
	uint64_t sync_bytes;   /* octets of SYNC writes before the first barrier */
	uint64_t reserved;
};
_Static_assert(sizeof(struct ckpt_ha_disk_config) == 48, "disk config size");

#define CKPT_DISK_MAX 16u

/* HA_DRBD_DISK: once per session, before the first CHECKPOINT. Mandatory,
 * so that a secondary that cannot promote the resource refuses to protect
 * rather than fail at failover. */
struct ckpt_ha_drbd_disk {
	uint32_t minor; /* on the primary */
	uint32_t reserved;
	char resource[64]; /* NUL-terminated, NUL-padded */
};
_Static_assert(sizeof(struct ckpt_ha_drbd_disk) == 72, "drbd disk size");
/* The replica is resynchronised from scratch (else only the regions that
 * changed since it last matched source_id are sent). */
#define CKPT_DISKCFG_FULL 0x1u
/* The resynchronisation includes the chunks the replica asked for with
 * HA_DISK_NEED (the primary's ha-protect sets it as it forwards the
 * record). */
#define CKPT_DISKCFG_NEED_MET 0x2u

/* HA_DISK_NEED (back channel), just before the HA_ERROR that refuses an
 * incremental resynchronisation: the replica is a complete copy of
 * source_id except, maybe, in the chunks set in the bitmap that follows
 * (nchunks bits in 64-bit words, least significant bit first; chunk
 * octets each). It is what a failed primary wrote that its secondary never
 * committed, as its bitmap file recorded: on failback, the old primary's
 * image is the replica, and these chunks must come again. The primary
 * resends them in its next resynchronisation (CKPT_DISKCFG_NEED_MET). */
struct ckpt_ha_disk_need_hdr {
	uint32_t disk;
	uint32_t chunk;	   /* octets: a power of two, at least 4096 */
	uint64_t size;	   /* the disk's size, octets */
	uint8_t source_id[16];
	uint64_t nchunks;  /* ceil(size / chunk) */
};
_Static_assert(sizeof(struct ckpt_ha_disk_need_hdr) == 40, "disk need size");

struct ckpt_ha_disk_write_hdr {
	uint64_t epoch;
	uint64_t offset;
	uint32_t length;
	uint16_t disk;
	uint16_t flags;
	/* data: length octets, none with ZERO */
};
_Static_assert(sizeof(struct ckpt_ha_disk_write_hdr) == 24, "disk write header size");

#define CKPT_DISK_FUA 0x1u  /* the guest asked for forced unit access */
#define CKPT_DISK_ZERO 0x2u /* the range reads as zeros; no data follows */
#define CKPT_DISK_SYNC 0x4u /* resynchronisation: current contents, not a guest write */
#define CKPT_DISK_KNOWN (CKPT_DISK_FUA | CKPT_DISK_ZERO | CKPT_DISK_SYNC)

struct ckpt_ha_disk_barrier {
	uint64_t epoch;
	uint64_t writes; /* writes of this disk in epoch (SYNC ones excluded) */
	uint32_t disk;
	uint32_t reserved;
};
_Static_assert(sizeof(struct ckpt_ha_disk_barrier) == 24, "disk barrier size");

struct ckpt_ha_ack {
	uint64_t epoch;
	uint32_t flags;
	uint32_t reserved;
};
_Static_assert(sizeof(struct ckpt_ha_ack) == 16, "ack size");

#define CKPT_ACK_MEMORY 0x1u
#define CKPT_ACK_DISK 0x2u

struct ckpt_ha_heartbeat {
	uint64_t seq;
	uint64_t sent_ns;
	uint64_t committed_epoch;
};
_Static_assert(sizeof(struct ckpt_ha_heartbeat) == 24, "heartbeat size");

/* Sent once by each side of a link before its heartbeats: the peer then
 * sends heartbeats often enough for this side's down timer, which may be
 * shorter than its own. */
struct ckpt_ha_link_timer {
	uint32_t down_ms;
	uint32_t reserved;
};
_Static_assert(sizeof(struct ckpt_ha_link_timer) == 8, "link timer size");

struct ckpt_ha_error_hdr {
	uint32_t code;
	uint32_t reserved;
	/* message, UTF-8, no NUL */
};
_Static_assert(sizeof(struct ckpt_ha_error_hdr) == 8, "error header size");

#endif
