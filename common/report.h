/* A daemon's state for machines: one walk over it, rendered as JSON
 * (`ha-ctl status --json`) or as Prometheus text exposition (`ha-ctl
 * metrics`). docs/monitoring.md documents both.
 *
 *   report_new(out, REPORT_PROM, "ha_protect", &r);
 *   report_label(r, "domain", "kvm:web");
 *   report_state(r, "state", names, n, cur, "the protection's state");
 *   report_counter(r, "epochs", 42, "checkpoints taken");
 *   report_finish(r);
 *
 * JSON: one object; every call adds a member named key (report_begin
 * opens a nested object). Prometheus: every number is a sample named
 * PREFIX_KEY (nested keys joined with '_'), carrying the report's labels;
 * counters get "_total"; a state becomes one 0/1 sample per possible value
 * (label KEY="value"); strings are JSON only. Keys carry their unit
 * ("_seconds", "_bytes") as Prometheus names do.
 */
#ifndef HA_COMMON_REPORT_H
#define HA_COMMON_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/hist.h"

enum report_fmt { REPORT_JSON, REPORT_PROM };

struct report;

/* 0 or -ENOMEM. */
int report_new(FILE *out, enum report_fmt fmt, const char *prefix, struct report **r);
/* Writes the report to out and frees it: 0, or -errno. */
int report_finish(struct report *r);

/* A label of every sample (Prometheus), a string member (JSON); before the
 * first sample. At most 4. */
void report_label(struct report *r, const char *name, const char *value);

void report_str(struct report *r, const char *key, const char *val); /* NULL: null */
void report_bool(struct report *r, const char *key, int val, const char *help);
void report_state(struct report *r, const char *key, const char *const *names, size_t n,
		  size_t cur, const char *help);
void report_gauge(struct report *r, const char *key, double v, const char *help);
/* An integer gauge (an epoch number; -1: none, JSON null). */
void report_int(struct report *r, const char *key, int64_t v, const char *help);
void report_counter(struct report *r, const char *key, uint64_t v, const char *help);
/* A histogram of h's samples times scale (to seconds: 1e-6 for
 * microseconds), with sum_s their sum in seconds. JSON: count, p50, p99,
 * max and sum. */
void report_hist(struct report *r, const char *key, const struct hist *h, double scale,
		 double sum_s, const char *help);

/* Prometheus only: one more label on the samples that follow (NULL: none),
 * for a family with a sample per object (the witness's leases): emit such
 * a family's samples one after the other. */
void report_sample_label(struct report *r, const char *name, const char *value);
enum report_fmt report_format(const struct report *r);

void report_begin(struct report *r, const char *key);
void report_end(struct report *r);

#endif
