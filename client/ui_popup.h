/* ui_popup.h — which alert the pop-up shows and what its "(+N more in the
 * alerts pane)" line counts: the alerts that came while a pop-up was up and
 * were replaced before they were ever drawn. An alert the user saw in an
 * earlier pop-up is not "more". Pure bookkeeping, no curses or timers
 * (those are ui.c's); unit-tested in tests/test_ui_model.c. */
#ifndef CHAT_UI_POPUP_H
#define CHAT_UI_POPUP_H

#include <stdint.h>

struct ui_popup {
    int on;                      /* a pop-up is up */
    int drawn;                   /* its current alert has been on screen */
    uint64_t seq;                /* the alert list's `added` when its alert came */
    unsigned unseen;             /* alerts replaced before being drawn */
};

/* A new alert (the alert list's `added` count after it) takes the pop-up. */
void ui_popup_alert(struct ui_popup *p, uint64_t seq);
/* The pop-up has been drawn with its current alert. */
void ui_popup_drawn(struct ui_popup *p);
/* Esc or its time is over. */
void ui_popup_close(struct ui_popup *p);

#endif
