/* ui_format.c — see ui_format.h. */
#include "ui_format.h"

#include <inttypes.h>
#include <stdio.h>
#include <time.h>

char *ui_fmt_bytes(uint64_t n, char *buf, size_t size)
{
    if (n < 1024)
        snprintf(buf, size, "%" PRIu64 " B", n);
    else if (n < 1024 * 1024)
        snprintf(buf, size, "%.1f KB", (double)n / 1024.0);
    else if (n < (uint64_t)1024 * 1024 * 1024)
        snprintf(buf, size, "%.1f MB", (double)n / (1024.0 * 1024.0));
    else
        snprintf(buf, size, "%.1f GB", (double)n / (1024.0 * 1024.0 * 1024.0));
    return buf;
}

char *ui_fmt_state(enum core_state s, int64_t retry_ms, char *buf, size_t size)
{
    switch (s) {
    case CORE_CONNECTED:
        snprintf(buf, size, "connected");
        break;
    case CORE_RECONNECTING:
        snprintf(buf, size, "reconnecting in %lld s",
                 (long long)(retry_ms > 0 ? (retry_ms + 999) / 1000 : 0));
        break;
    case CORE_OFFLINE:
        snprintf(buf, size, "offline");
        break;
    default:
        snprintf(buf, size, "connecting");
        break;
    }
    return buf;
}

char *ui_fmt_stats(const struct core_stats *st, int level, char *buf, size_t size)
{
    char in[32], out[32], lat[64] = "", drop[48] = "";
    ui_fmt_bytes(st->bytes_in, in, sizeof in);
    ui_fmt_bytes(st->bytes_out, out, sizeof out);
    long long n = (long long)st->latency_ms, m = (long long)st->latency_median_ms;
    if (level <= 0) {
        if (st->have_latency)
            snprintf(lat, sizeof lat, " · latency %lld ms (median %lld ms)", n, m);
        else
            snprintf(lat, sizeof lat, " · latency -");
        if (st->dropped)
            snprintf(drop, sizeof drop, " · %" PRIu64 " dropped", st->dropped);
        snprintf(buf, size, "since start: %" PRIu64 " requests · in %s · out %s · %" PRIu64
                 " events%s%s",
                 st->requests, in, out, st->events, drop, lat);
    } else if (level == 1) {
        if (st->have_latency)
            snprintf(lat, sizeof lat, " · lat %lld ms, med %lld", n, m);
        snprintf(buf, size, "%" PRIu64 " req · in %s · out %s · %" PRIu64 " ev%s",
                 st->requests, in, out, st->events, lat);
    } else {
        if (st->have_latency)
            snprintf(lat, sizeof lat, " · %lld/%lld ms", n, m);
        snprintf(buf, size, "%" PRIu64 " req ↓%s ↑%s %" PRIu64 " ev%s",
                 st->requests, in, out, st->events, lat);
    }
    return buf;
}

char *ui_fmt_clock(int64_t ts_ms, char *buf, size_t size)
{
    time_t t = (time_t)(ts_ms / 1000);
    struct tm tm;
    if (ts_ms <= 0 || !localtime_r(&t, &tm))
        snprintf(buf, size, "--:--");
    else
        snprintf(buf, size, "%02d:%02d", tm.tm_hour, tm.tm_min);
    return buf;
}

char *ui_fmt_day(int64_t ts_ms, char *buf, size_t size)
{
    time_t t = (time_t)(ts_ms / 1000);
    struct tm tm;
    char wd[32] = "", mon[32] = "";
    if (localtime_r(&t, &tm)) {
        strftime(wd, sizeof wd, "%a", &tm);
        strftime(mon, sizeof mon, "%b", &tm);
        snprintf(buf, size, "── %s %d %s %d ──", wd, tm.tm_mday, mon, tm.tm_year + 1900);
    } else {
        snprintf(buf, size, "──");
    }
    return buf;
}

int ui_same_day(int64_t a_ms, int64_t b_ms)
{
    time_t a = (time_t)(a_ms / 1000), b = (time_t)(b_ms / 1000);
    struct tm ta, tb;
    if (!localtime_r(&a, &ta) || !localtime_r(&b, &tb))
        return 1;
    return ta.tm_year == tb.tm_year && ta.tm_yday == tb.tm_yday;
}
