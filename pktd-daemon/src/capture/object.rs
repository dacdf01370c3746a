//! The kernel program's object: loading the embedded ELF into the kernel,
//! its maps resolved once by the names in `pktd_common::names`, and typed
//! access to its programs.

use std::os::fd::{AsFd, OwnedFd};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, ArrayOfMaps, Map, MapData, PerCpuArray, RingBuf},
    programs::{SchedClassifier, Xdp},
    util::nr_cpus,
};
use pktd_common::{
    ClientConfig, ClientCounters, ClientUsage, FilterProgram, Globals, InterfaceCounters, jump,
    names,
};

use super::error::CaptureError;
use crate::sys;

/// The compiled kernel program, embedded at build time.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/pktd-ebpf"));

/// The object's maps, typed, plus second fds for the raw operations aya
/// 0.14 does not offer.
pub(super) struct Maps {
    pub globals: Array<MapData, Globals>,
    pub clients: Array<MapData, ClientConfig>,
    pub filters: ArrayOfMaps<MapData, Array<MapData, FilterProgram>>,
    pub rings: ArrayOfMaps<MapData, RingBuf<MapData>>,
    /// Second fds of `filters` and `rings`, for deleting entries (aya 0.14's
    /// ArrayOfMaps can set but not delete).
    pub filters_fd: OwnedFd,
    pub rings_fd: OwnedFd,
    /// PKTD_JUMP, PKTD_XDP_JUMP and PKTD_VERDICTS, for the native programs.
    pub jump_fd: OwnedFd,
    pub xdp_jump_fd: OwnedFd,
    pub verdicts_fd: OwnedFd,
    pub counters: PerCpuArray<MapData, ClientCounters>,
    pub usage: Array<MapData, ClientUsage>,
    pub interface: PerCpuArray<MapData, InterfaceCounters>,
}

/// Loads the object and its TC programs (XDP's are loaded on demand, see
/// [`load_xdp`]), checks that every map pktd-common names exists, and
/// installs TC delivery.
pub(super) fn load() -> Result<(Ebpf, Maps), CaptureError> {
    let mut ebpf = EbpfLoader::new()
        .load(EBPF_OBJECT)
        .map_err(|source| CaptureError::Load { source })?;
    for name in names::ALL_MAPS {
        ebpf.map(name).ok_or(CaptureError::Missing { name })?;
    }
    let maps = Maps {
        filters_fd: map_fd(&ebpf, names::MAP_FILTERS)?,
        rings_fd: map_fd(&ebpf, names::MAP_RINGS)?,
        jump_fd: map_fd(&ebpf, names::MAP_JUMP)?,
        xdp_jump_fd: map_fd(&ebpf, names::MAP_XDP_JUMP)?,
        verdicts_fd: map_fd(&ebpf, names::MAP_VERDICTS)?,
        filters: typed_map(&mut ebpf, names::MAP_FILTERS)?,
        rings: typed_map(&mut ebpf, names::MAP_RINGS)?,
        globals: typed_map(&mut ebpf, names::MAP_GLOBALS)?,
        clients: typed_map(&mut ebpf, names::MAP_CLIENTS)?,
        counters: typed_map(&mut ebpf, names::MAP_COUNTERS)?,
        usage: typed_map(&mut ebpf, names::MAP_USAGE)?,
        interface: typed_map(&mut ebpf, names::MAP_INTERFACE)?,
    };
    for name in names::TC_PROGRAMS {
        classifier(&mut ebpf, name)?
            .load()
            .map_err(program_error("loading", name))?;
    }
    let deliver = classifier(&mut ebpf, names::PROG_DELIVER)?
        .fd()
        .map_err(program_error("finding", names::PROG_DELIVER))?;
    sys::set_program_array_entry(maps.jump_fd.as_fd(), jump::DELIVER, deliver.as_fd()).map_err(
        |source| CaptureError::Io {
            operation: "installing the delivery program",
            source,
        },
    )?;
    Ok((ebpf, maps))
}

/// Loads the XDP programs (once) and installs XDP delivery.
pub(super) fn load_xdp(ebpf: &mut Ebpf, maps: &Maps) -> Result<(), CaptureError> {
    for name in names::XDP_PROGRAMS {
        let program = xdp_program(ebpf, name)?;
        if program.fd().is_ok() {
            continue;
        }
        program.load().map_err(program_error("loading", name))?;
    }
    let deliver = xdp_program(ebpf, names::PROG_XDP_DELIVER)?
        .fd()
        .map_err(program_error("finding", names::PROG_XDP_DELIVER))?;
    sys::set_program_array_entry(maps.xdp_jump_fd.as_fd(), jump::DELIVER, deliver.as_fd()).map_err(
        |source| CaptureError::Io {
            operation: "installing the XDP delivery program",
            source,
        },
    )
}

/// The number of possible CPUs (per-CPU maps have a value for each).
pub(super) fn possible_cpus() -> Result<usize, CaptureError> {
    nr_cpus().map_err(|(_, source)| CaptureError::Io {
        operation: "counting possible CPUs",
        source,
    })
}

fn typed_map<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, CaptureError>
where
    T: TryFrom<Map, Error = aya::maps::MapError>,
{
    let map = ebpf.take_map(name).ok_or(CaptureError::Missing { name })?;
    T::try_from(map).map_err(map_error("opening", name))
}

/// A second fd of map `name` (kept for raw map operations aya does not
/// offer).
fn map_fd(ebpf: &Ebpf, name: &'static str) -> Result<OwnedFd, CaptureError> {
    let data = match ebpf.map(name).ok_or(CaptureError::Missing { name })? {
        Map::ArrayOfMaps(data) | Map::ProgramArray(data) | Map::PerCpuArray(data) => data,
        _ => return Err(CaptureError::Missing { name }),
    };
    duplicate(data.fd().as_fd())
}

/// A second fd of the same map.
pub(super) fn duplicate(fd: std::os::fd::BorrowedFd<'_>) -> Result<OwnedFd, CaptureError> {
    fd.try_clone_to_owned().map_err(|source| CaptureError::Io {
        operation: "duplicating a map fd",
        source,
    })
}

pub(super) fn xdp_program<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut Xdp, CaptureError> {
    program_mut(ebpf, name)
}

pub(super) fn classifier<'a>(
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
