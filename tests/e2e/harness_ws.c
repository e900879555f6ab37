/* harness_ws.c — a raw WebSocket client: the handshake on /api/v1/ws,
 * masked frames out, frames in (answering pings, echoing the close), JSON
 * text frames and the hello/ready exchange. */
#include "harness.h"
#include "harness_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WS_KEY    "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="   /* RFC 6455 section 1.3 */

struct h_ws *h_ws_connect_raw(int port, const char *extra_headers, struct h_http_resp *resp)
{
    memset(resp, 0, sizeof *resp);
    int fd = h_tcp_connect(port);
    if (fd < 0)
        fail_msg("connect to 127.0.0.1:%d failed", port);
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: " WS_KEY "\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s\r\n",
                     port, extra_headers ? extra_headers : "Sec-WebSocket-Protocol: chat.v1\r\n");
    int64_t dl = h_deadline(10000);
    h_send_all(fd, req, (size_t)n, dl);
    struct h_ws *w = calloc(1, sizeof *w);
    w->fd = fd;
    w->close_code = -1;
    /* Read only the header block; whatever follows stays in w->in. */
    const char *he;
    while (!(he = h_find_hdr_end(&w->in))) {
        int k = h_recv_some(fd, &w->in, dl);
        if (k != 1)
            break;
    }
    if (!he) {
        resp->closed_early = 1;
        if (w->in.len) {
            resp->head = strndup(w->in.data, w->in.len);
            sscanf(resp->head, "HTTP/1.%*d %d", &resp->status);
        }
        resp->body = strdup("");
        h_ws_free(w);
        return NULL;
    }
    size_t hl = (size_t)(he - w->in.data);
    resp->head = strndup(w->in.data, hl);
    sscanf(resp->head, "HTTP/1.%*d %d", &resp->status);
    if (resp->status != 101) {
        /* Read the error response's body too. */
        struct h_buf rest = { 0 };
        h_buf_add(&rest, w->in.data, w->in.len);
        free(resp->head);
        resp->head = NULL;
        resp->status = 0;
        h_read_response(fd, &rest, resp, dl);
        h_buf_free(&rest);
        h_ws_free(w);
        return NULL;
    }
    resp->body = strdup("");
    h_buf_consume(&w->in, hl);
    return w;
}

struct h_ws *h_ws_connect(int port)
{
    struct h_http_resp r;
    struct h_ws *w = h_ws_connect_raw(port, NULL, &r);
    if (!w) {
        h_dump_logs();
        fail_msg("WebSocket handshake: expected 101, got %d: %s%s", r.status, r.head ? r.head : "", r.body ? r.body : "");
    }
    char *acc = h_http_header(&r, "Sec-WebSocket-Accept");
    char *proto = h_http_header(&r, "Sec-WebSocket-Protocol");
    int ok_acc = acc && strcmp(acc, WS_ACCEPT) == 0;
    int ok_proto = proto && strcmp(proto, "chat.v1") == 0;
    free(acc);
    free(proto);
    if (!ok_acc || !ok_proto) {
        char head[1024];
        snprintf(head, sizeof head, "%s", r.head);
        h_http_resp_free(&r);
        h_ws_free(w);
        fail_msg("WebSocket handshake: bad Sec-WebSocket-Accept or Sec-WebSocket-Protocol (want chat.v1):\n%s", head);
    }
    h_http_resp_free(&r);
    return w;
}

int h_ws_send_frame(struct h_ws *w, int opcode, int fin, const void *payload, size_t len)
{
    unsigned char hdr[14];
    size_t h = 0;
    hdr[h++] = (unsigned char)((fin ? 0x80 : 0) | (opcode & 0x0f));
    if (len < 126) {
        hdr[h++] = (unsigned char)(0x80 | len);
    } else if (len <= 0xffff) {
        hdr[h++] = 0x80 | 126;
        hdr[h++] = (unsigned char)(len >> 8);
        hdr[h++] = (unsigned char)len;
    } else {
        hdr[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            hdr[h++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    static const unsigned char mask[4] = { 0x37, 0xfa, 0x21, 0x3d };
    memcpy(hdr + h, mask, 4);
    h += 4;
    unsigned char *f = malloc(h + len + 1);
    memcpy(f, hdr, h);
    const unsigned char *p = payload;
    for (size_t i = 0; i < len; i++)
        f[h + i] = p[i] ^ mask[i & 3];
    int rc = h_send_all(w->fd, f, h + len, h_deadline(10000));
    free(f);
    return rc;
}

int h_ws_send_text(struct h_ws *w, const char *text)
{
    return h_ws_send_frame(w, WS_TEXT, 1, text, strlen(text));
}

int h_ws_send_raw(struct h_ws *w, const void *bytes, size_t len)
{
    return h_send_all(w->fd, bytes, len, h_deadline(10000));
}

int h_ws_wait_eof(struct h_ws *w, int64_t deadline)
{
    for (;;) {
        h_buf_consume(&w->in, w->in.len);
        int k = h_recv_some(w->fd, &w->in, deadline);
        if (k == -1)
            return 0;
        if (k == 0 || k == -2)
            return 1;
    }
}

/* Parses one complete frame at the start of w->in; returns 1 and consumes it,
 * or 0 if more bytes are needed. */
static int take_frame(struct h_ws *w, int *opcode, int *fin, char **payload, size_t *len)
{
    const unsigned char *b = (const unsigned char *)w->in.data;
    size_t n = w->in.len;
    if (n < 2)
        return 0;
    size_t h = 2;
    uint64_t pl = b[1] & 0x7f;
    int masked = b[1] & 0x80;
    if (pl == 126) {
        if (n < 4)
            return 0;
        pl = ((uint64_t)b[2] << 8) | b[3];
        h = 4;
    } else if (pl == 127) {
        if (n < 10)
            return 0;
        pl = 0;
        for (int i = 0; i < 8; i++)
            pl = (pl << 8) | b[2 + i];
        h = 10;
    }
    if (masked)
        h += 4;
    if (n < h + pl)
        return 0;
    *opcode = b[0] & 0x0f;
    *fin = !!(b[0] & 0x80);
    *payload = malloc(pl + 1);
    memcpy(*payload, b + h, pl);
    if (masked)
        for (uint64_t i = 0; i < pl; i++)
            (*payload)[i] ^= b[h - 4 + (i & 3)];
    (*payload)[pl] = '\0';
    *len = pl;
    h_buf_consume(&w->in, h + pl);
    return 1;
}

int h_ws_recv_frame(struct h_ws *w, int64_t deadline, int *opcode, int *fin, char **payload, size_t *len)
{
    for (;;) {
        if (take_frame(w, opcode, fin, payload, len)) {
            if (*opcode == WS_PING) {
                h_ws_send_frame(w, WS_PONG, 1, *payload, *len);
                free(*payload);
                continue;
            }
            if (*opcode == WS_PONG && !w->keep_pongs) {
                free(*payload);
                continue;
            }
            if (*opcode == WS_CLOSE) {
                w->closed = 1;
                w->close_code = *len >= 2 ? (((unsigned char)(*payload)[0] << 8) | (unsigned char)(*payload)[1]) : 1005;
                /* Echo the close, as RFC 6455 asks. */
                h_ws_send_frame(w, WS_CLOSE, 1, *payload, *len >= 2 ? 2 : 0);
            }
            return 1;
        }
        if (w->closed && w->in.len == 0 && w->close_code != -1)
            return -1;
        int k = h_recv_some(w->fd, &w->in, deadline);
        if (k == -1)
            return 0;
        if (k == 0 || k == -2) {   /* EOF or reset: nothing more will come */
            w->closed = 1;
            return -1;
        }
    }
}

json_t *h_ws_recv_json(struct h_ws *w, int64_t deadline)
{
    for (;;) {
        int op, fin;
        char *p;
        size_t n;
        int k = h_ws_recv_frame(w, deadline, &op, &fin, &p, &n);
        if (k == 0) {
            fprintf(stderr, "ws: time-out waiting for a frame\n");
            return NULL;
        }
        if (k < 0) {
            fprintf(stderr, "ws: connection ended without a close frame\n");
            return NULL;
        }
        if (op == WS_CLOSE) {
            fprintf(stderr, "ws: server closed with code %d (%.*s)\n", w->close_code,
                    n > 2 ? (int)(n - 2) : 0, n > 2 ? p + 2 : "");
            free(p);
            return NULL;
        }
        if (op != WS_TEXT || !fin) {
            fprintf(stderr, "ws: unexpected frame opcode %d fin %d from the server\n", op, fin);
            free(p);
            return NULL;
        }
        json_error_t jerr;
        json_t *j = json_loadb(p, n, 0, &jerr);
        if (!j || !json_is_object(j)) {
            fprintf(stderr, "ws: server text frame is not a JSON object: %.200s\n", p);
            json_decref(j);
            free(p);
            return NULL;
        }
        free(p);
        const char *o = json_string_value(json_object_get(j, "op"));
        if (!w->keep_ephemeral && o && (!strcmp(o, "presence") || !strcmp(o, "typing") || !strcmp(o, "read"))) {
            json_decref(j);          /* ephemeral (PROTOCOL.md v1.1): not what tests count */
            continue;
        }
        return j;
    }
}

json_t *h_ws_recv_op(struct h_ws *w, const char *op, int64_t deadline)
{
    for (;;) {
        json_t *j = h_ws_recv_json(w, deadline);
        if (!j)
            return NULL;
        const char *o = json_string_value(json_object_get(j, "op"));
        if (o && strcmp(o, op) == 0)
            return j;
        json_decref(j);
    }
}

int h_ws_wait_close(struct h_ws *w, int64_t deadline)
{
    for (;;) {
        int op, fin;
        char *p;
        size_t n;
        int k = h_ws_recv_frame(w, deadline, &op, &fin, &p, &n);
        if (k == 0)
            return -2;
        if (k < 0)
            return w->close_code;  /* -1 unless a close frame came before */
        free(p);
        if (op == WS_CLOSE)
            return w->close_code;
    }
}

json_t *h_ws_hello(struct h_ws *w, const char *token, int64_t after)
{
    json_t *o = json_pack("{s:s, s:s, s:I}", "op", "hello", "token", token, "after", (json_int_t)after);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    h_ws_send_text(w, s);
    free(s);
    json_t *r = h_ws_recv_json(w, h_deadline(10000));
    const char *op = json_string_value(json_object_get(r, "op"));
    if (!op || strcmp(op, "ready") != 0) {
        char *d = h_json_str(r);
        json_decref(r);
        h_dump_logs();
        char msg[512];
        snprintf(msg, sizeof msg, "ws hello: expected {\"op\":\"ready\",...} first, got %s", d);
        free(d);
        fail_msg("%s", msg);
    }
    if (!json_is_string(json_object_get(r, "user")) || !json_is_integer(json_object_get(r, "heartbeat_s")) ||
        !json_is_integer(json_object_get(r, "long_poll_max_s"))) {
        char *d = h_json_str(r);
        char msg[512];
        snprintf(msg, sizeof msg, "ws ready frame lacks user/heartbeat_s/long_poll_max_s: %s", d);
        free(d);
        json_decref(r);
        fail_msg("%s", msg);
    }
    return r;
}

void h_ws_free(struct h_ws *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    h_buf_free(&w->in);
    free(w);
}
