//! bpf(2) commands aya 0.14 does not offer: deleting from maps of maps and
//! program arrays, pointing a program-array entry at a program, and loading
//! the daemon's own generated programs with the verifier's log.

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

const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_PROG_LOAD: libc::c_long = 5;

/// Deletes `key` from an array-of-maps or program array (aya 0.14 has no
/// delete for them), so the kernel drops its reference to the entry.
pub fn delete_map_entry(map: BorrowedFd<'_>, key: u32) -> io::Result<()> {
    map_elem(BPF_MAP_DELETE_ELEM, map, key, None)
}

/// Points entry `key` of a program array at the program `program`.
pub fn set_program_array_entry(
    map: BorrowedFd<'_>,
    key: u32,
    program: BorrowedFd<'_>,
) -> io::Result<()> {
    map_elem(
        BPF_MAP_UPDATE_ELEM,
        map,
        key,
        Some(program.as_raw_fd() as u32),
    )
}

/// A BPF_MAP_*_ELEM command on a map with u32 keys and (if any) u32 values.
fn map_elem(
    command: libc::c_long,
    map: BorrowedFd<'_>,
    key: u32,
    value: Option<u32>,
) -> io::Result<()> {
    let attr = MapElemAttr {
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
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            command,
            std::ptr::from_ref(&attr),
            size_of::<MapElemAttr>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
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
    use std::os::fd::FromRawFd;
    let license = c"GPL";
    let mut prog_name = [0u8; 16];
    for (to, from) in prog_name.iter_mut().zip(name.bytes().take(15)) {
        *to = from;
    }
    let (log_level, log_size, log_buf) = match log {
        Some(log) => (1, log.len() as u32, log.as_mut_ptr() as u64),
        None => (0, 0, 0),
    };
    let attr = ProgLoadAttr {
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
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            std::ptr::from_ref(&attr),
            size_of::<ProgLoadAttr>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this new fd, owned by nobody else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}
