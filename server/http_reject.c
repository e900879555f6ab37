/* http_reject.c — the answer to what lws' HTTP parser gives up on.
 *
 * With LWS_SERVER_OPTION_FALLBACK_TO_APPLY_LISTEN_ACCEPT_CONFIG on the vhost
 * (main.c), lws 4.1 does not answer its own HTML 403 when the first word of
 * a request is not a method it knows (a garbage request line, FOO, TRACE,
 * a TLS hello on the plain port: lib/roles/http/parsers.c, lws_parse,
 * LPR_DO_FALLBACK) and does not hold a CONNECT request open forever
 * (lib/roles/http/server/server.c, lws_handshake_server, raw_transition):
 * lws_http_to_fallback drops the header buffer, binds the connection to the
 * raw-skt role and to the vhost's "raw" protocol, this one (http_reject_pvo),
 * and hands it the bytes read so far. Both reach here alike, after lws
 * parsed them and with its parse state gone, so every one gets the same
 * fixed 400 bad_request in the protocol's shape, once, then the close. The
 * bytes themselves are never looked at.
 *
 * Nothing is owned here (no per-connection data): the connection is still
 * counted by server.c, which lws keeps calling for its WSI_DESTROY
 * (protocols[0]). Over TLS the raw role keeps the TLS session, so the
 * answer goes out encrypted. */
#include "http_reject.h"

#include <stdio.h>
#include <string.h>

#define REJECT_BODY "{\"error\":{\"code\":\"bad_request\",\"message\":" \
                    "\"not an HTTP/1.1 request: malformed request line or unsupported method\"}}"
static const char reject_answer[] =
    "HTTP/1.1 400 Bad Request\r\n"
    "content-type: application/json\r\n"
    "content-length: %zu\r\n"
    "connection: close\r\n"
    "\r\n"
    "%s";

/* The answer goes out within this or the connection is dropped (lws clears
 * the header timeout when it falls back). */
#define REJECT_TIMEOUT_S 5

const struct lws_protocol_vhost_options http_reject_pvo = {
    NULL, &(const struct lws_protocol_vhost_options){ NULL, NULL, "raw", "" },
    HTTP_REJECT_PROTOCOL, ""
};

static int reject_write(struct lws *wsi)
{
    unsigned char buf[LWS_PRE + 512];
    char *p = (char *)buf + LWS_PRE;
    int n = snprintf(p, sizeof buf - LWS_PRE, reject_answer, strlen(REJECT_BODY), REJECT_BODY);
    if (n > 0 && (size_t)n < sizeof buf - LWS_PRE)
        (void)lws_write(wsi, (unsigned char *)p, (size_t)n, LWS_WRITE_RAW);
    return -1;                          /* once, then close (lws flushes first) */
}

int http_reject_callback(struct lws *wsi, enum lws_callback_reasons reason,
                         void *user, void *in, size_t len)
{
    (void)user;
    (void)in;
    (void)len;
    switch (reason) {
    case LWS_CALLBACK_RAW_ADOPT:
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, REJECT_TIMEOUT_S);
        lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_RAW_WRITEABLE:
        return reject_write(wsi);
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
    case LWS_CALLBACK_ESTABLISHED:
        /* a WebSocket asking for this protocol by name: not ours to serve */
        return -1;
    default:                            /* RAW_RX: read and ignored */
        return 0;
    }
}
