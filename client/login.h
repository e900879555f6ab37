/* login.h — getting a session token: optional POST /api/v1/register, then
 * POST /api/v1/login, each retried with backoff while the server cannot be
 * reached (with a server list, on the next server each time). Ends in one
 * callback with an exit code (0 = token obtained). */
#ifndef CHAT_LOGIN_H
#define CHAT_LOGIN_H

struct core;
struct http;
struct lws_context;
struct servers;

#define LOGIN_EXIT_OK           0
#define LOGIN_EXIT_ERROR        1   /* e.g. the user exists already */
#define LOGIN_EXIT_DENIED       2   /* wrong user or password */
#define LOGIN_EXIT_UNREACHABLE  3   /* no answer after a few tries */
#define LOGIN_TIMEOUT_S        10   /* default deadline of one try */

struct login_request {
    struct lws_context *ctx;
    struct http *http;
    struct core *core;          /* errors are reported through it */
    const char *prefix;         /* server path prefix (without a server list) */
    struct servers *servers;    /* NULL: http's own address and prefix */
    const char *user;
    const char *password;       /* copied; wiped when the login is freed */
    int do_register;
    int timeout_s;              /* each try's deadline; 0: LOGIN_TIMEOUT_S */
};

/* token is borrowed for the call (NULL unless exit_code is 0). */
typedef void (*login_done_cb)(void *arg, int exit_code, const char *token);

struct login;
struct login *login_start(const struct login_request *req, login_done_cb cb, void *arg);
/* Cancels a request still running; never call it from the callback. */
void login_free(struct login *a);

#endif
