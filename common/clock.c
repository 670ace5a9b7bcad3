#include "common/clock.h"

#include <errno.h>
#include <time.h>

uint64_t clk_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

struct timespec clk_ts(uint64_t deadline_ns)
{
	return (struct timespec){
		.tv_sec = (time_t)(deadline_ns / NSEC_PER_SEC),
		.tv_nsec = (long)(deadline_ns % NSEC_PER_SEC),
	};
}

struct timespec clk_deadline_ts(unsigned ms)
{
	return clk_ts(clk_now_ns() + ms * NSEC_PER_MSEC);
}

void clk_cond_init(pthread_cond_t *cv)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
}

bool clk_sleep_until_or(uint64_t deadline_ns, bool (*stopped)(void))
{
	while (!stopped()) {
		uint64_t now = clk_now_ns(), step = now + 20 * NSEC_PER_MSEC;

		if (now >= deadline_ns)
			return false;
		clk_sleep_until_ns(deadline_ns < step ? deadline_ns : step);
	}
	return true;
}

void clk_sleep_until_ns(uint64_t deadline_ns)
{
	struct timespec ts = clk_ts(deadline_ns);

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}
