//! bpf(2) commands aya 0.14 does not offer, or not for programs it did not
//! load: deleting from maps of maps and program arrays, pointing their
//! entries at programs and maps, loading the daemon's own generated
//! programs with the verifier's log, attaching them (links) and test runs.

use std::{
    io,
    mem::size_of,
    os::fd::{AsRawFd, BorrowedFd},
};

/// The `bpf_attr` layout of BPF_MAP_*_ELEM commands.
#[repr(C)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// bpf(2) with command `command` and `attr`; the kernel's non-negative
/// result (an fd for the commands that make one), or its error.
///
/// # Safety
/// `attr` must be the `bpf_attr` layout `command` reads, and every
/// pointer in it valid, for the call's duration, for what the kernel reads
/// and writes through it.
unsafe fn bpf<T>(command: libc::c_long, attr: &mut T) -> io::Result<i64> {
    // SAFETY: the caller's contract; the kernel reads (and for some
    // commands writes back) at most `size_of::<T>()` bytes of `attr`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            command,
            std::ptr::from_mut(attr),
            size_of::<T>(),
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// The fd the kernel just returned from a command that makes one.
fn new_fd(fd: i64) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: a new fd of this process, owned by nobody else.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) }
}

const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_PROG_LOAD: libc::c_long = 5;

/// Deletes `key` from an array-of-maps or program array (aya 0.14 has no
/// delete for them), so the kernel drops its reference to the entry.
pub fn delete_map_entry(map: BorrowedFd<'_>, key: u32) -> io::Result<()> {
    map_elem(BPF_MAP_DELETE_ELEM, map, key, None)
}

/// Points entry `key` of a program array or a map of maps at the program
/// or map `object`.
pub fn set_fd_entry(map: BorrowedFd<'_>, key: u32, object: BorrowedFd<'_>) -> io::Result<()> {
    map_elem(
        BPF_MAP_UPDATE_ELEM,
        map,
        key,
        Some(object.as_raw_fd() as u32),
    )
}

/// A BPF_MAP_*_ELEM command on a map with u32 keys and (if any) u32 values.
fn map_elem(
    command: libc::c_long,
    map: BorrowedFd<'_>,
    key: u32,
    value: Option<u32>,
) -> io::Result<()> {
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        _pad: 0,
        key: std::ptr::from_ref(&key) as u64,
        value: value
            .as_ref()
            .map_or(0, |value| std::ptr::from_ref(value) as u64),
        flags: 0,
    };
    // SAFETY: attr is a valid bpf_attr prefix for the BPF_MAP_*_ELEM
    // commands; `key` and `value` (4 bytes each, as these maps have) outlive
    // the call, and the kernel only reads them.
    unsafe { bpf(command, &mut attr) }.map(drop)
}

/// The `bpf_attr` layout of BPF_PROG_LOAD, up to expected_attach_type.
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
}

/// A program the kernel refused, with the verifier's log.
#[derive(Debug)]
pub struct ProgramRefused {
    pub error: io::Error,
    pub log: String,
}

/// Loads eBPF instructions (8 bytes each, `struct bpf_insn`) as a GPL
/// program of `prog_type`. On refusal, loads again with the verifier log
/// on, to say why.
pub fn load_program(
    prog_type: u32,
    expected_attach_type: u32,
    name: &str,
    insns: &[[u8; 8]],
) -> Result<std::os::fd::OwnedFd, ProgramRefused> {
    match load_program_once(prog_type, expected_attach_type, name, insns, None) {
        Ok(fd) => Ok(fd),
        Err(error) => {
            let mut log = vec![0u8; 1 << 20];
            let _ = load_program_once(prog_type, expected_attach_type, name, insns, Some(&mut log));
            let end = log.iter().position(|byte| *byte == 0).unwrap_or(log.len());
            Err(ProgramRefused {
                error,
                log: String::from_utf8_lossy(&log[..end]).into_owned(),
            })
        }
    }
}

fn load_program_once(
    prog_type: u32,
    expected_attach_type: u32,
    name: &str,
    insns: &[[u8; 8]],
    log: Option<&mut [u8]>,
) -> io::Result<std::os::fd::OwnedFd> {
    let license = c"GPL";
    let mut prog_name = [0u8; 16];
    for (to, from) in prog_name.iter_mut().zip(name.bytes().take(15)) {
        *to = from;
    }
    let (log_level, log_size, log_buf) = match log {
        Some(log) => (1, log.len() as u32, log.as_mut_ptr() as u64),
        None => (0, 0, 0),
    };
    let mut attr = ProgLoadAttr {
        prog_type,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level,
        log_size,
        log_buf,
        kern_version: 0,
        prog_flags: 0,
        prog_name,
        prog_ifindex: 0,
        expected_attach_type,
    };
    // SAFETY: attr is a valid bpf_attr prefix for BPF_PROG_LOAD; the
    // instructions, license and log buffer it points to outlive the call,
    // and the kernel writes at most log_size bytes into the log.
    let fd = unsafe { bpf(BPF_PROG_LOAD, &mut attr) }?;
    Ok(new_fd(fd))
}

const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_LINK_CREATE: libc::c_long = 28;

/// Where [`link_create`] attaches a program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkTarget {
    /// TCX ingress (BPF_TCX_INGRESS).
    TcxIngress,
    /// TCX egress (BPF_TCX_EGRESS).
    TcxEgress,
    /// XDP (BPF_XDP), in the driver's mode when it has one, generic
    /// otherwise (no mode flag: the kernel picks).
    Xdp,
}

/// The `bpf_attr` layout of BPF_LINK_CREATE for TCX and XDP links (the
/// TCX `relative_fd` and `expected_revision` left 0: append, whatever the
/// revision).
#[repr(C)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
    relative_fd: u32,
    _pad: u32,
    expected_revision: u64,
}

/// Attaches `program` to interface `ifindex` of the calling thread's
/// network namespace; the link, which detaches it when its last fd closes.
pub fn link_create(
    program: BorrowedFd<'_>,
    ifindex: u32,
    target: LinkTarget,
) -> io::Result<std::os::fd::OwnedFd> {
    let attach_type = match target {
        LinkTarget::TcxIngress => 46,
        LinkTarget::TcxEgress => 47,
        LinkTarget::Xdp => 37,
    };
    let mut attr = LinkCreateAttr {
        prog_fd: program.as_raw_fd() as u32,
        target_ifindex: ifindex,
        attach_type,
        flags: 0,
        relative_fd: 0,
        _pad: 0,
        expected_revision: 0,
    };
    // SAFETY: attr is a valid bpf_attr prefix for BPF_LINK_CREATE, read
    // by the kernel during the call only.
    let fd = unsafe { bpf(BPF_LINK_CREATE, &mut attr) }?;
    Ok(new_fd(fd))
}

/// The `bpf_attr` layout of BPF_PROG_TEST_RUN, up to `ctx_out`.
#[repr(C)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
}

/// Runs `program` on `data` `repeat` times (BPF_PROG_TEST_RUN); the
/// kernel's average duration of a run, in nanoseconds.
pub fn test_run(program: BorrowedFd<'_>, data: &[u8], repeat: u32) -> io::Result<u32> {
    // Room for what a program may add in front of the packet or write.
    let mut out = vec![0u8; data.len() + 256];
    let mut attr = TestRunAttr {
        prog_fd: program.as_raw_fd() as u32,
        retval: 0,
        data_size_in: data.len() as u32,
        data_size_out: out.len() as u32,
        data_in: data.as_ptr() as u64,
        data_out: out.as_mut_ptr() as u64,
        repeat,
        duration: 0,
        ctx_size_in: 0,
        ctx_size_out: 0,
        ctx_in: 0,
        ctx_out: 0,
    };
    // SAFETY: attr is a valid bpf_attr prefix for BPF_PROG_TEST_RUN; the
    // kernel reads `data` and writes at most `data_size_out` bytes into
    // `out`, both alive for the call, and writes the results into attr.
    unsafe { bpf(BPF_PROG_TEST_RUN, &mut attr) }?;
    Ok(attr.duration)
}

const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;

/// The `bpf_attr` layout of BPF_MAP_*_BATCH.
#[repr(C)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Points entries `keys` of a map of maps at the maps `objects`, in one
/// command: the kernel then waits for one RCU grace period for them all,
/// where single updates wait for one each.
pub fn set_fd_entries(
    map: BorrowedFd<'_>,
    keys: &[u32],
    objects: &[BorrowedFd<'_>],
) -> io::Result<()> {
    if keys.len() != objects.len() {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    let values: Vec<u32> = objects.iter().map(|fd| fd.as_raw_fd() as u32).collect();
    let mut attr = BatchAttr {
        in_batch: 0,
        out_batch: 0,
        keys: keys.as_ptr() as u64,
        values: values.as_ptr() as u64,
        count: keys.len() as u32,
        map_fd: map.as_raw_fd() as u32,
        elem_flags: 0,
        flags: 0,
    };
    // SAFETY: attr is a valid bpf_attr prefix for BPF_MAP_UPDATE_BATCH;
    // `keys` and `values` hold `count` 4-byte entries each and outlive the
    // call; the kernel writes only `count` back into attr.
    unsafe { bpf(BPF_MAP_UPDATE_BATCH, &mut attr) }.map(drop)
}

const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// The `bpf_attr` layout of BPF_OBJ_GET_INFO_BY_FD.
#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The interface a TCX or XDP link is attached to; 0 once its device is
/// gone (the kernel detaches the link then).
pub fn link_ifindex(link: BorrowedFd<'_>) -> io::Result<u32> {
    // struct bpf_link_info: type, id, prog_id, then (8-aligned) the
    // union whose tcx and xdp members start with the ifindex.
    let mut info = [0u64; 8];
    let mut attr = InfoAttr {
        bpf_fd: link.as_raw_fd() as u32,
        info_len: size_of::<[u64; 8]>() as u32,
        info: info.as_mut_ptr() as u64,
    };
    // SAFETY: attr is a valid bpf_attr prefix for BPF_OBJ_GET_INFO_BY_FD;
    // the kernel writes at most info_len bytes into `info`, alive for the
    // call.
    unsafe { bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }?;
    Ok(info[2] as u32)
}
