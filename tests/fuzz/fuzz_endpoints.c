/* fuzz_endpoints.c — the field extraction of each HTTP endpoint that reads
 * a body: register and login ({"user","password"}) and messages ({"room",
 * "body","client_msg_id"}). The server's steps (server/http_api.c:
 * http_credentials, route_register, route_login, route_messages) are
 * static and tied to lws, so this target repeats them call for call on the
 * shared functions they use, and checks the outcome against an oracle
 * written from PROTOCOL.md. Also checks that what is accepted fits the
 * buffers chatd copies it into (pwhash job: user[33], password[129]).
 *
 * Input: first byte even — the rest is the raw body; odd — the rest is built
 * into an object by fuzz_build_object (see fuzz.h). */
#include "fuzz.h"
#include "protocol.h"

#include <jansson.h>

enum outcome { REFUSED_JSON, REFUSED_FIELDS, REFUSED_RULES, ACCEPTED };
static const char *const outcome_name[] = { "400 (not a JSON object)", "400 (fields)",
                                            "400 (rules)", "accepted" };

/* ---- what chatd does ---- */

static enum outcome server_register(const char *buf, size_t len, const char **u, const char **p)
{
    const char *err = NULL, *user = NULL, *pw = NULL;
    json_t *root = proto_parse_object(buf, len, &err);
    if (!root)
        return REFUSED_JSON;
    enum outcome o;
    if (proto_get_string(root, "user", &user) < 0 || proto_get_string(root, "password", &pw) < 0 ||
        !user || !pw)
        o = REFUSED_FIELDS;
    else if (!proto_name_valid(user) || !proto_password_valid(pw))
        o = REFUSED_RULES;
    else
        o = ACCEPTED;
    if (o == ACCEPTED) {
        /* copied out as chatd does (snprintf into the pwhash job) */
        static char juser[PROTO_USER_MAX + 1], jpw[PROTO_PASSWORD_MAX + 1];
        int nu = snprintf(juser, sizeof juser, "%s", user);
        int np = snprintf(jpw, sizeof jpw, "%s", pw);
        FUZZ_CHECK(nu >= 0 && (size_t)nu < sizeof juser, "accepted user of %d bytes truncated", nu);
        FUZZ_CHECK(np >= 0 && (size_t)np < sizeof jpw, "accepted password of %d bytes truncated", np);
        *u = juser;
        *p = jpw;
    }
    json_decref(root);
    return o;
}

static enum outcome server_message(const char *buf, size_t len, char *room_out, char *body_out,
                                   char *cmid_out)
{
    const char *err = NULL, *room = PROTO_DEFAULT_ROOM, *body = NULL, *cmid = NULL;
    json_t *root = proto_parse_object(buf, len, &err);
    if (!root)
        return REFUSED_JSON;
    enum outcome o;
    if (proto_get_string(root, "room", &room) < 0 || !proto_name_valid(room))
        o = REFUSED_RULES;
    else if (proto_get_string(root, "body", &body) < 0 || !proto_body_valid(body))
        o = REFUSED_RULES;
    else if (proto_get_string(root, "client_msg_id", &cmid) < 0 ||
             (cmid && !proto_client_msg_id_valid(cmid)))
        o = REFUSED_RULES;
    else
        o = ACCEPTED;
    if (o == ACCEPTED) {
        snprintf(room_out, 64, "%s", room);
        snprintf(body_out, 8192, "%s", body);
        snprintf(cmid_out, 128, "%s", cmid ? cmid : "");
    }
    json_decref(root);
    return o;
}

/* ---- what PROTOCOL.md says ---- */

/* A member that must be a string if present: 1 string, 0 absent or null, -1 other. */
static int str_member(const json_t *root, const char *k, const char **s, size_t *n)
{
    json_t *v = json_object_get(root, k);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return -1;
    *s = json_string_value(v);
    *n = json_string_length(v);
    return 1;
}

static enum outcome oracle_register(const json_t *root)
{
    const char *u = NULL, *p = NULL;
    size_t un = 0, pn = 0;
    if (!root)
        return REFUSED_JSON;
    if (str_member(root, "user", &u, &un) != 1 || str_member(root, "password", &p, &pn) != 1)
        return REFUSED_FIELDS;
    return oracle_name(u, un) && oracle_password(p, pn) ? ACCEPTED : REFUSED_RULES;
}

static enum outcome oracle_message(const json_t *root)
{
    const char *room = "general", *body = NULL, *cmid = NULL;
    size_t rn = 7, bn = 0, cn = 0;
    if (!root)
        return REFUSED_JSON;
    int r = str_member(root, "room", &room, &rn);
    int b = str_member(root, "body", &body, &bn);
    int c = str_member(root, "client_msg_id", &cmid, &cn);
    if (r < 0 || !oracle_name(room, rn))
        return REFUSED_RULES;
    if (b != 1 || !oracle_body(body, bn))
        return REFUSED_RULES;
    if (c < 0 || (c == 1 && !oracle_cmid(cmid, cn)))
        return REFUSED_RULES;
    return ACCEPTED;
}

/* The oracle's own idea of "one JSON object": at most 64 KiB, non-empty. */
static json_t *oracle_object(const char *buf, size_t len)
{
    if (len == 0 || len > PROTO_MAX_REQUEST_BYTES)
        return NULL;
    json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static const char *const keys[8] = { "user", "password", "room", "body", "client_msg_id",
                                     "extra", "", "User" };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_input(data, size);
    if (size == 0)
        return 0;
    struct fuzz_text t = { 0 };
    if (data[0] & 1)
        fuzz_build_object(data + 1, size - 1, keys, &t);
    else
        ft_add(&t, data + 1, size - 1);
    const char *buf = t.p ? t.p : "";
    size_t len = t.len;

    json_t *truth = oracle_object(buf, len);
    const char *u = NULL, *p = NULL;
    enum outcome got = server_register(buf, len, &u, &p), want = oracle_register(truth);
    FUZZ_CHECK(got == want, "register/login body %.300s: expected %s, got %s", buf,
               outcome_name[want], outcome_name[got]);
    if (got == ACCEPTED) {
        FUZZ_CHECK(strcmp(u, json_string_value(json_object_get(truth, "user"))) == 0 &&
                   strcmp(p, json_string_value(json_object_get(truth, "password"))) == 0,
                   "register/login: extracted fields differ from the body");
    }

    static char room[64], body[8192], cmid[128];
    got = server_message(buf, len, room, body, cmid);
    want = oracle_message(truth);
    FUZZ_CHECK(got == want, "message body %.300s: expected %s, got %s", buf, outcome_name[want],
               outcome_name[got]);
    if (got == ACCEPTED) {
        json_t *jb = json_object_get(truth, "body");
        FUZZ_CHECK(strcmp(body, json_string_value(jb)) == 0, "message: extracted body differs");
        json_t *jr = json_object_get(truth, "room");
        FUZZ_CHECK(strcmp(room, json_is_string(jr) ? json_string_value(jr) : "general") == 0,
                   "message: extracted room \"%s\" differs", room);
    }
    json_decref(truth);
    free(t.p);
    return 0;
}
