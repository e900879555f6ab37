/* audit.c — see audit.h. */
#include "audit.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

void audit(const char *event, const char *fmt, ...)
{
    struct timespec ts;
    struct tm tm;
    char when[32], what[512];
    va_list ap;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s.%03ldZ audit %s %s\n", when, ts.tv_nsec / 1000000, event, what);
}
