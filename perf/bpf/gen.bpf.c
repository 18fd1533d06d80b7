// SPDX-License-Identifier: Apache-2.0
// detour-perf: the XDP "live frames" generator and a pass-through program.
//
// `dtb_gen` is run by BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES on the generator's
// veth: every iteration hands it a page-pool frame, which it overwrites with the next
// template (the whole template, since the pages are recycled after the receiver may have
// modified them) and returns XDP_TX, which the kernel turns into a transmit on that veth.
// Rate control: a token bucket (rate per second, depth `burst` frames, kept small so that a
// stall of the generator's thread is not made up by a burst longer than a veth ring): a frame is
// sent only when a token is there; else the iteration returns XDP_DROP (the page is recycled,
// nothing is sent), so the syscall spins at the offered rate. It also stops sending after `max_frames` or `duration_ns`; user space
// ends the syscall with a signal.
//
// Timestamps: a template with a `stamp_off` gets the send time (CLOCK_MONOTONIC ns, low 48 bits)
// written there behind a 16-bit marker, its checksum updated (`detour-perf lat` samples them at
// the sink).
//
// `dtb_pass` returns XDP_PASS: attached in driver mode on a veth, it puts that veth in NAPI
// mode (so frames XDP-transmitted into it are received, on a NAPI thread we can pin).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define TPL_MAX 256
#define TPLS_MAX 65536
#define KINDS 8

struct tpl {
    __u32 len;       // bytes of the frame (<= the frame size given to the test run)
    __u16 kind;      // counter index
    __u16 stamp_off; // 0: no timestamp; else where the 8-byte stamp goes: `mark` (16 bits,
                     // big-endian) + the low 48 bits of bpf_ktime_get_ns() (big-endian)
    __u16 csum_off;  // the 16-bit one's-complement checksum covering the stamp (TCP's)
    __u16 mark;
    __u8 data[TPL_MAX];
};

struct cfg {
    __u64 rate_pps;    // 0: as fast as possible
    __u64 max_frames;  // stop sending after this many
    __u64 duration_ns; // stop sending after this long (from the first iteration)
    __u32 ntpl;        // templates in use (1..TPLS_MAX)
    __u32 burst;       // frames the sender may run ahead of the schedule
};

struct state {
    __u64 start_ns;
    __u64 last_ns;
    __u64 refill_ns;    // last token refill
    __u64 tokens;       // frames * 1e9
    __u64 sent;
    __u64 idle;         // iterations that sent nothing (ahead of schedule or finished)
    __u64 next;         // next template index
    __u64 kind[KINDS];  // frames sent per kind
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, TPLS_MAX);
    __type(key, __u32);
    __type(value, struct tpl);
} tpls SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct cfg);
} cfgs SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct state);
} states SEC(".maps");

// Write the send time into the frame (`mark` + 48-bit CLOCK_MONOTONIC ns) and update the
// checksum that covers it incrementally (RFC 1624: HC' = ~(~HC + ~m + m')), from the template's
// old bytes. The stamp and the checksum must be 16-bit aligned relative to the checksummed data.
static __always_inline int stamp(struct xdp_md *ctx, struct tpl *t, __u32 len, __u64 now)
{
    __u32 so = t->stamp_off;
    __u32 co = t->csum_off;
    if (so > TPL_MAX - 8 || co > TPL_MAX - 2 || so + 8 > len || co + 2 > len)
        return 0;
    __u8 st[8];
    st[0] = t->mark >> 8;
    st[1] = t->mark & 0xff;
#pragma unroll
    for (int i = 0; i < 6; i++)
        st[2 + i] = (now >> (40 - 8 * i)) & 0xff;
    __u32 sum = ~(((__u32)t->data[co] << 8) | t->data[co + 1]) & 0xffff;
#pragma unroll
    for (int i = 0; i < 8; i += 2) {
        __u32 old = ((__u32)t->data[so + i] << 8) | t->data[so + i + 1];
        __u32 new = ((__u32)st[i] << 8) | st[i + 1];
        sum += (~old & 0xffff) + new;
    }
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = ~sum & 0xffff;
    __u8 c[2] = {sum >> 8, sum & 0xff};
    if (bpf_xdp_store_bytes(ctx, so, st, 8) || bpf_xdp_store_bytes(ctx, co, c, 2))
        return -1;
    return 0;
}

SEC("xdp")
int dtb_gen(struct xdp_md *ctx)
{
    __u32 zero = 0;
    struct cfg *c = bpf_map_lookup_elem(&cfgs, &zero);
    struct state *s = bpf_map_lookup_elem(&states, &zero);
    if (!c || !s)
        return XDP_DROP;

    __u64 now = bpf_ktime_get_ns();
    if (!s->start_ns)
        s->start_ns = now;
    __u64 elapsed = now - s->start_ns;
    if (elapsed >= c->duration_ns || s->sent >= c->max_frames) {
        s->idle++;
        return XDP_DROP;
    }
    if (c->rate_pps) {
        __u64 dt = now - s->refill_ns;
        if (!s->refill_ns || dt > 1000000000ULL)
            dt = 1000000000ULL;
        s->refill_ns = now;
        __u64 cap = (__u64)c->burst * 1000000000ULL;
        __u64 tokens = s->tokens + dt * c->rate_pps;
        if (tokens > cap)
            tokens = cap;
        if (tokens < 1000000000ULL) {
            s->tokens = tokens;
            s->idle++;
            return XDP_DROP;
        }
        s->tokens = tokens - 1000000000ULL;
    }

    __u32 idx = s->next;
    if (idx >= c->ntpl || idx >= TPLS_MAX)
        idx = 0;
    s->next = idx + 1;
    struct tpl *t = bpf_map_lookup_elem(&tpls, &idx);
    if (!t)
        return XDP_DROP;

    __u32 len = t->len;
    if (len < 14 || len > TPL_MAX)
        return XDP_DROP;
    int have = (int)(ctx->data_end - ctx->data);
    int delta = (int)len - have;
    if (delta != 0 && bpf_xdp_adjust_tail(ctx, delta))
        return XDP_DROP;
    if (bpf_xdp_store_bytes(ctx, 0, t->data, len))
        return XDP_DROP;
    if (t->stamp_off && stamp(ctx, t, len, now))
        return XDP_DROP;

    s->sent++;
    s->last_ns = now;
    __u32 k = t->kind;
    if (k < KINDS)
        s->kind[k]++;
    return XDP_TX;
}

SEC("xdp")
int dtb_pass(struct xdp_md *ctx)
{
    return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
