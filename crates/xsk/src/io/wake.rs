//! Kicking and sleeping: `sendto()` wakeups for tx rings that ask for one (bounded per batch;
//! copy mode transmits 32 frames a call) and the `poll()` a worker sleeps in when a batch came
//! back empty.

use super::*;

impl QueueIo {
    /// Block in `poll()` on the ports' sockets for at most `timeout_ms` (POLLIN; POLLOUT too
    /// on a port whose tx ring is more than half full, so the wait ends when it drains). Call it
    /// when a batch came back empty, so the worker sleeps instead of spinning against the
    /// kernel's receive work on the same core. Frames still queued for transmit are kicked
    /// first (in copy mode `poll()` itself also transmits); while completions are outstanding
    /// and the pool is short of a batch the wait is capped at 1 ms. Returns whether a socket
    /// has frames to receive (or completions to reap); no syscall if it already has. With busy
    /// polling in force it never sleeps: it kicks pending frames and returns at once.
    pub fn wait(&mut self, timeout_ms: i32) -> bool {
        if self.has_work() {
            return true;
        }
        if self.busy_polling() {
            // No sleep: the next batch busy-polls the queues again.
            self.kick_all();
            return self.has_work();
        }
        let pending_tx = self.kick_all();
        let mut timeout = timeout_ms;
        let in_tx: usize = self.ports.iter().map(|p| p.in_tx).sum();
        if pending_tx || (in_tx > 0 && self.pool.len() < self.batch) {
            timeout = timeout.clamp(0, 1);
        }
        let half = self.ring_size / 2;
        for (pfd, port) in self.pollfds.iter_mut().zip(self.ports.iter_mut()) {
            let queued = self.ring_size - port.tx.nb_free_exact() as usize;
            pfd.events = libc::POLLIN;
            if queued > half {
                pfd.events |= libc::POLLOUT;
            }
            pfd.revents = 0;
        }
        // SAFETY: `pollfds` is a live, initialised array of `pollfds.len()` entries, each with
        // the fd of a socket this QueueIo owns and keeps open.
        let r = unsafe {
            libc::poll(
                self.pollfds.as_mut_ptr(),
                self.pollfds.len() as libc::nfds_t,
                timeout,
            )
        };
        if r > 0
            && self
                .pollfds
                .iter()
                .any(|p| p.revents & (libc::POLLIN | libc::POLLOUT) != 0)
        {
            return true;
        }
        self.has_work()
    }

    /// Frames waiting on an rx ring or completions on a completion ring (no syscall).
    fn has_work(&mut self) -> bool {
        self.ports
            .iter_mut()
            .any(|p| p.rx.nb_avail(1) > 0 || p.cq.nb_avail(1) > 0)
    }

    /// Kick every port whose tx ring holds frames the kernel has not taken and asks for a
    /// wakeup. In copy mode the kernel transmits at most 32 frames per `sendto()` and answers
    /// `EAGAIN` when more remain, so a port is kicked again while that makes progress (at most
    /// [`MAX_KICKS`] times). Returns whether frames remain queued.
    pub(super) fn kick_all(&mut self) -> bool {
        let mut pending_left = false;
        let ring = self.ring_size;
        for port in self.ports.iter_mut() {
            let mut queued = ring - port.tx.nb_free_exact() as usize;
            let mut kicks = 0;
            while queued > 0 && kicks < MAX_KICKS && port.tx.needs_wakeup() {
                kicks += 1;
                // SAFETY: a zero-length `sendto` with null buffer and address on a socket fd
                // this QueueIo owns; the kernel reads nothing from user memory.
                let r = unsafe {
                    libc::sendto(
                        port.fd,
                        std::ptr::null(),
                        0,
                        libc::MSG_DONTWAIT,
                        std::ptr::null(),
                        0,
                    )
                };
                if r >= 0 {
                    break;
                }
                let e = last_errno();
                if e != libc::EAGAIN {
                    if !matches!(e, libc::EBUSY | libc::ENOBUFS | libc::ENETDOWN) {
                        self.kick_errors += 1;
                    }
                    break;
                }
                let now = ring - port.tx.nb_free_exact() as usize;
                if now >= queued || queued <= COPY_TX_PER_KICK {
                    // No progress (the completion ring may be full), or the kernel gave up
                    // for another reason: try again next batch.
                    queued = now;
                    break;
                }
                queued = now;
            }
            if kicks > 0 {
                queued = ring - port.tx.nb_free_exact() as usize;
            }
            if queued > 0 {
                pending_left = true;
            }
        }
        pending_left
    }
}
