//! The rings of one batch: receive, hand each frame to the caller, stage and produce the
//! transmits, reap completions into the free pool and top up the fill rings (the frame
//! accounting of the parent module holds between two calls of [`QueueIo::run_batch`]); a
//! batch in two passes ([`QueueIo::run_batch_in_two`]) keeps the frames the first defers.

use super::*;

impl QueueIo {
    /// Receive up to `batch` frames from each port; for each call `f(frame_buf, len, port)`
    /// where `frame_buf` is the whole frame buffer (`frame_size - 256` bytes) and the frame is
    /// `frame_buf[..len]`; `f` returns what to do with it. Frames to send are put on the tx
    /// ring of their port without copying (the UMEM is shared); dropped frames are recycled.
    /// Then: kick TX where the ring asks for a wakeup (`sendto` with `MSG_DONTWAIT`; in copy
    /// mode once per 32 queued frames, bounded), reap completions into the free pool, and
    /// refill every fill ring from the pool. No allocation, no syscall but those wakeups (and,
    /// with busy polling in force, one `recvfrom` per port first, which runs its queue's NAPI).
    /// A frame for a full tx ring is dropped and counted in `tx_ring_full`. [`Out::Defer`] is
    /// a drop here; see [`QueueIo::run_batch_in_two`].
    pub fn run_batch(&mut self, mut f: impl FnMut(&mut [u8], usize, usize) -> Out) -> BatchStats {
        self.run_batch_in_two(|buf, len, port, pass| match pass {
            Pass::First => f(buf, len, port),
            Pass::Second { .. } => Out::Drop,
        })
    }

    /// As [`QueueIo::run_batch`], in two passes: `f(frame_buf, len, port, Pass::First)` for
    /// every frame received; a frame it answers [`Out::Defer`] is kept (its descriptor in an
    /// array sized once for a whole batch) and, after every frame of the batch had its first
    /// call, handed to `f(.., Pass::Second { full })` in the order received, where `full`
    /// says whether some port gave a whole batch (its rx ring may hold more: the caller is
    /// behind). `Out::Defer` in the second pass is a drop. Staging, transmit and accounting
    /// are as in [`QueueIo::run_batch`].
    pub fn run_batch_in_two(
        &mut self,
        mut f: impl FnMut(&mut [u8], usize, usize, Pass) -> Out,
    ) -> BatchStats {
        let mut st = BatchStats::default();
        let nports = self.ports.len();
        if self.busy_polling() {
            // Run each queue's NAPI here (one syscall per port per batch).
            for port in &self.ports {
                busy::drive(port.fd);
            }
        }
        self.reap_completions();

        let want = (self.batch * nports) as u32;
        for (room, port) in self.tx_room.iter_mut().zip(self.ports.iter_mut()) {
            *room = port.tx.nb_free(want) as usize;
        }

        let batch = self.batch;
        let Self {
            ports,
            umem,
            pool,
            rx_scratch,
            tx_stage,
            tx_room,
            deferred,
            ..
        } = self;
        let mut full = false;
        for (p, port) in ports.iter_mut().enumerate() {
            // SAFETY: the descriptors are overwritten with frames of this socket's UMEM
            // (`umem`), which the kernel hands back only after we gave them to its fill ring.
            let n = unsafe { port.rx.consume(rx_scratch) };
            debug_assert!(n <= port.in_fill);
            port.in_fill -= n;
            st.rx += n;
            full |= n == batch;
            for desc in &mut rx_scratch[..n] {
                let len = desc.lengths().data();
                // SAFETY: `desc` was just consumed from the rx ring of a socket on `umem`, so
                // it describes a frame of `umem` that the kernel has finished with and that
                // sits in no ring: this is the only reference to its bytes until the
                // descriptor is put on a tx ring, in `deferred` or back in the pool.
                let out = unsafe { call(umem, desc, len, |b, l| f(b, l, p, Pass::First)) };
                if out == Out::Defer {
                    // Room for every frame one batch can receive: never reallocates.
                    deferred.push((p, len, *desc));
                    continue;
                }
                settle(out, desc, nports, (tx_stage, tx_room, pool), &mut st);
            }
        }
        for (p, len, mut desc) in deferred.drain(..) {
            // SAFETY: as above: a frame of this batch held only in `deferred` until now.
            let out = unsafe {
                call(umem, &mut desc, len, |b, l| {
                    f(b, l, p, Pass::Second { full })
                })
            };
            settle(out, &mut desc, nports, (tx_stage, tx_room, pool), &mut st);
        }

        for (port, stage) in ports.iter_mut().zip(tx_stage.iter_mut()) {
            if stage.is_empty() {
                continue;
            }
            // SAFETY: every staged descriptor is a frame of `umem` received in this batch and
            // held nowhere else (it left the rx ring and was not put in the pool).
            let sent = unsafe { port.tx.produce(stage) };
            if sent == stage.len() {
                port.in_tx += sent;
                st.tx += sent;
            } else {
                // Not expected: the ring had room for all of them at the start of the batch and
                // only we produce on it. `produce` is all-or-nothing.
                st.tx_ring_full += stage.len();
                pool.extend_from_slice(stage);
            }
            stage.clear();
        }

        self.kick_all();
        self.reap_completions();
        self.refill(st.rx == 0);
        debug_assert!(self.pool.len() <= self.frame_count);
        st
    }

    /// Move completed tx frames back into the pool.
    fn reap_completions(&mut self) {
        let Self {
            ports,
            pool,
            comp_scratch,
            ..
        } = self;
        for port in ports.iter_mut() {
            if port.in_tx == 0 {
                continue;
            }
            // SAFETY: the descriptors are overwritten with addresses of frames of this
            // socket's UMEM that we put on its tx ring and the kernel has finished sending.
            let n = unsafe { port.cq.consume(comp_scratch) };
            debug_assert!(n <= port.in_tx);
            port.in_tx -= n.min(port.in_tx);
            pool.extend_from_slice(&comp_scratch[..n]);
        }
    }

    /// Top up every fill ring to `fill_target` from the pool, sharing the pool fairly when it
    /// is short. `idle`: nothing was received this batch (wake a zero-copy driver that asks).
    pub(super) fn refill(&mut self, idle: bool) {
        let nports = self.ports.len();
        let Self {
            ports,
            pool,
            fill_target,
            ..
        } = self;
        for (i, port) in ports.iter_mut().enumerate() {
            let deficit = fill_target.saturating_sub(port.in_fill);
            let mut k = 0;
            if deficit > 0 && !pool.is_empty() {
                let share = pool.len().div_ceil(nports - i);
                k = deficit
                    .min(share)
                    .min(port.fq.nb_free(deficit as u32) as usize);
                if k > 0 {
                    let from = pool.len() - k;
                    // SAFETY: the frames come out of the free pool, so they are frames of this
                    // UMEM that no ring and no one else holds; they leave the pool right below.
                    let given = unsafe { port.fq.produce(&pool[from..]) };
                    if given == k {
                        pool.truncate(from);
                        port.in_fill += k;
                    } else {
                        k = 0;
                    }
                }
            }
            if (k > 0 || idle) && port.fq.needs_wakeup() {
                // SAFETY: a zero-length, non-blocking `recvfrom` with null buffer and address
                // on a socket fd this QueueIo owns: it only wakes the driver's receive path.
                unsafe {
                    libc::recvfrom(
                        port.fd,
                        std::ptr::null_mut(),
                        0,
                        libc::MSG_DONTWAIT,
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                    );
                }
            }
        }
    }
}

/// Call `f` on the bytes of the received frame `desc` (`len` long), and set the frame's
/// length to what `f` answers when it is a transmit (a length outside `14..=capacity` makes
/// it a drop).
///
/// # Safety
/// `desc` must be a frame of `umem` that no ring and no other descriptor holds.
unsafe fn call(
    umem: &Umem,
    desc: &mut FrameDesc,
    len: usize,
    f: impl FnOnce(&mut [u8], usize) -> Out,
) -> Out {
    // SAFETY: the caller's contract: the only reference to this frame's bytes.
    let mut data = unsafe { umem.data_mut(desc) };
    let cap = {
        let mut c = data.cursor();
        let cap = c.buf_len();
        c.set_pos(cap);
        cap
    };
    match f(data.contents_mut(), len.min(cap)) {
        Out::Tx { port, len } if (ETH_HLEN..=cap).contains(&len) => {
            data.cursor().set_pos(len);
            Out::Tx { port, len }
        }
        Out::Tx { .. } => Out::Drop,
        out => out,
    }
}

/// Stage `desc` for its port's tx ring, or put it back in the pool (a drop, a deferral in the
/// second pass, a bad port or length, a full tx ring), counting it in `st`.
fn settle(
    out: Out,
    desc: &mut FrameDesc,
    nports: usize,
    (tx_stage, tx_room, pool): (&mut [Vec<FrameDesc>], &[usize], &mut Vec<FrameDesc>),
    st: &mut BatchStats,
) {
    match out {
        Out::Tx { port: q, .. } if q < nports => {
            if tx_stage[q].len() < tx_room[q] {
                desc.set_options(0);
                tx_stage[q].push(*desc);
            } else {
                st.tx_ring_full += 1;
                pool.push(*desc);
            }
        }
        _ => {
            st.dropped += 1;
            pool.push(*desc);
        }
    }
}
