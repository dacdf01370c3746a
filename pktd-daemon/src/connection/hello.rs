//! The hello exchange that opens every connection: the client's magic and
//! protocol version, checked with `Hello::check`, within a deadline.

use std::time::Duration;

use pktd_proto::{ErrorCode, PROTOCOL_VERSION, Reply};

use super::{refusal::Refusal, socket::ClientSocket};
use crate::policy::Peer;

/// Reads and answers the client's hello within `deadline`; false when the
/// connection is to be dropped (the client was told why, if it can still
/// be told).
pub(super) async fn hello(socket: &mut ClientSocket, peer: &Peer, deadline: Duration) -> bool {
    let hello = match tokio::time::timeout(deadline, socket.connection().read_hello()).await {
        Ok(Ok(Some(hello))) => hello,
        Ok(Ok(None)) => return false,
        Ok(Err(err)) => {
            refuse(socket, ErrorCode::BadHello, format!("bad hello: {err}")).await;
            return false;
        }
        Err(_) => {
            let message = format!("no hello within {} s", deadline.as_secs_f64());
            refuse(socket, ErrorCode::BadHello, message).await;
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
        refuse(socket, code, message).await;
        return false;
    }
    tracing::debug!(
        uid = peer.uid,
        pid = peer.pid,
        client = hello.client,
        "hello"
    );
    socket
        .send(&Reply::HelloAck {
            version: PROTOCOL_VERSION,
            daemon: format!("pktd {}", env!("CARGO_PKG_VERSION")),
        })
        .await
        .is_ok()
}

/// Tells a client why its hello was refused, if it still listens.
async fn refuse(socket: &mut ClientSocket, code: ErrorCode, message: String) {
    let _ = socket.send(&Refusal::Hello { code, message }.reply()).await;
}
