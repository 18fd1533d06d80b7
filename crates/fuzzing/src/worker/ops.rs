//! The operations of the worker targets, each decoded from a few bytes of the input (fields
//! past the end read as zeros): the frames they send are built by `net`, independently of the
//! dataplane.

use super::{snapshot, Run, SEGMENT};
use crate::input::Input;
use crate::net::*;
use detour_dataplane::{Port, CLIENT, SERVER};

/// The kinds of operation; the first byte of each, modulo this.
const KINDS: u8 = 9;

impl Run {
    /// Decode one operation from `input` and apply it.
    pub(crate) fn op(&mut self, input: &mut Input) -> Result<(), String> {
        match input.u8() % KINDS {
            0 => {
                let (c, sport, bits) = (input.u8(), input.u16(), input.u8());
                let len = usize::from(input.u8());
                let head = input.bytes(len).to_vec();
                let cuts: Vec<usize> = (0..(bits >> 2) % 4)
                    .map(|_| usize::from(input.u8()) % (head.len() + 1))
                    .collect();
                self.handshake(c, sport, &head, &cuts, bits & 1 != 0, bits & 2 != 0)?;
            }
            1 => {
                let (c, sport, seq, ack) = (input.u8(), input.u16(), input.u32(), input.u32());
                let len = input.below(64);
                let payload = input.bytes(len);
                let (cl, vip) = (self.net.client(c), self.net.vip.clone());
                let f = self.net.tcp(
                    (GW, US[0]),
                    &cl,
                    &vip,
                    (sport, 80),
                    seq,
                    ack,
                    PSH | ACK,
                    payload,
                );
                self.send(&f, CLIENT)?;
            }
            2 => self.send_to_dip(input)?,
            3 => self.send_from_real(input)?,
            4 => {
                let (kind, c, which) = (input.below(4), input.u8(), input.below(4));
                let (f, port) = self.icmp(kind, c, which);
                self.send(&f, port)?;
            }
            5 => self.mangled(input)?,
            6 => {
                let port = if input.bool() { SERVER } else { CLIENT };
                let len = usize::from(input.u16()) % (BUF + 1);
                let f = input.bytes(len).to_vec();
                self.send(&f, port)?;
            }
            7 => {
                self.up = !self.up;
                let s = snapshot(if self.up {
                    &self.net.up
                } else {
                    &self.net.down
                });
                if input.bool() {
                    self.w.install_at(s, self.now);
                } else {
                    self.w.install(s);
                }
            }
            _ => self.now += u64::from(input.u16()) * 2,
        }
        Ok(())
    }

    /// A SYN from client `c`, then `head` in pieces cut at `cuts` (pieces longer than a
    /// segment split further; the first two swapped when `swap`), the last with FIN when
    /// `fin`, acknowledging the cookie the SYN-ACK carried.
    pub fn handshake(
        &mut self,
        c: u8,
        sport: u16,
        head: &[u8],
        cuts: &[usize],
        swap: bool,
        fin: bool,
    ) -> Result<(), String> {
        let (cl, vip) = (self.net.client(c), self.net.vip.clone());
        let isn = u32::from(sport).wrapping_mul(0x9e37_79b9);
        let ports = (sport, 80);
        let syn = self
            .net
            .tcp((GW, US[0]), &cl, &vip, ports, isn, 0, SYN, b"");
        let Some(out) = self.send(&syn, CLIENT)? else {
            return Ok(());
        };
        let Some(o) = ip(&out).filter(|o| o.proto == 6 && o.l4.len() >= 20) else {
            return Ok(());
        };
        let t = &out[o.l4.clone()];
        if t[13] != SYN | ACK {
            return Ok(());
        }
        let cookie = be32(t, 4);
        let mut at: Vec<usize> = cuts.iter().map(|&i| i.min(head.len())).collect();
        at.extend((0..=head.len()).step_by(SEGMENT));
        at.push(head.len());
        at.sort_unstable();
        at.dedup();
        let mut pieces: Vec<(usize, usize)> = at.windows(2).map(|w| (w[0], w[1])).collect();
        if swap && pieces.len() > 1 {
            pieces.swap(0, 1);
        }
        let n = pieces.len();
        for (k, (a, b)) in pieces.into_iter().enumerate() {
            let flags = PSH | ACK | if fin && k + 1 == n { FIN } else { 0 };
            let seq = isn.wrapping_add(1 + a as u32);
            let f = self.net.tcp(
                (GW, US[0]),
                &cl,
                &vip,
                ports,
                seq,
                cookie.wrapping_add(1),
                flags,
                &head[a..b],
            );
            self.send(&f, CLIENT)?;
        }
        Ok(())
    }

    /// A TCP segment (any flags) or a UDP datagram from a client to a DIP.
    fn send_to_dip(&mut self, input: &mut Input) -> Result<(), String> {
        let (c, sport, dip) = (input.u8(), input.u16(), input.below(3));
        let (flags, udp) = (input.u8(), input.bool());
        let (cl, d) = (self.net.client(c), self.net.dips[dip].0.clone());
        let f = if udp {
            self.net.udp((GW, US[0]), &cl, &d, (sport, 80), b"q")
        } else {
            let get = b"GET / HTTP/1.1\r\n\r\n";
            self.net
                .tcp((GW, US[0]), &cl, &d, (sport, 80), 7, 9, flags, get)
        };
        self.send(&f, CLIENT).map(drop)
    }

    /// A real's reply (any flags) to a client, on either port.
    fn send_from_real(&mut self, input: &mut Input) -> Result<(), String> {
        let (real, c, cport) = (input.below(3), input.u8(), input.u16());
        let (flags, server) = (input.u8(), input.bool());
        let (ip, rport) = self.net.reals[real].clone();
        let macs = if server {
            (real_mac(&ip), US[1])
        } else {
            (GW, US[0])
        };
        let cl = self.net.client(c);
        let ok = b"HTTP/1.1 200 OK\r\n\r\n";
        let f = self
            .net
            .tcp(macs, &ip, &cl, (rport, cport), 1, 2, flags, ok);
        self.send(&f, if server { SERVER } else { CLIENT })
            .map(drop)
    }

    /// A valid frame of some kind with bytes changed and perhaps cut, on either port.
    fn mangled(&mut self, input: &mut Input) -> Result<(), String> {
        let kind = input.below(6);
        let mut f = self.template(kind);
        for _ in 0..=input.below(4) {
            let (i, b) = (usize::from(input.u16()), input.u8());
            let n = f.len();
            f[i % n] = b;
        }
        if input.bool() {
            f.truncate(usize::from(input.u16()) % (f.len() + 1));
        }
        let port = if input.bool() { SERVER } else { CLIENT };
        self.send(&f, port).map(drop)
    }

    /// Valid frames of several kinds, to be mangled.
    fn template(&self, kind: usize) -> Vec<u8> {
        let n = &self.net;
        let c = n.client(0);
        match kind {
            0 => n.tcp((GW, US[0]), &c, &n.vip, (40000, 80), 1, 0, SYN, b""),
            1 => n.tcp(
                (GW, US[0]),
                &c,
                &n.dips[0].0,
                (40000, 80),
                1,
                9,
                ACK,
                b"GET /",
            ),
            2 => {
                let (real, port) = &n.reals[0];
                let ok = b"HTTP/1.1 200 OK\r\n\r\n";
                let macs = (real_mac(real), US[1]);
                n.tcp(macs, real, &c, (*port, 40000), 1, 1, ACK, ok)
            }
            k => self.icmp(k - 3, 0, 0).0,
        }
    }

    /// ICMP frames: 0 a neighbour query (ARP / neighbour solicitation) for an owned address,
    /// 1 an echo request to one, 2 a "too big" error from the server side (a real, or a
    /// router when `which` is 3) quoting a client's segment, 3 one from the client side to a
    /// DIP quoting the DIP's segment.
    fn icmp(&self, kind: usize, c: u8, which: usize) -> (Vec<u8>, Port) {
        let n = &self.net;
        let cl = n.client(c);
        let owned = &n.owned[which % 4];
        let (real, rport) = &n.reals[which % 3];
        let dip = &n.dips[which % 3].0;
        let (too_big, mtu): ([u8; 4], [u8; 4]) = if n.v6 {
            ([2, 0, 0, 0], 1280u32.to_be_bytes())
        } else {
            ([3, 4, 0, 0], [0, 0, 5, 0x78])
        };
        match kind {
            0 if n.v6 => {
                let t = owned;
                let mut dst = vec![0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff];
                dst.extend_from_slice(&t[13..16]);
                let mac = [0x33, 0x33, 0xff, t[13], t[14], t[15]];
                let src = if which == 3 { vec![0; 16] } else { cl };
                let mut body = vec![0; 4];
                body.extend_from_slice(t);
                body.extend_from_slice(&[1, 1]);
                body.extend_from_slice(&GW);
                (n.icmp((GW, mac), &src, &dst, [135, 0, 0, 0], &body), CLIENT)
            }
            0 => (arp(1, GW, &cl, owned), CLIENT),
            1 => {
                let head = if n.v6 { [128, 0, 0, 0] } else { [8, 0, 0, 0] };
                let body = [0, 1, 0, which as u8, b'p', b'i', b'n', b'g'];
                (n.icmp((GW, US[0]), &cl, owned, head, &body), CLIENT)
            }
            2 => {
                let src = if which == 3 { n.router() } else { real.clone() };
                let mut body = mtu.to_vec();
                body.extend(n.quote(&cl, 40000, real, *rport));
                let macs = (real_mac(real), US[1]);
                (n.icmp(macs, &src, &cl, too_big, &body), SERVER)
            }
            _ => {
                let mut body = mtu.to_vec();
                body.extend(n.quote(dip, 80, &cl, 40000));
                let router = n.client(0xfe);
                (n.icmp((GW, US[0]), &router, dip, too_big, &body), CLIENT)
            }
        }
    }
}
