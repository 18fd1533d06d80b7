//! detour's AF_XDP I/O and XDP steering: the only crate of the project with `unsafe`, each
//! block explained by a `// SAFETY:` comment.
//!
//! - [`io`]: one worker's AF_XDP sockets on one queue of one or two interfaces, sharing one
//!   UMEM (XDP_SHARED_UMEM), so a frame received on one interface is rewritten in place and
//!   sent on the other without a copy.
//! - [`busy`]: opt-in preferred busy polling of the queue's NAPI, refused where the driver has
//!   no queue NAPI (veth).
//! - [`stats`]: the kernel's counters of an AF_XDP socket (drops, invalid descriptors).
//! - [`steer`]: the XDP program that sends the director's traffic to those sockets and
//!   everything else to the kernel, and its maps.

pub mod busy;
pub mod io;
pub mod stats;
pub mod steer;
