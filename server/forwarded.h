/* forwarded.h — who the client is when a trusted balancer (--trusted-proxy)
 * stands between it and chatd. From a trusted proxy the client is the LAST
 * entry of X-Forwarded-For: the one the proxy appended itself (HAProxy's
 * `option forwardfor` adds a header line, nginx appends ", ADDR"); every
 * earlier entry is whatever the client sent and is never believed. From
 * any other peer the header is ignored entirely. An entry must be a
 * numeric IPv4 or IPv6 address (inet_pton) and is written back in its
 * canonical form, so one address has one spelling as a key. */
#ifndef CHAT_FORWARDED_H
#define CHAT_FORWARDED_H

#include <stddef.h>

struct lws;

#define FWD_ADDR_MAX 46           /* INET6_ADDRSTRLEN */

enum fwd_source {
    FWD_PEER,         /* not from a trusted proxy: the TCP peer's address */
    FWD_FORWARDED,    /* from a trusted proxy: its last X-Forwarded-For entry */
    FWD_MISSING,      /* from a trusted proxy without the header: the proxy's */
    FWD_INVALID,      /* from a trusted proxy, last entry no address: the proxy's */
};

/* 1 if the numeric address peer is one of proxies[0..n) (an IPv4-mapped
 * IPv6 peer matches its IPv4 address), else 0. */
int fwd_trusted(const char *const *proxies, int n, const char *peer);
/* The last comma- or space-separated entry of an X-Forwarded-For value,
 * canonical, into out (at least FWD_ADDR_MAX): 0, or -1 if it is missing
 * or not a numeric address. */
int fwd_last_entry(const char *xff, char *out, size_t len);
/* The client address of wsi's current request (headers parsed) into out
 * (at least FWD_ADDR_MAX), and where it came from. */
enum fwd_source fwd_client_addr(const char *const *proxies, int n, struct lws *wsi,
                                 char *out, size_t len);

#endif
