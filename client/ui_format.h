/* ui_format.h — the status bar's words and numbers, pure (unit-tested). */
#ifndef CHAT_UI_FORMAT_H
#define CHAT_UI_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"

/* "912 B", "3.4 KB", "12.0 MB". */
char *ui_fmt_bytes(uint64_t n, char *buf, size_t size);
/* "connecting", "connected", "reconnecting in 3 s" (retry_ms rounded up to
 * whole seconds), "offline". */
char *ui_fmt_state(enum core_state s, int64_t retry_ms, char *buf, size_t size);
/* The cost line in one of three lengths: 0 long, 1 medium, 2 short.
 *   0: "since start: 12 requests · in 3.4 KB · out 1.2 KB · 14 events · latency 3 ms (median 2 ms)"
 *   2: "12 req · ↓3.4 KB ↑1.2 KB · 14 ev · 3/2 ms" */
char *ui_fmt_stats(const struct core_stats *st, int level, char *buf, size_t size);
#define UI_FMT_STATS_LEVELS 3
/* The chat's date line for the local day of an epoch-ms timestamp:
 * "── Wed 2 Dec 2026 ──" (day and month names of the locale). */
char *ui_fmt_day(int64_t ts_ms, char *buf, size_t size);
/* 1 if two epoch-ms timestamps fall on the same local day. */
int ui_same_day(int64_t a_ms, int64_t b_ms);
/* Local time of an epoch-ms timestamp as "HH:MM". */
char *ui_fmt_clock(int64_t ts_ms, char *buf, size_t size);

#endif
