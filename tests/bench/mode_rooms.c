/* mode_rooms.c — chat-bench --rooms-fanout R: R rooms (protocol v1.1) of
 * --members WebSocket members each, one member of each room sending at
 * --rate; every message must reach exactly its room's members, and no
 * other room's. Deliveries per second, latency, server CPU per delivery.
 * First, for comparison in the same invocation, the one-room fan-out
 * (mode_fanout.c) to as many subscribers at the same rate per sender, i.e.
 * the same offered deliveries per second.
 *
 * Members are --room-users distinct users per room (each holding
 * members / room-users of the room's connections, as --fanout spreads its
 * subscribers over --logins users): the server's fan-out work is per
 * connection, and thousands of argon2id registrations would take longer
 * than the run. Rooms are made with POST /api/v1/rooms and joined with
 * POST /api/v1/rooms/NAME/join. */
#include "run.h"
#include "http.h"
#include "transport.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROOM_USERS 2            /* distinct users per room */

/* ---- making the rooms and joining them (one HTTP call per user) ---- */

struct room_calls {
    int n, done, bad;
    int first_bad_status;
};
static struct room_calls rcalls;

static void room_call_done(void *arg, const struct http_result *r)
{
    int want = (int)(intptr_t)arg;
    rcalls.done++;
    /* 409 exists: a room of the same name is already there (a rerun) */
    if (r->error || (r->status != want && r->status != 409)) {
        if (!rcalls.bad++)
            rcalls.first_bad_status = r->error ? -1 : r->status;
    }
}

static int room_calls_finished(struct bench *b)
{
    (void)b;
    return rcalls.done == rcalls.n;
}

static void room_name(char *out, size_t len, const struct run *r, int i)
{
    snprintf(out, len, "%sr%d", r->tag, i);
}

/* join = 0: the first user of each room creates it; 1: the others join. */
static int room_calls(struct run *r, int rooms, int join)
{
    struct bench *b = &r->b;
    char path[400], name[64], body[128];
    memset(&rcalls, 0, sizeof rcalls);
    for (int i = 0; i < rooms; i++) {
        room_name(name, sizeof name, r, i);
        for (int k = join ? 1 : 0; k < (join ? ROOM_USERS : 1); k++) {
            struct buser *u = &b->users[1 + i * ROOM_USERS + k];
            struct http_call call = { .method = "POST", .path = path, .token = u->token, .timeout_s = 30 };
            if (join) {
                snprintf(path, sizeof path, "%s/api/v1/rooms/%s/join", b->prefix, name);
            } else {
                snprintf(path, sizeof path, "%s/api/v1/rooms", b->prefix);
                snprintf(body, sizeof body, "{\"name\":\"%s\"}", name);
                call.body = body;
            }
            if (!http_request(u->http, &call, room_call_done, (void *)(intptr_t)(join ? 200 : 201)))
                return -1;
            rcalls.n++;
        }
    }
    bench_run_until(b, room_calls_finished, 60);
    if (rcalls.done < rcalls.n || rcalls.bad) {
        fprintf(stderr, "chat-bench: rooms-fanout: %d of %d %s calls failed (first: HTTP %d)%s\n",
                rcalls.bad + rcalls.n - rcalls.done, rcalls.n, join ? "join" : "create",
                rcalls.first_bad_status, rcalls.first_bad_status == 404 ? ": no rooms API (v1.1) here?" : "");
        return -1;
    }
    return 0;
}

/* Member m of room i: user 1 + i * ROOM_USERS + m % ROOM_USERS; member 0 sends. */
static int open_members(struct env *e, struct run *r, const struct transport_ops *ops, int rooms,
                        int members, int64_t sync, struct bclient **senders, int *opened)
{
    struct bench *b = &r->b;
    int first = b->n_clients;
    for (int i = 0; i < rooms; i++)
        for (int m = 0; m < members; m++) {
            struct buser *u = &b->users[1 + i * ROOM_USERS + m % ROOM_USERS];
            struct bclient *c = bench_client_new(b, u, ops, m ? ROLE_SUBSCRIBER : ROLE_SENDER, sync);
            if (!c)
                return -1;
            room_name(c->room, sizeof c->room, r, i);
            if (!m)
                senders[i] = c;
        }
    return ramp_open(e, b, ops, first, rooms * members, opened);
}

static int rooms_measure(struct env *e, const char *tname, int run_no)
{
    const struct bench_opts *o = e->o;
    const struct transport_ops *ops = transport_find(tname);
    int rooms = o->rooms, members = o->members, n = rooms * members, rc = -1;
    struct run r;
    struct bench *b = &r.b;
    struct bclient **senders = calloc((size_t)rooms, sizeof *senders);
    struct result *res = report_add(e->rep);
    if (!res || !senders) {
        free(senders);
        return -1;
    }
    fill_common(e, res, tname, MODE_ROOMS, run_no);
    res->rooms = rooms;
    res->conns_asked = n;
    res->users = rooms * ROOM_USERS;
    res->rate = o->rate * rooms;
    res->duration_s = o->duration_s;
    res->wait_s = o->wait_s;
    fprintf(stderr, "chat-bench: %d rooms of %d %s members, %.0f msgs/s per room\n", rooms, members, tname,
            o->rate);
    if (run_open(e, &r, tname, n + 64, 1 + rooms * ROOM_USERS, o->wait_s) < 0 ||
        room_calls(&r, rooms, 0) < 0 || room_calls(&r, rooms, 1) < 0)
        goto out;
    int64_t sync = bench_sync_id(b);
    int opened = 0;
    if (sync < 0 || open_members(e, &r, ops, rooms, members, sync, senders, &opened) < 0)
        goto out;
    res->conns_open = opened;
    b->n_receivers = members;           /* receivers of each message */
    if (warm_up(b, senders, rooms, rooms * 10.0, 0.3) < 0)
        goto out;
    struct window w;
    window_begin(&r, &w);
    bench_phase_begin(b, PH_MEASURE, 1);
    double rate = o->rate * rooms;
    uint64_t total = (uint64_t)llround(rate * o->duration_s);
    bench_rate_start(b, senders, rooms, rate, total);
    bench_run_until(b, rate_finished, o->duration_s * 1.5 + 10);
    if (!bench_run_until(b, all_delivered, drain_s(o) + 60))
        fprintf(stderr, "chat-bench: rooms-fanout: %llu of %llu deliveries after the drain time\n",
                (unsigned long long)b->ph_deliv[PH_MEASURE],
                (unsigned long long)(b->ph_sent[PH_MEASURE] * (uint64_t)members));
    window_end(&r, &w);
    fill_delivery(res, b);
    res->clients = b->n_clients;
    fill_window(res, &w, res->delivered, e->netns);
    res->core_dropped = w.core.dropped;
    fill_latency(res, &b->lat);
    double span = (double)(b->ph_last_deliv[PH_MEASURE] - b->ph_first_send[PH_MEASURE]) / 1e9;
    double sending = (double)res->sent / rate;
    if (span > 0)
        res->deliveries_per_s = (double)res->delivered / (span > sending ? span : sending);
    res->offered_per_s = rate * members;
    if (b->leaks)
        fprintf(stderr, "chat-bench: rooms-fanout: %llu messages reached a client outside their room\n",
                (unsigned long long)b->leaks);
    rc = b->leaks ? -1 : 0;
out:
    if (rc < 0 && !res->errors)
        res->errors = b->errors ? b->errors : 1;
    run_close(&r);
    free(senders);
    return rc;
}

int run_rooms(struct env *e, const char *tname, int run_no)
{
    /* the one-room figure first: as many subscribers, the same rate per sender */
    int f = run_fanout(e, tname, run_no);
    return rooms_measure(e, tname, run_no) < 0 || f < 0 ? -1 : 0;
}
