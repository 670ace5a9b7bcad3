#include "primary/status.h"

const char *const prot_state_names[PROT_NSTATES] = {"syncing", "protected", "degraded",
						    "stopping"};

/* The interval controller's lines, and the quantiles and raw histograms
 * that ha-sla differences between two snapshots. */
static void print_auto(const struct prot_status *st, FILE *out)
{
	const struct prot_stats *s = &st->stats;
	const struct ival_est *e = &st->est;
	char buf[HIST_BUCKETS * 36]; /* "MID:COUNT " for every bucket fits */

	if (st->auto_on)
		fprintf(out,
			"interval_mode: auto (p99 target %u ms, range %u..%u ms%s)\n"
			"interval_auto: aim %u ms, predicted_p99 %.1f ms, dirty %.2f pages/ms, "
			"cost %.2f us/page, ack_fixed %.0f us, ack_fixed_tail %.0f us, hold %u ms, "
			"changes %llu, observations %llu\n",
			st->sla_p99_ms, st->interval_min_ms, st->interval_max_ms,
			e->unreachable ? ", OUT OF REACH" : "", e->aim_ms, e->predicted_us / 1000,
			e->rate_ppms, e->cost_us, e->base_us, e->base_hi_us, e->hold_ms,
			(unsigned long long)e->changes, (unsigned long long)e->observations);
	else
		fprintf(out, "interval_mode: fixed\n");
	fprintf(out, "pause_quantiles_us: p50 %llu p99 %llu\n",
		(unsigned long long)hist_quantile(&s->pause_us, 0.5),
		(unsigned long long)hist_quantile(&s->pause_us, 0.99));
	fprintf(out, "ack_quantiles_us: p50 %llu p99 %llu\n",
		(unsigned long long)hist_quantile(&s->ack_us, 0.5),
		(unsigned long long)hist_quantile(&s->ack_us, 0.99));
	fprintf(out, "totals: epochs %llu pages %llu wire_bytes %llu raw_bytes %llu acks %llu "
		     "stretched %llu\n",
		(unsigned long long)s->epochs, (unsigned long long)s->pages_sum,
		(unsigned long long)s->wire_sum, (unsigned long long)s->raw_sum,
		(unsigned long long)s->acks, (unsigned long long)s->stretched);
	hist_format(&s->pause_us, buf, sizeof(buf));
	fprintf(out, "pause_hist_us: %s\n", buf);
	hist_format(&s->ack_us, buf, sizeof(buf));
	fprintf(out, "ack_hist_us: %s\n", buf);
}

void prot_sync_progress(const struct prot_sync *s, uint64_t now_ns, unsigned *pct, double *mibs,
			long *eta_s)
{
	double secs = (double)(now_ns - s->t0_ns) / 1e9;

	*pct = s->total ? (unsigned)(s->pos * 100 / s->total) : 100;
	*mibs = secs > 0 ? (double)s->pages / 256.0 / secs : 0;
	*eta_s = -1;
	if (s->pos && s->pos < s->total && secs > 0)
		*eta_s = (long)((double)(s->total - s->pos) * secs / (double)s->pos + 0.5);
	else if (s->pos >= s->total)
		*eta_s = 0;
}

void prot_status_print(const struct prot_status *st, FILE *out)
{
	const struct prot_stats *s = &st->stats;
	bool why = st->reason[0];

	fprintf(out, "role: primary\ndomain: %s\nstate: %s%s%s%s\npeer: %s\n", st->domain,
		st->state, why ? " (" : "", st->reason, why ? ")" : "",
		st->peer ? st->peer : "(none)");
	fprintf(out, "epoch: %llu\nacked_epoch: %lld\ninterval_ms: %u\n",
		(unsigned long long)st->epoch, (long long)st->acked, st->interval_ms);
	fprintf(out, "pause_us: last %llu avg %llu max %llu\n",
		(unsigned long long)(s->pause_ns_last / 1000),
		(unsigned long long)(s->epochs ? s->pause_ns_sum / s->epochs / 1000 : 0),
		(unsigned long long)(s->pause_ns_max / 1000));
	fprintf(out, "pause_us_pct: p50 %llu p99 %llu (%llu epochs)\n",
		(unsigned long long)hist_quantile(&s->pause_us, 0.5),
		(unsigned long long)hist_quantile(&s->pause_us, 0.99),
		(unsigned long long)s->epochs);
	fprintf(out, "pages_per_epoch: %llu\nbytes_per_epoch: %llu\nwire_ratio: %.3f\n",
		(unsigned long long)(s->epochs ? s->pages_sum / s->epochs : 0),
		(unsigned long long)(s->epochs ? s->wire_sum / s->epochs : 0),
		s->raw_sum ? (double)s->wire_sum / (double)s->raw_sum : 0.0);
	fprintf(out, "ack_latency_us: last %llu avg %llu\n",
		(unsigned long long)(s->ack_ns_last / 1000),
		(unsigned long long)(s->acks ? s->ack_ns_sum / s->acks / 1000 : 0));
	if (st->sync.active) {
		unsigned pct;
		double mibs;
		long eta;

		prot_sync_progress(&st->sync, st->now_ns, &pct, &mibs, &eta);
		fprintf(out, "sync: round %u, %u%% (%llu of %llu %s), %llu pages sent, %.1f MiB/s, "
			     "eta_s %ld\n",
			st->sync.round, pct, (unsigned long long)st->sync.pos,
			(unsigned long long)st->sync.total,
			st->sync.round ? "dirty pages" : "pfns of the physical map",
			(unsigned long long)st->sync.pages, mibs, eta);
	}
	if (st->witness)
		fprintf(out, "witness: %s\n", st->witness);
	fprintf(out, "stretched_epochs: %llu\nlong_pauses: %llu\ndegradations: %llu\n"
		     "reprotections: %llu\n",
		(unsigned long long)s->stretched, (unsigned long long)s->long_pauses,
		(unsigned long long)s->degradations, (unsigned long long)s->reprotections);
	print_auto(st, out);
}

void prot_status_report(const struct prot_status *st, struct report *r)
{
	const struct prot_stats *s = &st->stats;

	report_label(r, "domain", st->domain);
	report_str(r, "role", "primary");
	report_str(r, "peer", st->peer);
	report_state(r, "state", prot_state_names, PROT_NSTATES, st->state_idx,
		     "the protection's state (1: the current one)");
	report_str(r, "reason", st->reason[0] ? st->reason : NULL);
	report_gauge(r, "state_seconds", (double)(st->now_ns - st->state_since_ns) / 1e9,
		     "time in the current state");
	report_int(r, "epoch", (int64_t)st->epoch, "the epoch the next pause closes");
	report_int(r, "acked_epoch", st->acked, "the last epoch the secondary acknowledged");
	report_gauge(r, "last_ack_age_seconds",
		     s->ack_at_ns ? (double)(st->now_ns - s->ack_at_ns) / 1e9 : -1,
		     "time since the secondary's last acknowledgement (-1: none yet)");
	report_gauge(r, "interval_seconds", st->interval_ms / 1e3, "the epoch interval");
	report_gauge(r, "held_output_age_seconds", (double)st->held_age_ns / 1e9,
		     "how long the oldest output held for an acknowledgement has waited, at most "
		     "(0: none held)");
	if (st->held_known) {
		report_gauge(r, "held_output_packets", (double)st->held_packets,
			     "packets held until the secondary acknowledges their epoch");
		report_gauge(r, "held_output_bytes", (double)st->held_bytes,
			     "octets held until then (-1: not known, with NFQUEUE)");
	}
	report_counter(r, "epochs", s->epochs, "checkpoints taken");
	report_hist(r, "pause_seconds", &s->pause_us, 1e-6, (double)s->pause_ns_sum / 1e9,
		    "how long each checkpoint paused the guest");
	report_hist(r, "ack_latency_seconds", &s->ack_us, 1e-6, (double)s->ack_ns_sum / 1e9,
		    "from a checkpoint's pause to the secondary's acknowledgement");
	report_counter(r, "pages", s->pages_sum, "pages checkpointed");
	report_counter(r, "wire_bytes", s->wire_sum, "checkpoint octets sent (after compression)");
	report_counter(r, "raw_bytes", s->raw_sum, "checkpoint octets before compression");
	report_gauge(r, "wire_ratio", s->raw_sum ? (double)s->wire_sum / (double)s->raw_sum : 0,
		     "wire octets per raw octet");
	report_counter(r, "stretched_epochs", s->stretched,
		       "epochs whose period a long pause stretched");
	report_counter(r, "degradations", s->degradations, "times the secondary was lost");
	report_counter(r, "reprotections", s->reprotections,
		       "times protection resumed after a degradation");
	report_begin(r, "sync");
	report_bool(r, "active", st->sync.active, "a pre-copy is under way");
	if (st->sync.active) {
		unsigned pct;
		double mibs;
		long eta;

		prot_sync_progress(&st->sync, st->now_ns, &pct, &mibs, &eta);
		report_int(r, "round", st->sync.round, "the pre-copy round");
		report_gauge(r, "ratio", pct / 100.0, "how far the round is");
		report_counter(r, "pages_sent", st->sync.pages, "pages sent in this round");
		report_gauge(r, "eta_seconds", (double)eta, "time left in the round (-1: unknown)");
	}
	report_end(r);
	if (st->witness) {
		const struct lease_info *l = &st->lease;

		report_begin(r, "witness");
		report_str(r, "status", st->witness);
		report_bool(r, "lease_valid", l->valid, "this host holds the witness's lease");
		report_gauge(r, "lease_remaining_seconds", l->remaining_s,
			     "until the lease runs out, in this host's view");
		report_gauge(r, "answer_age_seconds", l->answer_age_s,
			     "since the witness last answered (-1: never)");
		report_bool(r, "superseded", l->superseded,
			    "the secondary held the lease meanwhile: this copy never resumes");
		report_bool(r, "paused", l->paused, "the domain is paused for want of the lease");
		report_bool(r, "unprotected", l->unprotected,
			    "the domain runs without its secondary, under the lease");
		report_end(r);
	}
}
