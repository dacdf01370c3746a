//! Every system call pktd makes that std, tokio and aya do not wrap, one
//! file per subsystem. This is the only module of the daemon with `unsafe`
//! code; every block says why it is sound.

mod bpf;
mod link;
mod listen;
mod netns;
mod packet;
mod rights;
mod ring;
mod sandbox;
mod time;

pub use bpf::{
    LinkTarget, delete_map_entry, link_create, link_ifindex, load_program, set_fd_entries,
    set_fd_entry, test_run,
};
pub use link::{
    interface_addresses, interface_driver, interface_hwaddr, interface_index, interface_mtu,
    interfaces,
};
pub use listen::adopt_listener;
pub use netns::enter_netns;
pub use packet::{packet_send, packet_socket};
pub use rights::send_with_fd;
pub use ring::{register_log, register_ring};
pub use sandbox::{Limit, drop_privileges, is_root, raise_open_files, set_limit};
pub use time::realtime_minus_tai_ns;
