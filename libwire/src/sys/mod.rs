//! Every system call libwire makes that std and tokio do not wrap. This is
//! the only module of libwire with `unsafe` code; every block says why it
//! is sound.

mod ring;
mod stream;
mod time;

pub(crate) use ring::{RingMap, register_ring};
pub(crate) use stream::FdStream;
pub(crate) use time::realtime_minus_tai_ns;
