/* app.h — one client run: the lws context and its protocol table, the core,
 * login, the chosen transport (switchable at run time with /transport) and
 * the front end, all in one event loop. */
#ifndef CHAT_APP_H
#define CHAT_APP_H

struct transport_ops;

struct app_config {
    const char *host;
    int port;
    int tls;                    /* https:// server */
    const char *ca_file;        /* trust this CA (PEM) instead of the system store */
    const char *prefix;         /* "" or "/path", no trailing slash */
    const char *user;
    const char *password;       /* wiped by the caller after app_run */
    int do_register;
    const struct transport_ops *transport;
    int interval_ms;
    int wait_s;
    int headless;               /* 1: headless.c, else the terminal UI (ui.c) */
    int quiet;                  /* UI: no bell on alerts */
};

/* Runs until the front end quits; returns the process exit code. */
int app_run(const struct app_config *cfg);

#endif
