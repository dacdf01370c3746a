//! What captures and recordings share: the opening sequence, the drain,
//! the quota rule, and giving everything back.
//!
//! Opening a session, after [`crate::policy::grant`] has cut the request
//! to the rules: count it against the uid's `max_sessions`; compile the
//! client's filter (a helper process) and count it against
//! `max_filter_insns`; on a blocking thread, AND the filter with the
//! policy's and do the caller's preparation (a recording creates its first
//! file); wait for the uid's turn at the verifier (`crate::loads`) and, on
//! a blocking thread again, take a slot in the attachment (which loads
//! programs into the verifier); finally put the ring into the reactor and show the
//! session in the statistics. A failure at any step undoes the ones before.

mod drain;

use std::sync::Arc;

use pktd_anon::MacMode;
use pktd_common::ClientCounters;
use pktd_filter::{
    FilterError, ValidProgram, and_then, compile, confine, confine_to_headers, for_wire_view,
    header_prologue_len, map_addresses, validate,
};
use pktd_proto::{EndReason, FilterSpec, Stats};

pub use self::drain::Drain;
use crate::{
    capture::{
        Added, CaptureError, HandedRing, Registry, SlotCounters, SlotEngine, SlotRef, ring_gone,
    },
    compiler::CompileError,
    policy::{CaptureGrant, HeaderView, Peer},
    state::{SessionInfo, State},
    sync::blocking,
};

/// Why a session could not be opened, or its filter replaced.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The client's expression was not compiled.
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// The client's bytecode does not validate, or cannot be combined
    /// with the policy's filter.
    #[error(transparent)]
    Filter(FilterError),
    /// The policy's filter no longer compiles, or cannot be combined.
    #[error("the policy's filter")]
    PolicyFilter(#[source] FilterError),
    /// The uid has as many sessions as its principal allows.
    #[error("uid {uid} already has {count} sessions, the most principal {principal:?} allows")]
    Limit {
        /// The client's uid.
        uid: u32,
        /// Its sessions.
        count: u32,
        /// Its principal.
        principal: String,
    },
    /// The uid's filters would have more instructions together than its
    /// principal allows.
    #[error(
        "a filter of {insns} instructions: uid {uid}'s other sessions have {used}, \
         principal {principal:?} allows {max} in all (max_filter_insns)"
    )]
    FilterCost {
        /// The client's uid.
        uid: u32,
        /// The new filter's instructions.
        insns: u32,
        /// The instructions of the uid's other sessions' filters.
        used: u64,
        /// The principal's `max_filter_insns`.
        max: u32,
        /// Its principal.
        principal: String,
    },
    /// A reloaded policy allows the uid's filters fewer instructions than
    /// they have.
    #[error(
        "uid {uid}'s filters have more instructions than principal {principal:?} now allows \
         ({max}, max_filter_insns)"
    )]
    FilterCostLowered {
        /// The client's uid.
        uid: u32,
        /// The principal's new `max_filter_insns`.
        max: u32,
        /// Its principal.
        principal: String,
    },
    /// A reload changed the anonymization of the session's principal.
    #[error(
        "the policy changed how principal {principal:?} is anonymized (its key or options): \
         a session keeps one mapping, so it ends"
    )]
    AnonymizationChanged {
        /// Its principal.
        principal: String,
    },
    /// The capture path failed.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// The ring could not be put into the reactor.
    #[error("polling the ring buffer")]
    Ring(#[source] std::io::Error),
}

/// A running session: a slot in an attachment, its ring drained, counted
/// against its uid until it is closed.
pub struct Session {
    id: u64,
    peer: Peer,
    state: Arc<State>,
    grant: CaptureGrant,
    /// The client's own filter, kept to be ANDed again with a new policy
    /// filter after a reload.
    client: ValidProgram,
    /// What it is charged against `max_filter_insns` (see [`cost`]).
    cost: u32,
    slot: SlotRef,
    counters: Arc<SlotCounters>,
    delivery: Delivery,
    /// Why the daemon reads the records of a client that asked for its
    /// ring.
    daemon_path: Option<String>,
    closed: bool,
}

/// Where a session's records go.
enum Delivery {
    /// The daemon drains its ring (recordings, and the captures it
    /// serves).
    Drained(Box<Drain>),
    /// The client reads its ring itself: the ring, until it is sent.
    Handed(Option<HandedRing>),
}

/// How the records of a session to open are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reader {
    /// By the daemon: records moved `count` at most (0: no limit).
    Daemon { count: u64 },
    /// By the client, from its own ring, if its uid may hold one more.
    Client,
}

impl OpenError {
    /// How a session ends when a policy reload cannot be applied to it
    /// because the policy took something away; `None` for a failure.
    pub fn ends_as(&self) -> Option<EndReason> {
        match self {
            OpenError::FilterCostLowered { .. } => Some(EndReason::PolicyRevoked),
            OpenError::AnonymizationChanged { .. } => Some(EndReason::AnonymizationChanged),
            _ => None,
        }
    }
}

/// Opens a session for `peer` as `grant` allows, with the client's
/// `filter`; `prepare` runs on the blocking thread after the filter
/// compiled and before the slot is taken, and its result comes back with
/// the session. `reader` says who reads the records: a client that asked
/// for its ring gets it unless its uid holds as many as `max_sessions`
/// (see [`State::hold_ring`]); then the daemon reads them, and
/// [`Session::daemon_path`] says why.
pub async fn open<T, E>(
    state: &Arc<State>,
    peer: Peer,
    grant: CaptureGrant,
    (filter, optimize): (FilterSpec, bool),
    reader: Reader,
    prepare: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<(Session, T), E>
where
    T: Send + 'static,
    E: From<OpenError> + Send + 'static,
{
    let id = state
        .reserve(peer.uid, grant.max_sessions)
        .map_err(|count| OpenError::Limit {
            uid: peer.uid,
            count,
            principal: grant.principal.clone(),
        })?;
    // Uncounted again if anything below fails, panics, or is dropped.
    let reservation = Reservation { state, id, peer };
    let client = client_program(state, peer.uid, &grant, &filter, optimize)
        .await
        .map_err(E::from)?;
    let cost = cost(&grant, &client).map_err(E::from)?;
    charge_filter(state, id, &peer, &grant, cost).map_err(E::from)?;
    let for_kernel = grant.clone();
    let kept = client.clone();
    let (program, prepared) = blocking(move || {
        let program = with_policy(&for_kernel, kept)?;
        Ok::<_, E>((program, prepare()?))
    })
    .await?;
    let (prepared, added) = take_slot(state, peer.uid, &grant, program, prepared).await?;
    let engine = added.ring.engine();
    let held = match reader {
        Reader::Client => {
            let (state, uid, id, max) =
                (state.clone(), peer.uid, added.ring.id(), grant.max_sessions);
            Some(blocking(move || state.hold_ring(uid, id, max, ring_gone)).await)
        }
        Reader::Daemon { .. } => None,
    };
    let (delivery, daemon_path) = match deliver(peer.uid, &grant, reader, held, added.ring) {
        Ok(delivery) => delivery,
        Err(err) => {
            let (registry, slot) = (state.registry().clone(), added.slot);
            blocking(move || registry.remove_client(&slot)).await;
            return Err(OpenError::Ring(err).into());
        }
    };
    std::mem::forget(reservation);
    let counters = Arc::new(added.counters);
    state.register(
        id,
        SessionInfo {
            uid: peer.uid,
            pid: peer.pid,
            netns: grant.netns_name.clone(),
            interface: grant.interface.clone(),
            principal: grant.principal.clone(),
            netns_key: added.slot.netns_key(),
            counters: counters.clone(),
            policy_filtered: grant.policy_filter.is_some(),
        },
    );
    log_opened(id, &peer, &grant, engine);
    let session = Session {
        id,
        peer,
        state: state.clone(),
        delivery,
        daemon_path,
        grant,
        client,
        cost,
        slot: added.slot,
        counters,
        closed: false,
    };
    Ok((session, prepared))
}

/// Who reads `ring`'s records (see [`open`]), and why the daemon does
/// when the client asked for the ring; `held` is what
/// [`State::hold_ring`] said of a client's ask.
fn deliver(
    uid: u32,
    grant: &CaptureGrant,
    reader: Reader,
    held: Option<Result<(), usize>>,
    ring: crate::capture::Ring,
) -> std::io::Result<(Delivery, Option<String>)> {
    let (count, daemon_path) = match (reader, held) {
        (Reader::Daemon { count }, _) => (count, None),
        (Reader::Client, Some(Ok(()))) => {
            return Ok((Delivery::Handed(Some(ring.hand_over()?)), None));
        }
        (Reader::Client, held) => {
            let held = held.and_then(Result::err).unwrap_or(0);
            (
                // The client counts its packets itself.
                0,
                Some(format!(
                    "uid {uid}'s clients hold {held} rings, the most principal {:?} allows \
                     (max_sessions): the daemon reads this one",
                    grant.principal
                )),
            )
        }
    };
    let anonymizer = grant.anonymize.as_ref().map(|a| a.anonymizer());
    let drain = Drain::new(ring.into_async()?, count, anonymizer);
    Ok((Delivery::Drained(Box::new(drain)), daemon_path))
}

/// Takes a slot for `program` once the uid's turn at the verifier comes;
/// `prepared` comes back with it, or is dropped on the blocking thread if
/// the slot is not taken (a recording's first file is then deleted, off
/// the runtime).
async fn take_slot<T, E>(
    state: &State,
    uid: u32,
    grant: &CaptureGrant,
    program: ValidProgram,
    prepared: T,
) -> Result<(T, Added), E>
where
    T: Send + 'static,
    E: From<OpenError>,
{
    // Only the load itself waits for the turn.
    let _turn = state.loads().admit(uid).await;
    let (registry, grant) = (state.registry().clone(), grant.clone());
    let metrics = state.metrics().clone();
    blocking(move || {
        let started = std::time::Instant::now();
        let added = registry.add_client(&grant.netns, &grant.interface, &grant.spec, &program);
        metrics.loaded(started.elapsed());
        added.map(|added| (prepared, added))
    })
    .await
    .map_err(|err| E::from(OpenError::from(err)))
}

/// A session counted against its uid, uncounted when dropped: until it
/// becomes a [`Session`] (which is then `forget`-ten), a failure, a panic
/// or a cancelled open gives the count back.
struct Reservation<'a> {
    state: &'a State,
    id: u64,
    peer: Peer,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.state.release(self.id, self.peer.uid);
    }
}

fn log_opened(id: u64, peer: &Peer, grant: &CaptureGrant, engine: SlotEngine) {
    tracing::info!(
        session = id,
        uid = peer.uid,
        pid = peer.pid,
        principal = grant.principal,
        netns = %grant.netns,
        interface = grant.interface,
        snaplen = grant.spec.snaplen,
        %engine,
        "session opened"
    );
}

impl Session {
    /// The daemon's id of the session.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// What the policy allowed it when it opened.
    pub fn grant(&self) -> &CaptureGrant {
        &self.grant
    }

    /// Its ring, drained; `None` when its client reads it.
    pub fn drain(&mut self) -> Option<&mut Drain> {
        match &mut self.delivery {
            Delivery::Drained(drain) => Some(drain),
            Delivery::Handed(_) => None,
        }
    }

    /// The ring, once, when its client reads it.
    pub fn take_ring(&mut self) -> Option<HandedRing> {
        match &mut self.delivery {
            Delivery::Drained(_) => None,
            Delivery::Handed(fd) => fd.take(),
        }
    }

    /// Why the daemon reads the records though the client asked for its
    /// ring (see [`open`]).
    pub fn daemon_path(&self) -> Option<&str> {
        self.daemon_path.as_deref()
    }

    /// Resolves when records may be waiting for the daemon (see
    /// [`Drain::ready`]); never when the client reads them.
    pub async fn ready(&self) -> std::io::Result<()> {
        match &self.delivery {
            Delivery::Drained(drain) => drain.ready().await,
            Delivery::Handed(_) => std::future::pending().await,
        }
    }

    /// Its counters now; takes no lock.
    pub fn counters(&self) -> Result<ClientCounters, CaptureError> {
        self.counters.read()
    }

    /// Its counters as the client sees them, with the interface's own
    /// count of packets when the principal may see them all.
    pub fn stats(&self) -> Result<Stats, CaptureError> {
        let filtered = self.grant.policy_filter.is_some();
        let mut stats = stats(&self.counters()?, filtered);
        if !filtered {
            stats.interface_packets = self.counters.interface_packets();
        }
        Ok(stats)
    }

    /// Why a quota ends the session, once it does: only after every
    /// packet the kernel delivered before the quota was hit has been
    /// drained (by the daemon; a client reading its ring reads what is
    /// left after the end, the ring staying its own).
    pub fn quota_end(&self) -> Option<EndReason> {
        let counters = self.counters().ok()?;
        let drained = match &self.delivery {
            Delivery::Drained(drain) => drain.moved(),
            Delivery::Handed(_) => counters.delivered,
        };
        quota_end(&counters, drained, self.grant.packet_quota)
    }

    /// Replaces the session's filter (ANDed with the policy's); compiled
    /// and loaded on a blocking thread.
    pub async fn set_filter(
        &mut self,
        filter: FilterSpec,
        optimize: bool,
    ) -> Result<(), OpenError> {
        let client =
            client_program(&self.state, self.peer.uid, &self.grant, &filter, optimize).await?;
        let (old, new) = (self.cost, cost(&self.grant, &client)?);
        // The larger of the two stays charged until the new filter is in
        // (or is not): the uid never has more than it is allowed, even for
        // the moment, and what it gives back no other session can take
        // before the kernel has let go of it.
        if new > old {
            charge_filter(&self.state, self.id, &self.peer, &self.grant, new)?;
        }
        let installed = self
            .install(self.grant.clone(), client.clone(), Asker::Client)
            .await;
        let kept = if installed.is_ok() { new } else { old };
        if kept != new.max(old) {
            // Less than what is charged: always fits.
            let _ = self.state.charge_filter(self.id, self.peer.uid, kept, 0);
        }
        installed?;
        self.client = client;
        self.cost = new;
        Ok(())
    }

    /// Puts the session under a grant of a reloaded policy: its settings
    /// in the kernel (directions, snaplen, quotas) and, if the policy's
    /// filter changed, its program. The ring and the client's own filter
    /// stay.
    pub async fn apply(&mut self, grant: CaptureGrant) -> Result<(), OpenError> {
        if grant == self.grant {
            return Ok(());
        }
        if grant.anonymize != self.grant.anonymize {
            // A session never mixes two mappings (nor anonymized and real
            // packets): its client would have to tell them apart.
            return Err(OpenError::AnonymizationChanged {
                principal: grant.principal,
            });
        }
        // A new window changes what the client's filter costs.
        let cost = cost(&grant, &self.client)?;
        if !self
            .state
            .refit_filter(self.id, self.peer.uid, cost, grant.max_filter_insns)
        {
            return Err(OpenError::FilterCostLowered {
                uid: self.peer.uid,
                max: grant.max_filter_insns,
                principal: grant.principal,
            });
        }
        self.cost = cost;
        let (registry, slot, spec) = (
            self.state.registry().clone(),
            self.slot.clone(),
            grant.spec.clone(),
        );
        if spec != self.grant.spec {
            blocking(move || registry.update_client(&slot, &spec)).await?;
        }
        if grant.policy_filter != self.grant.policy_filter
            || grant.window != self.grant.window
            || grant.headers != self.grant.headers
        {
            self.install(grant.clone(), self.client.clone(), Asker::Owner)
                .await?;
        }
        tracing::info!(session = self.id, "session under the reloaded policy");
        self.grant = grant;
        Ok(())
    }

    /// Loads `client` ANDed with `grant`'s policy filter as the session's
    /// program: for the client after its uid's turn at the verifier, for
    /// the owner (a reload, which must reach running work within a second)
    /// at once.
    async fn install(
        &self,
        grant: CaptureGrant,
        client: ValidProgram,
        asker: Asker,
    ) -> Result<(), OpenError> {
        let (registry, slot) = (self.state.registry().clone(), self.slot.clone());
        let _turn = match asker {
            Asker::Client => Some(self.state.loads().admit(self.peer.uid).await),
            Asker::Owner => None,
        };
        let metrics = self.state.metrics().clone();
        blocking(move || {
            let program = with_policy(&grant, client)?;
            let started = std::time::Instant::now();
            let set = registry.set_filter(&slot, &program);
            metrics.loaded(started.elapsed());
            set?;
            Ok(())
        })
        .await
    }

    /// Gives the slot back (the kernel stops evaluating it at once) and
    /// stops counting the session. Dropping the future before it is done
    /// leaves the rest to [`Drop`].
    pub async fn close(mut self) {
        self.state.unregister(self.id);
        let (registry, slot) = (self.state.registry().clone(), self.slot.clone());
        blocking(move || registry.remove_client(&slot)).await;
        self.closed = true;
        self.release();
    }

    fn release(&self) {
        self.state.release(self.id, self.peer.uid);
        tracing::info!(session = self.id, uid = self.peer.uid, "session ended");
    }
}

impl Drop for Session {
    /// A session dropped before [`Session::close`] finished (its task
    /// panicked or was cancelled) still gives its slot back: the removal is
    /// idempotent, so one already under way is harmless.
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        let (registry, slot) = (self.state.registry().clone(), self.slot.clone());
        remove_in_background(registry, slot);
        self.release();
    }
}

/// Removes `slot` on a blocking thread if there is a runtime, here if not.
fn remove_in_background(registry: Arc<Registry>, slot: SlotRef) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn_blocking(move || registry.remove_client(&slot));
        }
        Err(_) => registry.remove_client(&slot),
    }
}

/// Who asks for a program to be loaded.
enum Asker {
    /// The session's client: it waits for its uid's turn.
    Client,
    /// The owner, through a policy reload: it does not wait.
    Owner,
}

/// What the client's filter costs every packet, in instructions: its
/// length as it runs, confined to the policy's window or to the headers (a
/// confined indirect load is four instructions, ten against the headers).
/// The owner's policy filter, ANDed in front, is the owner's and not
/// charged; nor is the prologue that finds where the headers end, which
/// the owner's policy imposes too (a fixed program of its own, a few dozen
/// instructions run per packet).
fn cost(grant: &CaptureGrant, client: &ValidProgram) -> Result<u32, OpenError> {
    // Mapping an anonymized client's address constants changes no length;
    // the guard it puts in front is the policy's, like the prologue.
    let mut length = confined(grant, client)?.len();
    if grant.headers.is_some() {
        length -= header_prologue_len(grant.window);
    }
    Ok(length as u32)
}

/// The client's program as it runs: its address constants mapped back to
/// the real addresses when its principal is anonymized (a refusal if it
/// reads what the client does not see), then confined (see [`confined`]).
/// Blocking: the mapping runs Crypto-PAn per constant.
fn as_run(grant: &CaptureGrant, client: &ValidProgram) -> Result<ValidProgram, OpenError> {
    match &grant.anonymize {
        Some(anonymize) => {
            let macs_visible = anonymize.mac == MacMode::Keep;
            let mapped = map_addresses(client, &anonymize.addresses(), macs_visible)
                .map_err(OpenError::Filter)?;
            confined(grant, &mapped)
        }
        None => confined(grant, client),
    }
}

/// The client's program confined per packet to the headers (and the
/// window) when the grant says so, else to the window when there is one.
fn confined(grant: &CaptureGrant, client: &ValidProgram) -> Result<ValidProgram, OpenError> {
    match (grant.headers, grant.window) {
        (Some(view), window) => confine_to_headers(client, window, view == HeaderView::Cut),
        (None, Some(window)) => confine(client, window),
        (None, None) => Ok(client.clone()),
    }
    .map_err(OpenError::Filter)
}

/// Charges `insns` against the uid's `max_filter_insns`, in place of
/// session `id`'s previous filter.
fn charge_filter(
    state: &State,
    id: u64,
    peer: &Peer,
    grant: &CaptureGrant,
    insns: u32,
) -> Result<(), OpenError> {
    state
        .charge_filter(id, peer.uid, insns, grant.max_filter_insns)
        .map_err(|used| OpenError::FilterCost {
            uid: peer.uid,
            insns,
            used,
            max: grant.max_filter_insns,
            principal: grant.principal.clone(),
        })
}

/// The client's filter as a program: an expression compiled by a helper
/// process (see [`crate::compiler`]), or bytecode validated here.
async fn client_program(
    state: &State,
    uid: u32,
    grant: &CaptureGrant,
    filter: &FilterSpec,
    optimize: bool,
) -> Result<ValidProgram, OpenError> {
    match filter {
        FilterSpec::Expression(expression) => {
            let started = std::time::Instant::now();
            let program = state
                .compiler()
                .compile(uid, expression, optimize, grant.snaplen)
                .await;
            state.metrics().compiled(started.elapsed());
            Ok(program?)
        }
        // Bytecode may be written for the kernel's view of a frame (the
        // VLAN tag in metadata): it runs on pktd's as it would there.
        // Expressions, compiled for a dead handle, never are.
        FilterSpec::Bytecode(insns) => {
            let insns: Vec<_> = insns.iter().copied().map(Into::into).collect();
            validate(&insns)
                .and_then(|program| for_wire_view(&program))
                .map_err(OpenError::Filter)
        }
    }
}

/// The program the kernel runs for a session: the client's as it runs (see
/// [`as_run`]), ANDed with the policy's filter when there is one (which
/// reads what it likes). Blocking: the policy's filter, which the box
/// owner wrote, is compiled here by libpcap.
fn with_policy(grant: &CaptureGrant, client: ValidProgram) -> Result<ValidProgram, OpenError> {
    let client = as_run(grant, &client)?;
    match &grant.policy_filter {
        None => Ok(client),
        Some(expression) => {
            let policy =
                compile(expression, true, grant.snaplen).map_err(OpenError::PolicyFilter)?;
            and_then(&policy, &client).map_err(OpenError::Filter)
        }
    }
}

/// The one quota rule: a quota ends a session once the kernel has refused
/// a packet for it and every packet delivered before has been drained.
/// The packet quota if it is the one used up, the byte quota otherwise.
pub fn quota_end(counters: &ClientCounters, drained: u64, packet_quota: u64) -> Option<EndReason> {
    if counters.over_quota == 0 || counters.delivered > drained {
        return None;
    }
    Some(if packet_quota != 0 && counters.delivered >= packet_quota {
        EndReason::PacketQuota
    } else {
        EndReason::ByteQuota
    })
}

/// Kernel counters as the protocol reports them. `received` counts the
/// interface's packets in the session's directions, unless a policy
/// filter hides some of them from the session: then it counts what the
/// session's whole filter accepted, so that the session learns nothing of
/// the traffic the policy keeps from it.
pub fn stats(counters: &ClientCounters, policy_filtered: bool) -> Stats {
    Stats {
        received: if policy_filtered {
            counters.matched
        } else {
            counters.seen
        },
        matched: counters.matched,
        delivered: counters.delivered,
        dropped: counters.dropped,
        over_quota: counters.over_quota,
        // Packets the filter never finished with may be ones the policy
        // hides: their number is the owner's (the daemon logs it), not the
        // session's.
        over_budget: if policy_filtered {
            0
        } else {
            counters.over_budget
        },
        interface_packets: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(delivered: u64, over_quota: u64) -> ClientCounters {
        ClientCounters {
            delivered,
            over_quota,
            ..ClientCounters::default()
        }
    }

    #[test]
    fn a_quota_ends_a_session_only_after_its_last_delivered_packet() {
        assert_eq!(quota_end(&counters(10, 0), 10, 10), None, "nothing refused");
        assert_eq!(
            quota_end(&counters(10, 3), 9, 10),
            None,
            "one delivered packet still in the ring"
        );
        assert_eq!(
            quota_end(&counters(10, 3), 10, 10),
            Some(EndReason::PacketQuota)
        );
        assert_eq!(
            quota_end(&counters(4, 1), 4, 10),
            Some(EndReason::ByteQuota),
            "the packet quota is not used up: the byte quota was"
        );
        assert_eq!(quota_end(&counters(4, 1), 4, 0), Some(EndReason::ByteQuota));
    }

    #[test]
    fn kernel_counters_read_as_stats() {
        let kernel = ClientCounters {
            seen: 1,
            matched: 2,
            delivered: 3,
            dropped: 4,
            over_quota: 5,
            over_budget: 6,
            ..ClientCounters::default()
        };
        let filtered = stats(&kernel, true);
        assert_eq!(
            (filtered.received, filtered.over_budget),
            (2, 0),
            "under a policy filter, only what it let by"
        );
        assert_eq!(
            stats(&kernel, false),
            Stats {
                received: 1,
                matched: 2,
                delivered: 3,
                dropped: 4,
                over_quota: 5,
                over_budget: 6,
                interface_packets: None,
            }
        );
    }
}
