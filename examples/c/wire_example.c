/*
 * The pktd paper's example client, in C against libwire: it lists the
 * interfaces the user may capture on, captures COUNT packets with one
 * filter, changes the filter mid-capture and captures COUNT more, injects
 * one UDP frame on the same interface, and prints the session's counters.
 *
 *   cc wire_example.c $(pkg-config --cflags --libs libwire) -o wire_example
 *   ./wire_example [-S SOCKET] [-n NETNS] -i IFACE -c COUNT FILTER1 FILTER2
 *
 * Progress goes to standard error, one line per packet to standard output.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wire.h>

static void print_packet(uint8_t *user, const struct wire_pkthdr *header, const uint8_t *bytes)
{
    const char *phase = (const char *)user;
    unsigned port = header->caplen >= 38 ? (unsigned)(bytes[36] << 8 | bytes[37]) : 0;
    printf("%s: %u bytes (%u captured), %s, udp dst port %u\n", phase, header->len,
           header->caplen, header->direction == WIRE_D_IN ? "in" : "out", port);
    fflush(stdout);
}

/* An Ethernet/IPv4/UDP frame from 10.0.0.2:40000 to 10.0.0.1:7402 (no
 * UDP checksum, which IPv4 allows). */
static size_t udp_frame(uint8_t *frame)
{
    static const uint8_t head[] = {
        0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00,       /* Ethernet */
        0x45, 0, 0, 46, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1, /* IPv4 */
        0x9c, 0x40, 0x1c, 0xea, 0, 26, 0, 0,                               /* UDP */
    };
    memcpy(frame, head, sizeof head);
    memcpy(frame + sizeof head, "libwire says hello", 18);
    uint32_t sum = 0;
    for (int i = 14; i < 34; i += 2)
        sum += (uint32_t)(frame[i] << 8 | frame[i + 1]);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    frame[24] = (uint8_t)(~sum >> 8);
    frame[25] = (uint8_t)~sum;
    return sizeof head + 18;
}

int main(int argc, char **argv)
{
    const char *socket = NULL, *netns = NULL, *interface = NULL;
    int count = 5, option;
    while ((option = getopt(argc, argv, "S:n:i:c:")) != -1) {
        switch (option) {
        case 'S': socket = optarg; break;
        case 'n': netns = optarg; break;
        case 'i': interface = optarg; break;
        case 'c': count = atoi(optarg); break;
        default: return 2;
        }
    }
    if (interface == NULL || argc - optind != 2) {
        fprintf(stderr, "usage: %s [-S SOCKET] [-n NETNS] -i IFACE -c COUNT FILTER1 FILTER2\n", argv[0]);
        return 2;
    }
    char errbuf[WIRE_ERRBUF_SIZE];

    struct wire_if *interfaces;
    if (wire_findalldevs(&interfaces, socket, errbuf) != 0) {
        fprintf(stderr, "wire_findalldevs: %s\n", errbuf);
        return 1;
    }
    for (struct wire_if *i = interfaces; i != NULL; i = i->next)
        fprintf(stderr, "interface %s%s%s%s\n", i->name, i->netns[0] ? " in netns " : "", i->netns,
                (i->flags & WIRE_IF_UP) ? " (up)" : "");
    wire_freealldevs(interfaces);

    struct wire *wire = wire_create(interface, errbuf);
    if (wire == NULL) {
        fprintf(stderr, "wire_create: %s\n", errbuf);
        return 1;
    }
    if ((socket != NULL && wire_set_socket(wire, socket) != 0) ||
        (netns != NULL && wire_set_netns(wire, netns) != 0) ||
        wire_set_direction(wire, WIRE_D_IN) != 0 || wire_set_immediate_mode(wire, 1) != 0 ||
        wire_activate(wire) != 0 || wire_setfilter(wire, argv[optind], 1) != 0) {
        fprintf(stderr, "opening the capture: %s\n", wire_geterr(wire));
        wire_close(wire);
        return 1;
    }
    fprintf(stderr, "listening with \"%s\"\n", argv[optind]);
    if (wire_loop(wire, count, print_packet, (uint8_t *)"first") != 0) {
        fprintf(stderr, "wire_loop: %s\n", wire_geterr(wire));
        wire_close(wire);
        return 1;
    }

    /* A new filter, mid-capture: compiled here, as pcap_compile would,
     * then installed (the daemon validates it again). */
    struct wire_program program;
    if (wire_compile(wire, &program, argv[optind + 1], 1) != 0 ||
        wire_setfilter_program(wire, &program) != 0) {
        fprintf(stderr, "changing the filter: %s\n", wire_geterr(wire));
        wire_close(wire);
        return 1;
    }
    fprintf(stderr, "compiled to %u instructions\n", program.bf_len);
    wire_freecode(&program);
    fprintf(stderr, "filter changed to \"%s\"\n", argv[optind + 1]);
    for (int got = 0; got < count;) {
        const struct wire_pkthdr *header;
        const uint8_t *bytes;
        int rc = wire_next_ex(wire, &header, &bytes);
        if (rc == 1) {
            print_packet((uint8_t *)"second", header, bytes);
            got++;
        } else if (rc < 0) {
            fprintf(stderr, "wire_next_ex: %s\n", wire_geterr(wire));
            wire_close(wire);
            return 1;
        }
    }

    uint8_t frame[64];
    size_t len = udp_frame(frame);
    int sent = wire_inject(wire, frame, len);
    if (sent < 0)
        fprintf(stderr, "wire_inject: %s\n", wire_geterr(wire));
    else
        fprintf(stderr, "injected %d bytes\n", sent);

    struct wire_stat stats;
    if (wire_stats(wire, &stats) != 0) {
        fprintf(stderr, "wire_stats: %s\n", wire_geterr(wire));
        wire_close(wire);
        return 1;
    }
    printf("stats: %llu received, %llu matched, %llu delivered, %llu dropped\n",
           (unsigned long long)stats.received, (unsigned long long)stats.matched,
           (unsigned long long)stats.delivered, (unsigned long long)stats.dropped);
    wire_close(wire);
    return sent < 0;
}
