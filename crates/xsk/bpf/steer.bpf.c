// SPDX-License-Identifier: (MIT OR GPL-2.0)
//
// detour's XDP steering program: sends the director's traffic to its AF_XDP sockets and
// everything else to the kernel.
//
// Built by crates/xsk/build.rs with `clang -O2 -g -target bpf` and loaded by
// crates/xsk/src/steer.rs (aya). The maps are filled from userspace:
//
//   xsks      XSKMAP     rx queue index -> AF_XDP socket
//   owned     HASH       IPv4 address (network order) -> 1: the VIPs and DIPs
//   reals     HASH       {addr, port, pad} (network order) -> 1: the real servers
//   real_ips  HASH       IPv4 address -> 1: the real servers' addresses (for their ICMP errors)
//   kernel    HASH       IPv4 address -> 1: the director kernel's own addresses
//   owned6    HASH       IPv6 address -> 1: the IPv6 VIPs and DIPs
//   reals6    HASH       {addr[16], port, pad} (network order) -> 1: the IPv6 real servers
//   real_ips6 HASH       IPv6 address -> 1: the IPv6 real servers' addresses
//   kernel6   HASH       IPv6 address -> 1: the director kernel's own IPv6 addresses
//   side      ARRAY      [0] -> 1 on the client-side interface of a two-armed director:
//                        frames from reals are not the director's there (0: server side,
//                        or the one interface of a one-armed director)
//   stats     PERCPU_ARRAY of __u64 counters, indexed by the ST_* constants below
//
// Decision, per frame:
//   ARP request whose target IP is owned                         -> socket
//   IPv4 to an owned address (any protocol)                      -> socket
//   IPv4 to a kernel address                                     -> kernel
//   TCP/UDP from a real's (addr, port) (first fragment or whole) -> socket (kernel if `side`)
//   ICMP from a real's address                                   -> socket (kernel if `side`)
//   IPv6 to an owned address (any next header)                   -> socket
//   IPv6 to a kernel address                                     -> kernel
//   ICMPv6 neighbour solicitation whose target is owned           -> socket
//   IPv6 TCP/UDP (no extension headers) from a real's [addr]:port -> socket (kernel if `side`)
//   ICMPv6 error (type < 128) from a real's address               -> socket (kernel if `side`)
//   anything else (other ARP, other ICMPv6 such as router adverts
//   and the reals' own neighbour discovery, 802.1Q-tagged, ...)  -> kernel
//
// "-> socket" is bpf_redirect_map(&xsks, rx_queue_index, XDP_PASS): when no socket sits at
// that queue the frame goes to the kernel instead (counted as ST_NO_SOCKET).
//
// 802.1Q: tagged frames are passed to the kernel, not parsed: the userspace data path handles
// untagged Ethernet only. (With VLANs, attach the program to the VLAN device, or run the
// director on untagged interfaces.)

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

// Counter indices; keep in sync with `steer.rs`.
enum {
    ST_REDIRECTED = 0,     // steered to the sockets (sum of the steering reasons below)
    ST_PASSED = 1,         // passed to the kernel (sum of the passing reasons below)
    ST_NO_SOCKET = 2,      // steered, but no socket at that queue: the kernel got it
    ST_ARP_OWNED = 3,      // steer: ARP request for an owned address
    ST_TO_OWNED = 4,       // steer: IPv4 to an owned address
    ST_FROM_REAL = 5,      // steer: TCP/UDP from a real's addr:port
    ST_ICMP_FROM_REAL = 6, // steer: ICMP from a real's address
    ST_TO_KERNEL = 7,      // pass: IPv4 to a kernel address
    ST_ARP_OTHER = 8,      // pass: other ARP
    ST_NOT_IPV4 = 9,       // pass: ethertypes other than ARP, IPv4 and IPv6
    ST_VLAN = 10,          // pass: 802.1Q / 802.1ad tagged
    ST_OTHER_IPV4 = 11,    // pass: IPv4 not the director's
    ST_MALFORMED = 12,     // pass: truncated or malformed headers
    ST_REAL_CLIENT_SIDE = 13, // pass: from a real, but on the client-side interface
    ST_NS_OWNED = 14,      // steer: ICMPv6 neighbour solicitation for an owned address
    ST_OTHER_IPV6 = 15,    // pass: IPv6 not the director's
    ST_COUNT = 16,
};

struct {
    __uint(type, BPF_MAP_TYPE_XSKMAP);
    __uint(max_entries, 64);
    __type(key, __u32);
    __type(value, __u32);
} xsks SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, __u32);
    __type(value, __u8);
} owned SEC(".maps");

struct real_key {
    __u32 addr; // network order
    __u16 port; // network order
    __u16 pad;  // always 0
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, struct real_key);
    __type(value, __u8);
} reals SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, __u32);
    __type(value, __u8);
} real_ips SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 256);
    __type(key, __u32);
    __type(value, __u8);
} kernel SEC(".maps");

struct addr6 {
    __u8 b[16];
};

struct real_key6 {
    __u8 addr[16];
    __u16 port; // network order
    __u16 pad;  // always 0
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, struct addr6);
    __type(value, __u8);
} owned6 SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, struct real_key6);
    __type(value, __u8);
} reals6 SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, struct addr6);
    __type(value, __u8);
} real_ips6 SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 256);
    __type(key, struct addr6);
    __type(value, __u8);
} kernel6 SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} side SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, ST_COUNT);
    __type(key, __u32);
    __type(value, __u64);
} stats SEC(".maps");

// Ethernet/IPv4 ARP (RFC 826 with htype 1, ptype 0x0800).
struct arp_ipv4 {
    __be16 htype;
    __be16 ptype;
    __u8 hlen;
    __u8 plen;
    __be16 op;
    __u8 sha[6];
    __u8 spa[4];
    __u8 tha[6];
    __u8 tpa[4];
};

#define ARP_REQUEST 1
#define ICMPV6_NEIGHBOR_SOLICIT 135
#define IP_FRAG_OFFSET 0x1fff

static __always_inline void count(__u32 idx)
{
    __u64 *v = bpf_map_lookup_elem(&stats, &idx);
    if (v)
        *v += 1; // per-CPU slot: no atomic needed
}

static __always_inline int to_socket(struct xdp_md *ctx, __u32 reason)
{
    count(ST_REDIRECTED);
    count(reason);
    long rc = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
    if (rc != XDP_REDIRECT)
        count(ST_NO_SOCKET);
    return (int)rc;
}

static __always_inline int to_kernel(__u32 reason)
{
    count(ST_PASSED);
    count(reason);
    return XDP_PASS;
}

// A frame from a real: the sockets' on the server side only (replies of reals come from
// there; on the client side such a source is spoofed or looped).
static __always_inline int from_real(struct xdp_md *ctx, __u32 reason)
{
    __u32 zero = 0;
    __u32 *client_side = bpf_map_lookup_elem(&side, &zero);
    if (client_side && *client_side)
        return to_kernel(ST_REAL_CLIENT_SIDE);
    return to_socket(ctx, reason);
}

// IPv6: the director's addresses, solicitations for them, and the reals' replies and errors.
// The upper layer is read only right after the fixed header: a real's packet with extension
// headers is the kernel's (the data path would translate it, but reals do not send them).
static __always_inline int steer_ipv6(struct xdp_md *ctx, void *l3, void *data_end)
{
    struct ipv6hdr *ip6 = l3;
    if ((void *)(ip6 + 1) > data_end)
        return to_kernel(ST_MALFORMED);
    if (ip6->version != 6)
        return to_kernel(ST_MALFORMED);
    struct addr6 daddr;
    __builtin_memcpy(&daddr, &ip6->daddr, sizeof(daddr));
    if (bpf_map_lookup_elem(&owned6, &daddr))
        return to_socket(ctx, ST_TO_OWNED);
    // The kernel's own traffic (health checks of IPv6 reals, their answers) stays its own.
    if (bpf_map_lookup_elem(&kernel6, &daddr))
        return to_kernel(ST_TO_KERNEL);
    __u8 *l4 = (__u8 *)(ip6 + 1);
    if (ip6->nexthdr == IPPROTO_ICMPV6) {
        if ((void *)(l4 + 8) > data_end)
            return to_kernel(ST_MALFORMED);
        // A solicitation goes to the target's solicited-node group (ff02::1:ffXX:XXXX).
        if (l4[0] == ICMPV6_NEIGHBOR_SOLICIT && daddr.b[0] == 0xff) {
            struct addr6 target;
            if ((void *)(l4 + 8 + sizeof(target)) > data_end)
                return to_kernel(ST_MALFORMED);
            __builtin_memcpy(&target, l4 + 8, sizeof(target));
            if (bpf_map_lookup_elem(&owned6, &target))
                return to_socket(ctx, ST_NS_OWNED);
            return to_kernel(ST_OTHER_IPV6);
        }
        struct addr6 saddr;
        __builtin_memcpy(&saddr, &ip6->saddr, sizeof(saddr));
        if (l4[0] < 128 && bpf_map_lookup_elem(&real_ips6, &saddr))
            return from_real(ctx, ST_ICMP_FROM_REAL);
        return to_kernel(ST_OTHER_IPV6);
    }
    if (ip6->nexthdr == IPPROTO_TCP || ip6->nexthdr == IPPROTO_UDP) {
        if ((void *)(l4 + 4) > data_end)
            return to_kernel(ST_MALFORMED);
        struct real_key6 key = {.port = 0, .pad = 0};
        __builtin_memcpy(key.addr, &ip6->saddr, sizeof(key.addr));
        __builtin_memcpy(&key.port, l4, sizeof(key.port)); // source port
        if (bpf_map_lookup_elem(&reals6, &key))
            return from_real(ctx, ST_FROM_REAL);
    }
    return to_kernel(ST_OTHER_IPV6);
}

SEC("xdp")
int detour_steer(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;

    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return to_kernel(ST_MALFORMED);
    __be16 proto = eth->h_proto;

    if (proto == bpf_htons(ETH_P_ARP)) {
        struct arp_ipv4 *arp = (void *)(eth + 1);
        if ((void *)(arp + 1) > data_end)
            return to_kernel(ST_MALFORMED);
        if (arp->htype == bpf_htons(1) && arp->ptype == bpf_htons(ETH_P_IP) &&
            arp->hlen == 6 && arp->plen == 4 && arp->op == bpf_htons(ARP_REQUEST)) {
            __u32 target;
            __builtin_memcpy(&target, arp->tpa, sizeof(target));
            if (bpf_map_lookup_elem(&owned, &target))
                return to_socket(ctx, ST_ARP_OWNED);
        }
        return to_kernel(ST_ARP_OTHER);
    }
    if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD))
        return to_kernel(ST_VLAN);
    if (proto == bpf_htons(ETH_P_IPV6))
        return steer_ipv6(ctx, (void *)(eth + 1), data_end);
    if (proto != bpf_htons(ETH_P_IP))
        return to_kernel(ST_NOT_IPV4);

    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return to_kernel(ST_MALFORMED);
    if (ip->version != 4 || ip->ihl < 5)
        return to_kernel(ST_MALFORMED);

    __u32 daddr = ip->daddr;
    if (bpf_map_lookup_elem(&owned, &daddr))
        return to_socket(ctx, ST_TO_OWNED);
    if (bpf_map_lookup_elem(&kernel, &daddr))
        return to_kernel(ST_TO_KERNEL);

    __u32 saddr = ip->saddr;
    if (ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP) {
        // Non-first fragments carry no ports: the kernel gets them.
        if (ip->frag_off & bpf_htons(IP_FRAG_OFFSET))
            return to_kernel(ST_OTHER_IPV4);
        __u8 *l4 = (__u8 *)ip + (ip->ihl & 0xf) * 4;
        if ((void *)(l4 + 4) > data_end)
            return to_kernel(ST_MALFORMED);
        struct real_key key = {.addr = saddr, .port = 0, .pad = 0};
        __builtin_memcpy(&key.port, l4, sizeof(key.port)); // source port
        if (bpf_map_lookup_elem(&reals, &key))
            return from_real(ctx, ST_FROM_REAL);
    } else if (ip->protocol == IPPROTO_ICMP) {
        if (bpf_map_lookup_elem(&real_ips, &saddr))
            return from_real(ctx, ST_ICMP_FROM_REAL);
    }
    return to_kernel(ST_OTHER_IPV4);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
