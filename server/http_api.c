/* http_api.c — the JSON HTTP API: request intake (path, query, body with a
 * size cap), routing, authentication, the handlers, the long-poll parking
 * (answered when woken, when its hold passes, or 401 at once when its
 * session ends: its session_ops), the long-poll pace (a token's answers
 * with something in them at most every --long-poll-pace-ms: a busy feed
 * packs its events into fewer answers, a quiet one is answered at once),
 * the request-body deadline and the response writer. One request at a
 * time per connection; everything a request owns lives in session.u.http
 * and is freed by http_reset.
 *
 * The handlers make only asynchronous store calls (store_call_async), and
 * answer in the completion: a request waiting for the store holds a ticket
 * (struct http_call) that http_reset disowns if the connection goes first,
 * as a password hash job is. A store that did not answer in time
 * (STORE_UNAVAILABLE) is 503 store_unavailable with Retry-After: 1. */
#include "http_api.h"
#include "audit.h"
#include "auth.h"
#include "browser.h"
#include "clock.h"
#include "feed.h"
#include "presence.h"
#include "limiter.h"
#include "money.h"
#include "pwhash.h"
#include "rooms.h"
#include "server.h"
#include "sse_api.h"
#include "store.h"
#include "sweep.h"
#include "transfers.h"
#include "web_files.h"

#include <stdlib.h>
#include <string.h>

enum http_method { M_OTHER = 0, M_GET, M_POST };

#define HTTP_CHUNK 16384
#define HTTP_HEAD_MAX 1024      /* a response head: a page answer's headers fit */

/* A request's store call: what its completion needs. The owner is NULL
 * once the request's connection went away (http_reset). */
struct http_call {
    struct session *owner;
    int (*then)(struct session *s, struct http_call *c, const struct store_reply *rep);
    char    user[PROTO_USER_MAX + 1];
    char    password[PROTO_PASSWORD_MAX + 1];   /* login, register: wiped with the ticket */
    char    token[PROTO_TOKEN_HEX_LEN + 1], token_hash[65];
    int64_t id, expires_ms;
    char    room[PROTO_DM_NAME_MAX + 1];        /* rooms: the room's name */
    char    topic[PROTO_TOPIC_MAX + 1];
    int     action;                             /* rooms: the call's kind */
};

static void http_unpark(struct session *s);
static void http_body_wait(struct session *s);
static void http_body_done(struct session *s);

/* A submit on its way: the connection may close first (http_reset). */
struct http_transfer {
    struct session *s;
};

static void http_reset(struct session *s)
{
    struct http_state *h = &s->u.http;
    h->input_held = 0;             /* the connection is going: nothing to give back */
    http_unpark(s);
    http_body_done(s);
    feed_forget_session(s);
    if (h->job)
        h->job->owner = NULL;      /* the pool frees it when it finishes */
    if (h->call)
        h->call->owner = NULL;     /* its completion frees it */
    if (h->transfer)
        h->transfer->s = NULL;     /* its completion frees it */
    if (h->resp && s->srv)
        s->srv->responding--;
    free(h->body);
    free(h->resp);
    free(h->target);
    free(h->room);
    server_free_secret(&h->set_cookie);
    memset(h, 0, sizeof *h);
    h->path = h->query = "";
}

/* Takes ownership of body (malloc'd JSON text). */
static int http_respond(struct session *s, unsigned status, char *body)
{
    struct http_state *h = &s->u.http;
    if (!body)
        return -1;
    if (h->resp)
        free(h->resp);
    else
        s->srv->responding++;
    h->status = status;
    h->resp = body;
    h->resp_len = strlen(body);
    h->resp_off = 0;
    server_want_write(s->wsi, &h->input_held);
    return 0;
}

static int http_error(struct session *s, unsigned status, const char *code, const char *msg)
{
    return http_respond(s, status, proto_error_json(code, msg));
}

/* A limit was hit: 429 (or 503) with Retry-After. */
static int http_limited(struct session *s, unsigned status, const char *code, const char *msg,
                        int retry_after_s)
{
    audit("limit", "code=%s path=%s user=%s addr=%s", code, s->u.http.path,
          s->user[0] ? s->user : "-", limiter_conn_addr(s->wsi));
    s->u.http.retry_after_s = retry_after_s;
    return http_error(s, status, code, msg);
}

/* A store call failed: 503 store_unavailable (retryable, with
 * Retry-After) or 500. */
static int http_store_failed(struct session *s, int rc, const char *what)
{
    if (rc != STORE_UNAVAILABLE)
        return http_error(s, 500, "internal", what);
    s->u.http.retry_after_s = 1;
    return http_error(s, 503, "store_unavailable", "the database did not answer in time; retry shortly");
}

/* ---- requests waiting for the store ---- */

static void http_call_done(void *arg, const struct store_reply *rep)
{
    struct http_call *c = arg;
    struct session *s = c->owner;
    if (s) {
        s->u.http.call = NULL;
        if (c->then(s, c, rep) < 0)
            lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
    }
    sodium_memzero(c, sizeof *c);
    free(c);
}

static struct http_call *http_call_new(void)
{
    return calloc(1, sizeof(struct http_call));
}

/* While a request waits for the store, lws' own timeout for a request left
 * unanswered (5 s) is off: the store's bound (store.h: 5 s, then
 * STORE_UNAVAILABLE) answers it, with a 503 the client can act on, where
 * lws would only close the connection. */
static void http_store_wait(struct session *s)
{
    lws_set_timeout(s->wsi, NO_PENDING_TIMEOUT, 0);
}

/* Sends the call; c->then answers the request (perhaps before this returns). */
static int http_store_call(struct session *s, struct http_call *c, enum store_call_kind kind,
                           const struct store_args *args)
{
    c->owner = s;
    s->u.http.call = c;
    http_store_wait(s);
    store_call_async(s->srv->store, 0, kind, args, http_call_done, c);
    return 0;
}

/* Steals the reference to o. */
static int http_json(struct session *s, unsigned status, json_t *o)
{
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return http_respond(s, status, text);
}

static int http_method_of(struct lws *wsi)
{
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI))
        return M_GET;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI))
        return M_POST;
    return M_OTHER;
}

/* The token's check came to rc: the route runs, or the request is refused. */
static int http_authed(struct session *s, int rc)
{
    switch (rc) {
    case AUTH_OK:
        return s->u.http.route(s);
    case AUTH_UNAVAILABLE:
        return http_store_failed(s, STORE_UNAVAILABLE, "");
    case AUTH_FAILED:
        return http_store_failed(s, STORE_ERROR, "could not check the token");
    default:
        audit("auth.refused", "path=%s addr=%s", s->u.http.path, limiter_conn_addr(s->wsi));
        return http_error(s, 401, "unauthorized", "missing, invalid or expired token");
    }
}

static void http_on_authed(struct session *s, int rc)
{
    if (http_authed(s, rc) < 0)
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
}

/* A browser's session cookie counts only from the page's own origin: a
 * request that names another Origin, or a POST that names none, could
 * come from any page the user has open (shared/PROTOCOL.md, "Browsers"). */
static int http_cookie_refused(struct session *s)
{
    enum browser_origin o = browser_origin_of(s->wsi);
    return o == BROWSER_OTHER_ORIGIN || (o == BROWSER_NO_ORIGIN && s->u.http.method != M_GET);
}

/* Reads "Authorization: Bearer TOKEN", else the browser's session cookie,
 * and authenticates the session, then runs route: now, or from the
 * completion of the token's lookup. */
static int http_authenticate(struct session *s, int (*route)(struct session *s))
{
    char hdr[128];
    const char *token = NULL;
    int n = lws_hdr_copy(s->wsi, hdr, sizeof hdr, WSI_TOKEN_HTTP_AUTHORIZATION);
    s->u.http.route = route;
    if (n > 7 && strncmp(hdr, "Bearer ", 7) == 0)
        token = hdr + 7;
    else if (n <= 0 && browser_cookie_token(s->wsi, hdr) == 0) {
        if (http_cookie_refused(s)) {
            sodium_memzero(hdr, sizeof hdr);
            audit("auth.origin_refused", "path=%s addr=%s", s->u.http.path, limiter_conn_addr(s->wsi));
            return http_error(s, 403, "forbidden_origin",
                              "the session cookie is accepted only from this server's own pages");
        }
        token = hdr;
        s->u.http.by_cookie = 1;
    }
    int rc = token ? auth_check_token(s->srv, s, token, http_on_authed) : AUTH_REFUSED;
    sodium_memzero(hdr, sizeof hdr);
    if (rc == AUTH_PENDING)
        http_store_wait(s);
    return rc == AUTH_PENDING ? 0 : http_authed(s, rc);
}

/* ---- long poll ---- */

static void http_unpark(struct session *s)
{
    struct http_state *h = &s->u.http;
    sweep_leave(&h->pace);
    server_hold_input(s->wsi, &h->input_held, 0);   /* the answer, maybe a next request */
    sweep_leave(&h->hold);
    presence_release(s);
    auth_release(s);
    feed_unsubscribe(s);
    if (h->poll_parked)
        s->srv->parked--;
    h->poll_parked = 0;
}

static int http_park(struct session *s, int wait_s);

/* The poll's answer: rc and events are feed_fetch's. */
static int http_answer_events(struct session *s, int rc, json_t *events)
{
    struct http_state *h = &s->u.http;
    http_unpark(s);
    if (rc == STORE_UNAVAILABLE) {
        h->retry_after_s = 1;
        return http_error(s, 503, "store_unavailable", "the database is unavailable; retry shortly");
    }
    if (rc != STORE_OK)
        return http_error(s, 500, "internal", "could not read events");
    int64_t next = h->poll.after;
    size_t n = json_array_size(events);
    if (n)
        next = json_integer_value(json_object_get(json_array_get(events, n - 1), "id"));
    presence_polled(s);             /* its poll window, and its items, from now */
    json_t *eph = presence_take(s);
    if (n || eph)
        presence_answered(s);
    return http_json(s, 200, json_pack("{s:o,s:I,s:o*}", "events", events, "next", (json_int_t)next,
                                       "ephemeral", eph));
}

/* 1 if a parked poll woken for its token's items finds none (another poll
 * of the same token took them) while its hold runs: it stays parked rather
 * than be answered with nothing, so that one item does not answer, and
 * bring back at once, every poll a token holds. At the hold's end (the
 * sweep has taken it off its queue) or at shutdown it is answered. */
static int http_woken_for_nothing(struct session *s, int rc, json_t *events)
{
    struct http_state *h = &s->u.http;
    return h->poll_parked && !s->srv->stopping && rc == STORE_OK && json_array_size(events) == 0 &&
           !presence_has_items(s) && sweep_queued(&h->hold);
}

static int http_answer_poll(struct session *s)
{
    struct http_state *h = &s->u.http;
    /* ended meanwhile (on another instance, say): answered by http_on_ended */
    if (h->poll_parked && auth_still_on(s) < 0)
        return h->resp ? 0 : http_error(s, 401, "unauthorized", "the session has ended");
    json_t *events;
    int rc = feed_fetch(s, h->poll.after, h->poll.limit, &events);
    if (rc == FEED_PENDING)       /* from the store: woken once its rows are in */
        return http_park(s, 0);
    if (http_woken_for_nothing(s, rc, events)) {
        json_decref(events);
        server_hold_input(s->wsi, &h->input_held, 1);   /* parked again, as http_park leaves it */
        return 0;
    }
    return http_answer_events(s, rc, events);
}

/* A parked poll's deadline (l, of its http_state) passed: it leaves that
 * queue and asks for the WRITEABLE that answers it with what there is. */
static void http_due(struct session *s, struct sweep_link *l)
{
    sweep_leave(l);
    server_want_write(s->wsi, &s->u.http.input_held);
}

/* Its token's pace is over (or nearly: the sweep's granularity): answered
 * with what there is. A busy feed's poll is answered sooner, at the first
 * wake after the pace (http_wake); this is the backstop for a feed that
 * went quiet meanwhile. */
static void http_pace_over(struct server *srv, struct sweep_link *l)
{
    (void)srv;
    http_due(lws_container_of(l, struct session, u.http.pace), l);
}

static const struct sweep_kind http_pace_kind = { .due = http_pace_over };

/* 1 if s's answer waits for its token's pace, 0 if it may go now. The
 * wait ends at the first feed wake after the pace, or at the backstop
 * (the sweep, a pace after this call at the latest plus its 20 ms gap):
 * no timer of its own, as lws 4.1 keeps its timers in one list walked at
 * every schedule, and its libuv timer spins through the last part of a
 * millisecond before each one. */
static int http_paced(struct session *s)
{
    struct http_state *h = &s->u.http;
    int pace_ms = s->srv->cfg.long_poll_pace_ms;
    if (!presence_pace_wait_ms(s, pace_ms))
        return 0;
    struct sweep_queue *q = sweep_queue(s->srv->sweep, &http_pace_kind, pace_ms);
    if (!q)                       /* no backstop (the sweep is gone at shutdown; no memory): now */
        return 0;
    if (!sweep_in(q, &h->pace))
        sweep_join(q, &h->pace, sweep_mono_ms());
    return 1;
}

static void http_wake(struct session *s)
{
    if (s->u.http.poll_parked && !s->u.http.resp && !http_paced(s))
        server_want_write(s->wsi, &s->u.http.input_held);
}

/* presence.c has queued the item for the poll's token: a parked poll is
 * answered now. */
static void http_ephemeral(struct session *s, const struct ephemeral *e)
{
    (void)e;
    http_wake(s);
}

/* Logout or expiry: a parked poll is answered 401 now, with no events. */
static void http_on_ended(struct session *s, const char *why)
{
    char msg[80];
    if (!s->u.http.poll_parked)
        return;
    http_unpark(s);
    snprintf(msg, sizeof msg, "the session has ended (%s)", why);
    if (http_error(s, 401, "unauthorized", msg) < 0)
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
}

/* The hold passed: answered with what there is. */
static void http_hold_over(struct server *srv, struct sweep_link *l)
{
    (void)srv;
    http_due(lws_container_of(l, struct session, u.http.hold), l);
}

static const struct sweep_kind http_hold_kind = { .due = http_hold_over };

static int route_events(struct session *s)
{
    struct http_state *h = &s->u.http;
    const char *err;
    if (proto_parse_events_query(h->query, &h->poll, &err) < 0)
        return http_error(s, 400, "bad_query", err);
    if (h->poll.latest)           /* v1.1: from the newest event on */
        h->poll.after = feed_newest(s->srv);
    int wait = h->poll.wait_s;
    if (wait > s->srv->cfg.long_poll_max_s)
        wait = s->srv->cfg.long_poll_max_s;
    if (s->srv->stopping)
        wait = 0;
    if (presence_polled(s) < 0)
        return http_error(s, 500, "internal", "out of memory");
    json_t *events;
    int rc = feed_fetch(s, h->poll.after, h->poll.limit, &events);
    int full = s->srv->parked >= s->srv->cfg.max_long_polls;
    int at_once = rc != FEED_PENDING && (wait == 0 || rc != STORE_OK);   /* a short poll, an error */
    int has = !at_once && rc == STORE_OK && (json_array_size(events) > 0 || presence_has_items(s));
    if (at_once || (has && (full || !http_paced(s))))
        return http_answer_events(s, rc, events);
    json_decref(events);
    if (full)
        return http_limited(s, 503, "overloaded", "too many long polls are waiting; retry shortly", 1);
    return http_park(s, wait);          /* nothing yet, or its token's pace not over */
}

/* Nothing yet (or its rows come from the store): park until the feed wakes
 * us, the deadline passes or the session ends (auth_hold: http_on_ended). */
static int http_park(struct session *s, int wait)
{
    struct http_state *h = &s->u.http;
    if (h->poll_parked)
        return 0;
    if (auth_hold(s, 0) < 0 || presence_hold(s) < 0)
        return http_error(s, 500, "internal", "out of memory");
    s->srv->parked++;
    h->poll_parked = 1;
    feed_subscribe(s);
    lws_set_timeout(s->wsi, NO_PENDING_TIMEOUT, 0);  /* our deadline, not lws' */
    sweep_join(sweep_queue(s->srv->sweep, &http_hold_kind, wait * 1000LL), &h->hold, sweep_mono_ms());
    /* Everything needed from the request headers has been copied: give
     * back lws' header buffer (max_http_header_data, 4 KB of the 6.4 KB a
     * parked poll held) rather than keep it for the whole hold. lws takes
     * one again if the client sends anything more. */
    if (lws_get_network_wsi(s->wsi) == s->wsi)
        lws_http_headers_detach(s->wsi);
    server_hold_input(s->wsi, &h->input_held, 1);
    return 0;
}

/* ---- accounts ---- */

/* Parses {"user","password"} from the body; 0 or -1 with an error answered. */
static int http_credentials(struct session *s, json_t **root, const char **user, const char **pw)
{
    const char *err;
    *user = *pw = NULL;
    *root = proto_parse_object(s->u.http.body, s->u.http.body_len, &err);
    if (!*root) {
        http_error(s, 400, "invalid", err);
        return -1;
    }
    if (proto_get_string(*root, "user", user) < 0 || proto_get_string(*root, "password", pw) < 0 ||
        !*user || !*pw) {
        json_decref(*root);
        http_error(s, 400, "invalid", "expected string fields \"user\" and \"password\"");
        return -1;
    }
    return 0;
}

static int http_submit_hash(struct session *s, enum pwhash_kind kind, const char *user,
                            const char *pw, const char *hash, int64_t user_id)
{
    struct pwhash_job *job = calloc(1, sizeof *job);
    if (!job)
        return http_error(s, 500, "internal", "out of memory");
    job->kind = kind;
    job->owner = s;
    job->user_id = user_id;
    snprintf(job->user, sizeof job->user, "%s", user);
    snprintf(job->password, sizeof job->password, "%s", pw);
    if (hash)
        snprintf(job->hash, sizeof job->hash, "%s", hash);
    if (pwhash_submit(s->srv->pwhash, job) < 0) {
        sodium_memzero(job, sizeof *job);
        free(job);
        return http_error(s, 429, "busy", "too many logins in progress, retry shortly");
    }
    s->u.http.job = job;
    return 0;
}

/* Before any hash: an address that has been failing for this user waits
 * (growing delays, limiter.h), and every address has a bucket of login and
 * register attempts. A user name that is not valid gets no record. */
static int http_auth_limited(struct session *s, const char *user)
{
    struct limiter *l = s->srv->limiter;
    const char *addr = limiter_conn_addr(s->wsi);
    int64_t now = now_ms(), wait_ms = 0;
    int retry;
    if (user && proto_name_valid(user))
        wait_ms = limiter_login_wait_ms(l, user, addr, now);
    if (wait_ms > 0) {
        retry = (int)((wait_ms + 999) / 1000);
    } else if (limiter_take(l, LIMIT_LOGIN_ADDR, addr, now, &retry)) {
        return 0;
    }
    http_limited(s, 429, "rate_limited", "too many attempts; wait before trying again", retry);
    return 1;
}

/* Registration and login both start by reading the user's row; then(s, c,
 * reply) goes on from there with the user and password kept in c. */
static int http_user_lookup(struct session *s, const char *user, const char *pw,
                            int (*then)(struct session *s, struct http_call *c,
                                        const struct store_reply *rep))
{
    struct http_call *c = http_call_new();
    if (!c)
        return http_error(s, 500, "internal", "out of memory");
    snprintf(c->user, sizeof c->user, "%s", user);
    snprintf(c->password, sizeof c->password, "%s", pw);
    c->then = then;
    struct store_args args = { .name = c->user };
    return http_store_call(s, c, STORE_CALL_USER_GET, &args);
}

/* Is the name taken? Only a free one is worth a hash. */
static int register_checked(struct session *s, struct http_call *c, const struct store_reply *rep)
{
    if (rep->rc == STORE_OK)
        return http_error(s, 409, "taken", "that user name is taken");
    if (rep->rc != STORE_NOT_FOUND)
        return http_store_failed(s, rep->rc, "could not read the user");
    return http_submit_hash(s, PWHASH_HASH, c->user, c->password, NULL, 0);
}

static int route_register(struct session *s)
{
    json_t *root;
    const char *user, *pw;
    if (http_auth_limited(s, NULL))
        return 0;
    if (http_credentials(s, &root, &user, &pw) < 0)
        return 0;
    int rc;
    if (!proto_name_valid(user) || !proto_password_valid(pw)) {
        rc = http_error(s, 400, "invalid",
                        "user must be 1-32 of a-z 0-9 _ - and password 8-128 bytes");
    } else {
        rc = http_user_lookup(s, user, pw, register_checked);
    }
    json_decref(root);
    return rc;
}

/* The user's stored hash, or for an unknown user a dummy one: same work,
 * same time. */
static int login_verify(struct session *s, struct http_call *c, const struct store_reply *rep)
{
    if (rep->rc == STORE_OK)
        return http_submit_hash(s, PWHASH_VERIFY, c->user, c->password, rep->pwhash, rep->id);
    if (rep->rc != STORE_NOT_FOUND)
        return http_store_failed(s, rep->rc, "could not read the user");
    return http_submit_hash(s, PWHASH_VERIFY, c->user, c->password,
                            pwhash_pool_dummy_hash(s->srv->pwhash), 0);
}

static int route_login(struct session *s)
{
    json_t *root;
    const char *user, *pw;
    if (http_credentials(s, &root, &user, &pw) < 0)
        return 0;
    json_t *cookie = json_object_get(root, "cookie");
    s->u.http.want_cookie = json_is_true(cookie);
    if (cookie && !json_is_boolean(cookie)) {
        json_decref(root);
        return http_error(s, 400, "invalid", "\"cookie\" must be true or false");
    }
    if (s->u.http.want_cookie && browser_origin_of(s->wsi) == BROWSER_OTHER_ORIGIN) {
        json_decref(root);      /* a foreign page logging the user in as someone else */
        return http_error(s, 403, "forbidden_origin", "a cookie login only from this server's own pages");
    }
    if (http_auth_limited(s, user)) {
        json_decref(root);
        return 0;
    }
    int rc;
    if (!proto_name_valid(user) || !proto_password_valid(pw)) {
        rc = http_submit_hash(s, PWHASH_VERIFY, proto_name_valid(user) ? user : "",
                              proto_password_valid(pw) ? pw : "",
                              pwhash_pool_dummy_hash(s->srv->pwhash), 0);
    } else {
        rc = http_user_lookup(s, user, pw, login_verify);
    }
    json_decref(root);
    return rc;
}

static int register_stored(struct session *s, struct http_call *c, const struct store_reply *rep)
{
    if (rep->rc == STORE_EXISTS)
        return http_error(s, 409, "taken", "that user name is taken");
    if (rep->rc != STORE_OK)
        return http_store_failed(s, rep->rc, "could not store the user");
    audit("register", "user=%s addr=%s", c->user, limiter_conn_addr(s->wsi));
    return http_json(s, 201, json_pack("{s:s}", "user", c->user));
}

static int http_finish_register(struct session *s, struct pwhash_job *job)
{
    if (!job->ok)
        return http_error(s, 500, "internal", "could not hash the password");
    struct http_call *c = http_call_new();
    if (!c)
        return http_error(s, 500, "internal", "out of memory");
    snprintf(c->user, sizeof c->user, "%s", job->user);
    c->then = register_stored;
    struct store_args args = { .name = c->user, .pwhash = job->hash, .now_ms = now_ms() };
    return http_store_call(s, c, STORE_CALL_USER_CREATE, &args);
}

/* The answer will set the session cookie to token (NULL: forget it). */
static int http_set_cookie(struct session *s, const char *token, int64_t max_age_s)
{
    char v[160];
    server_free_secret(&s->u.http.set_cookie);
    if (browser_cookie_value(s->wsi, token, max_age_s, v, sizeof v) < 0)
        return -1;
    s->u.http.set_cookie = strdup(v);
    sodium_memzero(v, sizeof v);
    return s->u.http.set_cookie ? 0 : -1;
}

/* The session is stored: the token is good here at once (auth_remember). */
static int login_session_made(struct session *s, struct http_call *c, const struct store_reply *rep)
{
    if (rep->rc != STORE_OK)
        return http_store_failed(s, rep->rc, "could not create a session");
    auth_remember(s->srv, c->token_hash, c->id, c->user, c->expires_ms);
    limiter_login_succeeded(s->srv->limiter, c->user, limiter_conn_addr(s->wsi));
    audit("login", "user=%s addr=%s", c->user, limiter_conn_addr(s->wsi));
    /* A browser login: the token goes only into the HttpOnly cookie, out
     * of the page's scripts' reach. */
    if (s->u.http.want_cookie)
        return http_set_cookie(s, c->token, s->srv->cfg.token_ttl_s) < 0
             ? http_error(s, 500, "internal", "cookie too long")
             : http_json(s, 200, json_pack("{s:s,s:I,s:b}", "user", c->user, "expires_at",
                                           (json_int_t)c->expires_ms, "cookie", 1));
    return http_json(s, 200, json_pack("{s:s,s:s,s:I}", "token", c->token, "user", c->user,
                                       "expires_at", (json_int_t)c->expires_ms));
}

static int http_finish_login(struct session *s, struct pwhash_job *job)
{
    if (!job->ok || job->user_id == 0) {
        if (job->user[0])
            limiter_login_failed(s->srv->limiter, job->user, limiter_conn_addr(s->wsi), now_ms());
        audit("login.failed", "user=%s addr=%s", job->user[0] ? job->user : "-", limiter_conn_addr(s->wsi));
        return http_error(s, 401, "unauthorized", "wrong user or password");
    }
    struct http_call *c = http_call_new();
    if (!c)
        return http_error(s, 500, "internal", "out of memory");
    int64_t now = now_ms();
    c->expires_ms = now + s->srv->cfg.token_ttl_s * 1000LL;
    c->id = job->user_id;
    snprintf(c->user, sizeof c->user, "%s", job->user);
    auth_token_new(c->token);
    auth_token_hash(c->token, c->token_hash);
    c->then = login_session_made;
    struct store_args args = { .token_hash = c->token_hash, .user_id = c->id, .now_ms = now,
                               .expires_ms = c->expires_ms };
    return http_store_call(s, c, STORE_CALL_SESSION_CREATE, &args);
}

void http_on_hash_done(struct session *s, struct pwhash_job *job)
{
    s->u.http.job = NULL;
    int rc = job->kind == PWHASH_HASH ? http_finish_register(s, job) : http_finish_login(s, job);
    sodium_memzero(job, sizeof *job);
    free(job);
    if (rc < 0)
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
}

/* ---- rooms and direct messages (protocol v1.1) ---- */

/* The answer for a room call's refusal (rc STORE_CONSTRAINT), or the
 * store's failure. */
static int room_failed(struct session *s, const struct store_reply *rep, const char *what)
{
    if (rep->rc != STORE_CONSTRAINT)
        return http_store_failed(s, rep->rc, what);
    switch (rep->room_err) {
    case STORE_ROOM_NOT_FOUND:
        return http_error(s, 404, "not_found", "no such room");
    case STORE_ROOM_EXISTS:
        return http_error(s, 409, "exists", "a room of that name exists");
    case STORE_ROOM_TOO_MANY:
        return http_error(s, 409, "too_many_rooms", "a user may be in at most 100 rooms");
    case STORE_ROOM_NOT_ALLOWED:
        return http_error(s, 409, "not_allowed", "a direct conversation cannot be joined, left or given a topic");
    case STORE_ROOM_CANNOT_LEAVE:
        return http_error(s, 409, "cannot_leave", "general cannot be left");
    case STORE_ROOM_NOT_MEMBER:
        return http_error(s, 403, "not_member", "you are not a member of this room");
    default:
        return http_store_failed(s, STORE_ERROR, what);
    }
}

/* A room change through the feed (its events published before c->then). */
static int http_room_call(struct session *s, struct http_call *c, enum store_call_kind kind,
                          const struct store_args *args)
{
    c->owner = s;
    s->u.http.call = c;
    http_store_wait(s);
    feed_room_call(s->srv, kind, args, http_call_done, c);
    return 0;
}

static int rooms_listed(struct session *s, struct http_call *c, const struct store_reply *rep)
{
    (void)c;
    if (rep->rc != STORE_OK)
        return http_store_failed(s, rep->rc, "could not list the rooms");
    json_t *arr = json_array();
    for (int i = 0; arr && i < rep->n_rooms; i++) {
        const struct store_room *r = &rep->rooms[i];
        int64_t online = presence_room_online(s->srv->presence, s->srv->rooms, r->id);
        json_array_append_new(arr, json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:b}", "name", r->name,
                                             "topic", r->topic, "members", (json_int_t)r->members,
                                             "online", (json_int_t)online, "unread", (json_int_t)r->unread,
                                             "last_id", (json_int_t)r->last_id, "joined", r->joined));
    }
    return http_json(s, 200, arr ? json_pack("{s:o}", "rooms", arr) : NULL);
}

static int route_rooms_list(struct session *s)
{
    struct http_call *c = http_call_new();
    if (!c)
        return http_error(s, 500, "internal", "out of memory");
    c->then = rooms_listed;
    struct store_args args = { .user_id = s->user_id };
    return http_store_call(s, c, STORE_CALL_ROOMS_LIST, &args);
}

/* Creating and joining count against the message rate: 0, or answered. */
static int room_rate_ok(struct session *s)
{
    int retry;
    if (limiter_take(s->srv->limiter, LIMIT_MESSAGES, s->user, now_ms(), &retry))
        return 1;
    http_limited(s, 429, "rate_limited", "too many messages; slow down", retry);
    return 0;
}

static int room_created(struct session *s, struct http_call *c, const struct store_reply *rep)
{
    if (rep->rc != STORE_OK)
        return room_failed(s, rep, "could not create the room");
    return http_json(s, 201, json_pack("{s:s}", "name", c->room));
}

static int route_rooms_create(struct session *s)
{
    const char *err, *name = NULL, *topic = NULL;
    if (!room_rate_ok(s))
        return 0;
    json_t *root = proto_parse_object(s->u.http.body, s->u.http.body_len, &err);
    if (!root)
        return http_error(s, 400, "invalid", err);
    struct http_call *c = NULL;
    char *join = NULL, *tp = NULL;
    int rc;
    if (proto_get_string(root, "name", &name) < 0 || !proto_name_valid(name))
        rc = http_error(s, 400, "invalid", "name must be 1-32 of a-z 0-9 _ -");
    else if (proto_get_string(root, "topic", &topic) < 0 || (topic && !proto_topic_valid(topic)))
        rc = http_error(s, 400, "invalid", "topic must be 0-256 bytes of UTF-8 without control characters");
    else if (!(c = http_call_new()) || !(join = proto_member_payload(name, s->user, 1)) ||
             (topic && !(tp = proto_topic_payload(name, s->user, topic))))
        rc = http_error(s, 500, "internal", "out of memory");
    else {
        snprintf(c->room, sizeof c->room, "%s", name);
        c->then = room_created;
        struct store_args args = { .user_id = s->user_id, .name = name, .topic = topic,
                                   .now_ms = now_ms(), .payload = join, .payload2 = tp };
        rc = http_room_call(s, c, STORE_CALL_ROOM_CREATE, &args);
        c = NULL;
    }
    free(c);
    free(join);
    free(tp);
    json_decref(root);
    return rc;
}

static int room_changed(struct session *s, struct http_call *c, const struct store_reply *rep)
{
    if (rep->rc != STORE_OK)
        return room_failed(s, rep, "could not change the room");
    if (c->action == STORE_CALL_ROOM_TOPIC)
        return http_json(s, 200, json_pack("{s:s,s:s}", "name", c->room, "topic", c->topic));
    if (c->action == STORE_CALL_ROOM_READ) {
        /* the user's other clients hear of it, on every instance */
        if (presence_read_moved(s->srv->presence, s->user_id, c->room, rep->id) < 0)
            lwsl_warn("read marker of %s not announced: out of memory\n", c->room);
        return http_json(s, 200, json_pack("{s:s,s:I}", "name", c->room, "read_id", (json_int_t)rep->id));
    }
    return http_json(s, 200, json_pack("{s:s,s:b}", "name", c->room, "joined",
                                       c->action == STORE_CALL_ROOM_JOIN));
}

/* NAME and ACTION of /api/v1/rooms/NAME/ACTION into name and action; -1
 * if the path is not of that form or NAME breaks the rules (404). */
static int room_path(const char *path, char *name, size_t nlen, const char **action)
{
    const char *p = path + strlen("/api/v1/rooms/");
    const char *slash = strchr(p, '/');
    if (!slash || (size_t)(slash - p) >= nlen || strchr(slash + 1, '/'))
        return -1;
    memcpy(name, p, (size_t)(slash - p));
    name[slash - p] = '\0';
    *action = slash + 1;
    return proto_name_valid(name) || proto_dm_name_valid(name) ? 0 : -1;
}

/* The body's {"topic"} or {"id"} for topic and read; 0 or answered. */
static int room_body(struct session *s, enum store_call_kind kind, struct http_call *c,
                     struct store_args *args)
{
    const char *err, *topic = NULL;
    int present = 0;
    json_t *root = proto_parse_object(s->u.http.body, s->u.http.body_len, &err);
    if (!root)
        return http_error(s, 400, "invalid", err), -1;
    int ok = kind == STORE_CALL_ROOM_TOPIC
        ? proto_get_string(root, "topic", &topic) == 0 && topic && proto_topic_valid(topic)
        : proto_get_int(root, "id", &args->id, &present) == 0 && present && args->id >= 0;
    if (ok && topic)
        snprintf(c->topic, sizeof c->topic, "%s", topic);
    json_decref(root);
    if (!ok)
        return http_error(s, 400, "invalid", kind == STORE_CALL_ROOM_TOPIC
                          ? "topic must be 0-256 bytes of UTF-8 without control characters"
                          : "id must be a non-negative integer"), -1;
    return 0;
}

/* The room a member asks about (presence and typing): its id, or 0 once
 * answered 404 (unknown, or a DM of others) or 403 (not a member), with
 * that answer's result in *rc. */
static int64_t route_room_member(struct session *s, const char *name, int *rc)
{
    int status;
    int64_t id = presence_room_find(s, name, &status);
    if (!id)
        *rc = status == 403 ? http_error(s, 403, "not_member", "you are not a member of this room")
                            : http_error(s, 404, "not_found", "no such room");
    return id;
}

/* POST /api/v1/rooms/NAME/typing: relayed to the room's members at most
 * once per 3 s per user and room (presence.c), extras dropped: 200 either
 * way. */
static int route_room_typing(struct session *s, const char *name)
{
    int rc;
    int64_t id = route_room_member(s, name, &rc);
    if (!id)
        return rc;
    struct presence_room who;
    struct presence_room_ix ix;
    if (presence_typing(s, name, id, presence_room_of(&who, &ix, s->srv->rooms, id)) < 0)
        return http_error(s, 500, "internal", "out of memory");
    return http_json(s, 200, json_pack("{s:b}", "ok", 1));
}

/* GET /api/v1/rooms/NAME/presence: its members online now, sorted. */
static int route_room_presence(struct session *s, const char *name)
{
    int rc;
    int64_t id = route_room_member(s, name, &rc);
    if (!id)
        return rc;
    struct presence_room who;
    struct presence_room_ix ix;
    json_t *names = presence_online_names(s->srv->presence, presence_room_of(&who, &ix, s->srv->rooms, id));
    if (!names)
        return http_error(s, 500, "internal", "out of memory");
    return http_json(s, 200, json_pack("{s:o}", "online", names));
}

static int route_room_post(struct session *s)
{
    char name[PROTO_DM_NAME_MAX + 1];
    const char *action;
    if (room_path(s->u.http.path, name, sizeof name, &action) < 0)
        return http_error(s, 404, "not_found", "no such room");
    if (!strcmp(action, "typing"))
        return route_room_typing(s, name);
    enum store_call_kind kind = !strcmp(action, "join") ? STORE_CALL_ROOM_JOIN
                              : !strcmp(action, "leave") ? STORE_CALL_ROOM_LEAVE
                              : !strcmp(action, "topic") ? STORE_CALL_ROOM_TOPIC
                              : !strcmp(action, "read") ? STORE_CALL_ROOM_READ : STORE_CALL_COUNT;
    if (kind == STORE_CALL_COUNT)
        return http_error(s, 404, "not_found", "no such path");
    if (kind == STORE_CALL_ROOM_JOIN && !room_rate_ok(s))
        return 0;
    struct http_call *c = http_call_new();
    if (!c)
        return http_error(s, 500, "internal", "out of memory");
    struct store_args args = { .user_id = s->user_id, .name = name, .now_ms = now_ms() };
    if ((kind == STORE_CALL_ROOM_TOPIC || kind == STORE_CALL_ROOM_READ) && room_body(s, kind, c, &args) < 0) {
        free(c);
        return 0;
    }
    char *payload = kind == STORE_CALL_ROOM_TOPIC ? proto_topic_payload(name, s->user, c->topic)
                  : kind == STORE_CALL_ROOM_READ ? strdup("{}")
                  : proto_member_payload(name, s->user, kind == STORE_CALL_ROOM_JOIN);
    if (!payload) {
        free(c);
        return http_error(s, 500, "internal", "out of memory");
    }
    snprintf(c->room, sizeof c->room, "%s", name);
    c->action = kind;
    c->then = room_changed;
    args.payload = payload;
    args.topic = kind == STORE_CALL_ROOM_TOPIC ? c->topic : NULL;
    int rc = http_room_call(s, c, kind, &args);
    free(payload);
    return rc;
}

static int room_page(struct session *s, struct http_call *c, const struct store_reply *rep)
{
    (void)c;
    if (rep->rc != STORE_OK)
        return room_failed(s, rep, "could not read the room");
    json_t *arr = json_array();
    for (int i = 0; arr && i < rep->n; i++) {
        const struct store_event *ev = &rep->events[i];
        json_array_append_new(arr, proto_event_new(ev->id, ev->type, ev->ts_ms, ev->payload));
    }
    return http_json(s, 200, arr ? json_pack("{s:o,s:b}", "events", arr, "more", rep->more) : NULL);
}

/* before=ID&limit=N, strictly (no other keys, no repeats, digits only,
 * limit 1..200): 0, or -1 with err. */
static int room_page_query(const char *query, int64_t *before, int *limit, const char **err)
{
    int seen_before = 0, seen_limit = 0;
    *before = 0;
    *limit = PROTO_HISTORY_DEFAULT;
    for (const char *p = query; p && *p;) {
        size_t len = strcspn(p, "&");
        const char *eq = memchr(p, '=', len);
        const char *v = eq ? eq + 1 : NULL;
        size_t klen = eq ? (size_t)(eq - p) : 0, vlen = eq ? len - klen - 1 : 0;
        int64_t n = 0;
        if (!eq || vlen < 1 || vlen > 18 || strspn(v, "0123456789") < vlen)
            return *err = "before and limit must be non-negative integers", -1;
        for (size_t i = 0; i < vlen; i++)
            n = n * 10 + (v[i] - '0');
        if (klen == 6 && !memcmp(p, "before", 6) && !seen_before++)
            *before = n;
        else if (klen == 5 && !memcmp(p, "limit", 5) && !seen_limit++ && n >= 1 && n <= PROTO_HISTORY_MAX)
            *limit = (int)n;
        else
            return *err = "only before and limit (1-200), once each", -1;
        p += len;
        if (*p == '&' && !*++p)
            return *err = "empty query parameter", -1;
    }
    return 0;
}

static int route_room_get(struct session *s)
{
    char name[PROTO_DM_NAME_MAX + 1];
    const char *action, *err;
    if (room_path(s->u.http.path, name, sizeof name, &action) < 0)
        return http_error(s, 404, "not_found", "no such room");
    if (!strcmp(action, "presence"))
        return route_room_presence(s, name);
    if (strcmp(action, "messages"))
        return http_error(s, 404, "not_found", "no such path");
    int64_t before;
    int limit;
    if (room_page_query(s->u.http.query, &before, &limit, &err) < 0)
        return http_error(s, 400, "bad_query", err);
    struct http_call *c = http_call_new();
    if (!c)
        return http_error(s, 500, "internal", "out of memory");
    c->then = room_page;
    struct store_args args = { .user_id = s->user_id, .name = name, .before = before, .limit = limit };
    return http_store_call(s, c, STORE_CALL_ROOM_MESSAGES, &args);
}

/* ---- messages ---- */

/* The DM's room exists now (or was there): the message goes. */
static int dm_opened(struct session *s, struct http_call *c, const struct store_reply *rep)
{
    const char *err, *body = NULL, *cmid = NULL;
    if (rep->rc == STORE_CONSTRAINT && rep->room_err == STORE_ROOM_NOT_FOUND)
        return http_error(s, 404, "not_found", "no such user");
    if (rep->rc != STORE_OK)
        return room_failed(s, rep, "could not open the conversation");
    json_t *root = proto_parse_object(s->u.http.body, s->u.http.body_len, &err);
    proto_get_string(root, "body", &body);
    proto_get_string(root, "client_msg_id", &cmid);
    int rc = root && body && feed_post_chat(s->srv, s, rep->room_id, c->room, body, cmid) == 0
        ? 0 : http_error(s, 500, "internal", "could not store the message");
    json_decref(root);
    return rc;
}

/* Sends to room (a name or a DM's) or, with to, to that user's DM: after
 * the checks (404 no such room or none of one's DMs, 403 not a member),
 * into the group commit; a first DM opens its room first. */
static int post_to(struct session *s, const char *room, const char *to, const char *body,
                   const char *cmid)
{
    char dm[PROTO_DM_NAME_MAX + 1];
    struct http_state *h = &s->u.http;
    if (to) {
        if (proto_dm_name(s->user, to, dm, sizeof dm) < 0)
            return http_error(s, 400, "invalid", "to must be another user's name");
        room = dm;
    }
    if (to && !(h->room = strdup(room)))
        return http_error(s, 500, "internal", "out of memory");
    int member = 0;
    int64_t room_id = s->srv->rooms ? rooms_lookup(s->srv->rooms, room, s->user_id, &member) : 1;
    if (room_id && !member && !to)
        return http_error(s, 403, "not_member", "join the room first");
    if (!room_id && !to)
        return http_error(s, 404, "not_found", "no such room");
    if (room_id && member)
        return feed_post_chat(s->srv, s, room_id, room, body, cmid) < 0
            ? http_error(s, 500, "internal", "could not store the message") : 0;
    struct http_call *c = http_call_new();
    char *pa = proto_member_payload(room, s->user, 1), *pb = proto_member_payload(room, to, 1);
    int rc;
    if (!c || !pa || !pb) {
        free(c);
        rc = http_error(s, 500, "internal", "out of memory");
    } else {
        snprintf(c->room, sizeof c->room, "%s", room);
        c->then = dm_opened;
        struct store_args args = { .user_id = s->user_id, .name = room, .to = to, .now_ms = now_ms(),
                                   .payload = pa, .payload2 = pb };
        rc = http_room_call(s, c, STORE_CALL_DM_OPEN, &args);
    }
    free(pa);
    free(pb);
    return rc;
}

static int route_messages(struct session *s)
{
    const char *err, *room = NULL, *to = NULL, *body = NULL, *cmid = NULL;
    int retry;
    if (!limiter_take(s->srv->limiter, LIMIT_MESSAGES, s->user, now_ms(), &retry))
        return http_limited(s, 429, "rate_limited", "too many messages; slow down", retry);
    json_t *root = proto_parse_object(s->u.http.body, s->u.http.body_len, &err);
    if (!root)
        return http_error(s, 400, "invalid", err);
    int rc;
    http_store_wait(s);           /* the answer comes after the commit */
    if (proto_get_string(root, "room", &room) < 0 ||
        (room && !proto_name_valid(room) && !proto_dm_name_valid(room)))
        rc = http_error(s, 400, "invalid", "room must be 1-32 of a-z 0-9 _ -");
    else if (proto_get_string(root, "to", &to) < 0 || (to && !proto_name_valid(to)))
        rc = http_error(s, 400, "invalid", "to must be a user name");
    else if (room && to)
        rc = http_error(s, 400, "invalid", "give room or to, not both");
    else if (proto_get_string(root, "body", &body) < 0 || !proto_body_valid(body))
        rc = http_error(s, 400, "invalid", "body must be 1-4096 bytes of UTF-8");
    else if (proto_get_string(root, "client_msg_id", &cmid) < 0 ||
             (cmid && !proto_client_msg_id_valid(cmid)))
        rc = http_error(s, 400, "invalid", "client_msg_id must be 1-64 printable ASCII characters");
    else
        rc = post_to(s, room || to ? room : PROTO_DEFAULT_ROOM, to, body, cmid);
    json_decref(root);
    return rc;
}

static void http_on_posted(struct session *s, const char *client_msg_id, int rc, int64_t id, int64_t ts)
{
    (void)client_msg_id;          /* the request knows it */
    if (rc == STORE_UNAVAILABLE)
        s->u.http.retry_after_s = 1;
    const char *dm = s->u.http.room;
    int r = rc == STORE_OK && dm
        ? http_json(s, 201, json_pack("{s:I,s:I,s:s}", "id", (json_int_t)id, "ts", (json_int_t)ts, "room", dm))
        : rc == STORE_OK
        ? http_json(s, 201, json_pack("{s:I,s:I}", "id", (json_int_t)id, "ts", (json_int_t)ts))
        : rc == STORE_UNAVAILABLE
        ? http_error(s, 503, "store_unavailable", "the database is unavailable; retry shortly")
        : http_error(s, 500, "internal", "could not store the message");
    if (r < 0)
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
}

/* ---- the bank ---- */

static int account_read(struct session *s, struct http_call *c, const struct store_reply *rep)
{
    (void)c;
    if (rep->rc != STORE_OK)
        return http_store_failed(s, rep->rc, "could not read the account");
    return http_json(s, 200, json_pack("{s:s,s:I}", "user", s->user, "balance_cents",
                                       (json_int_t)rep->cents));
}

static int route_account(struct session *s)
{
    struct http_call *c = http_call_new();
    if (!c)
        return http_error(s, 500, "internal", "out of memory");
    c->then = account_read;
    struct store_args args = { .user_id = s->user_id };
    return http_store_call(s, c, STORE_CALL_ACCOUNT_BALANCE, &args);
}

/* Checks the transfer request's fields; NULL if fine, else the reason. */
static const char *transfer_fields(json_t *root, const char **to, int64_t *amount, const char **key)
{
    json_t *a = json_object_get(root, "amount_cents");
    if (proto_get_string(root, "to", to) < 0 || !*to || !proto_name_valid(*to))
        return "\"to\" must be a user name";
    if (!json_is_integer(a) || json_integer_value(a) < 1 || json_integer_value(a) > MONEY_MAX_CENTS)
        return "\"amount_cents\" must be a whole number of cents from 1 to 100000000";
    if (proto_get_string(root, "idempotency_key", key) < 0 || !*key || !proto_client_msg_id_valid(*key))
        return "\"idempotency_key\" must be 1-64 printable ASCII characters";
    *amount = json_integer_value(a);
    return NULL;
}

static int transfer_answer(struct session *s, enum transfers_rc rc, const struct store_transfer *t)
{
    switch (rc) {
    case TRANSFERS_CREATED:
    case TRANSFERS_REPEATED:  /* the stored first answer, as for the first request */
        return http_json(s, 202, json_pack("{s:I,s:s}", "transfer_id", (json_int_t)t->id,
                                           "status", transfer_state_name(TRANSFER_PENDING)));
    case TRANSFERS_KEY_MISMATCH:
        return http_error(s, 422, "idempotency_key_reused",
                          "this idempotency_key was used for a different transfer");
    case TRANSFERS_NO_RECIPIENT:
        return http_error(s, 404, "not_found", "no such recipient");
    case TRANSFERS_TO_SELF:
        return http_error(s, 400, "invalid", "you cannot send money to yourself");
    case TRANSFERS_UNAVAILABLE:
        s->u.http.retry_after_s = 1;
        return http_error(s, 503, "store_unavailable", "the database is unavailable; retry shortly");
    default:
        return http_error(s, 500, "internal", "could not record the transfer");
    }
}

static void http_transfer_done(void *arg, enum transfers_rc rc, const struct store_transfer *t)
{
    struct http_transfer *tk = arg;
    struct session *s = tk->s;
    free(tk);
    if (!s)
        return;
    s->u.http.transfer = NULL;
    if (transfer_answer(s, rc, t) < 0)
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
}

static int route_transfers(struct session *s)
{
    const char *err, *to = NULL, *key = NULL;
    int64_t amount = 0;
    json_t *root = proto_parse_object(s->u.http.body, s->u.http.body_len, &err);
    if (!root)
        return http_error(s, 400, "invalid", err);
    const char *why = transfer_fields(root, &to, &amount, &key);
    struct http_transfer *tk = why ? NULL : calloc(1, sizeof *tk);
    int rc = 0;                   /* answered by http_transfer_done */
    if (why)
        rc = http_error(s, 400, "invalid", why);
    else if (!tk)
        rc = http_error(s, 500, "internal", "out of memory");
    if (tk) {
        tk->s = s;
        s->u.http.transfer = tk;
        http_store_wait(s);
        transfers_submit(s->srv->transfers, s->user_id, to, amount, key, http_transfer_done, tk);
    }
    json_decref(root);
    return rc;
}

/* Strangers get the same 404 as a missing transfer: nothing leaks. */
static int transfer_read(struct session *s, struct http_call *c, const struct store_reply *rep)
{
    (void)c;
    const struct store_transfer *t = &rep->transfer;
    if (rep->rc != STORE_OK && rep->rc != STORE_NOT_FOUND)
        return http_store_failed(s, rep->rc, "could not read the transfer");
    if (rep->rc == STORE_NOT_FOUND || (t->from_id != s->user_id && t->to_id != s->user_id))
        return http_error(s, 404, "not_found", "no such transfer");
    json_t *o = json_pack("{s:I,s:s,s:s,s:I,s:s,s:I,s:I}", "transfer_id", (json_int_t)t->id,
                          "from", t->from, "to", t->to, "amount_cents", (json_int_t)t->amount_cents,
                          "status", transfer_state_name(t->state), "created_at", (json_int_t)t->created_ms,
                          "updated_at", (json_int_t)t->updated_ms);
    if (o && t->reason[0])
        json_object_set_new(o, "reason", json_string(t->reason));
    return http_json(s, 200, o);
}

static int route_transfer_get(struct session *s)
{
    const char *digits = s->u.http.path + strlen("/api/v1/transfers/");
    char *end;
    long long id = strtoll(digits, &end, 10);
    if (!*digits || *end || digits[0] < '1' || digits[0] > '9' || strlen(digits) > 18)
        return http_error(s, 404, "not_found", "no such transfer");
    struct http_call *c = http_call_new();
    if (!c)
        return http_error(s, 500, "internal", "out of memory");
    c->then = transfer_read;
    struct store_args args = { .id = id };
    return http_store_call(s, c, STORE_CALL_TRANSFER_GET, &args);
}

static void http_logged_out(struct session *s, int rc)
{
    int r;
    if ((rc == AUTH_OK || rc == AUTH_REFUSED) && s->u.http.by_cookie)   /* forget it */
        http_set_cookie(s, NULL, 0);
    if (rc == AUTH_OK)
        r = http_json(s, 200, json_pack("{s:b}", "ok", 1));
    else if (rc == AUTH_REFUSED)
        r = http_error(s, 401, "unauthorized", "this session has already ended");
    else
        r = http_store_failed(s, rc == AUTH_UNAVAILABLE ? STORE_UNAVAILABLE : STORE_ERROR,
                              "could not end the session");
    if (r < 0)
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
}

static int route_logout(struct session *s)
{
    int rc = auth_logout(s->srv, s, http_logged_out);
    if (rc != AUTH_PENDING)
        http_logged_out(s, rc);
    return 0;
}

/* From memory only (never a database round trip): the instance serves, so
 * 200; "store" says "degraded", with a reason, while the database is out of
 * reach or slow (store_io_health), or while this instance's committed
 * sends cannot be read back because another session's appending
 * transaction stays open below them (feed_held_ms). The balancer's store
 * check asks ?store=required: then a degraded store is 404, which HAProxy's
 * disable-on-404 turns into a soft stop (no new requests, no connection
 * cut; deploy/haproxy.cfg.in has the policy). */
#define HEALTH_SLOW_MS 1000
static int route_healthz(struct session *s)
{
    char reason[160];
    int degraded = store_io_health(s->srv->store, HEALTH_SLOW_MS, reason, sizeof reason);
    int64_t held = degraded ? 0 : feed_held_ms(s->srv);
    if (held > HEALTH_SLOW_MS) {
        degraded = 1;
        snprintf(reason, sizeof reason, "committed events unreadable for %lld ms: a transaction"
                 " open elsewhere holds the log's read watermark", (long long)held);
    }
    int required = strcmp(s->u.http.query, "store=required") == 0;
    json_t *body = json_pack("{s:b,s:s,s:i,s:s}", "ok", !(required && degraded), "instance", s->srv->instance,
                             "parked", s->srv->parked, "store", degraded ? "degraded" : "ok");
    if (body && degraded)
        json_object_set_new(body, "reason", json_string(reason));
    return http_json(s, required && degraded ? 404 : 200, body);
}

static int route_ws_plain(struct session *s)
{
    return http_error(s, 400, "upgrade_required", "this path needs a WebSocket upgrade");
}

/* GET /api/v1/stream: the request becomes a Server-Sent Events stream
 * (sse_api.c), or is answered here if it cannot. */
static int route_stream(struct session *s)
{
    const char *code, *msg;
    /* The stream's state takes the request's place in the session's union:
     * the request's own allocation goes first, its query copied out. */
    char query[HTTP_QUERY_SIZE];
    snprintf(query, sizeof query, "%s", s->u.http.query);
    free(s->u.http.target);
    s->u.http.target = NULL;
    s->u.http.path = s->u.http.query = "";
    unsigned status = sse_start(s, query, &code, &msg);
    return status ? http_error(s, status, code, msg) : 0;
}

/* GET /, /app.js...: one of the web client's files (web_files.c), or 304
 * when the browser's copy is current. */
static int http_answer_file(struct session *s, const struct web_file *f)
{
    int fresh = web_file_not_modified(s->wsi, f);
    char *body = malloc(fresh ? 1 : f->len + 1);
    if (!body)
        return http_error(s, 500, "internal", "out of memory");
    if (!fresh)
        memcpy(body, f->data, f->len);
    body[fresh ? 0 : f->len] = '\0';
    s->u.http.file = f;
    return http_respond(s, fresh ? 304 : 200, body);
}

/* ---- routing ---- */

struct route {
    const char *path;
    int method;
    int needs_auth;
    int (*fn)(struct session *s);
    int prefix;             /* path is a prefix: an id follows */
};

static const struct route routes[] = {
    { "/healthz",          M_GET,  0, route_healthz, 0 },
    { "/api/v1/register",  M_POST, 0, route_register, 0 },
    { "/api/v1/login",     M_POST, 0, route_login, 0 },
    { "/api/v1/logout",    M_POST, 1, route_logout, 0 },
    { "/api/v1/events",    M_GET,  1, route_events, 0 },
    { "/api/v1/messages",  M_POST, 1, route_messages, 0 },
    { "/api/v1/account",   M_GET,  1, route_account, 0 },
    { "/api/v1/transfers", M_POST, 1, route_transfers, 0 },
    { "/api/v1/transfers/", M_GET, 1, route_transfer_get, 1 },
    { "/api/v1/rooms",     M_GET,  1, route_rooms_list, 0 },
    { "/api/v1/rooms",     M_POST, 1, route_rooms_create, 0 },
    { "/api/v1/rooms/",    M_POST, 1, route_room_post, 1 },
    { "/api/v1/rooms/",    M_GET,  1, route_room_get, 1 },
    { PROTO_WS_PATH,       M_GET,  0, route_ws_plain, 0 },
    { SSE_PATH,            M_GET,  1, route_stream, 0 },
};

static int http_route(struct session *s)
{
    struct http_state *h = &s->u.http;
    if (h->routed)
        return 0;
    /* Bytes after a body wait in lws' buffer, and lws 4.1 hands them back
     * as another BODY_COMPLETION at every loop turn until the connection
     * is reset for its next request or closed: answer only the first. */
    h->routed = 1;
    int other_method = 0;         /* the path is served, with another method */
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const struct route *r = &routes[i];
        if (r->prefix ? strncmp(r->path, h->path, strlen(r->path)) != 0
                      : strcmp(r->path, h->path) != 0)
            continue;
        if (r->method != h->method) {
            other_method = 1;
            continue;
        }
        return r->needs_auth ? http_authenticate(s, r->fn) : r->fn(s);
    }
    if (other_method)
        return http_error(s, 405, "method_not_allowed", "method not allowed on this path");
    const struct web_file *f = web_file_find(h->path);
    if (f)
        return h->method == M_GET ? http_answer_file(s, f)
                                  : http_error(s, 405, "method_not_allowed", "method not allowed on this path");
    return http_error(s, 404, "not_found", "no such path");
}

/* ---- intake ---- */

/* Decides, from Content-Length, whether to wait for a body. 1 = wait. */
static int http_expect_body(struct session *s)
{
    struct http_state *h = &s->u.http;
    char cl[24];
    if (lws_hdr_total_length(s->wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING)) {
        h->close_after = 1;
        http_error(s, 411, "length_required", "send a Content-Length, not a chunked body");
        return 0;
    }
    if (lws_hdr_copy(s->wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0)
        return 0;
    /* digits only: no sign, padding, list or second copy (lws joins
     * repeated headers with a space) */
    size_t digits = strspn(cl, "0123456789");
    if (!digits || cl[digits] || digits > 18) {
        h->close_after = 1;
        http_error(s, 400, "bad_request", "Content-Length must be one decimal number");
        return 0;
    }
    unsigned long long n = strtoull(cl, NULL, 10);
    if (n > (unsigned long long)s->srv->cfg.max_request_bytes) {
        h->close_after = 1;     /* the body is not read: the connection can't be reused */
        http_error(s, 413, "too_large", "request body too large");
        return 0;
    }
    h->body_expected = (size_t)n;
    if (n > 0)
        http_body_wait(s);
    return n > 0;
}

/* The request line's version: HTTP/1.0 or 1.1, else an error answered
 * (and the connection closed). lws 4.1 treats any other, or none, as 1.0. */
static int http_version_ok(struct session *s)
{
    char v[16];
    int n = lws_hdr_copy(s->wsi, v, sizeof v, WSI_TOKEN_HTTP);
    if (n == 8 && (!strcmp(v, "HTTP/1.0") || !strcmp(v, "HTTP/1.1")))
        return 1;
    s->u.http.close_after = 1;
    if (n == 8 && !strncmp(v, "HTTP/", 5) && v[5] >= '0' && v[5] <= '9' && v[6] == '.' &&
        v[7] >= '0' && v[7] <= '9')
        http_error(s, 505, "http_version_not_supported", "only HTTP/1.0 and HTTP/1.1 are served");
    else
        http_error(s, 400, "bad_request", "the request line must end with HTTP/1.0 or HTTP/1.1");
    return 0;
}

/* lws keeps each query argument as a fragment; join them back with '&'
 * into query (HTTP_QUERY_SIZE bytes). */
static int http_join_query(struct session *s, char *query)
{
    size_t used = 0;
    char frag[HTTP_QUERY_SIZE];
    query[0] = '\0';
    for (int i = 0; lws_hdr_copy_fragment(s->wsi, frag, sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i) >= 0; i++) {
        size_t n = strlen(frag);
        if (strchr(frag, '&'))  /* lws decoded a %26: part of a value, not a separator */
            return -1;
        if (used + n + 2 > HTTP_QUERY_SIZE)
            return -1;
        if (used)
            query[used++] = '&';
        memcpy(query + used, frag, n + 1);
        used += n;
    }
    return 0;
}

/* The request's path and query, kept in one allocation of their own size
 * (lws' header buffer is given back while a poll is parked). 0, 1 if the
 * path is too long, 2 if the query is (or holds an encoded '&'), -1 if out
 * of memory. */
static int http_copy_target(struct session *s, const char *uri)
{
    struct http_state *h = &s->u.http;
    char query[HTTP_QUERY_SIZE];
    size_t plen = strlen(uri);
    if (plen >= HTTP_PATH_SIZE)
        return 1;
    if (http_join_query(s, query) < 0)
        return 2;
    size_t qlen = strlen(query);
    if (!(h->target = malloc(plen + qlen + 2)))
        return -1;
    memcpy(h->target, uri, plen + 1);
    memcpy(h->target + plen + 1, query, qlen + 1);
    h->path = h->target;
    h->query = h->target + plen + 1;
    return 0;
}

static const struct session_ops http_ops = { http_wake, http_on_posted, http_on_ended, http_ephemeral };

int http_on_request(struct session *s, const char *uri)
{
    struct http_state *h = &s->u.http;
    http_reset(s);
    s->ops = &http_ops;
    s->ended = 0;
    s->is_ws = 0;
    s->user_id = 0;
    s->user[0] = '\0';
    h->method = http_method_of(s->wsi);
    if (s->srv->stopping) {
        h->close_after = 1;
        return http_error(s, 503, "shutting_down", "the server is shutting down");
    }
    if (limiter_conn_over(s->srv->limiter, s->wsi)) {
        h->close_after = 1;
        return http_limited(s, 429, "too_many_connections",
                            "too many connections from your address", 5);
    }
    if (!lws_is_ssl(s->wsi) && !http_version_ok(s))
        return 0;
    switch (http_copy_target(s, uri)) {
    case 0:
        break;
    case 1:
        return http_error(s, 404, "not_found", "no such path");
    case 2:
        return http_error(s, 400, "bad_query", "query string too long, or a value holds an encoded '&'");
    default:
        return -1;
    }
    if (h->method == M_POST && (http_expect_body(s) || h->resp))
        return 0;
    return http_route(s);
}

int http_on_body(struct session *s, const void *in, size_t len)
{
    struct http_state *h = &s->u.http;
    /* lws may call with nothing (in NULL) after a bodiless request's
     * headers, while its route still waits on the store */
    if (h->resp || len == 0)
        return 0;
    if (len > h->body_expected - h->body_len) {
        h->close_after = 1;
        return http_error(s, 413, "too_large", "body longer than its Content-Length");
    }
    if (!h->body && !(h->body = malloc(h->body_expected)))
        return -1;
    memcpy(h->body + h->body_len, in, len);
    h->body_len += len;
    return 0;
}

/* The body did not come within --request-timeout-s of its headers (lws
 * restarts its own body timer at every byte, so a byte a second would
 * never end): 408, and the rest of the body is not read. */
static void http_body_late(struct server *srv, struct sweep_link *l)
{
    (void)srv;
    struct session *s = lws_container_of(l, struct session, u.http.body_wait);
    sweep_leave(l);
    if (s->u.http.resp || s->u.http.routed)
        return;
    s->u.http.close_after = 1;
    if (http_error(s, 408, "request_timeout", "the request was not sent in time") < 0)
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
}

static const struct sweep_kind http_body_kind = { .due = http_body_late };

static void http_body_wait(struct session *s)
{
    int64_t timeout_ms = (int64_t)s->srv->cfg.request_timeout_s * 1000;
    sweep_join(sweep_queue(s->srv->sweep, &http_body_kind, timeout_ms), &s->u.http.body_wait,
               sweep_mono_ms());
}

static void http_body_done(struct session *s)
{
    sweep_leave(&s->u.http.body_wait);
}

int http_on_body_done(struct session *s)
{
    http_body_done(s);
    if (s->u.http.resp || s->u.http.routed)
        return 0;
    return http_route(s);
}

/* ---- response writer ---- */

/* The response head into [*p, end), finished with its blank line. */
static int http_head(struct session *s, unsigned char **p, unsigned char *end)
{
    struct http_state *h = &s->u.http;
    if (lws_add_http_common_headers(s->wsi, h->status, h->file ? h->file->type : "application/json",
                                    h->resp_len, p, end))
        return -1;
    if (h->file && web_file_headers(s->wsi, h->file, p, end))
        return -1;
    if (h->set_cookie &&
        lws_add_http_header_by_name(s->wsi, (const unsigned char *)"set-cookie:",
                                    (const unsigned char *)h->set_cookie, (int)strlen(h->set_cookie), p, end))
        return -1;
    if (h->close_after &&
        lws_add_http_header_by_name(s->wsi, (const unsigned char *)"connection:",
                                    (const unsigned char *)"close", 5, p, end))
        return -1;
    if (h->retry_after_s > 0) {
        char v[16];
        int n = snprintf(v, sizeof v, "%d", h->retry_after_s);
        if (lws_add_http_header_by_name(s->wsi, (const unsigned char *)"retry-after:",
                                        (const unsigned char *)v, n, p, end))
            return -1;
    }
    return lws_finalize_http_header(s->wsi, p, end);
}

static int http_write_headers(struct session *s)
{
    unsigned char buf[LWS_PRE + HTTP_HEAD_MAX], *start = buf + LWS_PRE, *p = start;
    if (http_head(s, &p, buf + sizeof buf - 1) < 0 ||
        lws_write(s->wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS) != (int)(p - start))
        return -1;
    s->u.http.headers_sent = 1;
    return 0;
}

/* A small response over plain HTTP/1.1 (every answer but the largest
 * event batches): head and body in one write, so one segment and one
 * WRITEABLE instead of two. Over TLS lws may speak HTTP/2, whose head
 * and body are separate frames: those go the long way. 1 written, 0 not
 * suitable, -1 error. */
static int http_write_whole(struct session *s)
{
    struct http_state *h = &s->u.http;
    unsigned char buf[LWS_PRE + HTTP_HEAD_MAX + HTTP_CHUNK], *start = buf + LWS_PRE, *p = start;
    unsigned char *end = buf + LWS_PRE + HTTP_HEAD_MAX;
    if (lws_is_ssl(s->wsi) || h->resp_len > HTTP_CHUNK)
        return 0;
    if (http_head(s, &p, end - 1) < 0)
        return -1;
    memcpy(p, h->resp, h->resp_len);
    p += h->resp_len;
    /* as headers: lws counts only body writes against the content-length */
    if (lws_write(s->wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS) != (int)(p - start))
        return -1;
    h->headers_sent = 1;
    h->resp_off = h->resp_len;
    return 1;
}

/* The whole response is written: the connection closes or waits for the
 * next request. */
static int http_response_done(struct session *s)
{
    struct lws *wsi = s->wsi;
    int close = s->u.http.close_after, had_body = s->u.http.method == M_POST;
    http_reset(s);
    if (close)                  /* a body left unread: close now */
        return -1;
    if (!lws_http_transaction_completed(wsi))
        return 0;               /* kept alive for the next request */
    /* Bytes after a body are not a request on a connection that closes:
     * close now, or lws would hand them back until the close. */
    if (had_body)
        return -1;
    /* The client asked for a close: done from the next loop turn, once this
     * turn's other answers are out. A fan-out wakes many parked polls at
     * once, and a close costs as much as an answer. Unless lws still holds
     * part of the answer. */
    if (lws_partial_buffered(wsi))
        return -1;
    lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
    return 0;
}

int http_on_writeable(struct session *s)
{
    struct http_state *h = &s->u.http;
    if (!h->resp && h->poll_parked && http_answer_poll(s) < 0)
        return -1;
    if (!h->resp)
        return 0;
    int whole = h->headers_sent ? 0 : http_write_whole(s);
    if (whole < 0)
        return -1;
    if (whole)
        return http_response_done(s);
    if (!h->headers_sent) {
        if (http_write_headers(s) < 0)
            return -1;
        lws_callback_on_writable(s->wsi);
        return 0;
    }
    unsigned char buf[LWS_PRE + HTTP_CHUNK];
    size_t n = h->resp_len - h->resp_off;
    if (n > HTTP_CHUNK)
        n = HTTP_CHUNK;
    int final = h->resp_off + n == h->resp_len;
    memcpy(buf + LWS_PRE, h->resp + h->resp_off, n);
    if (lws_write(s->wsi, buf + LWS_PRE, n, final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)n)
        return -1;
    h->resp_off += n;
    if (!final) {
        lws_callback_on_writable(s->wsi);
        return 0;
    }
    return http_response_done(s);
}

void http_on_closed(struct session *s)
{
    http_reset(s);
}
