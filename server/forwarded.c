/* forwarded.c — see forwarded.h. */
#include "forwarded.h"

#include <arpa/inet.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses a numeric address: 4 or 6 with its bytes in a (16), else 0. An
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d, as a dual-stack socket shows an
 * IPv4 peer) is taken as its IPv4 address. */
static int addr_parse(const char *s, unsigned char a[16])
{
    static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    if (inet_pton(AF_INET, s, a) == 1)
        return 4;
    if (inet_pton(AF_INET6, s, a) != 1)
        return 0;
    if (memcmp(a, mapped, sizeof mapped) == 0) {
        memmove(a, a + 12, 4);
        return 4;
    }
    return 6;
}

int fwd_trusted(const char *const *proxies, int n, const char *peer)
{
    unsigned char p[16], t[16];
    int pf = addr_parse(peer, p);
    if (!pf)
        return 0;
    for (int i = 0; i < n; i++)
        if (addr_parse(proxies[i], t) == pf && memcmp(p, t, pf == 4 ? 4 : 16) == 0)
            return 1;
    return 0;
}

int fwd_last_entry(const char *xff, char *out, size_t len)
{
    unsigned char a[16];
    char entry[FWD_ADDR_MAX];
    const char *end = xff + strlen(xff), *start;
    while (end > xff && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    start = end;
    while (start > xff && start[-1] != ',' && start[-1] != ' ' && start[-1] != '\t')
        start--;
    size_t n = (size_t)(end - start);
    if (n == 0 || n >= sizeof entry)
        return -1;
    memcpy(entry, start, n);
    entry[n] = '\0';
    int family = addr_parse(entry, a);
    if (!family || !inet_ntop(family == 4 ? AF_INET : AF_INET6, a, out, (socklen_t)len))
        return -1;
    return 0;
}

enum fwd_source fwd_client_addr(const char *const *proxies, int n, struct lws *wsi,
                                 char *out, size_t len)
{
    char peer[FWD_ADDR_MAX + 8] = "?";
    lws_get_peer_simple(wsi, peer, sizeof peer);
    snprintf(out, len, "%s", peer);
    if (!fwd_trusted(proxies, n, peer))
        return FWD_PEER;
    /* the whole header, however long the client's part of it: a cut one
     * would lose the proxy's own entry at its end */
    int total = lws_hdr_total_length(wsi, WSI_TOKEN_X_FORWARDED_FOR);
    if (total <= 0)
        return FWD_MISSING;
    /* room for the separators lws puts between repeated header lines */
    int room = 2 * total + 2;
    char *xff = malloc((size_t)room);
    int ok = xff && lws_hdr_copy(wsi, xff, room, WSI_TOKEN_X_FORWARDED_FOR) >= 0 &&
             fwd_last_entry(xff, out, len) == 0;
    free(xff);
    if (!ok)
        snprintf(out, len, "%s", peer);
    return ok ? FWD_FORWARDED : FWD_INVALID;
}
