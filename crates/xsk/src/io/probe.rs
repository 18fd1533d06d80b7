//! Whether an interface runs driver-mode (native) XDP: a two-instruction `XDP_PASS` program
//! attached through a BPF link and closed at once (see the parent module's "Modes").

use super::*;
use std::ffi::CString;

/// What attaching a native XDP program to an interface told us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum NativeProbe {
    /// A native program could be attached (and was detached again).
    Attachable,
    /// A native program or link is already attached (`EBUSY`): native mode works.
    NativeInUse,
    /// A generic program is attached (`EEXIST`): native and generic can't coexist.
    GenericInUse,
    /// Refused with this errno (no driver support, a veth peer MTU above 3506, ...).
    Refused(i32),
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const XDP_FLAGS_DRV_MODE: u32 = 4;

/// `union bpf_attr` as used by BPF_PROG_LOAD, zero-padded to the 144 bytes of the kernel's
/// union (the kernel accepts any size as long as the bytes it does not know are zero).
#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    _rest: [u8; 72],
}

/// `union bpf_attr` as used by BPF_LINK_CREATE, zero-padded to 144 bytes.
#[repr(C)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
    _rest: [u8; 128],
}

const _: () = assert!(std::mem::size_of::<ProgLoadAttr>() == 144);
const _: () = assert!(std::mem::size_of::<LinkCreateAttr>() == 144);

/// Owns a file descriptor returned by the bpf() syscall and closes it.
struct OwnedBpfFd(RawFd);

impl Drop for OwnedBpfFd {
    fn drop(&mut self) {
        // SAFETY: the fd was returned to us by bpf() and is closed only here, once.
        unsafe { libc::close(self.0) };
    }
}

/// Whether a driver-mode XDP program can run on `ifname`: load `r0 = XDP_PASS; exit`, attach
/// it through a BPF link (native mode) and close both at once, which detaches it.
pub(super) fn probe_native_xdp(ifname: &str) -> NativeProbe {
    let Ok(cname) = CString::new(ifname) else {
        return NativeProbe::Refused(libc::EINVAL);
    };
    // SAFETY: `cname` is a valid NUL-terminated string that outlives the call.
    let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if ifindex == 0 {
        return NativeProbe::Refused(last_errno());
    }
    // mov64 r0, 2 (XDP_PASS); exit
    let insns: [u64; 2] = [0x0000_0002_0000_00b7, 0x0000_0000_0000_0095];
    let license = b"GPL\0";
    let mut name = [0u8; 16];
    name[..12].copy_from_slice(b"detour_probe");
    let attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
        prog_name: name,
        prog_ifindex: 0,
        expected_attach_type: BPF_XDP,
        _rest: [0; 72],
    };
    // SAFETY: bpf(BPF_PROG_LOAD) reads `size_of::<ProgLoadAttr>()` bytes of `attr` (laid out
    // as the kernel's union bpf_attr, the unknown tail zeroed) and the instructions and license
    // it points to, which all live until the call returns; it writes no user memory (log off).
    let prog = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const ProgLoadAttr,
            std::mem::size_of::<ProgLoadAttr>(),
        )
    };
    if prog < 0 {
        return NativeProbe::Refused(last_errno());
    }
    let prog = OwnedBpfFd(prog as RawFd);
    let attr = LinkCreateAttr {
        prog_fd: prog.0 as u32,
        target_ifindex: ifindex,
        attach_type: BPF_XDP,
        flags: XDP_FLAGS_DRV_MODE,
        _rest: [0; 128],
    };
    // SAFETY: bpf(BPF_LINK_CREATE) reads `size_of::<LinkCreateAttr>()` bytes of `attr`, laid
    // out as the kernel's union bpf_attr with the unknown tail zeroed; it writes no user memory.
    let link = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_LINK_CREATE,
            &attr as *const LinkCreateAttr,
            std::mem::size_of::<LinkCreateAttr>(),
        )
    };
    if link < 0 {
        return match last_errno() {
            libc::EBUSY => NativeProbe::NativeInUse,
            libc::EEXIST => NativeProbe::GenericInUse,
            e => NativeProbe::Refused(e),
        };
    }
    // Closing the only reference to the link detaches the program.
    drop(OwnedBpfFd(link as RawFd));
    drop(prog);
    NativeProbe::Attachable
}
