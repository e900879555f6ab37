/* ui_popup.c — see ui_popup.h. */
#include "ui_popup.h"

void ui_popup_alert(struct ui_popup *p, uint64_t seq)
{
    if (!p->on)
        p->unseen = 0;
    else if (!p->drawn)          /* the one it replaces was never seen */
        p->unseen++;
    p->on = 1;
    p->drawn = 0;
    p->seq = seq;
}

void ui_popup_drawn(struct ui_popup *p)
{
    if (p->on)
        p->drawn = 1;
}

void ui_popup_close(struct ui_popup *p)
{
    p->on = 0;
    p->drawn = 0;
    p->unseen = 0;
}
