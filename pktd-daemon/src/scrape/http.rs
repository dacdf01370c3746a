//! `pktd --metrics ADDR`: the metrics over HTTP (hyper), for Prometheus.
//!
//! The metrics name every session's uid, principal and interface, which a
//! local user's policy does not grant it: every scrape must carry the
//! bearer token of `--metrics-token-file` (a file only pktd may read;
//! Prometheus's `authorization: {credentials_file: …}`), compared in
//! constant time. Whoever can connect costs the daemon little: at most
//! [`PER_ADDRESS`] connections from one address and [`MAX_SCRAPERS`] in
//! all (others are closed at once), a request's head within
//! [`HEAD_TIMEOUT`], one request per connection, and the scrape itself on
//! a blocking thread. A client that holds its address's connections open
//! delays the scrapes from that address only: Prometheus should reach
//! pktd from an address local users do not share (another host, the pod
//! network), not from 127.0.0.1.

use std::{
    collections::HashMap,
    convert::Infallible,
    net::{IpAddr, SocketAddr},
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Incoming, header, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::sync::CancellationToken;

use crate::{state::State, sync::blocking};

/// Connections served at once, in all.
pub const MAX_SCRAPERS: usize = 64;
/// Connections served at once from one address.
pub const PER_ADDRESS: usize = 2;
/// How long a connection has to send its request's head (Prometheus
/// sends it at once).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest token accepted.
const MAX_TOKEN: usize = 4096;

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Where and how the metrics are served.
#[derive(Clone, Debug)]
pub struct MetricsOptions {
    /// The TCP socket, bound already (an address in use is an error at
    /// start, before the daemon says it is ready).
    pub listener: Arc<std::net::TcpListener>,
    /// The bearer token scrapes must carry.
    pub token: Arc<[u8]>,
}

impl MetricsOptions {
    /// Reads the token from `path`: a file only pktd may read, of 16 to
    /// 4096 bytes (surrounding white space ignored); binds `addr`.
    pub fn new(addr: SocketAddr, path: &Path) -> Result<Self, String> {
        let bytes = crate::paths::read_private_file(path, MAX_TOKEN)
            .map_err(|err| format!("--metrics-token-file {}: {err}", path.display()))?;
        let token = String::from_utf8(bytes)
            .map_err(|_| format!("--metrics-token-file {}: not text", path.display()))?;
        let token = token.trim();
        if token.len() < 16 || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "--metrics-token-file {}: the token is 16 or more printable characters, \
                 without spaces",
                path.display()
            ));
        }
        let listener = std::net::TcpListener::bind(addr)
            .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
            .map_err(|err| format!("--metrics {addr}: {err}"))?;
        Ok(Self {
            listener: Arc::new(listener),
            token: Arc::from(token.as_bytes()),
        })
    }
}

/// Serves the metrics on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    token: Arc<[u8]>,
    state: Arc<State>,
    shutdown: CancellationToken,
) {
    let scrapers = Arc::new(Semaphore::new(MAX_SCRAPERS));
    let per_address: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, peer)) = accepted else {
            // Out of descriptors and the like: the next scrape retries.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        // Over a limit: closed at once.
        let Some(address) = AddressSlot::take(&per_address, peer.ip()) else {
            continue;
        };
        let Ok(permit) = scrapers.clone().try_acquire_owned() else {
            continue;
        };
        let (token, state) = (token.clone(), state.clone());
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let (token, state) = (token.clone(), state.clone());
                async move { Ok::<_, Infallible>(respond(&request, &token, state).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .keep_alive(false)
                .max_buf_size(16 * 1024)
                .serve_connection(TokioIo::new(stream), service);
            // A scrape's whole life is bounded too.
            tokio::select! {
                _ = tokio::time::timeout(HEAD_TIMEOUT * 4, connection) => {}
                () = shutdown.cancelled() => {}
            }
            drop(permit);
            drop(address);
        });
    }
}

/// One of an address's [`PER_ADDRESS`] connections, given back on drop.
struct AddressSlot {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    address: IpAddr,
}

impl AddressSlot {
    fn take(counts: &Arc<Mutex<HashMap<IpAddr, usize>>>, address: IpAddr) -> Option<Self> {
        let mut map = crate::sync::lock(counts);
        let count = map.entry(address).or_default();
        if *count >= PER_ADDRESS {
            return None;
        }
        *count += 1;
        Some(Self {
            counts: counts.clone(),
            address,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut map = crate::sync::lock(&self.counts);
        if let Some(count) = map.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.address);
            }
        }
    }
}

async fn respond(
    request: &Request<Incoming>,
    token: &[u8],
    state: Arc<State>,
) -> Response<Full<Bytes>> {
    let plain = |status: StatusCode, text: &'static str| {
        let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
        *response.status_mut() = status;
        response
    };
    if request.method() != hyper::Method::GET {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "GET /metrics\n");
    }
    if request.uri().path() != "/metrics" {
        return plain(StatusCode::NOT_FOUND, "GET /metrics\n");
    }
    let offered = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "));
    if !offered.is_some_and(|offered| same(offered, token)) {
        let mut response = plain(StatusCode::UNAUTHORIZED, "a bearer token is needed\n");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return response;
    }
    let text = blocking(move || super::encode(&state)).await;
    let mut response = Response::new(Full::new(Bytes::from(text)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(CONTENT_TYPE),
    );
    response
}

/// Whether `offered` equals `token`, in a time that depends on the
/// token's length only (not on what was offered, nor where it differs).
fn same(offered: &[u8], token: &[u8]) -> bool {
    let differ = token.iter().enumerate().fold(0u8, |diff, (i, byte)| {
        diff | (offered.get(i).copied().unwrap_or(!byte) ^ byte)
    });
    differ == 0 && offered.len() == token.len()
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn only_the_token_itself_is_the_same() {
        let token = b"0123456789abcdef";
        assert!(same(token, token));
        for offered in [
            &b"0123456789abcdeX"[..],
            b"0123456789abcde",
            b"0123456789abcdef0",
            b"",
        ] {
            assert!(!same(offered, token), "{offered:?}");
        }
    }
}
