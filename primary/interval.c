/* The adaptive epoch interval: see interval.h for the model. */
#include "primary/interval.h"

#include <errno.h>
#include <math.h>

/* Smoothing. The dirty rate rises fast (a load step must shorten the
 * interval within a few epochs) and falls slowly (a lull is no promise). */
#define RATE_UP 0.5
#define RATE_DOWN 0.1
#define COST_ALPHA 0.1
#define BASE_ALPHA 0.1
#define DEV_ALPHA 0.1
#define TAIL_DEVS 3.0
#define CLIP_DEVS 4.0
#define CLIP_FLOOR_US 100.0
#define CLIP_RUN 3
/* Below this many pages an epoch's per-page cost is mostly fixed overhead. */
#define COST_MIN_PAGES 64
/* The secondary's decode + apply per page, relative to the primary's side. */
#define SECONDARY_FACTOR 2.0
#define HEADROOM 0.9
/* Shorten without waiting for the dead band past this share of the target. */
#define GUARD 0.95
#define P99_OF_UNIFORM 0.99
/* Hysteresis. */
#define DEADBAND 0.1
#define UP_EPOCHS 5
#define UP_NS 500000000ull
/* Back-off: a shortening right after a lengthening doubles the time the aim
 * must stay above before the next lengthening (up to HOLD_MAX_NS); every
 * CALM_NS without a shortening halves it again. */
#define HOLD_MAX_NS 8000000000ull
#define CALM_NS 10000000000ull
#define COST_CLIP 2.0
#define UP_STEP 1.5
#define WARMUP 8

static unsigned clampu(unsigned v, unsigned lo, unsigned hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

int ival_init(struct ival *c, const struct ival_config *cfg)
{
	if (!cfg->min_ms || cfg->min_ms > cfg->max_ms || !cfg->target_us)
		return -EINVAL;
	*c = (struct ival){.cfg = *cfg};
	c->cur_ms = clampu(cfg->start_ms ? cfg->start_ms : cfg->min_ms, cfg->min_ms, cfg->max_ms);
	c->hold_ns = UP_NS;
	c->aim_ms = c->cur_ms;
	return 0;
}

static double base_hi(const struct ival *c)
{
	return c->base + TAIL_DEVS * c->dev;
}

double ival_predict_us(const struct ival *c, unsigned interval_ms)
{
	double per_ms = 1000.0 * P99_OF_UNIFORM + (c->have_cost ? c->cost * c->rate : 0.0);

	return (double)interval_ms * per_ms + base_hi(c);
}

/* The largest interval predicted to fit HEADROOM of the target, clamped. */
static unsigned aim(struct ival *c)
{
	double per_ms = 1000.0 * P99_OF_UNIFORM + (c->have_cost ? c->cost * c->rate : 0.0);
	double room = HEADROOM * (double)c->cfg.target_us - base_hi(c);
	double ms = room > 0 ? floor(room / per_ms) : 0;

	c->unreachable = ival_predict_us(c, c->cfg.min_ms) > (double)c->cfg.target_us;
	if (ms < (double)c->cfg.min_ms)
		return c->cfg.min_ms;
	if (ms > (double)c->cfg.max_ms)
		return c->cfg.max_ms;
	return (unsigned)ms;
}

static void observe(struct ival *c, const struct ival_obs *o)
{
	double period_ms = o->period_ns ? (double)o->period_ns / 1e6 : (double)c->cur_ms;
	double rate = (double)o->pages / period_ms;
	double ack_us = (double)o->ack_ns / 1e3;
	double res;

	if (c->nobs == 0)
		c->rate = rate;
	else
		c->rate += (rate > c->rate ? RATE_UP : RATE_DOWN) * (rate - c->rate);

	if (o->pages >= COST_MIN_PAGES) {
		double cost = SECONDARY_FACTOR * (double)(o->pause_ns + o->send_ns) / 1e3 /
			      (double)o->pages;

		/* A stalled pause or send is no per-page cost: a sample counts at
		 * most COST_CLIP times the estimate (the stall shows in the ACK's
		 * fixed part instead). A real rise still gets through in steps. */
		if (c->have_cost && cost > COST_CLIP * c->cost)
			cost = COST_CLIP * c->cost;
		c->cost = c->have_cost ? c->cost + COST_ALPHA * (cost - c->cost) : cost;
		c->have_cost = true;
	}

	res = ack_us - (c->have_cost ? c->cost * (double)o->pages : 0.0);
	if (res < 0)
		res = 0;
	if (c->nobs == 0) {
		c->base = res;
		c->dev = res / 4; /* unknown spread: start cautious */
	} else {
		/* One stalled ACK (a scheduling hiccup) must not throw the interval
		 * to its minimum: an isolated residual counts at most CLIP_DEVS
		 * deviations above the mean. From the CLIP_RUN-th in a row it is a
		 * lasting rise (a slower link, a loaded secondary) and counts whole. */
		double cap = c->base + CLIP_DEVS * c->dev + CLIP_FLOOR_US;

		if (res > cap && ++c->high_run < CLIP_RUN)
			res = cap;
		else if (res <= cap)
			c->high_run = 0;
		/* Plain means while warming up, then exponential smoothing. */
		double a = c->nobs < WARMUP ? 1.0 / (double)(c->nobs + 1) : BASE_ALPHA;

		c->dev += (c->nobs < WARMUP ? a : DEV_ALPHA) * (fabs(res - c->base) - c->dev);
		c->base += a * (res - c->base);
	}
	c->nobs++;
}

unsigned ival_update(struct ival *c, const struct ival_obs *o)
{
	unsigned want, cur = c->cur_ms;
	uint64_t period = o->period_ns ? o->period_ns : (uint64_t)cur * 1000000u;

	observe(c, o);
	c->calm_ns += period;
	if (c->calm_ns >= CALM_NS) {
		c->calm_ns = 0;
		if (c->hold_ns > UP_NS)
			c->hold_ns /= 2;
	}
	want = aim(c);
	c->aim_ms = want;
	if (c->nobs < WARMUP)
		return cur;
	if (c->nobs == WARMUP) {
		/* The first decision goes straight to the aim. */
		c->cur_ms = want;
	} else if (want < cur && ((double)want < (1.0 - DEADBAND) * cur ||
			   ival_predict_us(c, cur) > GUARD * c->cfg.target_us)) {
		/* Too long: shorten at once, all the way to the aim. */
		c->cur_ms = want;
	} else if ((double)want > (1.0 + DEADBAND) * cur && want > cur) {
		/* Room to lengthen: only once it has lasted, and in bounded steps. */
		c->up_epochs++;
		c->up_ns += period;
		if (c->up_epochs >= UP_EPOCHS && c->up_ns >= c->hold_ns) {
			unsigned step = (unsigned)((double)cur * UP_STEP);

			if (step <= cur)
				step = cur + 1;
			c->cur_ms = want < step ? want : step;
		}
	} else {
		c->up_epochs = 0;
		c->up_ns = 0;
	}
	if (c->cur_ms != cur) {
		int dir = c->cur_ms > cur ? 1 : -1;

		if (c->nobs > WARMUP && dir < 0) {
			if (c->last_dir > 0 && c->hold_ns < HOLD_MAX_NS)
				c->hold_ns *= 2;
			c->calm_ns = 0;
		}
		c->last_dir = c->nobs > WARMUP ? dir : 0;
		c->changes++;
		c->up_epochs = 0;
		c->up_ns = 0;
	}
	return c->cur_ms;
}

void ival_estimate(const struct ival *c, struct ival_est *e)
{
	*e = (struct ival_est){
		.interval_ms = c->cur_ms,
		.aim_ms = c->aim_ms,
		.rate_ppms = c->rate,
		.cost_us = c->have_cost ? c->cost : 0.0,
		.base_us = c->base,
		.base_hi_us = base_hi(c),
		.predicted_us = ival_predict_us(c, c->cur_ms),
		.unreachable = c->unreachable,
		.changes = c->changes,
		.hold_ms = (unsigned)(c->hold_ns / 1000000u),
		.observations = c->nobs,
	};
}

uint64_t ival_next_pause_ns(uint64_t paused_at, uint64_t resumed_at, unsigned interval_ms)
{
	uint64_t by_period = paused_at + (uint64_t)interval_ms * 1000000u;
	uint64_t pause = resumed_at > paused_at ? resumed_at - paused_at : 0;
	uint64_t by_run = resumed_at + pause;

	return by_run > by_period ? by_run : by_period;
}
