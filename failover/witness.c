#include "failover/witness.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/io.h"
#include "common/report.h"
#include "common/sock.h"

#define LINE_MAX_LEN 256
#define TABLE_MAX 4096

static bool name_ok(const char *s)
{
	size_t n = strlen(s);

	if (!n || n >= FO_WITNESS_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("._:@-", *s)))
			return false;
	return true;
}

/* ================================ client ================================ */

static void set_timeouts(int fd, unsigned ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static const char *const claim_names[] = {"", "alone", "protected"};

int fo_witness_ask(const char *hostport, struct fo_tls *tls, const char *pair, const char *holder,
		   unsigned ttl_ms, const struct fo_lease_claim *claim, unsigned timeout_ms,
		   struct fo_lease_reply *out, char *err, size_t errlen)
{
	struct fo_tls_session *s = NULL;
	char req[LINE_MAX_LEN], line[LINE_MAX_LEN];
	size_t n = 0;
	int fd, rc;

	memset(out, 0, sizeof(*out));
	if (!name_ok(pair) || !name_ok(holder)) {
		snprintf(err, errlen,
			 "the pair name '%s' or holder '%s' has characters the witness "
			 "does not take ([A-Za-z0-9._:@-], at most 63)",
			 pair, holder);
		return -EINVAL;
	}
	fd = sock_tcp_connect(hostport, (int)timeout_ms);
	if (fd < 0) {
		snprintf(err, errlen, "cannot reach the witness at %s: %s", hostport,
			 sock_tcp_strerror(fd));
		return fd;
	}
	set_timeouts(fd, timeout_ms);
	if (tls) {
		char terr[320] = "";

		rc = fo_tls_handshake(tls, fd, &s, terr, sizeof(terr));
		if (rc < 0) {
			snprintf(err, errlen, "witness %s: %s", hostport, terr);
			goto out;
		}
	}
	int len;
	if (claim && claim->kind != FO_CLAIM_NONE)
		len = snprintf(req, sizeof(req), "LEASE %s %s %u %s %016" PRIx64 " %" PRIu64 "\n",
			       pair, holder, ttl_ms, claim_names[claim->kind], claim->run,
			       claim->seq);
	else
		len = snprintf(req, sizeof(req), "LEASE %s %s %u\n", pair, holder, ttl_ms);
	struct iovec iov = {req, (size_t)len};
	rc = s ? fo_tls_writev(s, &iov, 1) : io_writev_full(fd, &iov, 1);
	while (rc == 0 && n < sizeof(line) - 1) {
		ssize_t r = s ? fo_tls_read(s, line + n, 1) : io_read_full(fd, line + n, 1);

		if (r < 0)
			rc = (int)r;
		else if (r == 0)
			rc = -EPIPE;
		else if (line[n++] == '\n')
			break;
	}
	if (rc < 0) {
		snprintf(err, errlen, "witness %s: %s", hostport,
			 rc == -EAGAIN ? "no answer in time" : strerror(-rc));
		goto out;
	}
	line[n] = '\0';
	if (n && line[n - 1] == '\n')
		line[n - 1] = '\0';
	unsigned long long gen;
	unsigned ms;
	int end = 0;
	if (sscanf(line, "GRANTED %llu %u%n", &gen, &ms, &end) == 2 && !line[end]) {
		out->granted = true;
		snprintf(out->holder, sizeof(out->holder), "%s", holder);
	} else if (sscanf(line, "DENIED %63s %llu %u%n", out->holder, &gen, &ms, &end) == 3 &&
		   (!line[end] || !strcmp(line + end, " stale"))) {
		out->granted = false;
		out->stale = line[end] != '\0';
	} else {
		snprintf(err, errlen, "witness %s answered '%.100s'", hostport, line);
		rc = -EPROTO;
		goto out;
	}
	out->generation = gen;
	out->ms = ms;
	rc = 0;
out:
	fo_tls_session_free(s);
	close(fd);
	return rc;
}

/* ============================== lease table ============================= */

struct lease {
	char pair[FO_WITNESS_NAME_MAX];
	char holder[FO_WITNESS_NAME_MAX];
	uint64_t expiry_ms;
	uint64_t generation;
	/* The last claim taken: by run claim_run, request claim_seq. */
	bool stale;
	bool claimed;
	uint64_t claim_run, claim_seq;
};

struct fo_lease_table {
	bool changed; /* the durable part changed since the last save */
	uint64_t quiet_until_ms;
	uint64_t gen_base;
	unsigned max_ttl_ms;
	struct lease *v;
	size_t n, cap;
};

int fo_lease_table_new(uint64_t now_ms, unsigned quiet_ms, uint64_t gen_base,
		       struct fo_lease_table **out)
{
	struct fo_lease_table *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->quiet_until_ms = now_ms + quiet_ms;
	t->max_ttl_ms = quiet_ms;
	t->gen_base = gen_base;
	*out = t;
	return 0;
}

void fo_lease_table_free(struct fo_lease_table *t)
{
	if (!t)
		return;
	free(t->v);
	free(t);
}

void fo_lease_table_status(const struct fo_lease_table *t, uint64_t now_ms, FILE *out)
{
	fprintf(out, "role: witness\nquiet_ms: %llu\nleases: %zu\n",
		(unsigned long long)(now_ms < t->quiet_until_ms ? t->quiet_until_ms - now_ms : 0),
		t->n);
	for (size_t i = 0; i < t->n; i++) {
		const struct lease *l = &t->v[i];
		char left[48] = "expired";

		if (l->expiry_ms > now_ms)
			snprintf(left, sizeof(left), "expires in %llu ms",
				 (unsigned long long)(l->expiry_ms - now_ms));
		fprintf(out, "lease %s: holder %s, generation %llu, %s%s\n", l->pair,
			l->holder[0] ? l->holder : "none", (unsigned long long)l->generation, left,
			l->stale ? ", stale: the primary ran alone (the secondary is denied)" : "");
	}
}

void fo_lease_table_report(const struct fo_lease_table *t, uint64_t now_ms, struct report *r)
{
	static const char *const holders[] = {"none", "primary", "secondary"};
	bool json = report_format(r) == REPORT_JSON;

	report_str(r, "role", "witness");
	report_str(r, "state", now_ms < t->quiet_until_ms ? "quiet" : "serving");
	report_gauge(r, "quiet_seconds",
		     now_ms < t->quiet_until_ms ? (double)(t->quiet_until_ms - now_ms) / 1e3 : 0,
		     "time left in which a restarted witness grants nothing");
	report_gauge(r, "leases", (double)t->n, "pairs the witness knows");
	if (json)
		report_begin(r, "lease");
	/* Prometheus: each family's samples together, one per pair. */
	for (int m = 0; m < (json ? 1 : 4); m++) {
		for (size_t i = 0; i < t->n; i++) {
			const struct lease *l = &t->v[i];
			size_t h = !strcmp(l->holder, "primary")     ? 1
				   : !strcmp(l->holder, "secondary") ? 2
								      : 0;
			double left = l->expiry_ms > now_ms ? (double)(l->expiry_ms - now_ms) / 1e3 : 0;

			if (json)
				report_begin(r, l->pair);
			else
				report_sample_label(r, "pair", l->pair);
			if (json || m == 0)
				report_state(r, "lease_holder", holders, 3, h,
					     "the lease's holder (1: the current one)");
			if (json || m == 1)
				report_gauge(r, "lease_remaining_seconds", left,
					     "until the lease expires (0: expired)");
			if (json || m == 2)
				report_int(r, "lease_generation", (int64_t)l->generation,
					   "changes whenever the holder changes");
			if (json || m == 3)
				report_bool(r, "lease_stale", l->stale,
					    "the primary ran alone: the secondary's copy is stale "
					    "and is denied");
			if (json)
				report_end(r);
		}
	}
	report_sample_label(r, NULL, NULL);
	if (json)
		report_end(r);
}

static struct lease *find(struct fo_lease_table *t, const char *pair, bool create)
{
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->v[i].pair, pair))
			return &t->v[i];
	if (!create || t->n == TABLE_MAX)
		return NULL;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		struct lease *v = realloc(t->v, cap * sizeof(*v));

		if (!v)
			return NULL;
		t->v = v;
		t->cap = cap;
	}
	struct lease *l = &t->v[t->n++];
	memset(l, 0, sizeof(*l));
	snprintf(l->pair, sizeof(l->pair), "%s", pair);
	l->generation = t->gen_base;
	return l;
}

int fo_lease_handle(struct fo_lease_table *t, const char *line, uint64_t now_ms, char *reply,
		    size_t len)
{
	char pair[FO_WITNESS_NAME_MAX], holder[FO_WITNESS_NAME_MAX], what[16] = "";
	unsigned ttl;
	int end = 0, end2 = 0;
	uint64_t run = 0, seq = 0;
	enum fo_lease_claim_kind claim = FO_CLAIM_NONE;
	struct lease *l;

	if (sscanf(line, "LEASE %63s %63s %u%n", pair, holder, &ttl, &end) != 3 || !name_ok(pair) ||
	    !name_ok(holder))
		goto malformed;
	if (line[end]) {
		/* " <claim> <run> <seq>": the run in 16 hex digits. */
		char runhex[17] = "";

		if (sscanf(line + end, " %15s %16[0-9a-f] %" SCNu64 "%n", what, runhex, &seq,
			   &end2) != 3 ||
		    line[end + end2] || strlen(runhex) != 16)
			goto malformed;
		run = strtoull(runhex, NULL, 16);
		if (!strcmp(what, "alone"))
			claim = FO_CLAIM_ALONE;
		else if (!strcmp(what, "protected"))
			claim = FO_CLAIM_PROTECTED;
		else
			goto malformed;
	}
	if (ttl < FO_WITNESS_TTL_MIN || ttl > t->max_ttl_ms) {
		/* A restart's quiet time must outlast every lease granted. */
		snprintf(reply, len, "ERROR ttl must be %u..%u ms (the witness's --max-ttl)\n",
			 FO_WITNESS_TTL_MIN, t->max_ttl_ms);
		return FO_LEASE_ERROR;
	}
	if (now_ms < t->quiet_until_ms) {
		/* Leases from before a restart may still be counted on. */
		snprintf(reply, len, "DENIED (witness-restarting) 0 %" PRIu64 "\n",
			 t->quiet_until_ms - now_ms);
		return FO_LEASE_DENIED;
	}
	l = find(t, pair, true);
	if (!l) {
		snprintf(reply, len, "ERROR too many pairs\n");
		return FO_LEASE_ERROR;
	}
	/* A secondary whose copy is stale never gets the lease: activating
	 * that copy would forget output the primary released without it. */
	if (l->stale && strcmp(holder, "primary")) {
		snprintf(reply, len, "DENIED %s %" PRIu64 " %" PRIu64 " stale\n", l->holder,
			 l->generation, now_ms < l->expiry_ms ? l->expiry_ms - now_ms : 0);
		return FO_LEASE_DENIED;
	}
	if (l->holder[0] && strcmp(l->holder, holder) && now_ms < l->expiry_ms) {
		snprintf(reply, len, "DENIED %s %" PRIu64 " %" PRIu64 "\n", l->holder,
			 l->generation, l->expiry_ms - now_ms);
		return FO_LEASE_DENIED;
	}
	int rc = FO_LEASE_RENEWED;
	if (strcmp(l->holder, holder)) {
		/* Above this run's base too: a generation loaded from the state
		 * file never counts up into one an earlier run handed out. */
		l->generation = (l->generation > t->gen_base ? l->generation : t->gen_base) + 1;
		snprintf(l->holder, sizeof(l->holder), "%s", holder);
		rc = FO_LEASE_NEW_HOLDER;
		t->changed = true;
	}
	l->expiry_ms = now_ms + ttl;
	/* Only a granted claim counts, and only the newest of its run. */
	if (claim != FO_CLAIM_NONE && (!l->claimed || run != l->claim_run || seq > l->claim_seq)) {
		l->claimed = true;
		l->claim_run = run;
		l->claim_seq = seq;
		l->stale = claim == FO_CLAIM_ALONE;
		t->changed = true;
	}
	snprintf(reply, len, "GRANTED %" PRIu64 " %u\n", l->generation, ttl);
	return rc;

malformed:
	snprintf(reply, len,
		 "ERROR expected LEASE <pair> <holder> <ttl_ms>[ alone|protected <run> "
		 "<seq>]\n");
	return FO_LEASE_ERROR;
}

/* ============================== state file ============================== */

#define STATE_MAGIC "ha-witness-state 1"

bool fo_lease_table_changed(const struct fo_lease_table *t)
{
	return t->changed;
}

int fo_lease_table_save(struct fo_lease_table *t, const char *path, char *err, size_t errlen)
{
	char tmp[4096], dir[4096];
	FILE *f;
	int fd, rc = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		snprintf(err, errlen, "the state file's name is too long");
		return -ENAMETOOLONG;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		rc = -errno;
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(-rc));
		if (fd >= 0)
			close(fd);
		return rc;
	}
	fprintf(f, STATE_MAGIC "\n");
	for (size_t i = 0; i < t->n; i++) {
		const struct lease *l = &t->v[i];

		fprintf(f, "%s %s %" PRIu64 " %d %d %016" PRIx64 " %" PRIu64 "\n", l->pair,
			l->holder[0] ? l->holder : "-", l->generation, l->stale, l->claimed,
			l->claim_run, l->claim_seq);
	}
	if (fflush(f) != 0 || fsync(fd) < 0)
		rc = -errno;
	if (fclose(f) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(-rc));
		unlink(tmp);
		return rc;
	}
	/* The rename must be durable too. */
	snprintf(dir, sizeof(dir), "%s", path);
	fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		if (fsync(fd) < 0)
			rc = -errno;
		close(fd);
	}
	if (rc < 0) {
		snprintf(err, errlen, "cannot make %s durable: %s", path, strerror(-rc));
		return rc;
	}
	t->changed = false;
	return 0;
}

int fo_lease_table_load(struct fo_lease_table *t, const char *path, char *err, size_t errlen)
{
	char line[LINE_MAX_LEN];
	unsigned no = 1;
	FILE *f = fopen(path, "re");
	int rc = 0;

	if (!f) {
		rc = -errno;
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(-rc));
		return rc;
	}
	if (!fgets(line, sizeof(line), f) || strcmp(line, STATE_MAGIC "\n")) {
		snprintf(err, errlen, "%s is not a witness state file (no '%s' line)", path,
			 STATE_MAGIC);
		rc = -EBADMSG;
		goto out;
	}
	while (fgets(line, sizeof(line), f)) {
		char pair[FO_WITNESS_NAME_MAX], holder[FO_WITNESS_NAME_MAX], runhex[17];
		int stale, claimed, end = 0;
		uint64_t gen, seq;
		struct lease *l;

		no++;
		if (sscanf(line, "%63s %63s %" SCNu64 " %d %d %16[0-9a-f] %" SCNu64 "%n", pair, holder,
			   &gen, &stale, &claimed, runhex, &seq, &end) != 7 ||
		    strcmp(line + end, "\n") || !name_ok(pair) ||
		    (strcmp(holder, "-") && !name_ok(holder)) || (stale | claimed) & ~1 ||
		    strlen(runhex) != 16 || find(t, pair, false)) {
			snprintf(err, errlen, "%s, line %u: damaged or repeated entry", path, no);
			rc = -EBADMSG;
			goto out;
		}
		l = find(t, pair, true);
		if (!l) {
			snprintf(err, errlen, "%s: more than %d pairs, or out of memory", path,
				 TABLE_MAX);
			rc = -ENOMEM;
			goto out;
		}
		snprintf(l->holder, sizeof(l->holder), "%s", strcmp(holder, "-") ? holder : "");
		l->generation = gen;
		l->stale = stale;
		l->claimed = claimed;
		l->claim_run = strtoull(runhex, NULL, 16);
		l->claim_seq = seq;
		l->expiry_ms = 0; /* the quiet time after the start covers it */
	}
	if (ferror(f)) {
		rc = -EIO;
		snprintf(err, errlen, "cannot read %s", path);
	}
out:
	fclose(f);
	return rc;
}
