/* Hypervisor backends: what the replication core needs from a domain.
 *
 * A domain is named "kvm:NAME" (an ha-vm instance) or "xen:NAME|ID"; the
 * prefix picks the backend. One algorithm drives every backend through
 * struct hv_ops: its save side (struct hv_save_ops, on a running domain,
 * struct hv_dom) on the primary, its restore side (struct hv_restore_ops,
 * on the secondary's copy, struct hv_copy) on the secondary. All callbacks
 * return 0 or -errno unless said otherwise; members marked "may be NULL"
 * are optional.
 */
#ifndef HA_HV_HV_H
#define HA_HV_HV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/bitmap.h"

struct hv_dom;  /* a domain being protected (the primary's) */
struct hv_copy; /* the secondary's copy of one */

struct hv_info {
	char name[64];
	/* The guest-physical map in 4 KiB pages (pfns 0..nr_pages-1); on Xen
	 * it may have holes (page() returns NULL there). */
	uint64_t nr_pages;
	uint32_t vcpus;
	uint8_t mac[6];       /* the guest NIC's MAC, zero if none */
	char iface[16];       /* host interface carrying its traffic ("" if none) */
	/* Its disk: as the VMM opens it (primary), or the replica the incoming
	 * domain must use (secondary); "" if none. */
	char disk[256];
	uint32_t domain_type; /* CKPT_DHDR_* */
	uint32_t xen_major, xen_minor;
};

/* A domain's CPU and device state as stream records, in one arena. */
#define HV_STATE_RECS_MAX 16
struct hv_state {
	uint32_t nrecs;
	struct {
		uint32_t type; /* CKPT_REC_* */
		uint32_t len;
		size_t off;    /* into buf */
	} recs[HV_STATE_RECS_MAX];
	uint8_t *buf;
	size_t len, cap;
};

/* Appends a record to st (growing its buffer). */
int hv_state_add(struct hv_state *st, uint32_t type, const void *body, size_t len);
void hv_state_clear(struct hv_state *st);
void hv_state_free(struct hv_state *st);
int hv_state_copy(struct hv_state *dst, const struct hv_state *src);
/* The body of st's first record of type (its length into len); NULL when
 * st has none. */
const void *hv_state_find(const struct hv_state *st, uint32_t type, uint32_t *len);

/* The primary's side: a running domain, protected (Xen's save ops). */
struct hv_save_ops {
	int (*open)(const char *name, struct hv_dom **out);
	void (*close)(struct hv_dom *d);
	int (*info)(struct hv_dom *d, struct hv_info *out);
	/* Start tracking writes; the first harvest after this reports pages
	 * written since it was called. */
	int (*dirty_start)(struct hv_dom *d);
	int (*dirty_stop)(struct hv_dom *d); /* may be NULL */
	/* Sets exactly the pages written since the previous harvest (or
	 * dirty_start) in dirty, which the caller has zeroed. */
	int (*harvest)(struct hv_dom *d, struct bitmap *dirty);
	int (*pause)(struct hv_dom *d);
	int (*resume)(struct hv_dom *d);
	/* State of a paused domain, as records (HA_VMM_STATE for ha-vm). */
	int (*save_state)(struct hv_dom *d, struct hv_state *st);
	/* Records sent once at the start of the stream, after the domain
	 * configuration and before any page (Xen: STATIC_DATA_END, which a v3
	 * stream must carry before its first PAGE_DATA). May be NULL. */
	int (*stream_start)(struct hv_dom *d, struct hv_state *st);
	/* The guest's page pfn, mapped for reading. Valid until close. NULL if pfn is out of range
	 * or is a hole in the guest's physical map (Xen: no page there); the
	 * core skips such pfns. */
	uint8_t *(*page)(struct hv_dom *d, uint64_t pfn);
	/* Ends the suspended domain for good: a switchover handed it over and
	 * its copy runs elsewhere now. May be NULL (no switchover). */
	int (*stop)(struct hv_dom *d);
	/* Before a switchover's copy starts while the domain is still here,
	 * suspended: give up what the copy takes (GIVE; Xen: the domain's
	 * name, renamed NAME--handedover as xl migrate's source is renamed),
	 * or take it back (!GIVE: the copy did not start). May be NULL. */
	int (*release)(struct hv_dom *d, bool give);
};

/* What holding and activating a copy of a domain takes on the secondary,
 * as far as the secondary's own configuration tells (for its preflight). */
#define HV_NEEDS_MAX_NETS 8
struct hv_needs {
	char source[256]; /* where it was read; "" when nowhere (all unknown) */
	uint64_t mem_mib; /* the domain's memory; 0 when unknown */
	/* Free for the copy in the hypervisor (Xen's free memory), when
	 * host_free_known. */
	uint64_t host_free_mib;
	int host_free_known;
	/* The host interfaces the copy's network plugs into. */
	unsigned nnets;
	struct {
		char name[32];
		int bridge; /* it must be a bridge (else any interface) */
		char what[48]; /* "vif 0", "--tap" */
	} nets[HV_NEEDS_MAX_NETS];
	/* Where activation writes a file the size of the domain's memory
	 * ("" when it writes none). */
	char image_dir[256];
};

/* The secondary's side: its copy of a domain, filled by the receiver and
 * activated on failover (Xen's restore ops). */
struct hv_restore_ops {
	/* A paused, empty domain like info, whose memory the receiver fills. */
	int (*create)(const struct hv_info *info, struct hv_copy **out);
	/* The copy's page pfn, mapped for writing; NULL as save_ops' page. */
	uint8_t *(*page)(struct hv_copy *c, uint64_t pfn);
	/* The copy's page pfn for reading, without allocating it: NULL where
	 * the copy holds none, or keeps none (Xen's standby: the pages it
	 * shares with this host's daemons). NULL: page() serves. */
	const uint8_t *(*peek)(struct hv_copy *c, uint64_t pfn);
	/* The records the primary sent at the stream's start, before its first
	 * page (save_ops' stream_start: on Xen the CPU policy and
	 * STATIC_DATA_END). May be NULL. */
	int (*stream_start)(struct hv_copy *c, const struct hv_state *st);
	/* Called after each checkpoint is committed (its pages written through
	 * page(), st its state records), before it is acknowledged: the
	 * backend may move the copy (Xen builds its hot standby at the first).
	 * -errno: the copy cannot be kept (the session ends as a local
	 * failure and the copy is discarded). May be NULL. */
	int (*commit)(struct hv_copy *c, const struct hv_state *st);
	/* Load st and run the domain: failover. It announces itself on the
	 * network (gratuitous ARP) as part of resuming. */
	int (*activate)(struct hv_copy *c, const struct hv_state *st);
	/* Writes the copy at st to the file FD as the hypervisor's own
	 * toolstack saves a domain (Xen: a file `xl restore` reads), instead
	 * of running it. May be NULL (no such format). */
	int (*save_file)(struct hv_copy *c, const struct hv_state *st, int fd);
	/* Postcopy (a migration's destination), before activate: the pages
	 * set in NEED (nr_pages bits) are not here yet. Drops what the copy
	 * holds of them and returns a userfaultfd (*uffd, the caller's to
	 * close) reporting the domain's first touch of one, its memory at
	 * *base in the domain's address space; the caller places each page
	 * (UFFDIO_COPY) and must never touch one through page() meanwhile.
	 * May be NULL (no postcopy on this backend). */
	int (*postcopy_start)(struct hv_copy *c, const uint64_t *need, size_t nwords, int *uffd,
			      uint64_t *base);
	/* Every page is placed: the domain runs on its own. */
	int (*postcopy_end)(struct hv_copy *c);
	/* Tear down a copy that will never run. May be NULL. */
	void (*destroy)(struct hv_copy *c);
	/* Frees the handle (an activated domain runs on). */
	void (*close)(struct hv_copy *c);
	/* For ha-receive --check: what a copy of domain NAME needs here, into
	 * OUT. 0, or -errno with what is wrong in ERR (a configuration that
	 * does not parse). May be NULL. */
	int (*needs)(const char *name, struct hv_needs *out, char *err, size_t errlen);
};

struct hv_ops {
	const char *prefix; /* "kvm", "xen" */
	const struct hv_save_ops *save;
	const struct hv_restore_ops *restore; /* NULL: cannot keep copies */
};

/* The backend for "prefix:name", with *name pointing after the prefix.
 * A name without a prefix uses the default backend (kvm). NULL if the
 * prefix is unknown. */
const struct hv_ops *hv_lookup(const char *spec, const char **name);

/* Whether domain SPEC ("prefix:name") runs on this host: its backend can
 * open it. Quiet: logs nothing either way. */
bool hv_domain_here(const char *spec);

#endif
