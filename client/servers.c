/* servers.c — parsing --server URL[,URL...] and round-robin failover over
 * the result; see servers.h. A URL is http[s]://HOST[:PORT][/PREFIX], HOST
 * a name, an IPv4 address or an IPv6 address in brackets. */
#include "servers.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct servers {
    struct server_url v[SERVERS_MAX];
    size_t n;
    size_t cur;
    servers_hook hook;
    void *hook_arg;
};

/* ---- one URL ---- */

static int host_char(int c, int bracketed)
{
    if (bracketed)
        return isxdigit(c) || c == ':' || c == '.';
    return isalnum(c) || c == '.' || c == '-' || c == '_';
}

/* Scheme; returns the rest after "://", or NULL. */
static const char *parse_scheme(const char *p, int *tls)
{
    if (strncasecmp(p, "http://", 7) == 0) {
        *tls = 0;
        return p + 7;
    }
    if (strncasecmp(p, "https://", 8) == 0) {
        *tls = 1;
        return p + 8;
    }
    return NULL;
}

/* Host, with or without brackets; returns the rest or NULL. */
static const char *parse_host(const char *p, struct server_url *s)
{
    int br = *p == '[';
    const char *start = p + br, *e = start;
    while (*e && host_char((unsigned char)*e, br))
        e++;
    size_t n = (size_t)(e - start);
    if (!n || n >= sizeof s->host || (br && *e != ']'))
        return NULL;
    memcpy(s->host, start, n);
    s->host[n] = '\0';
    return e + br;
}

/* ":PORT" if present; returns the rest or NULL. */
static const char *parse_port(const char *p, struct server_url *s)
{
    s->port = s->tls ? 443 : 80;
    if (*p != ':')
        return p;
    long port = 0;
    const char *d = ++p;
    while (isdigit((unsigned char)*p) && port <= 65535)
        port = port * 10 + (*p++ - '0');
    if (p == d || isdigit((unsigned char)*p) || port < 1 || port > 65535)
        return NULL;
    s->port = (int)port;
    return p;
}

/* "/PREFIX/" -> "/PREFIX"; "" or "/" -> "". */
static int parse_prefix(const char *p, struct server_url *s)
{
    if (*p && *p != '/')
        return -1;
    while (*p == '/')
        p++;
    for (const char *c = p; *c; c++)
        if (*c <= ' ' || *c >= 0x7f || *c == '?' || *c == '#' || *c == ',')
            return -1;
    int n = snprintf(s->prefix, sizeof s->prefix, "%s%s", *p ? "/" : "", p);
    if (n < 0 || (size_t)n >= sizeof s->prefix)
        return -1;
    while (n && s->prefix[n - 1] == '/')
        s->prefix[--n] = '\0';
    return 0;
}

/* s->url from the parts; -1 if it does not fit. */
static int format_url(struct server_url *s)
{
    char buf[sizeof s->url + sizeof s->host + sizeof s->prefix + 32];
    int v6 = strchr(s->host, ':') != NULL;
    int n = snprintf(buf, sizeof buf, "%s://%s%s%s:%d%s", s->tls ? "https" : "http",
                     v6 ? "[" : "", s->host, v6 ? "]" : "", s->port, s->prefix);
    if (n < 0 || (size_t)n >= sizeof s->url)
        return -1;
    memcpy(s->url, buf, (size_t)n + 1);
    return 0;
}

static const char *parse_one(const char *url, struct server_url *s)
{
    const char *p = parse_scheme(url, &s->tls);
    if (!p || !(p = parse_host(p, s)))
        return "must look like http[s]://HOST[:PORT][/PREFIX]";
    if (!(p = parse_port(p, s)))
        return "has a bad port (1-65535)";
    if (parse_prefix(p, s) < 0)
        return "has a bad path (printable ASCII only, no query or fragment)";
    return format_url(s) < 0 ? "is too long" : NULL;
}

/* ---- the list ---- */

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

static int add_url(struct servers *l, char *item, char *err, size_t errlen)
{
    const char *why;
    char *url = trim(item);
    if (!*url) {
        snprintf(err, errlen, "--server: empty URL in the list");
        return -1;
    }
    if (l->n == SERVERS_MAX) {
        snprintf(err, errlen, "--server: at most %d URLs", SERVERS_MAX);
        return -1;
    }
    if (strlen(url) >= SERVER_URL_MAX) {
        snprintf(err, errlen, "--server: URL %zu is too long", l->n + 1);
        return -1;
    }
    if ((why = parse_one(url, &l->v[l->n]))) {
        snprintf(err, errlen, "--server: \"%.200s\" %s", url, why);
        return -1;
    }
    l->n++;
    return 0;
}

struct servers *servers_parse(const char *spec, char *err, size_t errlen)
{
    struct servers *l = calloc(1, sizeof *l);
    char *copy = spec ? strdup(spec) : NULL;
    if (!l || !copy) {
        snprintf(err, errlen, spec ? "out of memory" : "--server: no URL");
        free(l);
        free(copy);
        return NULL;
    }
    char *item = copy;
    for (;;) {
        char *comma = strchr(item, ',');
        if (comma)
            *comma = '\0';
        if (add_url(l, item, err, errlen) < 0) {
            free(copy);
            free(l);
            return NULL;
        }
        if (!comma)
            break;
        item = comma + 1;
    }
    free(copy);
    return l;
}

struct servers *servers_new_one(const char *host, int port, int tls, const char *prefix)
{
    struct servers *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    struct server_url *s = &l->v[0];
    snprintf(s->host, sizeof s->host, "%s", host);
    snprintf(s->prefix, sizeof s->prefix, "%s", prefix ? prefix : "");
    s->port = port;
    s->tls = tls;
    if (format_url(s) < 0) {
        free(l);
        return NULL;
    }
    l->n = 1;
    return l;
}

void servers_free(struct servers *s)
{
    free(s);
}

size_t servers_count(const struct servers *s)
{
    return s->n;
}

const struct server_url *servers_get(const struct servers *s, size_t i)
{
    return i < s->n ? &s->v[i] : NULL;
}

const struct server_url *servers_current(const struct servers *s)
{
    return &s->v[s->cur];
}

int servers_any_tls(const struct servers *s)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].tls)
            return 1;
    return 0;
}

int servers_failed(struct servers *s, const struct server_url *which)
{
    if (!which || which != &s->v[s->cur] || s->n < 2)
        return 0;
    const struct server_url *before = which;
    s->cur = (s->cur + 1) % s->n;
    if (s->hook)
        s->hook(s->hook_arg, &s->v[s->cur], before);
    return 1;
}

void servers_set_hook(struct servers *s, servers_hook fn, void *arg)
{
    s->hook = fn;
    s->hook_arg = arg;
}

const char *servers_prefix(const struct servers *s, const char *fallback)
{
    return s ? servers_current(s)->prefix : fallback;
}
