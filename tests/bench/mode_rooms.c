/* mode_rooms.c — chat-bench --rooms-fanout R: R rooms (protocol v1.1) of
 * --members WebSocket connections each, one of each room sending at --rate;
 * every message must reach exactly its room's members, and no other room's.
 * Deliveries per second, latency, server CPU per delivery.
 *
 * The one-room figure is measured first on the same server and the same
 * connections: one more client (not in any room) sends to general, which
 * every connection is in, at the same --rate: the existing --fanout to
 * R x members subscribers (mode_fanout.c), at the same offered deliveries
 * per second as the rooms phase. Then the rooms phase.
 *
 * Each room is one user's, who creates it (POST /api/v1/rooms: its first
 * member) and holds its --members connections, as --fanout spreads its
 * subscribers over --logins users: the server's fan-out work is per
 * connection, and 10,000 argon2id logins would take longer than the run on
 * two CPUs. (--room-joins: a second user per room joins it with POST
 * /api/v1/rooms/NAME/join and holds half the connections.) */
#include "run.h"
#include "http.h"
#include "transport.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PH_ROOMS 3              /* the rooms phase (PH_MEASURE: the one-room phase) */

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
static int room_calls(struct run *r, int rooms, int per_room, int join)
{
    struct bench *b = &r->b;
    char path[400], name[64], body[128];
    memset(&rcalls, 0, sizeof rcalls);
    for (int i = 0; i < rooms; i++) {
        room_name(name, sizeof name, r, i);
        for (int k = join ? 1 : 0; k < (join ? per_room : 1); k++) {
            struct buser *u = &b->users[1 + i * per_room + k];
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

/* Member m of room i: user 1 + i * per_room + m % per_room; member 0 sends. */
static int open_members(struct env *e, struct run *r, const struct transport_ops *ops, int rooms,
                        int members, int per_room, int64_t sync, struct bclient **senders, int *opened)
{
    struct bench *b = &r->b;
    int first = b->n_clients;
    for (int i = 0; i < rooms; i++)
        for (int m = 0; m < members; m++) {
            struct buser *u = &b->users[1 + i * per_room + m % per_room];
            struct bclient *c = bench_client_new(b, u, ops, m ? ROLE_SUBSCRIBER : ROLE_SENDER, sync);
            if (!c)
                return -1;
            room_name(c->room, sizeof c->room, r, i);
            if (!m)
                senders[i] = c;
        }
    return ramp_open(e, b, ops, first, rooms * members, opened);
}

static int phase_no;
static int phase_delivered(struct bench *b)
{
    return b->ph_deliv[phase_no] >= b->ph_sent[phase_no] * (uint64_t)b->n_receivers && bench_rate_done(b);
}

/* One measured phase: n senders at rate msgs/s each, receivers per message. */
static void measure(struct env *e, struct run *r, struct result *res, struct bclient **senders, int n,
                    int receivers, int phase)
{
    const struct bench_opts *o = e->o;
    struct bench *b = &r->b;
    struct window w;
    b->n_receivers = receivers;
    phase_no = phase;
    window_begin(r, &w);
    bench_phase_begin(b, phase, 1);
    double rate = o->rate * n;
    uint64_t total = (uint64_t)llround(rate * o->duration_s);
    bench_rate_start(b, senders, n, rate, total);
    bench_run_until(b, rate_finished, o->duration_s * 1.5 + 10);
    if (!bench_run_until(b, phase_delivered, drain_s(o) + 60))
        fprintf(stderr, "chat-bench: %s: %llu of %llu deliveries after the drain time\n",
                phase == PH_ROOMS ? "rooms" : "one room", (unsigned long long)b->ph_deliv[phase],
                (unsigned long long)(b->ph_sent[phase] * (uint64_t)receivers));
    window_end(r, &w);
    fill_delivery_phase(res, b, phase);
    fill_window(res, &w, res->delivered, e->netns);
    res->core_dropped = w.core.dropped;
    fill_latency(res, &b->lat);
    res->rate = rate;
    res->duration_s = o->duration_s;
    res->wait_s = o->wait_s;
    double span = (double)(b->ph_last_deliv[phase] - b->ph_first_send[phase]) / 1e9;
    double sending = (double)res->sent / rate;
    if (span > 0)
        res->deliveries_per_s = (double)res->delivered / (span > sending ? span : sending);
    res->offered_per_s = rate * receivers;
}

int run_rooms(struct env *e, const char *tname, int run_no)
{
    const struct bench_opts *o = e->o;
    const struct transport_ops *ops = transport_find(tname);
    int rooms = o->rooms, members = o->members, n = rooms * members, rc = -1;
    int per_room = o->room_joins ? 2 : 1;
    struct run r;
    struct bench *b = &r.b;
    struct bclient **senders = calloc((size_t)rooms, sizeof *senders);
    struct result *one = report_add(e->rep), *res = one ? report_add(e->rep) : NULL;
    if (!res || !senders) {
        free(senders);
        return -1;
    }
    one = &e->rep->r[e->rep->n - 2];            /* report_add may have moved it */
    fill_common(e, one, tname, MODE_FANOUT, run_no);
    fill_common(e, res, tname, MODE_ROOMS, run_no);
    one->rooms = 1;
    res->rooms = rooms;
    one->conns_asked = res->conns_asked = n;
    one->users = res->users = 1 + rooms * per_room;
    fprintf(stderr, "chat-bench: %d rooms of %d %s members, %.0f msgs/s per room; first one room of all\n",
            rooms, members, tname, o->rate);
    if (run_open(e, &r, tname, n + 64, 1 + rooms * per_room, o->wait_s) < 0 ||
        room_calls(&r, rooms, per_room, 0) < 0 || (per_room > 1 && room_calls(&r, rooms, per_room, 1) < 0))
        goto out;
    one->fsync_ms = res->fsync_ms;
    snprintf(one->server_cpus, sizeof one->server_cpus, "%s", res->server_cpus);
    snprintf(one->generator_cpus, sizeof one->generator_cpus, "%s", res->generator_cpus);
    int64_t sync = bench_sync_id(b);
    int opened = 0;
    struct bclient *general = sync < 0 ? NULL : bench_client_new(b, &b->users[0], ops, ROLE_SENDER, sync);
    if (!general || bench_client_start(general) < 0 ||
        open_members(e, &r, ops, rooms, members, per_room, sync, senders, &opened) < 0)
        goto out;
    one->conns_open = res->conns_open = opened;
    /* one room: general, every connection and the sender's own */
    b->n_receivers = n + 1;
    if (warm_up(b, &general, 1, 10, 0.3) < 0)
        goto out;
    measure(e, &r, one, &general, 1, n + 1, PH_MEASURE);
    /* rooms: each message to its room's members */
    b->n_receivers = members;
    if (warm_up(b, senders, rooms, rooms * 10.0, 0.3) < 0)
        goto out;
    measure(e, &r, res, senders, rooms, members, PH_ROOMS);
    one->clients = res->clients = b->n_clients;
    if (b->leaks)
        fprintf(stderr, "chat-bench: rooms-fanout: %llu messages reached a client outside their room\n",
                (unsigned long long)b->leaks);
    rc = b->leaks ? -1 : 0;
out:
    if (rc < 0 && !res->errors)
        res->errors = b->errors ? b->errors : 1;
    if (rc < 0 && !one->errors)
        one->errors = b->errors ? b->errors : 1;
    run_close(&r);
    free(senders);
    return rc;
}
