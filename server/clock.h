/* clock.h — the wall clock every module stamps and compares times with
 * (clock.c): event and session times, absolute deadlines. Monotonic time
 * for intervals is the sweep's (sweep_mono_ms). */
#ifndef CHAT_CLOCK_H
#define CHAT_CLOCK_H

#include <stdint.h>

/* Milliseconds since the epoch (CLOCK_REALTIME). */
int64_t now_ms(void);

#endif
