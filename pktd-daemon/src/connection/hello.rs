//! The hello exchange that opens every connection: the client's magic and
//! protocol version, checked with `Hello::check`, within a deadline.

use std::time::Duration;

use pktd_proto::{Connection, ErrorCode, PROTOCOL_VERSION, Reply};
use tokio::net::UnixStream;

use crate::policy::Peer;

/// How long a client may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads and answers the client's hello; false when the connection is to
/// be dropped (the client was told why, if it can still be told).
pub(super) async fn hello(connection: &mut Connection<UnixStream>, peer: &Peer) -> bool {
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, connection.read_hello()).await {
        Ok(Ok(Some(hello))) => hello,
        Ok(Ok(None)) => return false,
        Ok(Err(err)) => {
            refuse(connection, ErrorCode::BadHello, format!("bad hello: {err}")).await;
            return false;
        }
        Err(_) => {
            let message = format!("no hello within {} s", HELLO_TIMEOUT.as_secs());
            refuse(connection, ErrorCode::BadHello, message).await;
            return false;
        }
    };
    if let Err(code) = hello.check() {
        let message = match code {
            ErrorCode::UnsupportedVersion => format!(
                "protocol version {} is not supported; this daemon speaks {PROTOCOL_VERSION}",
                hello.version
            ),
            _ => "not a pktd client (bad magic)".to_owned(),
        };
        refuse(connection, code, message).await;
        return false;
    }
    tracing::debug!(
        uid = peer.uid,
        pid = peer.pid,
        client = hello.client,
        "hello"
    );
    connection
        .write_reply(&Reply::HelloAck {
            version: PROTOCOL_VERSION,
            daemon: format!("pktd {}", env!("CARGO_PKG_VERSION")),
        })
        .await
        .is_ok()
}

/// Tells a client why its hello was refused, if it still listens.
async fn refuse(connection: &mut Connection<UnixStream>, code: ErrorCode, message: String) {
    let _ = connection
        .write_reply(&Reply::Error { code, message })
        .await;
}
