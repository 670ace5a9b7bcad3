/* The adaptive epoch interval (ha-protect --interval auto --sla-p99 MS).
 *
 * A pure controller: fed one observation per acknowledged epoch, it returns
 * the interval the next epochs should use. No I/O, no clock, no locks: the
 * caller serialises calls (protect.c does it under its mutex).
 *
 * The model. A reply the guest produces at a uniform moment of an epoch of
 * length I is held until that epoch's pause, then until its ACK arrives A
 * after the pause began. The output latency it adds is (I - u) + A, whose
 * p99 is about 0.99 I + A_p99. A splits into a fixed part (network round
 * trip, scheduling, commit overhead) and a part proportional to the pages
 * of the epoch, which are about (dirty rate x I):
 *
 *     added_p99(I) ~= 0.99 I + base_hi + cost * rate * I
 *
 *   rate     dirty pages per ms of epoch, smoothed (rises fast, falls slowly)
 *   cost     us per page for the whole checkpoint path: the primary's
 *            pause + encode + send per page, doubled for the secondary's
 *            decode + apply (taken to cost what the primary's side did);
 *            a sample counts at most twice the estimate (a stalled pause
 *            is no per-page cost)
 *   base_hi  the residual ACK latency (A - cost * pages), smoothed, plus
 *            three mean absolute deviations: the fixed part's tail. An
 *            isolated stalled ACK is clipped to four deviations; three in
 *            a row are a lasting change and count whole.
 *
 * Overhead (pauses, bytes, CPU) only falls as I grows, so the controller
 * aims at the largest I whose predicted p99 fits 90% of the target, within
 * [min_ms, max_ms]. Its first decision (after 8 epochs, averaged) goes
 * straight to the aim. Then, for stability: it moves down at once (to the aim) when the
 * aim is more than 10% below the current interval or the current one is
 * predicted past 95% of the target; it moves up only after the aim has
 * stayed more than 10% above it for 5 epochs and at least the hold time
 * (0.5 s), and then by at most 1.5x per step. A shortening right after a
 * lengthening doubles the hold time (up to 8 s); 10 s without a shortening
 * halve it. The dead band, the asymmetry (fast down, slow up) and the
 * back-off leave no room for a limit cycle.
 */
#ifndef HA_PRIMARY_INTERVAL_H
#define HA_PRIMARY_INTERVAL_H

#include <stdbool.h>
#include <stdint.h>

struct ival_config {
	unsigned target_us; /* p99 of the output latency added by checkpointing */
	unsigned min_ms;    /* bounds of the interval, 1 <= min_ms <= max_ms */
	unsigned max_ms;
	unsigned start_ms;  /* until observations arrive; clamped to the bounds */
};

/* One acknowledged epoch. */
struct ival_obs {
	uint64_t period_ns; /* since the previous epoch's pause: the dirtying window */
	uint64_t pause_ns;  /* guest paused */
	uint64_t pages;     /* dirty pages shipped */
	uint64_t send_ns;   /* encode + write on the sender thread */
	uint64_t ack_ns;    /* pause start to ACK */
};

/* What the controller believes; for status output and logs. */
struct ival_est {
	unsigned interval_ms; /* current decision */
	unsigned aim_ms;      /* the largest interval predicted to fit, clamped */
	double rate_ppms;     /* dirty pages per ms */
	double cost_us;       /* per page */
	double base_us;       /* fixed part of the ACK latency (mean) */
	double base_hi_us;    /* ... and its tail */
	double predicted_us;  /* added p99 predicted at interval_ms */
	bool unreachable;     /* even min_ms is predicted to miss the target */
	uint64_t changes;     /* decisions that changed the interval */
	unsigned hold_ms;     /* the aim must stay above this long to lengthen */
	uint64_t observations;
};

struct ival {
	struct ival_config cfg;
	unsigned cur_ms;
	double rate, cost, base, dev;
	bool have_cost;
	uint64_t nobs, changes;
	unsigned high_run;  /* consecutive ACKs far above the fixed part */
	unsigned up_epochs; /* consecutive epochs the aim stayed above */
	uint64_t up_ns;     /* ... and for how long */
	uint64_t hold_ns;   /* how long it must stay above before a lengthening */
	uint64_t calm_ns;   /* since the last shortening */
	int last_dir;       /* of the last change: 1 longer, -1 shorter */
	unsigned aim_ms;
	bool unreachable;
};

/* Returns 0, or -EINVAL for bounds or a target that make no sense. */
int ival_init(struct ival *c, const struct ival_config *cfg);

/* Feeds one epoch; returns the interval (ms) to use from now on. */
unsigned ival_update(struct ival *c, const struct ival_obs *o);

/* The added p99 (us) the model predicts at interval_ms. */
double ival_predict_us(const struct ival *c, unsigned interval_ms);

void ival_estimate(const struct ival *c, struct ival_est *e);

/* When the next checkpoint's pause may start (every backend). The
 * interval is the period from one pause's start to the next's; but the
 * guest always runs at least as long as it was just paused:
 *
 *     next = max(paused_at + interval, resumed_at + (resumed_at - paused_at))
 *
 * A pause shorter than half the interval leaves the period alone. A longer
 * one (a slow suspend) stretches the period to twice the pause, so the
 * guest keeps at least half of the wall-clock time and at least half of
 * each interval to run, never going from one suspend straight into the
 * next. Times in ns on one monotonic clock; resumed_at >= paused_at. */
uint64_t ival_next_pause_ns(uint64_t paused_at, uint64_t resumed_at, unsigned interval_ms);

#endif
