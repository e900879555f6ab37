/* tcpinfo.c — TCP payload bytes and segments of one socket, from TCP_INFO
 * (kernel counters: exactly what crossed the socket, HTTP and WebSocket
 * headers included, TCP/IP headers excluded). Kept apart because
 * <linux/tcp.h> does not mix with <netinet/tcp.h>. */
#include "bench.h"

#include <linux/tcp.h>
#include <string.h>
#include <sys/socket.h>

#ifndef SOL_TCP
#define SOL_TCP 6
#endif

int tcpinfo_read(int fd, struct tcp_counts *out)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (fd < 0 || getsockopt(fd, SOL_TCP, TCP_INFO, &ti, &len) < 0)
        return -1;
    /* bytes_sent (4.19+) counts what was put on the wire, retransmissions
     * included; bytes_acked is the fallback on older kernels. */
    out->bytes_out = ti.tcpi_bytes_sent ? ti.tcpi_bytes_sent : ti.tcpi_bytes_acked;
    out->bytes_in = ti.tcpi_bytes_received;
    out->segs_in = ti.tcpi_segs_in;
    out->segs_out = ti.tcpi_segs_out;
    return 0;
}
