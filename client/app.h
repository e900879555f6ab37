/* app.h — one client run: the lws context and its protocol table, the core,
 * login, the chosen transport (switchable at run time with /transport, or
 * by itself in auto mode), the server list it fails over along, and the
 * front end, all in one event loop. */
#ifndef CHAT_APP_H
#define CHAT_APP_H

struct frontend_ops;
struct transport_ops;
struct servers;

struct app_config {
    struct servers *servers;    /* --server URLs; outlives app_run */
    const char *ca_file;        /* trust this CA (PEM) instead of the system store */
    const char *user;
    const char *password;       /* wiped by the caller after app_run */
    int do_register;
    const struct transport_ops *transport;  /* the first one */
    int auto_transport;         /* --transport auto: websocket, else long-poll */
    int ws_retry_s;             /* auto: try websocket again after this long */
    int interval_ms;
    int wait_s;
    int timeout_s;              /* deadline of login, send, bank, short-poll requests */
    const struct frontend_ops *frontend;    /* frontend_headless or frontend_ui */
    int quiet;                  /* UI: no bell on alerts */
};

/* Runs until the user quits (or the client gives up, or a signal);
 * returns the process exit code. */
int app_run(const struct app_config *cfg);

#endif
