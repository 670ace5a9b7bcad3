#include "primary/lease.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "failover/witness.h"

struct lease {
	struct lease_config cfg;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* alone_ok */
	pthread_t thread;
	bool running;
	_Atomic bool stop;

	/* Under mu. */
	uint64_t until_ns;  /* our view, a TTL/2 margin before the witness's */
	uint64_t gen;	    /* 0: never granted */
	bool superseded;    /* the secondary held the lease since: never resume */
	bool blind;	    /* or may have: none was held when it was lost */
	bool unprotected;   /* runs without the secondary, under the lease */
	bool lost;	    /* paused for want of the lease */
	bool devs_held;	    /* and the last session's output is held */
	uint64_t lost_at_ns; /* when the last session's secondary was lost */
	uint64_t answer_ns;  /* when the witness last answered; 0: never */
	char status[400];
	/* The claims (witness.h): "alone" before anything is released
	 * without the secondary; "protected" from a session's first ACK. */
	struct fo_lease_claim claim; /* run and seq; kind unused */
	bool want_alone, alone_ok, claim_protected;
	_Atomic bool renew_now;
};

/* Under mu. */
static bool valid(const struct lease *l)
{
	return !l->superseded && l->gen && clk_now_ns() < l->until_ns;
}

/* Pauses the domain for want of the lease that ran out at UNTIL (0: none
 * was held); WHY is the error to log. Our view of the lease ends TTL/2
 * before the witness's: a pause that comes later than that ate into the
 * margin, and says so. */
static void pause_domain(struct lease *l, uint64_t until, const char *why)
{
	uint64_t t0 = clk_now_ns(), lost;
	int rc = l->cfg.ops->pause(l->cfg.dom);
	uint64_t t1 = clk_now_ns();

	pthread_mutex_lock(&l->mu);
	lost = l->lost_at_ns;
	pthread_mutex_unlock(&l->mu);

	log_error("%s (%s)", why, rc < 0 ? strerror(-rc) : "paused");
	notify_event(l->cfg.notify, "lease-lost", l->cfg.domain, l->cfg.witness, NOTIFY_NO_EPOCH,
		     why);
	if (until && t1 > until + 20 * NSEC_PER_MSEC)
		log_warn("witness: the domain paused %llu ms after the lease ran out (margin "
			 "%u ms; the pause took %llu ms, %llu ms after the secondary was "
			 "lost): this host is overloaded",
			 (unsigned long long)((t1 - until) / NSEC_PER_MSEC), l->cfg.ttl_ms / 2,
			 (unsigned long long)((t1 - t0) / NSEC_PER_MSEC),
			 (unsigned long long)((t1 - lost) / NSEC_PER_MSEC));
}

bool lease_may_release(struct lease *l)
{
	uint64_t until = 0;
	bool ok;

	pthread_mutex_lock(&l->mu);
	if (!l->want_alone || !l->alone_ok) {
		l->want_alone = true;
		l->alone_ok = false;
	}
	l->claim_protected = false;
	atomic_store(&l->renew_now, true);
	while (!l->alone_ok && valid(l)) {
		struct timespec ts = clk_deadline_ts(10);

		pthread_cond_timedwait(&l->cv, &l->mu, &ts);
	}
	ok = l->alone_ok && valid(l);
	if (ok) {
		l->unprotected = true;
	} else {
		l->lost = true;
		l->devs_held = true;
		until = l->gen ? l->until_ns : 0;
	}
	pthread_mutex_unlock(&l->mu);
	/* Its output was held all along; still, the guest should not run on
	 * once the secondary may activate its copy. */
	if (!ok)
		pause_domain(l, until,
			     "lost both the secondary and the witness's lease: the domain is "
			     "PAUSED and its output held, since the secondary may take over now");
	return ok;
}

/* Pauses an unprotected domain whose lease ran out and resumes it when
 * the same lease comes back (the lease's thread, under nothing). */
static void enforce(struct lease *l)
{
	enum { NONE, PAUSE, RESUME } act = NONE;
	uint64_t until = 0;
	bool held = false;

	pthread_mutex_lock(&l->mu);
	if (l->unprotected && !valid(l) && !l->lost) {
		l->lost = true;
		l->unprotected = false;
		until = l->until_ns;
		act = PAUSE;
	} else if (l->lost && valid(l) && l->alone_ok) {
		/* lost stays set until the held devices are gone: it keeps a
		 * new session from connecting devices meanwhile. */
		held = l->devs_held;
		l->devs_held = false;
		act = RESUME;
	}
	pthread_mutex_unlock(&l->mu);
	if (act == PAUSE) {
		pause_domain(l, until,
			     "no secondary and no witness lease: the domain is PAUSED so that it "
			     "cannot serve beside a copy the secondary may activate");
	} else if (act == RESUME) {
		if (held)
			devset_teardown(l->cfg.devs);
		int rc = l->cfg.ops->resume(l->cfg.dom);

		pthread_mutex_lock(&l->mu);
		l->lost = false;
		l->unprotected = true;
		pthread_mutex_unlock(&l->mu);

		log_warn("the witness lease is back (generation %llu): the domain runs again, "
			 "unprotected%s",
			 (unsigned long long)l->gen, rc < 0 ? " (resume failed!)" : "");
		notify_event(l->cfg.notify, "lease-back", l->cfg.domain, l->cfg.witness,
			     NOTIFY_NO_EPOCH, "the witness granted the lease again: the domain runs, unprotected");
	}
}

/* Takes the witness's answer to a request sent at SENT with CLAIM (under
 * mu); ERR is left empty when the lease is ours and valid. */
static void take_reply(struct lease *l, int rc, const struct fo_lease_reply *rep,
		       const struct fo_lease_claim *claim, uint64_t sent, char *err, size_t errlen)
{
	if (rc == 0 && rep->granted && l->superseded) {
		/* Not "renewed again": this copy never runs again. */
		if (l->blind)
			snprintf(err, errlen,
				 "this copy is superseded: the secondary was lost while no lease "
				 "was held");
		else
			snprintf(err, errlen,
				 "this copy is superseded: the secondary held the lease after "
				 "generation %llu",
				 (unsigned long long)l->gen);
	} else if (rc == 0 && rep->granted && !l->gen && l->lost) {
		/* The secondary was lost while no lease was held (the witness
		 * had not answered yet, or was restarting): it may have held the
		 * lease and activated since, and a lease that expired leaves no
		 * trace of that here. */
		l->superseded = true;
		l->blind = true;
		snprintf(err, errlen,
			 "granted generation %llu, but no lease was held when the secondary was "
			 "lost: it may have taken over meanwhile",
			 (unsigned long long)rep->generation);
	} else if (rc == 0 && rep->granted) {
		if (!l->gen)
			l->gen = rep->generation;
		if (rep->generation != l->gen) {
			l->superseded = true;
			snprintf(err, errlen,
				 "the lease came back with generation %llu, not %llu: the secondary "
				 "held it meanwhile",
				 (unsigned long long)rep->generation, (unsigned long long)l->gen);
		} else {
			l->until_ns = sent + (uint64_t)(l->cfg.ttl_ms / 2) * NSEC_PER_MSEC;
			/* Still wanted: the first ACK of a new session may have
			 * withdrawn it meanwhile. */
			if (claim->kind == FO_CLAIM_ALONE && l->want_alone && !l->alone_ok) {
				l->alone_ok = true;
				log_info("witness: took the claim that this host runs without its "
					 "secondary (generation %llu): the secondary's copy will not "
					 "be activated",
					 (unsigned long long)l->gen);
			}
			pthread_cond_broadcast(&l->cv);
		}
	} else if (rc == 0) {
		if ((l->gen || l->lost) && !strcmp(rep->holder, "secondary"))
			l->superseded = true;
		snprintf(err, errlen, "the witness denies the lease: %s holds it", rep->holder);
	}
	if (l->superseded)
		snprintf(l->status, sizeof(l->status), "SUPERSEDED: %s; this copy must not run",
			 l->blind ? "the secondary was lost while no lease was held, and may "
				    "have taken over since"
				  : "the secondary took the lease");
	else if (valid(l))
		snprintf(l->status, sizeof(l->status), "lease held (generation %llu, %llu ms left)",
			 (unsigned long long)l->gen,
			 (unsigned long long)((l->until_ns - clk_now_ns()) / NSEC_PER_MSEC));
	else
		snprintf(l->status, sizeof(l->status), "no lease: %s",
			 err[0] ? err : "not granted yet");
}

/* Renews the lease every TTL/6. Pauses an unprotected domain at the end of
 * its lease (enforce), also while a renewal is still under way. Not ended
 * by a stop request: a stop may still need a claim (lease_stop ends it). */
static void *lease_main(void *arg)
{
	struct lease *l = arg;
	unsigned ttl = l->cfg.ttl_ms, period = ttl / 6;
	char last_err[400] = "";

	log_set_domain(l->cfg.domain);
	while (!atomic_load(&l->stop)) {
		struct fo_lease_reply rep;
		struct fo_lease_claim claim;
		char err[400] = "";
		uint64_t sent = clk_now_ns();
		unsigned wait_ms = period;

		enforce(l);
		atomic_store(&l->renew_now, false);
		pthread_mutex_lock(&l->mu);
		claim = l->claim;
		claim.kind = l->want_alone	  ? FO_CLAIM_ALONE
			     : l->claim_protected ? FO_CLAIM_PROTECTED
						  : FO_CLAIM_NONE;
		l->claim.seq++;
		/* An unreachable witness must not hold the pause back: while
		 * the domain runs unprotected, give up the renewal at the end
		 * of the lease (the pause comes first, the renewal next time). */
		if (l->unprotected && valid(l)) {
			uint64_t left = (l->until_ns - sent) / NSEC_PER_MSEC;

			if (left < wait_ms)
				wait_ms = left > 10 ? (unsigned)left : 10;
		}
		pthread_mutex_unlock(&l->mu);
		int rc = fo_witness_ask(l->cfg.witness, l->cfg.tls, l->cfg.pair, "primary", ttl,
					&claim, wait_ms, &rep, err, sizeof(err));

		pthread_mutex_lock(&l->mu);
		if (rc == 0)
			l->answer_ns = clk_now_ns();
		bool was_superseded = l->superseded;
		take_reply(l, rc, &rep, &claim, sent, err, sizeof(err));
		bool superseded = l->superseded && !was_superseded;
		pthread_mutex_unlock(&l->mu);
		if (superseded)
			notify_event(l->cfg.notify, "superseded", l->cfg.domain, l->cfg.witness,
				     NOTIFY_NO_EPOCH, err);

		if (err[0] && strcmp(err, last_err))
			log_warn("witness: %s", err);
		else if (!err[0] && last_err[0])
			log_info("witness: lease renewed again (generation %llu)",
				 (unsigned long long)l->gen);
		snprintf(last_err, sizeof(last_err), "%s", err);
		enforce(l);
		/* Until the next renewal, or the end of the lease if sooner. */
		uint64_t next = sent + (uint64_t)period * NSEC_PER_MSEC;
		while (!atomic_load(&l->stop) && clk_now_ns() < next &&
		       !atomic_load(&l->renew_now)) {
			clk_sleep_until_ns(clk_now_ns() + 10 * NSEC_PER_MSEC);
			pthread_mutex_lock(&l->mu);
			bool due = l->unprotected && !valid(l);
			pthread_mutex_unlock(&l->mu);
			if (due)
				break;
		}
	}
	return NULL;
}

int lease_start(const struct lease_config *cfg, struct lease **out)
{
	struct lease *l = calloc(1, sizeof(*l));
	int rc;

	if (!l)
		return -ENOMEM;
	l->cfg = *cfg;
	pthread_mutex_init(&l->mu, NULL);
	clk_cond_init(&l->cv);
	/* Names this process's claims; a failed read leaves the time. */
	if (getrandom(&l->claim.run, sizeof(l->claim.run), 0) != sizeof(l->claim.run))
		l->claim.run = clk_now_ns() ^ ((uint64_t)getpid() << 32);
	l->claim.seq = 1;
	rc = -pthread_create(&l->thread, NULL, lease_main, l);
	if (rc < 0) {
		lease_free(l);
		return rc;
	}
	l->running = true;
	*out = l;
	return 0;
}

void lease_stop(struct lease *l)
{
	if (!l || !l->running)
		return;
	atomic_store(&l->stop, true);
	pthread_join(l->thread, NULL);
	l->running = false;
}

void lease_free(struct lease *l)
{
	if (!l)
		return;
	lease_stop(l);
	pthread_cond_destroy(&l->cv);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

bool lease_blocks(struct lease *l)
{
	pthread_mutex_lock(&l->mu);
	bool blocks = l->lost || l->superseded;
	pthread_mutex_unlock(&l->mu);
	return blocks;
}

int lease_session_begins(struct lease *l)
{
	int rc = 0;

	pthread_mutex_lock(&l->mu);
	if (l->lost || l->superseded)
		rc = -EAGAIN;
	else
		l->unprotected = false;
	pthread_mutex_unlock(&l->mu);
	return rc;
}

void lease_secondary_lost(struct lease *l)
{
	pthread_mutex_lock(&l->mu);
	l->lost_at_ns = clk_now_ns();
	pthread_mutex_unlock(&l->mu);
}

void lease_protected(struct lease *l)
{
	pthread_mutex_lock(&l->mu);
	l->want_alone = l->alone_ok = false;
	l->claim_protected = true;
	atomic_store(&l->renew_now, true);
	pthread_mutex_unlock(&l->mu);
}

bool lease_output_held(struct lease *l)
{
	pthread_mutex_lock(&l->mu);
	bool held = l->devs_held;
	pthread_mutex_unlock(&l->mu);
	return held;
}

void lease_info(struct lease *l, struct lease_info *out)
{
	uint64_t now = clk_now_ns();

	pthread_mutex_lock(&l->mu);
	out->valid = valid(l);
	out->remaining_s = out->valid ? (double)(l->until_ns - now) / 1e9 : 0;
	out->answer_age_s = l->answer_ns ? (double)(now - l->answer_ns) / 1e9 : -1;
	out->superseded = l->superseded;
	out->paused = l->lost;
	out->unprotected = l->unprotected;
	pthread_mutex_unlock(&l->mu);
}

void lease_status(struct lease *l, char *buf, size_t len)
{
	pthread_mutex_lock(&l->mu);
	snprintf(buf, len, "%s", l->status[0] ? l->status : "asking");
	pthread_mutex_unlock(&l->mu);
}
