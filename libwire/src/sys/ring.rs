//! A BPF ring buffer mapped into the client (kernel/bpf/ringbuf.c): the
//! consumer page read-write, the producer page and the data read-only,
//! the data mapped twice in a row so that a record that wraps around the
//! end reads as one slice.

use std::{
    io,
    os::fd::{AsFd, AsRawFd as _, BorrowedFd, OwnedFd},
    ptr::NonNull,
    sync::atomic::{AtomicU32, AtomicUsize, Ordering},
};

use rustix::mm::{MapFlags, ProtFlags, mmap, munmap};

/// A ring buffer's mappings.
pub(crate) struct RingMap {
    /// The consumer page (read-write): the consumer position first.
    consumer: NonNull<u8>,
    /// The producer page (the producer position first) and, a page
    /// further, the data twice.
    producer: NonNull<u8>,
    page: usize,
    /// Size of the data area, a power of two.
    size: usize,
    /// Keeps the ring alive while mapped (the mappings would too).
    _fd: OwnedFd,
}

// SAFETY: the mappings are plain shared memory, reached only through
// atomics and shared slices; nothing ties them to a thread.
unsafe impl Send for RingMap {}
// SAFETY: as above; every method takes `&self` and reads, except
// `set_consumer_pos`, an atomic store.
unsafe impl Sync for RingMap {}

impl RingMap {
    /// Maps the ring buffer `fd`, whose data area is `size` bytes.
    pub fn new(fd: OwnedFd, size: usize) -> io::Result<Self> {
        let page = rustix::param::page_size();
        if !size.is_power_of_two() || size < page {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a ring of {size} bytes (a power of two of at least a page expected)"),
            ));
        }
        check_ring(fd.as_fd(), size)?;
        let producer_len = page + 2 * size;
        // SAFETY: a new shared mapping the kernel places; nothing else in
        // this process refers to it. The kernel refuses anything but the
        // ring's layout (the consumer page writable, the rest read-only).
        let consumer = unsafe {
            mmap(
                std::ptr::null_mut(),
                page,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd.as_fd(),
                0,
            )
        }?;
        // SAFETY: as above, at the producer page's offset.
        let producer = match unsafe {
            mmap(
                std::ptr::null_mut(),
                producer_len,
                ProtFlags::READ,
                MapFlags::SHARED,
                fd.as_fd(),
                page as u64,
            )
        } {
            Ok(producer) => producer,
            Err(err) => {
                // SAFETY: the consumer mapping just made, used by nothing.
                let _ = unsafe { munmap(consumer, page) };
                return Err(err.into());
            }
        };
        Ok(Self {
            consumer: NonNull::new(consumer.cast()).expect("mmap succeeded"),
            producer: NonNull::new(producer.cast()).expect("mmap succeeded"),
            page,
            size,
            _fd: fd,
        })
    }

    /// Size of the data area.
    pub fn size(&self) -> usize {
        self.size
    }

    fn word(&self, base: NonNull<u8>) -> &AtomicUsize {
        // SAFETY: the first word of a mapped page, which the kernel keeps
        // as an `unsigned long` position; page-aligned, so aligned.
        unsafe { base.cast::<AtomicUsize>().as_ref() }
    }

    /// The consumer position this process last published.
    pub fn consumer_pos(&self) -> usize {
        self.word(self.consumer).load(Ordering::Acquire)
    }

    /// Publishes the consumer position: the kernel may reuse everything
    /// before it.
    pub fn set_consumer_pos(&self, pos: usize) {
        self.word(self.consumer).store(pos, Ordering::Release);
    }

    /// The producer position: records up to it have been reserved.
    pub fn producer_pos(&self) -> usize {
        self.word(self.producer).load(Ordering::Acquire)
    }

    /// The first word of the record header at `pos` (its length and the
    /// busy and discard bits), read with acquire: once the busy bit is
    /// clear, the record's bytes are visible.
    pub fn header_word(&self, pos: usize) -> u32 {
        let offset = pos & (self.size - 1);
        // SAFETY: offset < size, and the data area (mapped twice) holds
        // 2 * size bytes from `page`; record headers are 8-byte aligned.
        unsafe {
            self.producer
                .add(self.page + offset)
                .cast::<AtomicU32>()
                .as_ref()
                .load(Ordering::Acquire)
        }
    }

    /// `len` bytes of the data area from position `pos` (wrapping: the
    /// second mapping continues the first). `None` past one ring's worth.
    pub fn bytes(&self, pos: usize, len: usize) -> Option<&[u8]> {
        let offset = pos & (self.size - 1);
        if len > self.size {
            return None;
        }
        // SAFETY: offset + len <= 2 * size, inside the double mapping,
        // which lives as long as `self`. The kernel writes these bytes
        // only once the consumer position has passed them, which only
        // the owner of this map does, after the slice's borrow ends.
        Some(unsafe {
            std::slice::from_raw_parts(self.producer.add(self.page + offset).as_ptr(), len)
        })
    }
}

impl Drop for RingMap {
    fn drop(&mut self) {
        // SAFETY: the two mappings `new` made, with their lengths; no
        // slice of them outlives `self`.
        unsafe {
            let _ = munmap(self.consumer.as_ptr().cast(), self.page);
            let _ = munmap(self.producer.as_ptr().cast(), self.page + 2 * self.size);
        }
    }
}

/// Checks with the kernel that `fd` is a BPF ring buffer whose data area
/// is `size` bytes, before it is mapped: a descriptor from a peer that is
/// not the daemon (a file shorter than the mapping, say) would otherwise
/// kill the client with SIGBUS on its first read. Asking about one's own
/// descriptor needs no privilege.
fn check_ring(fd: BorrowedFd<'_>, size: usize) -> io::Result<()> {
    /// `BPF_OBJ_GET_INFO_BY_FD`.
    const OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    /// `BPF_MAP_TYPE_RINGBUF`.
    const MAP_TYPE_RINGBUF: u32 = 27;
    /// The start of `struct bpf_map_info`; the kernel fills what fits.
    #[repr(C)]
    #[derive(Default)]
    struct MapInfo {
        map_type: u32,
        id: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
    }
    /// `bpf_attr` as `BPF_OBJ_GET_INFO_BY_FD` reads it.
    #[repr(C)]
    struct InfoAttr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    let mut info = MapInfo::default();
    // The kernel writes `info_len` back: a mutable attribute.
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of::<MapInfo>() as u32,
        info: std::ptr::from_mut(&mut info) as u64,
    };
    // SAFETY: `attr` is a valid, writable bpf_attr of the size passed,
    // naming a buffer of `info_len` writable bytes that outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            OBJ_GET_INFO_BY_FD,
            std::ptr::from_mut(&mut attr),
            std::mem::size_of::<InfoAttr>(),
        )
    };
    if rc != 0 || info.map_type != MAP_TYPE_RINGBUF || info.max_entries as usize != size {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the descriptor received is not a BPF ring buffer of {size} bytes"),
        ));
    }
    Ok(())
}

/// Registers a ring's descriptor with the tokio reactor: readable when
/// the kernel has woken its reader. Call it inside a runtime.
pub(crate) fn register_ring(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd owns the descriptor for its whole life, and an
    // OwnedFd's as_raw_fd returns that same descriptor on every call.
    unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[test]
    fn a_descriptor_that_is_not_a_ring_buffer_is_not_mapped() {
        let page = rustix::param::page_size();
        // A file shorter than the mapping: reading it would raise SIGBUS.
        let path = std::env::temp_dir().join(format!("libwire-not-a-ring-{}", std::process::id()));
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(&[0; 16]).unwrap();
        let _ = std::fs::remove_file(&path);
        let zero = std::fs::File::open("/dev/zero").unwrap();
        for fd in [OwnedFd::from(file), OwnedFd::from(zero)] {
            let err = RingMap::new(fd, 4 * page).err().expect("refused");
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        }
    }
}
