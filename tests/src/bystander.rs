//! A bystander: a root session on a lab's capture interface receiving a
//! steady trickle of its own frames while a test attacks the daemon. It
//! must receive every one of them, on time.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use libwire::Direction;

use crate::{corpus::numbered_udp_frame, netlab::Lab};

/// The port the bystander's frames go to.
pub const BYSTANDER_PORT: u16 = 9999;
/// One frame every this long.
const EVERY: Duration = Duration::from_millis(5);

/// A running bystander.
pub struct Bystander {
    sending: Arc<AtomicBool>,
    sender: JoinHandle<u64>,
    reader: tokio::task::JoinHandle<(libwire::Capture, Vec<Instant>)>,
}

/// What the bystander saw.
#[derive(Debug)]
pub struct Report {
    /// Frames sent to it.
    pub sent: u64,
    /// Frames it received.
    pub received: u64,
    /// Drops its counters show.
    pub dropped: u64,
    /// The longest wait between two of its frames.
    pub longest_gap: Duration,
}

impl Bystander {
    /// Opens the bystander's capture through `socket` (as the caller,
    /// root, reading its ring in place) and starts the trickle.
    pub async fn start(lab: &Lab, socket: &Path) -> Self {
        Self::start_on(lab, socket, BYSTANDER_PORT, true).await
    }

    /// [`Bystander::start`] with frames to `port`, read in place or
    /// through the daemon as `zero_copy` says.
    pub async fn start_on(lab: &Lab, socket: &Path, port: u16, zero_copy: bool) -> Self {
        let mut capture = libwire::CaptureBuilder::new(&lab.capture_if)
            .socket(socket)
            .netns(&lab.capture_ns)
            .direction(Direction::In)
            .filter(format!("udp dst port {port}"))
            .zero_copy(zero_copy)
            .open()
            .await
            .expect("the bystander opens");
        assert_eq!(capture.zero_copy(), zero_copy, "the bystander's path");
        let sending = Arc::new(AtomicBool::new(true));
        let sender = {
            let (sender, sending) = (lab.sender(), sending.clone());
            std::thread::spawn(move || {
                let mut sequence = 0;
                while sending.load(Ordering::Relaxed) {
                    sender.send(&numbered_udp_frame(port, sequence, 40));
                    sequence += 1;
                    std::thread::sleep(EVERY);
                }
                sequence
            })
        };
        let reader = tokio::spawn(async move {
            let mut arrivals = Vec::new();
            while let Ok(Ok(Some(_))) =
                tokio::time::timeout(Duration::from_secs(2), capture.next_packet()).await
            {
                arrivals.push(Instant::now());
            }
            (capture, arrivals)
        });
        Self {
            sending,
            sender,
            reader,
        }
    }

    /// Stops the trickle and reports once the last frame is in.
    pub async fn finish(self) -> Report {
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.sending.store(false, Ordering::Relaxed);
        let sent = self.sender.join().expect("the bystander's sender");
        let (mut capture, arrivals) = self.reader.await.expect("the bystander's reader");
        let stats = capture.stats().await.expect("the bystander's counters");
        let longest_gap = arrivals
            .windows(2)
            .map(|pair| pair[1] - pair[0])
            .max()
            .unwrap_or_default();
        Report {
            sent,
            received: arrivals.len() as u64,
            dropped: stats.dropped,
            longest_gap,
        }
    }

    /// [`Bystander::finish`], asserting that nothing was lost nor late
    /// by more than `max_gap`.
    pub async fn finish_whole(self, max_gap: Duration) -> Report {
        let report = self.finish().await;
        assert_eq!(
            report.received, report.sent,
            "the bystander lost frames: {report:?}"
        );
        assert_eq!(
            report.dropped, 0,
            "the bystander's ring dropped: {report:?}"
        );
        assert!(
            report.longest_gap < max_gap,
            "the bystander waited too long for a frame: {report:?}"
        );
        report
    }
}
