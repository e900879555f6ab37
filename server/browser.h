/* browser.h — what sets a browser apart from a terminal client (browser.c):
 * the session cookie a browser login asks for (HttpOnly, SameSite=Strict,
 * Secure under TLS), and the Origin check that makes a cookie count only
 * for the page's own origin (the scheme and Host this request came to).
 * Rules: shared/PROTOCOL.md, "Browsers". */
#ifndef CHAT_BROWSER_H
#define CHAT_BROWSER_H

#include "protocol.h"

#include <libwebsockets.h>
#include <stdint.h>

#define BROWSER_COOKIE "chat_session"

/* The request's Origin header: BROWSER_NO_ORIGIN (terminal clients, and
 * browsers on same-origin GETs), BROWSER_SAME_ORIGIN (the page's own), or
 * BROWSER_OTHER_ORIGIN (any other, or unreadable). */
enum browser_origin { BROWSER_NO_ORIGIN, BROWSER_SAME_ORIGIN, BROWSER_OTHER_ORIGIN };
enum browser_origin browser_origin_of(struct lws *wsi);
/* The session cookie's token into tok (NUL-terminated): 0, or -1 if the
 * request carries none that is well-formed. */
int browser_cookie_token(struct lws *wsi, char tok[PROTO_TOKEN_HEX_LEN + 1]);
/* The Set-Cookie header's value that gives (token) or, with token NULL,
 * takes back the session cookie; max_age_s its life. 0, or -1 if out too small. */
int browser_cookie_value(struct lws *wsi, const char *token, int64_t max_age_s, char *out, size_t size);

#endif
