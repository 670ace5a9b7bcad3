/* Why one closed epoch at a time, and why that is enough.
 *
 * sch_plug (net/sched/sch_plug.c) is a FIFO with three counters:
 *   enqueue        pkts_current_epoch++
 *   BUFFER         pkts_last_epoch = pkts_current_epoch; pkts_current_epoch = 0
 *   RELEASE_ONE    pkts_to_release += pkts_last_epoch; pkts_last_epoch = 0
 *   dequeue        only while pkts_to_release > 0 (then pkts_to_release--)
 * So the queue is, from its head: packets counted in pkts_to_release
 * (leaving), one closed segment (pkts_last_epoch), the open segment
 * (pkts_current_epoch). A second BUFFER before the RELEASE_ONE of the
 * first overwrites pkts_last_epoch: the older segment is still queued but
 * no count refers to it, and the next RELEASE_ONE lets out as many packets
 * from the head as the newer segment holds: the older epoch and part of
 * the newer one, before the newer one's ACK. The epoch loop pipelines
 * (--max-inflight): postsuspend(N+1) comes before commit(N) whenever an
 * ACK takes longer than an interval, which is when that happened.
 *
 * The rules here:
 *  R1  BUFFER only when the qdisc holds no closed segment (!closed), so
 *      pkts_last_epoch is never overwritten: each closed segment is let out
 *      by the one RELEASE_ONE that follows it, and that one only.
 *  R2  BUFFER only in postsuspend(N), while the guest is paused: the open
 *      segment then holds packets of epochs <= N only (N's own and those of
 *      the epochs merged since the last BUFFER; a packet still on its way
 *      lands in a later segment: let out later, never earlier). The closed
 *      segment is labelled N (closed_at).
 *  R3  RELEASE_ONE only in commit(M) with M >= closed_at.
 * Safety: by induction over the commands, pkts_to_release counts exactly
 * the packets of released segments still queued (each RELEASE_ONE adds a
 * segment's size, each dequeue takes one of them from the head, and the
 * FIFO keeps every released segment ahead of the closed and open ones). So
 * a dequeued packet belongs to a segment released by some commit(M) with
 * M >= its label (R3) >= its epoch (R2): no packet of epoch N leaves
 * before commit(N), whatever the pipeline depth.
 *
 * Cost: a postsuspend(N) that finds a closed segment (labelled L < N)
 * sends nothing; N's packets stay in the open count and go with the next
 * segment, closed at the first postsuspend P after commit(L) and let out
 * at commit(P). With at most d epochs closed and unacknowledged, P <= L + d
 * <= N + d - 1: epoch N's output leaves by commit(N + d - 1), by its own
 * commit when d = 1 (then every postsuspend finds no closed segment and
 * the commands are the plain BUFFER, RELEASE_ONE alternation). Closing the
 * merged epochs earlier, at commit(L), would be no better: the guest runs
 * then, the segment would hold packets of the running epoch R and could
 * only go at commit(R) >= commit(P), while the rest of R waited longer.
 * One qdisc tells apart no finer: the cost is that of sch_plug's single
 * count. The NFQUEUE backend marks every epoch's end and has no such cost.
 */
#include "netbuf/plug_epochs.h"

#include <errno.h>

int netbuf_plug_decide(const struct netbuf_plug_epochs *s, enum netbuf_plug_event ev,
		       uint64_t epoch, struct netbuf_plug_epochs *next, enum netbuf_plug_cmd *cmd)
{
	*next = *s;
	*cmd = NETBUF_PLUG_NONE;
	if (ev == NETBUF_PLUG_POSTSUSPEND) {
		if (s->any && epoch <= s->last)
			return -EINVAL;
		next->any = true;
		next->last = epoch;
		if (s->closed) { /* R1: merged into the next segment */
			next->merged = true;
			next->merged_to = epoch;
			return 0;
		}
		next->closed = true; /* R2 */
		next->closed_at = epoch;
		next->merged = false;
		*cmd = NETBUF_PLUG_BUFFER;
		return 0;
	}
	if (!s->any || epoch > s->last)
		return -EINVAL;
	if (s->closed && s->closed_at <= epoch) { /* R3 */
		next->closed = false;
		*cmd = NETBUF_PLUG_RELEASE_ONE;
	}
	return 0;
}
