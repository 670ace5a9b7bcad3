/* Output commit: hold a guest interface's outgoing traffic per epoch and
 * release epoch N only when the secondary has acknowledged it (invariant 1).
 *
 * Two backends, both checkpoint devices (checkpoint/ckpt_dev.h):
 *  - plug: an IFB device fed by an ingress mirred redirect of *all*
 *    protocols from the guest interface, with a sch_plug root qdisc
 *    (libnl-route-3): postsuspend = plug_buffer, commit = release_one.
 *  - nfqueue: for kernels without sch_plug. The guest's IPv4 and IPv6
 *    traffic (bridged or routed) goes to an NFQUEUE; a reader thread takes
 *    the packets, postsuspend notes the last packet id of the epoch, commit
 *    releases every packet up to it with one in-order batch verdict. ARP is
 *    not queued (netfilter cannot queue it); it carries no guest state.
 */
#ifndef HA_NETBUF_NETBUF_H
#define HA_NETBUF_NETBUF_H

#include <stdint.h>

#include "checkpoint/ckpt_dev.h"

enum netbuf_backend {
	NETBUF_AUTO,
	NETBUF_PLUG,
	NETBUF_NFQUEUE,
};

struct netbuf_config {
	const char *ifname;     /* the guest's interface (TAP, vif) */
	enum netbuf_backend backend;
	uint32_t limit;         /* packets held at most (queue length / plug limit) */
	uint16_t queue;         /* NFQUEUE number */
};

/* Parses "auto|plug|nfqueue"; -EINVAL otherwise. */
int netbuf_parse_backend(const char *s, enum netbuf_backend *out);
/* Picks the backend (auto: plug if the kernel has sch_plug, else nfqueue,
 * saying why) and creates the device; setup happens in the epoch loop.
 * Free it with dev->ops->destroy(dev). */
int netbuf_create(const struct netbuf_config *cfg, struct ckpt_dev **out);
/* Removes what a killed process left for ifname (rules, queues, IFB). */
int netbuf_cleanup(const char *ifname);

/* Backends (netbuf/plug.c, netbuf/nfqueue.c). */
int netbuf_nfqueue_create(const struct netbuf_config *cfg, struct ckpt_dev **out);
int netbuf_nfqueue_cleanup(const char *ifname);
int netbuf_plug_create(const struct netbuf_config *cfg, struct ckpt_dev **out);
int netbuf_plug_cleanup(const char *ifname);
/* 1 if the running kernel offers sch_plug, 0 if not, -errno if unknown. */
int netbuf_plug_available(void);

#endif
