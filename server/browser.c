/* browser.c — the session cookie and the same-origin check (browser.h).
 * The page's origin is the scheme of this connection (TLS or not) and the
 * Host (HTTP/2: :authority) the browser sent: the Origin of a page served from that host and
 * port is exactly "http(s)://" + Host. Behind a proxy that changes Host,
 * the proxy must pass it through (HAProxy does by default). */
#include "browser.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

enum browser_origin browser_origin_of(struct lws *wsi)
{
    char origin[256], host[200], own[256];
    if (lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) <= 0)
        return BROWSER_NO_ORIGIN;
    /* HTTP/2 (over TLS, what browsers speak) names the host in :authority */
    if (lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN) <= 0 ||
        (lws_hdr_copy(wsi, host, sizeof host, WSI_TOKEN_HOST) <= 0 &&
         lws_hdr_copy(wsi, host, sizeof host, WSI_TOKEN_HTTP_COLON_AUTHORITY) <= 0))
        return BROWSER_OTHER_ORIGIN;
    snprintf(own, sizeof own, "%s://%s", lws_is_ssl(wsi) ? "https" : "http", host);
    return strcasecmp(origin, own) == 0 ? BROWSER_SAME_ORIGIN : BROWSER_OTHER_ORIGIN;
}

int browser_cookie_token(struct lws *wsi, char tok[PROTO_TOKEN_HEX_LEN + 1])
{
    size_t n = PROTO_TOKEN_HEX_LEN + 1;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_COOKIE) <= 0 ||
        lws_http_cookie_get(wsi, BROWSER_COOKIE, tok, &n) != 0 || n != PROTO_TOKEN_HEX_LEN) {
        tok[0] = '\0';
        return -1;
    }
    return 0;
}

int browser_cookie_value(struct lws *wsi, const char *token, int64_t max_age_s, char *out, size_t size)
{
    int n = snprintf(out, size, "%s=%s; Path=/api/; Max-Age=%lld; HttpOnly; SameSite=Strict%s",
                     BROWSER_COOKIE, token ? token : "", token ? (long long)max_age_s : 0LL,
                     lws_is_ssl(wsi) ? "; Secure" : "");
    return n < 0 || (size_t)n >= size ? -1 : 0;
}
