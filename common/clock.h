/* Monotonic time in nanoseconds, and sleeping on it. */
#ifndef HA_COMMON_CLOCK_H
#define HA_COMMON_CLOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define NSEC_PER_USEC UINT64_C(1000)
#define NSEC_PER_MSEC UINT64_C(1000000)
#define NSEC_PER_SEC UINT64_C(1000000000)

uint64_t clk_now_ns(void);
/* Sleeps until the monotonic clock reads deadline_ns (restarts after signals). */
void clk_sleep_until_ns(uint64_t deadline_ns);
/* Sleeps until deadline_ns or until stopped() is true, looking every 20 ms:
 * true when stopped. */
bool clk_sleep_until_or(uint64_t deadline_ns, bool (*stopped)(void));
/* The monotonic clock's reading at deadline_ns, or ms from now, as a
 * timespec for pthread_cond_timedwait on a clk_cond_init condition. */
struct timespec clk_ts(uint64_t deadline_ns);
struct timespec clk_deadline_ts(unsigned ms);
/* A condition variable whose timed waits use the monotonic clock. */
void clk_cond_init(pthread_cond_t *cv);

#endif
