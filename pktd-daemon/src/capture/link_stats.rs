//! The interface's own packet counters, as the kernel keeps them: unlike
//! the program's, they outlive the daemon, so two readings around a
//! restart bound what it may have lost.
//!
//! They are read from `/proc/thread-self/net/dev`, opened once on a thread
//! in the interface's namespace: the file keeps that namespace's view
//! after the thread has left it, so reading it again takes no namespace
//! switch (one `pread`, no disk). A namespace can hold thousands of
//! interfaces, and any client may ask for its counters as often as it
//! likes: a reading is kept for [`FRESH_FOR`] and shared.

use std::{
    fs::File,
    io,
    os::unix::fs::FileExt as _,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::sync::lock;

/// The most bytes of the table read (about 150 bytes per interface).
const MAX_TABLE: usize = 1 << 20;

/// How long a reading serves.
const FRESH_FOR: Duration = Duration::from_millis(100);

/// One interface's line of its namespace's `net/dev` table.
#[derive(Debug)]
pub struct LinkStats {
    table: File,
    interface: String,
    /// The last reading and when it was made.
    last: Mutex<Option<(Instant, Packets)>>,
}

/// Packets received and sent, when the table had the interface.
type Packets = Option<(u64, u64)>;

impl LinkStats {
    /// Opens the table; call it on a thread in the interface's namespace.
    pub fn open(interface: &str) -> io::Result<Self> {
        Ok(Self {
            table: File::open("/proc/thread-self/net/dev")?,
            interface: interface.to_owned(),
            last: Mutex::new(None),
        })
    }

    /// Packets the interface has received and sent, as of at most
    /// [`FRESH_FOR`] ago; `None` when it is gone or the table cannot be
    /// read.
    pub fn packets(&self) -> Packets {
        let mut last = lock(&self.last);
        match *last {
            Some((at, packets)) if at.elapsed() < FRESH_FOR => packets,
            _ => {
                let packets = self.read();
                *last = Some((Instant::now(), packets));
                packets
            }
        }
    }

    fn read(&self) -> Packets {
        let mut table = Vec::new();
        let mut chunk = vec![0u8; 16 * 1024];
        while table.len() < MAX_TABLE {
            match self.table.read_at(&mut chunk, table.len() as u64) {
                Ok(0) => break,
                Ok(n) => table.extend_from_slice(&chunk[..n]),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        parse(&String::from_utf8_lossy(&table), &self.interface)
    }
}

/// `interface`'s received and sent packets in a `net/dev` table:
/// `name: rx_bytes rx_packets ... (8 fields) tx_bytes tx_packets ...`.
fn parse(table: &str, interface: &str) -> Option<(u64, u64)> {
    table.lines().skip(2).find_map(|line| {
        let (name, fields) = line.split_once(':')?;
        if name.trim() != interface {
            return None;
        }
        let fields: Vec<u64> = fields
            .split_whitespace()
            .map(|field| field.parse().ok())
            .collect::<Option<_>>()?;
        Some((*fields.get(1)?, *fields.get(9)?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_interface_line() {
        let table = "Inter-|   Receive                                                |  Transmit\n \
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0\n  \
veth0: 9000000  123456    0    0    0     0          0         5  7000000   65432    0    0    0     0       0          0\n";
        assert_eq!(parse(table, "veth0"), Some((123_456, 65_432)));
        assert_eq!(parse(table, "lo"), Some((2, 2)));
        assert_eq!(parse(table, "veth"), None);
        assert_eq!(parse("", "lo"), None);
    }

    #[test]
    fn reads_this_namespace() {
        let stats = LinkStats::open("lo").unwrap();
        let (received, sent) = stats.packets().expect("lo is there");
        // Loopback counts what it sends as received too.
        assert_eq!(received, sent);
        assert!(LinkStats::open("no-such-if0").unwrap().packets().is_none());
    }
}
