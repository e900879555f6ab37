/* login.c — register and login. A step that gets no answer, a 429 or a 5xx
 * (each try has a deadline: LOGIN_TIMEOUT_S or the caller's --timeout-s) is
 * retried with backoff, AUTH_TRIES times or twice per server if there are
 * more, before we call the server unreachable (exit 3); http.c moves the
 * server list on after a failed server, so each retry may go to the next
 * one. The state is shown from the start (connecting) and every failed try
 * is reported with the delay before the next (reconnecting), so a silent
 * server never makes a silent client. A refused certificate ends at once
 * with a single server. 401/400 on login mean wrong credentials (exit 2),
 * any other refusal is exit 1; 409 on register means the name is taken
 * (exit 1) unless an earlier try of ours may have taken it and lost the
 * answer. */
#include "login.h"
#include "backoff.h"
#include "core.h"
#include "http.h"
#include "protocol.h"
#include "servers.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_TRIES     5

enum login_step { STEP_REGISTER, STEP_LOGIN };

struct login {
    struct login_request req;
    char user[PROTO_USER_MAX + 1];
    char password[PROTO_PASSWORD_MAX + 1];
    char prefix[256];
    enum login_step step;
    int attempts;                /* of the current step */
    int lost_answer;             /* a register try got no answer */
    uint16_t tries;
    struct http_req *http_req;
    lws_sorted_usec_list_t sul;
    login_done_cb cb;
    void *arg;
};

static void login_issue(struct login *a);

static void login_end(struct login *a, int code, const char *token)
{
    a->cb(a->arg, code, token);
}

static void login_tick(lws_sorted_usec_list_t *sul)
{
    login_issue(lws_container_of(sul, struct login, sul));
}

static int login_max_attempts(const struct login *a)
{
    int per_server = a->req.servers ? 2 * (int)servers_count(a->req.servers) : 0;
    return per_server > AUTH_TRIES ? per_server : AUTH_TRIES;
}

/* No usable answer: say so, show when the next try is, or give up. */
static void login_retry(struct login *a, const char *why)
{
    if (++a->attempts >= login_max_attempts(a)) {
        core_error(a->req.core, "server unreachable: %s", why);
        login_end(a, LOGIN_EXIT_UNREACHABLE, NULL);
        return;
    }
    unsigned ms = backoff_next(a->req.ctx, &a->tries);
    core_error(a->req.core, "%s failed (try %d of %d): %s",
               a->step == STEP_REGISTER ? "registration" : "login",
               a->attempts, login_max_attempts(a), why);
    core_set_state(a->req.core, CORE_RECONNECTING, ms);
    lws_sul_schedule(a->req.ctx, 0, &a->sul, login_tick, (lws_usec_t)ms * 1000);
}

static void register_answer(struct login *a, const struct http_result *r)
{
    char msg[160];
    if (r->status == 201 || (r->status == 409 && a->lost_answer)) {
        a->step = STEP_LOGIN;
        a->attempts = 0;
        a->tries = 0;
        login_issue(a);
    } else if (r->status == 409) {
        core_error(a->req.core, "user exists");
        login_end(a, LOGIN_EXIT_ERROR, NULL);
    } else {
        core_error(a->req.core, "registration refused: %s", http_error_text(r, msg, sizeof msg));
        login_end(a, LOGIN_EXIT_ERROR, NULL);
    }
}

static void login_answer(struct login *a, const struct http_result *r)
{
    char msg[160];
    const char *token = NULL;
    json_t *root;
    if (r->status == 401 || r->status == 400) {
        core_error(a->req.core, "authentication failed: %s",
                   r->status == 401 ? "wrong user name or password"
                                    : http_error_text(r, msg, sizeof msg));
        login_end(a, LOGIN_EXIT_DENIED, NULL);
        return;
    }
    if (r->status != 200) {
        core_error(a->req.core, "login failed: %s", http_error_text(r, msg, sizeof msg));
        login_end(a, LOGIN_EXIT_ERROR, NULL);
        return;
    }
    root = json_loadb(r->body, r->len, 0, NULL);
    if (proto_get_string(root, "token", &token) < 0 || !token || !*token ||
        strlen(token) > 256 || strpbrk(token, " \r\n")) {
        core_error(a->req.core, "login answer has no usable token");
        login_end(a, LOGIN_EXIT_ERROR, NULL);
    } else {
        login_end(a, LOGIN_EXIT_OK, token);
    }
    json_decref(root);
}

static void login_step_answer(void *arg, const struct http_result *r)
{
    struct login *a = arg;
    char why[200], msg[160];
    a->http_req = NULL;
    if (r->tls_failed && (!a->req.servers || servers_count(a->req.servers) < 2)) {
        core_error(a->req.core, "%s", r->error);
        login_end(a, LOGIN_EXIT_ERROR, NULL);
    } else if (r->tls_failed) {
        core_error(a->req.core, "%s", r->error);    /* and try the next server */
        login_retry(a, r->error);
    } else if (r->error || r->status == 429 || r->status >= 500) {
        snprintf(why, sizeof why, "%s", r->error ? r->error : http_error_text(r, msg, sizeof msg));
        if (a->step == STEP_REGISTER && r->error)
            a->lost_answer = 1;
        login_retry(a, why);
    } else if (a->step == STEP_REGISTER) {
        register_answer(a, r);
    } else {
        login_answer(a, r);
    }
}

static void login_issue(struct login *a)
{
    char path[300];
    json_t *o = json_pack("{s:s,s:s}", "user", a->user, "password", a->password);
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    snprintf(path, sizeof path, "%s/api/v1/%s", servers_prefix(a->req.servers, a->prefix),
             a->step == STEP_REGISTER ? "register" : "login");
    struct http_call call = {
        .method = "POST", .path = path, .body = body,
        .timeout_s = a->req.timeout_s > 0 ? a->req.timeout_s : LOGIN_TIMEOUT_S,
        .servers = a->req.servers,
    };
    a->http_req = body ? http_request(a->req.http, &call, login_step_answer, a) : NULL;
    if (body) {
        sodium_memzero(body, strlen(body));
        free(body);
    }
    if (!a->http_req)
        login_retry(a, "out of memory");
}

struct login *login_start(const struct login_request *req, login_done_cb cb, void *arg)
{
    struct login *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->req = *req;
    a->cb = cb;
    a->arg = arg;
    snprintf(a->user, sizeof a->user, "%s", req->user);
    snprintf(a->password, sizeof a->password, "%s", req->password);
    snprintf(a->prefix, sizeof a->prefix, "%s", req->prefix);
    a->req.password = NULL;
    a->step = req->do_register ? STEP_REGISTER : STEP_LOGIN;
    core_set_state(req->core, CORE_CONNECTING, 0);
    /* start from the loop so the callback never runs inside login_start */
    lws_sul_schedule(req->ctx, 0, &a->sul, login_tick, 1);
    return a;
}

void login_free(struct login *a)
{
    if (!a)
        return;
    lws_sul_cancel(&a->sul);
    http_cancel(a->http_req);
    sodium_memzero(a->password, sizeof a->password);
    free(a);
}
