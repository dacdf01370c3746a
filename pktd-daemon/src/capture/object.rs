//! The kernel program's object, loaded into the kernel once per process
//! and shared by every attachment: its maps resolved once by the names in
//! `pktd_common::names`, and its programs. Each attachment's own entries
//! in the maps are `lease.rs`'s.
//!
//! Verifying the programs takes seconds (the delivery program alone some
//! 250,000 instructions); an attachment takes milliseconds, because all it
//! loads is its entry program (`pktd_translate::entry`).

use std::{
    os::fd::{AsFd, BorrowedFd, OwnedFd},
    sync::{Arc, Mutex, PoisonError},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Map, MapData},
    programs::{SchedClassifier, Xdp},
    util::nr_cpus,
};
use pktd_common::{jump, names};

use super::{error::CaptureError, kernel_log::KernelLog};
use crate::sys;

/// The compiled kernel program, embedded at build time.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/pktd-ebpf"));

/// The process's one copy, once loaded.
static KERNEL: Mutex<Option<Arc<Kernel>>> = Mutex::new(None);

/// The shared programs and maps.
pub(super) struct Kernel {
    /// The object: its programs (the XDP ones loaded on demand).
    ebpf: Mutex<Ebpf>,
    /// A second fd of each map, by name.
    maps: Vec<(&'static str, OwnedFd)>,
    /// `pktd_empty`, for benchmarks.
    empty: OwnedFd,
    log: Mutex<KernelLog>,
}

impl Kernel {
    /// The process's copy, loaded (with its TC programs) on first use.
    /// Blocking: the first call runs the verifier for seconds; calls
    /// meanwhile wait for it.
    pub fn shared() -> Result<Arc<Self>, CaptureError> {
        let mut kernel = KERNEL.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(kernel) = &*kernel {
            return Ok(kernel.clone());
        }
        let loaded = Arc::new(Self::load()?);
        *kernel = Some(loaded.clone());
        Ok(loaded)
    }

    /// Loads the object and its TC programs (XDP's are loaded on demand,
    /// see [`Kernel::load_xdp`]), checks that every map pktd-common names
    /// exists, and installs the shared TC programs in the program array.
    fn load() -> Result<Self, CaptureError> {
        // The programs pass a packet's state from one tail call to the
        // next in per-CPU values, as every attachment shares them: sound
        // while the network hooks' programs do not interleave on a CPU,
        // which PREEMPT_RT kernels no longer promise everywhere.
        if std::fs::read_to_string("/sys/kernel/realtime").is_ok_and(|on| on.trim() == "1") {
            tracing::warn!(
                "a PREEMPT_RT kernel: pktd assumes that packets' programs do not interleave on a \
                 CPU, which such a kernel may break (see docs/security.md)"
            );
        }
        let mut ebpf = EbpfLoader::new()
            .load(EBPF_OBJECT)
            .map_err(|source| CaptureError::Load { source })?;
        let mut maps = Vec::new();
        for name in names::ALL_MAPS {
            let data = match ebpf.map(name).ok_or(CaptureError::Missing { name })? {
                Map::Array(data)
                | Map::ArrayOfMaps(data)
                | Map::ProgramArray(data)
                | Map::PerCpuArray(data) => data,
                _ => return Err(CaptureError::Missing { name }),
            };
            maps.push((name, duplicate(data.fd().as_fd())?));
        }
        for name in names::TC_PROGRAMS {
            classifier(&mut ebpf, name)?
                .load()
                .map_err(program_error("loading", name))?;
        }
        let program_fd = |ebpf: &mut Ebpf, name| -> Result<OwnedFd, CaptureError> {
            let fd = classifier(ebpf, name)?
                .fd()
                .map_err(program_error("finding", name))?
                .as_fd()
                .try_clone_to_owned();
            fd.map_err(|source| CaptureError::Io {
                operation: "duplicating a program fd",
                source,
            })
        };
        let empty = program_fd(&mut ebpf, names::PROG_EMPTY)?;
        let log = KernelLog::take(&mut ebpf);
        let kernel = Self {
            maps,
            empty,
            log: Mutex::new(log),
            ebpf: Mutex::new(ebpf),
        };
        {
            let mut ebpf = kernel.lock_ebpf();
            for (entry, name) in [
                (jump::CLASSIFY, names::PROG_INGRESS),
                (jump::CLASSIFY_EGRESS, names::PROG_EGRESS),
                (jump::DELIVER, names::PROG_DELIVER),
            ] {
                let program = program_fd(&mut ebpf, name)?;
                kernel.install(names::MAP_JUMP, entry, program.as_fd())?;
            }
        }
        Ok(kernel)
    }

    /// Loads the XDP programs (once) and installs them in the XDP program
    /// array. Blocking: the first call runs the verifier for seconds.
    pub fn load_xdp(&self) -> Result<(), CaptureError> {
        let mut ebpf = self.lock_ebpf();
        for (entry, name) in [
            (jump::CLASSIFY, names::PROG_XDP),
            (jump::DELIVER, names::PROG_XDP_DELIVER),
        ] {
            let program = xdp_program(&mut ebpf, name)?;
            if program.fd().is_ok() {
                continue;
            }
            program.load().map_err(program_error("loading", name))?;
            let fd = program.fd().map_err(program_error("finding", name))?;
            self.install(names::MAP_XDP_JUMP, entry, fd.as_fd())?;
        }
        Ok(())
    }

    fn install(
        &self,
        map: &'static str,
        entry: u32,
        program: BorrowedFd<'_>,
    ) -> Result<(), CaptureError> {
        sys::set_fd_entry(self.map(map)?, entry, program).map_err(|source| CaptureError::Io {
            operation: "installing a shared program",
            source,
        })
    }

    fn lock_ebpf(&self) -> std::sync::MutexGuard<'_, Ebpf> {
        self.ebpf.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The shared map `name`.
    pub fn map(&self, name: &'static str) -> Result<BorrowedFd<'_>, CaptureError> {
        self.maps
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, fd)| fd.as_fd())
            .ok_or(CaptureError::Missing { name })
    }

    /// The program that does nothing.
    pub fn empty_program(&self) -> BorrowedFd<'_> {
        self.empty.as_fd()
    }

    /// Forwards the kernel program's log records as they arrive, from a
    /// task on the current tokio runtime, if there is one and no task does
    /// it yet.
    pub fn start_log(&self) {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .start();
    }

    /// Forwards the log records waiting, if no task does.
    pub fn flush_log(&self) {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flush();
    }
}

/// Map `fd` through a new fd, as aya type `T`.
pub(super) fn reopen<T>(
    fd: BorrowedFd<'_>,
    name: &'static str,
    variant: fn(MapData) -> Map,
) -> Result<T, CaptureError>
where
    T: TryFrom<Map, Error = aya::maps::MapError>,
{
    let data = MapData::from_fd(duplicate(fd)?).map_err(map_error("reopening", name))?;
    T::try_from(variant(data)).map_err(map_error("opening", name))
}

/// The number of possible CPUs (per-CPU maps have a value for each).
pub(super) fn possible_cpus() -> Result<usize, CaptureError> {
    nr_cpus().map_err(|(_, source)| CaptureError::Io {
        operation: "counting possible CPUs",
        source,
    })
}

/// A second fd of the same map.
pub(super) fn duplicate(fd: BorrowedFd<'_>) -> Result<OwnedFd, CaptureError> {
    fd.try_clone_to_owned().map_err(|source| CaptureError::Io {
        operation: "duplicating a map fd",
        source,
    })
}

fn xdp_program<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut Xdp, CaptureError> {
    program_mut(ebpf, name)
}

fn classifier<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut SchedClassifier, CaptureError> {
    program_mut(ebpf, name)
}

/// Program `name` of the object, as aya type `P`.
fn program_mut<'a, P>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut P, CaptureError>
where
    &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(CaptureError::Missing { name })?
        .try_into()
        .map_err(program_error("finding", name))
}

pub(super) fn map_error(
    operation: &'static str,
    map: &'static str,
) -> impl FnOnce(aya::maps::MapError) -> CaptureError {
    move |source| CaptureError::Map {
        operation,
        map,
        source,
    }
}

pub(super) fn program_error(
    operation: &'static str,
    program: &'static str,
) -> impl FnOnce(aya::programs::ProgramError) -> CaptureError {
    move |source| CaptureError::Program {
        operation,
        program,
        source,
    }
}
