#include "common/report.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>

#define MAX_LABELS 4
#define MAX_DEPTH 4

struct report {
	FILE *out;
	enum report_fmt fmt;
	yajl_gen g;  /* JSON */
	FILE *prom;  /* Prometheus: built in memory, written at the end */
	char *pbuf;
	size_t plen;
	char prefix[64];
	char path[MAX_DEPTH][48];
	unsigned depth;
	char lname[MAX_LABELS][32], lval[MAX_LABELS][128];
	unsigned nlabels;
	char sname[32], sval[128]; /* report_sample_label; "" none */
	char last[200];		   /* the family whose HELP was written last */
};

/* Prometheus' bucket bounds, in seconds. */
static const double bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
				0.05,	0.1,	 0.25,	 0.5,	1,	2.5,	5,     10};

int report_new(FILE *out, enum report_fmt fmt, const char *prefix, struct report **rp)
{
	struct report *r = calloc(1, sizeof(*r));

	*rp = NULL;
	if (!r)
		return -ENOMEM;
	r->out = out;
	r->fmt = fmt;
	snprintf(r->prefix, sizeof(r->prefix), "%s", prefix);
	if (fmt == REPORT_JSON) {
		r->g = yajl_gen_alloc(NULL);
		if (!r->g) {
			free(r);
			return -ENOMEM;
		}
		yajl_gen_config(r->g, yajl_gen_beautify, 1);
		yajl_gen_map_open(r->g);
	} else {
		r->prom = open_memstream(&r->pbuf, &r->plen);
		if (!r->prom) {
			free(r);
			return -ENOMEM;
		}
	}
	*rp = r;
	return 0;
}

int report_finish(struct report *r)
{
	int rc = 0;

	if (r->fmt == REPORT_JSON) {
		const unsigned char *buf;
		size_t len;

		while (r->depth) {
			yajl_gen_map_close(r->g);
			r->depth--;
		}
		yajl_gen_map_close(r->g);
		if (yajl_gen_get_buf(r->g, &buf, &len) != yajl_gen_status_ok ||
		    fwrite(buf, 1, len, r->out) != len || (len && buf[len - 1] != '\n' &&
							     fputc('\n', r->out) == EOF))
			rc = -EIO;
		yajl_gen_free(r->g);
	} else {
		if (fclose(r->prom) != 0 || fwrite(r->pbuf, 1, r->plen, r->out) != r->plen)
			rc = -EIO;
		free(r->pbuf);
	}
	free(r);
	return rc;
}

/* ---- JSON ---- */

static void jkey(struct report *r, const char *key)
{
	yajl_gen_string(r->g, (const unsigned char *)key, strlen(key));
}

static void jstr(struct report *r, const char *key, const char *val)
{
	jkey(r, key);
	if (val)
		yajl_gen_string(r->g, (const unsigned char *)val, strlen(val));
	else
		yajl_gen_null(r->g);
}

static void jnum(struct report *r, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void jnum(struct report *r, const char *key, const char *fmt, ...)
{
	char buf[64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	jkey(r, key);
	yajl_gen_number(r->g, buf, strlen(buf));
}

/* ---- Prometheus ---- */

static void pname(const struct report *r, const char *key, char *buf, size_t len)
{
	size_t n = (size_t)snprintf(buf, len, "%s", r->prefix);

	for (unsigned i = 0; i < r->depth && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "_%s", r->path[i]);
	if (n < len)
		snprintf(buf + n, len - n, "_%s", key);
}

static void pescape(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(f, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

static void phead(struct report *r, const char *name, const char *type, const char *help)
{
	/* The samples of a family follow one HELP and TYPE. */
	if (!strcmp(r->last, name))
		return;
	snprintf(r->last, sizeof(r->last), "%s", name);
	fprintf(r->prom, "# HELP %s ", name);
	for (const char *s = help; *s; s++) {
		if (*s == '\\')
			fputs("\\\\", r->prom);
		else if (*s == '\n')
			fputs("\\n", r->prom);
		else
			fputc(*s, r->prom);
	}
	fprintf(r->prom, "\n# TYPE %s %s\n", name, type);
}

/* name{labels[,extra="val"]} */
static void psample(struct report *r, const char *name, const char *suffix, const char *extra,
		    const char *extra_val)
{
	bool first = true;

	fprintf(r->prom, "%s%s", name, suffix);
	for (unsigned i = 0; i < r->nlabels; i++) {
		fprintf(r->prom, "%s%s=\"", first ? "{" : ",", r->lname[i]);
		pescape(r->prom, r->lval[i]);
		fputc('"', r->prom);
		first = false;
	}
	if (r->sname[0]) {
		fprintf(r->prom, "%s%s=\"", first ? "{" : ",", r->sname);
		pescape(r->prom, r->sval);
		fputc('"', r->prom);
		first = false;
	}
	if (extra) {
		fprintf(r->prom, "%s%s=\"", first ? "{" : ",", extra);
		pescape(r->prom, extra_val);
		fputc('"', r->prom);
		first = false;
	}
	fputs(first ? " " : "} ", r->prom);
}

/* ---- both ---- */

void report_label(struct report *r, const char *name, const char *value)
{
	if (r->fmt == REPORT_JSON) {
		jstr(r, name, value);
		return;
	}
	if (r->nlabels == MAX_LABELS)
		return;
	snprintf(r->lname[r->nlabels], sizeof(r->lname[0]), "%s", name);
	snprintf(r->lval[r->nlabels], sizeof(r->lval[0]), "%s", value ? value : "");
	r->nlabels++;
}

enum report_fmt report_format(const struct report *r)
{
	return r->fmt;
}

void report_sample_label(struct report *r, const char *name, const char *value)
{
	snprintf(r->sname, sizeof(r->sname), "%s", name ? name : "");
	snprintf(r->sval, sizeof(r->sval), "%s", value ? value : "");
}

void report_str(struct report *r, const char *key, const char *val)
{
	if (r->fmt == REPORT_JSON)
		jstr(r, key, val);
}

void report_bool(struct report *r, const char *key, int val, const char *help)
{
	char name[200];

	if (r->fmt == REPORT_JSON) {
		jkey(r, key);
		yajl_gen_bool(r->g, val);
		return;
	}
	pname(r, key, name, sizeof(name));
	phead(r, name, "gauge", help);
	psample(r, name, "", NULL, NULL);
	fprintf(r->prom, "%d\n", val ? 1 : 0);
}

void report_state(struct report *r, const char *key, const char *const *names, size_t n,
		  size_t cur, const char *help)
{
	char name[200];

	if (r->fmt == REPORT_JSON) {
		jstr(r, key, cur < n ? names[cur] : NULL);
		return;
	}
	pname(r, key, name, sizeof(name));
	phead(r, name, "gauge", help);
	for (size_t i = 0; i < n; i++) {
		psample(r, name, "", key, names[i]);
		fprintf(r->prom, "%d\n", i == cur);
	}
}

void report_gauge(struct report *r, const char *key, double v, const char *help)
{
	char name[200];

	if (r->fmt == REPORT_JSON) {
		jnum(r, key, "%.9g", v);
		return;
	}
	pname(r, key, name, sizeof(name));
	phead(r, name, "gauge", help);
	psample(r, name, "", NULL, NULL);
	fprintf(r->prom, "%.9g\n", v);
}

void report_int(struct report *r, const char *key, int64_t v, const char *help)
{
	char name[200];

	if (r->fmt == REPORT_JSON) {
		if (v < 0) {
			jkey(r, key);
			yajl_gen_null(r->g);
		} else {
			jnum(r, key, "%" PRId64, v);
		}
		return;
	}
	pname(r, key, name, sizeof(name));
	phead(r, name, "gauge", help);
	psample(r, name, "", NULL, NULL);
	fprintf(r->prom, "%" PRId64 "\n", v);
}

void report_counter(struct report *r, const char *key, uint64_t v, const char *help)
{
	char name[200];

	if (r->fmt == REPORT_JSON) {
		jnum(r, key, "%" PRIu64, v);
		return;
	}
	pname(r, key, name, sizeof(name));
	strncat(name, "_total", sizeof(name) - strlen(name) - 1);
	phead(r, name, "counter", help);
	psample(r, name, "", NULL, NULL);
	fprintf(r->prom, "%" PRIu64 "\n", v);
}

void report_hist(struct report *r, const char *key, const struct hist *h, double scale,
		 double sum_s, const char *help)
{
	char name[200], le[32];

	if (r->fmt == REPORT_JSON) {
		report_begin(r, key);
		jnum(r, "count", "%" PRIu64, h->count);
		jnum(r, "p50", "%.9g", (double)hist_quantile(h, 0.5) * scale);
		jnum(r, "p99", "%.9g", (double)hist_quantile(h, 0.99) * scale);
		jnum(r, "max", "%.9g", (double)h->max * scale);
		jnum(r, "sum", "%.9g", sum_s);
		report_end(r);
		return;
	}
	pname(r, key, name, sizeof(name));
	phead(r, name, "histogram", help);
	for (size_t i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++) {
		snprintf(le, sizeof(le), "%g", bounds[i]);
		psample(r, name, "_bucket", "le", le);
		fprintf(r->prom, "%" PRIu64 "\n", hist_count_le(h, (uint64_t)(bounds[i] / scale)));
	}
	psample(r, name, "_bucket", "le", "+Inf");
	fprintf(r->prom, "%" PRIu64 "\n", h->count);
	psample(r, name, "_sum", NULL, NULL);
	fprintf(r->prom, "%.9g\n", sum_s);
	psample(r, name, "_count", NULL, NULL);
	fprintf(r->prom, "%" PRIu64 "\n", h->count);
}

void report_begin(struct report *r, const char *key)
{
	if (r->depth == MAX_DEPTH)
		return;
	snprintf(r->path[r->depth++], sizeof(r->path[0]), "%s", key);
	if (r->fmt == REPORT_JSON) {
		jkey(r, key);
		yajl_gen_map_open(r->g);
	}
}

void report_end(struct report *r)
{
	if (!r->depth)
		return;
	r->depth--;
	if (r->fmt == REPORT_JSON)
		yajl_gen_map_close(r->g);
}
