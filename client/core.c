/* core.c — cursor and exactly-once delivery, the outbox, connection state
 * and cost counters. No lws here: the core is driven by transports and
 * rendered by a front end, and unit-tested on its own (tests/test_core.c). */
#include "core.h"
#include "proto_rooms.h"
#include "protocol.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MSG_ID_BYTES 16

struct outbox_msg {
    struct core_msg pub;
    char id[MSG_ID_BYTES * 2 + 1];
    char room[PROTO_ROOM_MAX + 1];
    char to[PROTO_USER_MAX + 1];
    char *body;
    unsigned sent_on;            /* connection serial it was last sent on */
};

struct core {
    struct core_callbacks cb;
    int64_t cursor;
    enum core_state state;
    int state_reported;          /* the first state is always reported */
    int exit_code;

    struct outbox_msg **outbox;  /* FIFO, oldest first */
    size_t out_len, out_cap;
    void (*outbox_hook)(void *arg);
    void *outbox_arg;

    int64_t (*now_ms)(void *arg);
    void *now_arg;
    int64_t started_ms;          /* events older than this are history */
    unsigned conn_serial;        /* last connection serial handed out */

    struct core_stats stats;
    int64_t latency[CORE_LATENCY_WINDOW];
    size_t lat_count, lat_pos;
};

static int64_t wall_ms(void *arg)
{
    struct timespec ts;
    (void)arg;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct core *core_new(const struct core_callbacks *cb)
{
    if (sodium_init() < 0)
        return NULL;
    struct core *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (cb)
        c->cb = *cb;
    c->now_ms = wall_ms;
    c->started_ms = wall_ms(NULL);
    c->state = CORE_CONNECTING;
    return c;
}

void core_free(struct core *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->out_len; i++) {
        free(c->outbox[i]->body);
        free(c->outbox[i]);
    }
    free(c->outbox);
    free(c);
}

void core_set_callbacks(struct core *c, const struct core_callbacks *cb)
{
    memset(&c->cb, 0, sizeof c->cb);
    if (cb)
        c->cb = *cb;
}

void core_set_clock(struct core *c, int64_t (*now_ms)(void *arg), void *arg)
{
    c->now_ms = now_ms ? now_ms : wall_ms;
    c->now_arg = arg;
    c->started_ms = c->now_ms(arg);
}

unsigned core_connection_serial(struct core *c)
{
    if (++c->conn_serial == 0)
        c->conn_serial = 1;      /* 0 means "never sent" */
    return c->conn_serial;
}

void core_set_outbox_hook(struct core *c, void (*fn)(void *arg), void *arg)
{
    c->outbox_hook = fn;
    c->outbox_arg = arg;
}

/* ---- events ---- */

int64_t core_cursor(const struct core *c)
{
    return c->cursor;
}

static void record_latency(struct core *c, const json_t *event)
{
    int64_t ts = 0;
    int present = 0;
    /* History written before this client started says nothing about delivery. */
    if (proto_get_int(event, "ts", &ts, &present) < 0 || !present || ts < c->started_ms)
        return;
    int64_t lat = c->now_ms(c->now_arg) - ts;
    if (lat < 0)
        lat = 0;            /* clocks of client and server differ */
    c->stats.latency_ms = lat;
    c->stats.have_latency = 1;
    c->latency[c->lat_pos] = lat;
    c->lat_pos = (c->lat_pos + 1) % CORE_LATENCY_WINDOW;
    if (c->lat_count < CORE_LATENCY_WINDOW)
        c->lat_count++;
}

void core_set_cursor(struct core *c, int64_t id)
{
    if (id > c->cursor)
        c->cursor = id;
}

int core_ephemeral(struct core *c, const json_t *item)
{
    struct proto_ephemeral e;
    if (proto_parse_ephemeral(item, &e) < 0)
        return -1;
    if (c->cb.on_ephemeral)
        c->cb.on_ephemeral(c->cb.arg, item);
    return 0;
}

int core_deliver(struct core *c, const json_t *event)
{
    int64_t id;
    if (proto_event_check(event, &id) < 0)
        return -1;
    if (id <= c->cursor) {
        c->stats.dropped++;
        return 0;
    }
    c->cursor = id;
    c->stats.events++;
    record_latency(c, event);
    if (c->cb.on_event)
        c->cb.on_event(c->cb.arg, event);
    return 1;
}

/* ---- outbox ---- */

/* The wall clock in milliseconds (6 bytes, big-endian), then 10 random
 * bytes: unique without coordination, and one sender's ids grow with time,
 * so the server's index on (sender, client_msg_id) takes each new one at
 * the end of that sender's range instead of in a random page of the index
 * (one page written per commit, not one per message). */
static void new_msg_id(char out[MSG_ID_BYTES * 2 + 1])
{
    unsigned char raw[MSG_ID_BYTES];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    for (int i = 0; i < 6; i++)
        raw[i] = (unsigned char)(ms >> (40 - 8 * i));
    randombytes_buf(raw + 6, sizeof raw - 6);
    sodium_bin2hex(out, MSG_ID_BYTES * 2 + 1, raw, sizeof raw);
}

/* Messages are allocated one by one so the pointers handed out stay valid
 * until the message is acked or rejected. */
static struct outbox_msg *outbox_push(struct core *c)
{
    if (c->out_len == c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap * 2 : 8;
        struct outbox_msg **o = realloc(c->outbox, cap * sizeof *o);
        if (!o)
            return NULL;
        c->outbox = o;
        c->out_cap = cap;
    }
    return calloc(1, sizeof(struct outbox_msg));
}

static const char *outbox_add(struct core *c, const char *room, const char *to, const char *body);

const char *core_send(struct core *c, const char *room, const char *body)
{
    if (!room)
        room = PROTO_DEFAULT_ROOM;
    if (!proto_name_valid(room)) {
        core_error(c, "room names are 1-32 characters of a-z 0-9 _ -");
        return NULL;
    }
    return outbox_add(c, room, NULL, body);
}

const char *core_send_to(struct core *c, const char *to, const char *body)
{
    if (!proto_name_valid(to)) {
        core_error(c, "user names are 1-32 characters of a-z 0-9 _ -");
        return NULL;
    }
    return outbox_add(c, "", to, body);
}

static const char *outbox_add(struct core *c, const char *room, const char *to, const char *body)
{
    if (!proto_body_valid(body)) {
        core_error(c, "a message is 1-%d bytes of valid UTF-8", PROTO_BODY_MAX);
        return NULL;
    }
    struct outbox_msg *m = outbox_push(c);
    char *copy = strdup(body);
    if (!m || !copy) {
        free(m);
        free(copy);
        core_error(c, "out of memory");
        return NULL;
    }
    new_msg_id(m->id);
    snprintf(m->room, sizeof m->room, "%s", room);
    m->body = copy;
    m->pub.client_msg_id = m->id;
    m->pub.room = m->room;
    if (to) {
        snprintf(m->to, sizeof m->to, "%s", to);
        m->pub.to = m->to;
    }
    m->pub.body = m->body;
    c->outbox[c->out_len++] = m;
    if (c->outbox_hook)
        c->outbox_hook(c->outbox_arg);
    return m->id;
}

size_t core_outbox_len(const struct core *c)
{
    return c->out_len;
}

const struct core_msg *core_outbox_head(const struct core *c)
{
    return c->out_len ? &c->outbox[0]->pub : NULL;
}

const struct core_msg *core_outbox_take(struct core *c, unsigned conn)
{
    for (size_t i = 0; i < c->out_len; i++) {
        struct outbox_msg *m = c->outbox[i];
        if (m->sent_on == conn)
            continue;
        m->sent_on = conn;
        m->pub.sends++;
        return &m->pub;
    }
    return NULL;
}

static long outbox_find(const struct core *c, const char *client_msg_id)
{
    if (!client_msg_id)
        return -1;
    for (size_t i = 0; i < c->out_len; i++)
        if (strcmp(c->outbox[i]->id, client_msg_id) == 0)
            return (long)i;
    return -1;
}

void core_outbox_sent(struct core *c, const char *client_msg_id)
{
    long i = outbox_find(c, client_msg_id);
    if (i >= 0)
        c->outbox[i]->pub.sends++;
}

static void outbox_remove(struct core *c, size_t i)
{
    free(c->outbox[i]->body);
    free(c->outbox[i]);
    memmove(&c->outbox[i], &c->outbox[i + 1], (c->out_len - i - 1) * sizeof *c->outbox);
    c->out_len--;
}

/* Removes the message with this id, keeping a copy of the id for the
 * callbacks (the caller's string may live in the removed message). */
static int outbox_settle(struct core *c, const char *client_msg_id, char idcopy[MSG_ID_BYTES * 2 + 1])
{
    long i = outbox_find(c, client_msg_id);
    if (i < 0)
        return -1;
    memcpy(idcopy, c->outbox[i]->id, MSG_ID_BYTES * 2 + 1);
    outbox_remove(c, (size_t)i);
    return 0;
}

int core_ack(struct core *c, const char *client_msg_id, int64_t id)
{
    char idcopy[MSG_ID_BYTES * 2 + 1];
    if (outbox_settle(c, client_msg_id, idcopy) < 0)
        return -1;
    if (c->cb.on_ack)
        c->cb.on_ack(c->cb.arg, idcopy, id);
    return 0;
}

int core_reject(struct core *c, const char *client_msg_id, const char *why)
{
    char idcopy[MSG_ID_BYTES * 2 + 1];
    if (outbox_settle(c, client_msg_id, idcopy) < 0)
        return -1;
    core_error(c, "message %s was refused: %s", idcopy, why ? why : "no reason given");
    if (c->cb.on_reject)
        c->cb.on_reject(c->cb.arg, idcopy, why ? why : "no reason given");
    return 0;
}

/* ---- state and errors ---- */

enum core_state core_state(const struct core *c)
{
    return c->state;
}

void core_set_state(struct core *c, enum core_state s, unsigned retry_ms)
{
    if (c->state == CORE_OFFLINE)
        return;                 /* terminal */
    if (s == c->state && s != CORE_RECONNECTING && c->state_reported)
        return;                 /* report changes only */
    c->state = s;
    c->state_reported = 1;
    if (c->cb.on_state)
        c->cb.on_state(c->cb.arg, s, retry_ms);
}

void core_error(struct core *c, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (c->cb.on_error)
        c->cb.on_error(c->cb.arg, buf);
}

void core_notice(struct core *c, const json_t *data, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (c->cb.on_notice)
        c->cb.on_notice(c->cb.arg, buf, data);
}

void core_fatal(struct core *c, int exit_code, const char *text)
{
    if (c->state == CORE_OFFLINE)
        return;
    c->exit_code = exit_code;
    if (text)
        core_error(c, "%s", text);
    core_set_state(c, CORE_OFFLINE, 0);
}

int core_exit_code(const struct core *c)
{
    return c->exit_code;
}

/* ---- cost counters ---- */

void core_count_request(struct core *c)
{
    c->stats.requests++;
}

void core_count_bytes(struct core *c, uint64_t in, uint64_t out)
{
    c->stats.bytes_in += in;
    c->stats.bytes_out += out;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

void core_get_stats(const struct core *c, struct core_stats *out)
{
    int64_t tmp[CORE_LATENCY_WINDOW];
    size_t n = c->lat_count;
    *out = c->stats;
    out->latency_median_ms = 0;
    if (n == 0)
        return;
    memcpy(tmp, c->latency, n * sizeof tmp[0]);
    qsort(tmp, n, sizeof tmp[0], cmp_i64);
    out->latency_median_ms = n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}
