/* fuzz_client_decode.c — the client's decoding of what the server sends,
 * fed through the real client core (client/core.c: cursor, exactly-once
 * delivery, outbox):
 *   mode 0: a sequence of GET /api/v1/events answers (fields split at 0xFF),
 *           decoded with proto_parse_events_response and delivered with
 *           core_deliver, as client/polling.c does;
 *   mode 1: the same with the answers built from bytes (ids that go back,
 *           repeat or are not integers; types missing);
 *   mode 2: a sequence of WebSocket server frames handled as
 *           client/transport_websocket.c ws_on_message does (ready, event,
 *           ack, error); "#0".."#2" as client_msg_id stand for the ids of
 *           the three messages queued in the outbox;
 *   mode 3: a login answer (client/auth.c) and an error body
 *           (client/http.c http_error_text).
 * The static client functions are tied to lws, so their steps are repeated
 * here call for call. Checks: proto_parse_events_response accepts exactly
 * {"events":[objects with integer id > 0 and string type, ids strictly
 * increasing],"next":integer}; every delivered event has an id above the
 * cursor, events at or below it are dropped, nothing is shown twice; an ack
 * removes exactly the message it names; no crash or leak anywhere. */
#include "fuzz.h"
#include "core.h"
#include "protocol.h"

#include <jansson.h>

static int64_t last_shown;
static int shown, acked;

static void on_event(void *arg, const json_t *ev)
{
    (void)arg;
    int64_t id = json_integer_value(json_object_get(ev, "id"));
    FUZZ_CHECK(id > last_shown, "core showed event %lld after %lld", (long long)id, (long long)last_shown);
    last_shown = id;
    shown++;
}

static void on_ack(void *arg, const char *cmid, int64_t id)
{
    (void)arg;
    (void)cmid;
    (void)id;
    acked++;
}

/* ---- events answers ---- */

static int oracle_events(const char *buf, size_t len)
{
    json_t *root = json_loadb(buf, len, 0, NULL);
    int ok = json_is_object(root) && json_is_array(json_object_get(root, "events")) &&
             json_is_integer(json_object_get(root, "next"));
    json_int_t prev = 0;
    size_t i;
    json_t *ev;
    if (ok) {
        json_array_foreach(json_object_get(root, "events"), i, ev) {
            json_t *id = json_object_get(ev, "id");
            if (!json_is_object(ev) || !json_is_integer(id) || json_integer_value(id) <= 0 ||
                json_integer_value(id) <= prev || !json_is_string(json_object_get(ev, "type"))) {
                ok = 0;
                break;
            }
            prev = json_integer_value(id);
        }
    }
    json_decref(root);
    return ok;
}

static void one_page(struct core *c, const char *buf, size_t len, int64_t *next_seen)
{
    json_t *events = (json_t *)1, *ev;
    int64_t next = -12345;
    const char *err = NULL;
    size_t i;
    int rc = proto_parse_events_response(buf, len, &events, &next, &err);
    int want = oracle_events(buf, len);
    FUZZ_CHECK((rc == 0) == want, "events answer %.300s: expected %s, got %s", buf,
               want ? "accepted" : "malformed", rc == 0 ? "accepted" : "malformed");
    if (rc < 0) {
        FUZZ_CHECK(err && *err, "malformed without a message");
        return;
    }
    FUZZ_CHECK(json_is_array(events), "accepted without an events array");
    json_array_foreach(events, i, ev) {
        int64_t id = 0, before = core_cursor(c);
        int shown_before = shown;
        FUZZ_CHECK(proto_event_check(ev, &id) == 0, "accepted event fails proto_event_check");
        int r = core_deliver(c, ev);
        int want_r = id > before ? 1 : 0;
        FUZZ_CHECK(r == want_r, "core_deliver(id %lld, cursor %lld) = %d, expected %d", (long long)id,
                   (long long)before, r, want_r);
        FUZZ_CHECK(core_cursor(c) == (r == 1 ? id : before), "cursor %lld after delivering %lld",
                   (long long)core_cursor(c), (long long)id);
        FUZZ_CHECK(shown == shown_before + r, "on_event calls do not match core_deliver's answer");
    }
    /* delivering the same page again shows nothing */
    int shown_before = shown;
    json_array_foreach(events, i, ev)
        FUZZ_CHECK(core_deliver(c, ev) == 0, "an event was shown twice");
    FUZZ_CHECK(shown == shown_before, "an event was shown twice");
    if (next > *next_seen)
        *next_seen = next;
    json_decref(events);
}

/* Builds an events answer: each field is one event, its first byte the id
 * step (signed), bit 0x80 of the second a non-integer id, bit 0x40 no
 * type; the rest the type. The plan byte picks next and a broken frame. */
static void build_page(const uint8_t *d, size_t n, struct fuzz_text *t, int64_t base)
{
    struct fuzz_fields ff;
    fuzz_split(d, n, &ff);
    int64_t id = base;
    ft_str(t, "{\"events\":[");
    for (int i = 1; i < ff.count; i++) {
        const uint8_t *f = ff.f[i];
        size_t fl = ff.n[i];
        id += fl ? (int8_t)f[0] : 1;
        unsigned flags = fl > 1 ? f[1] : 0;
        char num[64];
        if (i > 1)
            ft_str(t, ",");
        if (flags & 0x80)
            snprintf(num, sizeof num, "{\"id\":\"%lld\"", (long long)id);
        else if ((flags & 0x30) == 0x30)
            snprintf(num, sizeof num, "{\"id\":%lld.5", (long long)id);
        else
            snprintf(num, sizeof num, "{\"id\":%lld", (long long)id);
        ft_str(t, num);
        if (!(flags & 0x40)) {
            ft_str(t, ",\"type\":");
            ft_json_string(t, fl > 2 ? f + 2 : (const uint8_t *)"chat", fl > 2 ? fl - 2 : 4);
        }
        ft_str(t, ",\"ts\":1,\"body\":\"x\"}");
    }
    char tail[64];
    unsigned plan = ff.n[0] ? ff.f[0][0] : 0;
    snprintf(tail, sizeof tail, "],\"next\":%lld}", (long long)(plan & 1 ? id : base + (int8_t)plan));
    ft_str(t, tail);
    if (plan & 0x80)
        t->p[--t->len] = '\0';        /* cut the closing brace */
}

/* ---- WebSocket frames ---- */

static void one_frame(struct core *c, const char *buf, size_t len, const char ids[3][33])
{
    const char *err = NULL, *op = NULL, *cmid = NULL;
    int64_t id = 0;
    json_t *root = proto_parse_object(buf, len, &err);
    if (!root || proto_get_string(root, "op", &op) < 0 || !op) {
        json_decref(root);
        return;                           /* "ignored a malformed frame" */
    }
    if (strcmp(op, "event") == 0) {
        json_t *ev = json_object_get(root, "event");
        int64_t before = core_cursor(c), eid = 0;
        int valid = proto_event_check(ev, &eid) == 0;
        json_t *jid = json_object_get(ev, "id");
        int want_valid = json_is_object(ev) && json_is_integer(jid) && json_integer_value(jid) > 0 &&
                         json_is_string(json_object_get(ev, "type"));
        FUZZ_CHECK(valid == want_valid, "proto_event_check on %.300s: expected %d, got %d", buf,
                   want_valid, valid);
        int r = core_deliver(c, ev);
        FUZZ_CHECK(r == (valid ? (eid > before ? 1 : 0) : -1), "core_deliver answered %d", r);
    } else if (strcmp(op, "ack") == 0 || strcmp(op, "error") == 0) {
        int is_ack = op[0] == 'a';
        const char *code = NULL, *msg = NULL;
        proto_get_string(root, "client_msg_id", &cmid);
        proto_get_int(root, "id", &id, NULL);
        proto_get_string(root, "code", &code);
        proto_get_string(root, "message", &msg);
        if (cmid && cmid[0] == '#' && cmid[1] >= '0' && cmid[1] <= '2' && !cmid[2])
            cmid = ids[cmid[1] - '0'];
        size_t before = core_outbox_len(c);
        int in_outbox = 0;
        /* is cmid one of ours still queued? the core's head-to-tail scan */
        if (cmid) {
            const struct core_msg *m;
            static unsigned serial = 1000;
            unsigned conn = ++serial;                 /* a fresh connection serial */
            while ((m = core_outbox_take(c, conn)))
                if (strcmp(m->client_msg_id, cmid) == 0)
                    in_outbox = 1;
        }
        int acked_before = acked;
        if (is_ack) {
            int r = core_ack(c, cmid, id);
            FUZZ_CHECK(r == (in_outbox ? 0 : -1), "core_ack(%s) = %d, in outbox: %d",
                       cmid ? cmid : "(null)", r, in_outbox);
            FUZZ_CHECK(acked == acked_before + in_outbox, "on_ack calls wrong");
        } else {
            int transient = code && (strcmp(code, "internal") == 0 || strcmp(code, "busy") == 0);
            if (cmid && !transient)
                FUZZ_CHECK(core_reject(c, cmid, msg ? msg : code) == (in_outbox ? 0 : -1),
                           "core_reject answer wrong");
            else
                in_outbox = 0;
        }
        FUZZ_CHECK(core_outbox_len(c) == before - (size_t)in_outbox, "outbox %zu -> %zu (named: %d)",
                   before, core_outbox_len(c), in_outbox);
    }
    json_decref(root);
}

/* ---- login and error answers ---- */

static void login_and_error(const char *buf, size_t len)
{
    const char *token = NULL;
    json_t *root = json_loadb(buf, len, 0, NULL);
    if (!(proto_get_string(root, "token", &token) < 0 || !token || !*token || strlen(token) > 256 ||
          strpbrk(token, " \r\n"))) {
        /* usable: the client puts it into "Authorization: Bearer %s" */
        char hdr[300];
        int n = snprintf(hdr, sizeof hdr, "Bearer %s", token);
        FUZZ_CHECK(n > 0 && (size_t)n < sizeof hdr && !strpbrk(hdr, "\r\n"), "token header");
    }
    json_decref(root);
    /* http_error_text */
    char msgbuf[160];
    root = json_loadb(buf, len, 0, NULL);
    json_t *msg = json_object_get(json_object_get(root, "error"), "message");
    if (json_is_string(msg))
        snprintf(msgbuf, sizeof msgbuf, "%s", json_string_value(msg));
    else
        snprintf(msgbuf, sizeof msgbuf, "HTTP %d", 500);
    json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_input(data, size);
    if (size == 0)
        return 0;
    struct core_callbacks cb = { .on_event = on_event, .on_ack = on_ack };
    struct core *c = core_new(&cb);
    FUZZ_CHECK(c, "core_new failed");
    char ids[3][33];
    for (int i = 0; i < 3; i++) {
        char body[8];
        snprintf(body, sizeof body, "m%d", i);
        const char *id = core_send(c, NULL, body);
        FUZZ_CHECK(id && strlen(id) == 32, "core_send");
        memcpy(ids[i], id, 33);
    }
    last_shown = 0;
    shown = acked = 0;
    int mode = data[0] & 3;
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    int64_t next_seen = 0;
    if (mode == 0 || mode == 2) {
        /* pages/frames separated by 0xFF */
        struct fuzz_fields ff;
        fuzz_split(d, n, &ff);
        for (int i = 0; i < ff.count; i++) {
            char *s = fuzz_cstr(ff.f[i], ff.n[i]);
            if (mode == 0)
                one_page(c, s, ff.n[i], &next_seen);
            else
                one_frame(c, s, ff.n[i], (const char (*)[33])ids);
            free(s);
        }
    } else if (mode == 1) {
        /* pages built from bytes, separated by 0xFE */
        size_t start = 0;
        for (size_t i = 0; i <= n; i++) {
            if (i == n || d[i] == 0xFE) {
                struct fuzz_text t = { 0 };
                build_page(d + start, i - start, &t, core_cursor(c));
                one_page(c, t.p, t.len, &next_seen);
                free(t.p);
                start = i + 1;
            }
        }
    } else {
        char *s = fuzz_cstr(d, n);
        login_and_error(s, n);
        free(s);
    }
    FUZZ_CHECK(last_shown == core_cursor(c) || shown == 0, "cursor %lld but last shown %lld",
               (long long)core_cursor(c), (long long)last_shown);
    core_free(c);
    return 0;
}
