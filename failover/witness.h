/* The witness: a third party that decides which host of a pair may serve
 * when the two cannot see each other.
 *
 * ha-witness keeps one lease per pair (named after the domain). A lease has
 * a holder ("primary" or "secondary"), an expiry and a generation that
 * changes whenever the holder changes. The primary renews its lease every
 * TTL/6 for as long as it runs; the secondary asks for it only when it lost
 * the primary. The witness grants a lease to its holder (renewal) or, once
 * the lease has expired, to anyone:
 *
 *   primary alive, sees the witness   -> it keeps renewing; the secondary is
 *                                        DENIED and does not activate
 *   primary dead or cut off from it   -> the lease expires; the secondary is
 *                                        GRANTED and activates
 *
 * The primary counts its lease from the moment it *sent* the request, so
 * its view expires before the witness's does. Without the secondary it
 * runs unprotected (output released) only while its lease is valid, which
 * it counts as TTL/2: half the lease is a margin for a primary that is
 * slow to act (an overloaded host); otherwise it pauses the domain and
 * holds its output. A
 * renewal that comes back with another generation means the secondary held
 * the lease meanwhile: the primary's copy is superseded and stays paused.
 * A restarted witness grants nothing for one maximum TTL, so leases granted
 * before the restart run out first, and its generations start above those
 * it handed out before. A primary that lost its secondary while it held no
 * lease cannot know whether the secondary took over since: it treats its
 * copy as superseded.
 *
 * The lease alone does not keep the secondary's copy current: a primary
 * that runs on without its secondary releases output that copy does not
 * have, and if that primary then dies or loses the witness, activating the
 * copy would forget what clients already saw. So the primary's requests
 * carry a claim, and the witness keeps the last one per pair:
 *
 *   alone      sent (and granted) before the primary releases any output
 *              without its secondary: the secondary's copy is STALE. The
 *              witness then denies the secondary for good, with "stale",
 *              even after the primary's lease expired; the secondary
 *              discards its copy instead of activating it.
 *   protected  the secondary acknowledged a checkpoint of a new session:
 *              its copy is current again; the mark is cleared.
 *
 * Claims are ordered by (run, seq): run names one ha-protect process, seq
 * counts its requests, so a claim delayed in the network cannot undo a
 * later one of the same process; a new run's claim replaces an old run's.
 * Holders, generations and claims (not expiries) are kept in a state file
 * (ha-witness --state), written and made durable before a reply that
 * changed them: a restarted witness keeps them, so a primary that renews
 * after the restart's quiet time keeps its generation (a new one would tell
 * it the secondary took over), and a stale copy stays stale.
 *
 * Wire (inside the pair's TLS, one request per connection, text lines):
 *   LEASE <pair> <holder> <ttl_ms>[ <claim> <run:16 hex> <seq>]\n
 *   GRANTED <generation> <ttl_ms>\n
 *   DENIED <holder> <generation> <remaining_ms>[ stale]\n
 *   ERROR <text>\n
 */
#ifndef HA_FAILOVER_WITNESS_H
#define HA_FAILOVER_WITNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "failover/tls.h"

#define FO_WITNESS_NAME_MAX 64
#define FO_WITNESS_TTL_MIN 100

/* What a primary tells the witness with a request (see above). */
enum fo_lease_claim_kind { FO_CLAIM_NONE, FO_CLAIM_ALONE, FO_CLAIM_PROTECTED };
struct fo_lease_claim {
	enum fo_lease_claim_kind kind;
	uint64_t run; /* this process: random at start */
	uint64_t seq; /* increases with every request of the run */
};

struct fo_lease_reply {
	bool granted;
	bool stale; /* denied: the primary ran without the secondary since */
	char holder[FO_WITNESS_NAME_MAX]; /* the current holder when denied */
	uint64_t generation;
	unsigned ms; /* granted: the TTL; denied: until the lease expires */
};

/* ---- client ---- */

/* Asks the witness at hostport for the pair's lease, with a claim (NULL or
 * FO_CLAIM_NONE: none). Returns 0 with *out filled (granted or denied), or
 * -errno when the witness could not be asked (unreachable, TLS refused, bad
 * answer; err says which). The whole exchange is bounded by timeout_ms. */
int fo_witness_ask(const char *hostport, struct fo_tls *tls, const char *pair, const char *holder,
		   unsigned ttl_ms, const struct fo_lease_claim *claim, unsigned timeout_ms,
		   struct fo_lease_reply *out, char *err, size_t errlen);

/* ---- server side: the lease table, apart from any I/O ---- */

struct fo_lease_table;

/* max_ttl_ms: the longest lease granted; also how long after its start
 * (now_ms) the table grants nothing, for leases from before a restart.
 * Generations count up from gen_base + 1: a base above every generation of
 * an earlier run of the witness (ha-witness takes the wall clock) keeps a
 * primary from mistaking a new holder's generation for the one it held. */
int fo_lease_table_new(uint64_t now_ms, unsigned max_ttl_ms, uint64_t gen_base,
		       struct fo_lease_table **out);
void fo_lease_table_free(struct fo_lease_table *t);

/* The state file (see above): load into a new table (0; -ENOENT if there
 * is none; -EBADMSG, with err, if it is damaged), save atomically and
 * durably (write, fsync, rename, fsync of the directory). changed: whether
 * a request changed what the file holds since the last save. */
int fo_lease_table_load(struct fo_lease_table *t, const char *path, char *err, size_t errlen);
int fo_lease_table_save(struct fo_lease_table *t, const char *path, char *err, size_t errlen);
bool fo_lease_table_changed(const struct fo_lease_table *t);

/* What ha-ctl shows of the table: text lines, or for machines
 * (common/report.h). */
struct report;
void fo_lease_table_status(const struct fo_lease_table *t, uint64_t now_ms, FILE *out);
void fo_lease_table_report(const struct fo_lease_table *t, uint64_t now_ms, struct report *r);

enum { FO_LEASE_ERROR = -1, FO_LEASE_RENEWED, FO_LEASE_NEW_HOLDER, FO_LEASE_DENIED };
/* Handles one request line (without the newline); writes the reply line
 * (with it) to reply and returns what happened (FO_LEASE_*). */
int fo_lease_handle(struct fo_lease_table *t, const char *line, uint64_t now_ms, char *reply,
		    size_t len);

#endif
