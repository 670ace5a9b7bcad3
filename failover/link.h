/* A replication link: one TCP connection carrying the forward stream one
 * way and the back channel the other, with heartbeats and a down timer.
 *
 * Writes are serialised (records never interleave); a heartbeat thread
 * sends HA_HEARTBEAT every interval so that the peer's down timer only
 * fires when this side is really gone. The two sides' down timers may
 * differ (a primary must outlast its secondary's fencing): each tells the
 * other its own (HA_LINK_TIMER), and heartbeats go every quarter of the
 * shorter one. Reads and writes that see no progress for the down timer
 * fail with -EAGAIN (SO_RCVTIMEO), so a dead or
 * partitioned peer is detected within that time; writes get a longer bound
 * (a live peer may be busy, and its heartbeats say it is alive).
 */
#ifndef HA_FAILOVER_LINK_H
#define HA_FAILOVER_LINK_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/uio.h>

#include "checkpoint/stream.h"
#include "failover/tls.h"

struct fo_link;

/* Takes ownership of fd (closed on failure too). down_ms: the down timer;
 * heartbeats go every down_ms / 4 (or a quarter of the peer's, if
 * shorter). With tls, runs the TLS handshake first (bounded by
 * max(4 x down_ms, 5 s)) and carries everything inside it;
 * NULL means plain TCP (--insecure). A failed handshake returns its error
 * (-EPROTO: authentication; see tls.h) with the reason in err. */
int fo_link_open(int fd, unsigned down_ms, struct fo_tls *tls, struct fo_link **out, char *err,
		 size_t errlen);
/* fo_link_open() without TLS (files, and --insecure). */
int fo_link_new(int fd, unsigned down_ms, struct fo_link **out);
/* "TLS 1.3 AES-256-GCM, peer CN=b" or "plain TCP (--insecure)". */
const char *fo_link_security(const struct fo_link *l);
/* Closes the connection (waking any blocked reader or writer) and frees. */
void fo_link_free(struct fo_link *l);
/* Wakes every blocked reader and writer; later calls fail. */
void fo_link_shutdown(struct fo_link *l);

/* Writes the image and domain headers of this side's stream. */
int fo_link_headers(struct fo_link *l, uint32_t ihdr_id, uint32_t domain_type, uint32_t xen_major,
		    uint32_t xen_minor);
/* Tells the peer this side's down timer (HA_LINK_TIMER), then starts
 * heartbeats carrying *committed (the last committed epoch). */
int fo_link_heartbeat_start(struct fo_link *l, const _Atomic uint64_t *committed);
/* The next record the peer sent that is not about the link itself: its
 * HA_LINK_TIMER (heartbeats from then on go often enough for its timer
 * too) and its HA_HEARTBEATs (their arrival is all the down timer needs)
 * are taken here. 0 or -errno, as ckpt_reader_next(). */
int fo_link_next(struct fo_link *l, struct ckpt_record *rec);

/* Serialised writers (see checkpoint/stream.h). */
int fo_link_record(struct fo_link *l, uint32_t type, const struct iovec *iov, int iovcnt);
int fo_link_pages(struct fo_link *l, uint32_t type, const struct iovec *iov, int iovcnt,
		  uint32_t npages);
int fo_link_page_data(struct fo_link *l, const uint64_t *pfns, const void *const *pages,
		      uint32_t count);
int fo_link_checkpoint(struct fo_link *l, uint64_t epoch);
int fo_link_end(struct fo_link *l);
/* Also write everything this side sends to fd (ha-protect --save). */
void fo_link_tee(struct fo_link *l, int fd);
uint64_t fo_link_bytes_sent(struct fo_link *l);

/* The reader of what the peer sends. Owned by the link. */
struct ckpt_reader *fo_link_reader(struct fo_link *l);

#endif
