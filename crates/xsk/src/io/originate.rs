//! Frames a worker sends on its own, outside [`QueueIo::run_batch`] (its timers'
//! retransmissions): a frame is taken from the free pool, written by the caller and put on a
//! port's tx ring; [`QueueIo::flush`] then kicks the rings once for all of them.
//!
//! Contract: the frame accounting of the module docs holds (a frame leaves the pool only onto
//! a tx ring, and is counted there); no allocation; no syscall but `flush`'s kicks.

use super::{Out, QueueIo, ETH_HLEN};

impl QueueIo {
    /// Lend `write` a free frame (its whole data area, zeroed or not); when it answers
    /// [`Out::Tx`] with a valid port and length, the frame goes on that port's tx ring. Returns
    /// whether it did; false also when the pool is empty or the ring is full (nothing is lost:
    /// the frame stays in the pool). Call [`QueueIo::flush`] after a run of these.
    pub fn originate(&mut self, write: impl FnOnce(&mut [u8]) -> Out) -> bool {
        let Self {
            ports, umem, pool, ..
        } = self;
        let Some(mut desc) = pool.pop() else {
            return false;
        };
        let target = {
            // SAFETY: `desc` comes out of the free pool: a frame of `umem` that no ring and no
            // one else holds, so this is the only reference to its bytes until it is put on a
            // tx ring or back in the pool below.
            let mut data = unsafe { umem.data_mut(&mut desc) };
            let cap = {
                let mut c = data.cursor();
                let cap = c.buf_len();
                c.set_pos(cap);
                cap
            };
            match write(data.contents_mut()) {
                Out::Tx { port, len } if port < ports.len() && (ETH_HLEN..=cap).contains(&len) => {
                    data.cursor().set_pos(len);
                    Some(port)
                }
                _ => None,
            }
        };
        let Some(p) = target else {
            pool.push(desc);
            return false;
        };
        let port = &mut ports[p];
        if port.tx.nb_free(1) == 0 {
            pool.push(desc);
            return false;
        }
        desc.set_options(0);
        // SAFETY: `desc` is a frame of `umem` taken from the free pool above and held nowhere
        // else; once produced it is counted in `in_tx` until its completion is reaped.
        let sent = unsafe { port.tx.produce(std::slice::from_ref(&desc)) };
        if sent == 1 {
            port.in_tx += 1;
            true
        } else {
            pool.push(desc);
            false
        }
    }

    /// Have the kernel transmit what [`QueueIo::originate`] queued (one wakeup per port that
    /// asks for one, as after a batch).
    pub fn flush(&mut self) {
        self.kick_all();
    }
}
