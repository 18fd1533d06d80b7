//! One TLS-over-TCP connection of the responder: rustls's unbuffered server state, the TCP
//! sequence numbers on both sides, the server's unacknowledged bytes, and the request head.
//!
//! Contract: bytes go in only in order ([`Conn::accept`] trims what was seen, refuses what
//! is ahead); everything the server ever sends is kept from `snd_una` on until acknowledged,
//! so a retransmission resends exactly the same bytes. Buffers are bounded: the TLS input to
//! one maximal record, the request head to [`MAX_HEAD`]. A TLS error queues rustls's alert (if
//! any) and a FIN; nothing panics on hostile bytes.

use std::sync::Arc;

use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError};
use rustls::{HandshakeKind, ServerConfig};

/// Largest TLS input kept: one maximal TLSCiphertext (header + 2^14 + 256).
pub const MAX_TLS_IN: usize = 5 + (1 << 14) + 256;
/// Largest request head accepted (as the plain-HTTP responder).
pub const MAX_HEAD: usize = 8192;

/// Where the connection is in its short life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// TLS handshake in progress (half-open: first to be evicted).
    Handshake,
    /// Handshake done, waiting for the complete request head.
    Request,
    /// The head is complete; the caller owes [`crate::Table::answer`].
    Ready,
    /// Answer (or alert) and FIN queued; waiting for them to be acknowledged.
    Closing,
}

/// Why a connection failed (counted by the table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// rustls refused the peer's bytes (malformed, wrong version, not TLS, bad record).
    Tls,
    /// More than one maximal record buffered, or a head over [`MAX_HEAD`].
    Oversized,
    /// The peer closed before the request was complete.
    PeerClosed,
}

pub(crate) struct Conn {
    tls: UnbufferedServerConnection,
    /// Undecoded TLS input.
    tls_in: Vec<u8>,
    /// Decrypted request bytes.
    pub(crate) head: Vec<u8>,
    /// Everything sent or to send, from `snd_una` on.
    pub(crate) out: Vec<u8>,
    /// How many bytes of `out` have gone out at least once since the last (re)transmission.
    pub(crate) sent: usize,
    pub(crate) snd_una: u32,
    pub(crate) rcv_nxt: u32,
    pub(crate) fin_queued: bool,
    pub(crate) fin_sent: bool,
    pub(crate) fin_acked: bool,
    pub(crate) phase: Phase,
    pub(crate) born_ms: u64,
    pub(crate) rto_at: u64,
    pub(crate) rto_ms: u64,
    pub(crate) retries: u8,
    /// Set once the first server flight was produced (the ClientHello was signed for).
    pub(crate) flight: bool,
    pub(crate) id: u64,
    /// The client's MSS (536 when unknown).
    pub(crate) mss: u16,
}

impl Conn {
    pub(crate) fn new(
        cfg: Arc<ServerConfig>,
        rcv_nxt: u32,
        snd_nxt: u32,
        now: u64,
        id: u64,
        mss: u16,
    ) -> Option<Self> {
        let tls = UnbufferedServerConnection::new(cfg).ok()?;
        Some(Self {
            tls,
            tls_in: Vec::new(),
            head: Vec::new(),
            out: Vec::new(),
            sent: 0,
            snd_una: snd_nxt,
            rcv_nxt,
            fin_queued: false,
            fin_sent: false,
            fin_acked: false,
            phase: Phase::Handshake,
            born_ms: now,
            rto_at: u64::MAX,
            rto_ms: 0,
            retries: 0,
            flight: false,
            id,
            mss: if mss == 0 { 536 } else { mss },
        })
    }

    pub(crate) fn resumed(&self) -> bool {
        self.tls.handshake_kind() == Some(HandshakeKind::Resumed)
    }

    /// Take the in-order part of a segment's payload; returns the bytes taken, or `None` for a
    /// segment ahead of `rcv_nxt` (a hole: the caller repeats its ACK).
    pub(crate) fn accept(&mut self, seq: u32, payload: &[u8]) -> Result<Option<usize>, Failure> {
        let behind = self.rcv_nxt.wrapping_sub(seq) as usize;
        if (self.rcv_nxt.wrapping_sub(seq) as i32) < 0 {
            return Ok(None);
        }
        if behind >= payload.len() {
            return Ok(Some(0));
        }
        let new = &payload[behind..];
        if self.tls_in.len() + new.len() > MAX_TLS_IN {
            return Err(Failure::Oversized);
        }
        self.tls_in.extend_from_slice(new);
        self.rcv_nxt = self.rcv_nxt.wrapping_add(new.len() as u32);
        Ok(Some(new.len()))
    }

    /// Run rustls over the buffered input: queue handshake records, collect request bytes.
    pub(crate) fn drive(&mut self) -> Result<(), Failure> {
        let mut failed = None;
        loop {
            let status = self.tls.process_tls_records(&mut self.tls_in);
            let discard = status.discard;
            let stop = match status.state {
                Err(_) => {
                    failed = Some(Failure::Tls);
                    true
                }
                Ok(state) => step(
                    state,
                    &mut Sink {
                        out: &mut self.out,
                        head: &mut self.head,
                        phase: &mut self.phase,
                        flight: &mut self.flight,
                    },
                    &mut failed,
                ),
            };
            self.tls_in.drain(..discard);
            if stop {
                break;
            }
        }
        if failed.is_some() {
            // rustls pops its queued alert (if any) before it deframes anything, so one more
            // round over the same input encodes it; no further round, so the bad bytes are
            // never deframed again. Nothing more is ever read from this connection.
            let status = self.tls.process_tls_records(&mut self.tls_in);
            if let Ok(state @ ConnectionState::EncodeTlsData(_)) = status.state {
                let sink = &mut Sink {
                    out: &mut self.out,
                    head: &mut self.head,
                    phase: &mut self.phase,
                    flight: &mut self.flight,
                };
                step(state, sink, &mut None);
            }
            self.tls_in = Vec::new();
        }
        if self.phase == Phase::Request && head_complete(&self.head) {
            self.phase = Phase::Ready;
        }
        match failed {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }

    /// Encrypt `response` and a close_notify, then queue the FIN.
    pub(crate) fn answer(&mut self, response: &[u8]) -> Result<(), Failure> {
        let status = self.tls.process_tls_records(&mut []);
        let Ok(ConnectionState::WriteTraffic(mut w)) = status.state else {
            return Err(Failure::Tls);
        };
        let start = self.out.len();
        let mut room = response.len() + 64 + 64 * (response.len() / (1 << 14) + 1);
        loop {
            self.out.resize(start + room, 0);
            match w.encrypt(response, &mut self.out[start..]) {
                Ok(n) => {
                    self.out.truncate(start + n);
                    break;
                }
                Err(EncryptError::InsufficientSize(s)) => room = s.required_size,
                Err(_) => {
                    self.out.truncate(start);
                    return Err(Failure::Tls);
                }
            }
        }
        let start = self.out.len();
        self.out.resize(start + 64, 0);
        match w.queue_close_notify(&mut self.out[start..]) {
            Ok(n) => self.out.truncate(start + n),
            Err(_) => self.out.truncate(start),
        }
        self.close();
        Ok(())
    }

    /// Queue our FIN after whatever is queued; the connection only waits for ACKs now.
    pub(crate) fn close(&mut self) {
        self.fin_queued = true;
        self.phase = Phase::Closing;
    }

    /// Sequence number after everything queued (FIN included).
    pub(crate) fn snd_end(&self) -> u32 {
        let fin = self.fin_queued && !self.fin_acked;
        self.snd_una
            .wrapping_add(self.out.len() as u32)
            .wrapping_add(fin as u32)
    }

    /// Everything we queued, FIN included, is acknowledged: the entry can go.
    pub(crate) fn done(&self) -> bool {
        self.fin_acked && self.out.is_empty()
    }

    /// Drop what `ack` acknowledges (only what went out counts); true when something new was.
    pub(crate) fn acked(&mut self, ack: u32) -> bool {
        let n = ack.wrapping_sub(self.snd_una) as usize;
        if n == 0 || n > self.sent + self.fin_sent as usize {
            return false;
        }
        let data = n.min(self.out.len());
        self.out.drain(..data);
        self.sent -= data;
        self.snd_una = ack;
        if n > data {
            self.fin_acked = true;
        }
        true
    }
}

/// The parts of a [`Conn`] that rustls's states write into (disjoint from its TLS state).
struct Sink<'a> {
    out: &'a mut Vec<u8>,
    head: &'a mut Vec<u8>,
    phase: &'a mut Phase,
    flight: &'a mut bool,
}

/// Handle one state of rustls; true when driving should stop for now.
fn step(
    state: ConnectionState<'_, '_, ServerConnectionData>,
    sink: &mut Sink<'_>,
    failed: &mut Option<Failure>,
) -> bool {
    match state {
        ConnectionState::EncodeTlsData(mut enc) => {
            let start = sink.out.len();
            let mut room = 2048;
            loop {
                sink.out.resize(start + room, 0);
                match enc.encode(&mut sink.out[start..]) {
                    Ok(n) => {
                        sink.out.truncate(start + n);
                        break;
                    }
                    Err(EncodeError::InsufficientSize(s)) => room = s.required_size,
                    Err(EncodeError::AlreadyEncoded) => {
                        sink.out.truncate(start);
                        break;
                    }
                }
            }
            *sink.flight = true;
            false
        }
        ConnectionState::TransmitTlsData(t) => {
            t.done();
            false
        }
        ConnectionState::ReadTraffic(mut r) => {
            while let Some(rec) = r.next_record() {
                let Ok(rec) = rec else {
                    *failed = Some(Failure::Tls);
                    return true;
                };
                if sink.head.len() + rec.payload.len() > MAX_HEAD {
                    *failed = Some(Failure::Oversized);
                    return true;
                }
                sink.head.extend_from_slice(rec.payload);
            }
            false
        }
        ConnectionState::ReadEarlyData(mut r) => {
            while r.next_record().is_some() {}
            false
        }
        ConnectionState::PeerClosed | ConnectionState::Closed => {
            if !head_complete(sink.head) {
                failed.get_or_insert(Failure::PeerClosed);
            }
            true
        }
        ConnectionState::WriteTraffic(_) => {
            if *sink.phase == Phase::Handshake {
                *sink.phase = Phase::Request;
            }
            true
        }
        _ => true,
    }
}

/// True once the bytes hold a complete HTTP head.
pub(crate) fn head_complete(head: &[u8]) -> bool {
    head.windows(4).any(|w| w == b"\r\n\r\n")
}
