//! Consensus faults become on-chain evidence.
//!
//! Simplex reports the faults it can attribute (two conflicting notarize or finalize votes, or
//! a nullify and a finalize, by one participant in one view) to its reporter. An
//! [`EvidenceReporter`] wraps the validator's reporter: it passes every activity on unchanged
//! and queues the faults (at most [`EVIDENCE_QUEUE_MAX`]; more are dropped: a validator
//! floods nothing it did not see). A task turns each into a `staking::ReportEquivocation`
//! transaction signed by this validator's key (its account is credited with the reporter's
//! reward), admitted into the local mempool and relayed to the other validators. The chain
//! verifies the votes itself and punishes an offender once per disqualification; so that
//! every validator does not pay a fee for the same report, each skips any fault it submitted
//! before (the last [`EVIDENCE_SEEN_MAX`]; a fault whose transaction was not admitted is not
//! remembered, so it can be tried again when simplex reports it again), any offender it
//! reported in the last [`OFFENDER_MEMORY_MS`], and any offender the finalized state shows
//! disqualified; then it waits [`STAGGER_MS`] × its position in the fault's committee and
//! checks the state again.

use crate::{epochs::Epochs, relay, shared::Shared};
use commonware_codec::Encode;
use commonware_consensus::{
    simplex::types::{Activity, Attributable},
    Epochable as _, Reporter,
};
use commonware_cryptography::Signer;
use commonware_runtime::{Clock, Metrics, Spawner, Storage};
use futures::{channel::mpsc, StreamExt};
use logos_api::consensus::Scheme;
use logos_primitives::{Address, Hash, PrivateKey};
use logos_types::{
    staking::{self, CurrentEpoch, Disqualified, FaultKind},
    Call, StorageItem, StorageMap, StorageValue, TransactionPayload,
};
use std::{collections::VecDeque, sync::Arc, time::Duration};
use tracing::{info, warn};

/// Faults queued for submission at most.
pub const EVIDENCE_QUEUE_MAX: usize = 64;
/// Faults remembered as submitted.
pub const EVIDENCE_SEEN_MAX: usize = 1_024;
/// Wait per position among the validators before reporting, ms.
pub const STAGGER_MS: u64 = 250;
/// How long a reported offender is not reported again by this node, ms (its report is being
/// finalized meanwhile).
pub const OFFENDER_MEMORY_MS: u64 = 60_000;

/// One fault as the chain takes it, with its epoch and the offender's participant index in
/// that epoch's committee.
pub type Evidence = (FaultKind, Vec<u8>, u64, u32);

/// The fault in `activity`, encoded, if it is one.
pub fn evidence_of(activity: &Activity<Scheme, Hash>) -> Option<Evidence> {
    match activity {
        Activity::ConflictingNotarize(fault) => Some((
            FaultKind::ConflictingNotarize,
            fault.encode().to_vec(),
            fault.epoch().get(),
            fault.signer().get(),
        )),
        Activity::ConflictingFinalize(fault) => Some((
            FaultKind::ConflictingFinalize,
            fault.encode().to_vec(),
            fault.epoch().get(),
            fault.signer().get(),
        )),
        Activity::NullifyFinalize(fault) => Some((
            FaultKind::NullifyFinalize,
            fault.encode().to_vec(),
            fault.epoch().get(),
            fault.signer().get(),
        )),
        _ => None,
    }
}

/// A simplex reporter that also queues faults as evidence (see the module docs).
#[derive(Clone)]
pub struct EvidenceReporter<R> {
    inner: R,
    queue: mpsc::Sender<Evidence>,
}

impl<R> EvidenceReporter<R> {
    /// Wraps `inner`; faults go to the returned receiver (bounded by [`EVIDENCE_QUEUE_MAX`]).
    pub fn new(inner: R) -> (Self, mpsc::Receiver<Evidence>) {
        let (queue, receiver) = mpsc::channel(EVIDENCE_QUEUE_MAX);
        (Self { inner, queue }, receiver)
    }
}

impl<R: Reporter<Activity = Activity<Scheme, Hash>>> Reporter for EvidenceReporter<R> {
    type Activity = Activity<Scheme, Hash>;

    fn report(&mut self, activity: Self::Activity) -> commonware_actor::Feedback {
        if let Some(evidence) = evidence_of(&activity) {
            if self.queue.try_send(evidence).is_err() {
                warn!("evidence queue full: a consensus fault was not reported");
            }
        }
        self.inner.report(activity)
    }
}

/// Submits queued faults as transactions from `key`'s account until the queue closes. `epochs`
/// names each epoch's committee (the offender's index counts in it, in simplex's order).
pub async fn submit<E: Storage + Clock + Metrics + Spawner>(
    context: E,
    shared: Arc<Shared<E>>,
    relay: relay::Mailbox,
    key: PrivateKey,
    epochs: Epochs,
    mut faults: mpsc::Receiver<Evidence>,
) {
    let sender = Address::from_public_key(&key.public_key());
    let mut seen: VecDeque<Vec<u8>> = VecDeque::new();
    let mut reported: VecDeque<(Address, std::time::SystemTime)> = VecDeque::new();
    while let Some((kind, bytes, epoch, signer)) = faults.next().await {
        tracing::debug!(?kind, epoch, signer, "consensus fault attributed");
        let committee = epochs.committee(epoch).unwrap_or_default();
        let offender = committee.get(signer as usize).map(Address::from_public_key);
        let position = committee
            .iter()
            .position(|member| *member == key.public_key())
            .unwrap_or(0);
        let stagger = Duration::from_millis(STAGGER_MS.saturating_mul(position as u64));
        // Cheap checks first: a flood of one offender's faults costs no waiting.
        let now = context.current();
        let recent = |(who, at): &(Address, std::time::SystemTime)| {
            Some(*who) == offender
                && now.duration_since(*at).unwrap_or_default()
                    < Duration::from_millis(OFFENDER_MEMORY_MS)
        };
        if seen.contains(&bytes) || reported.iter().any(recent) {
            continue;
        }
        if let Some(offender) = offender {
            if punished(&shared, &offender).await {
                continue;
            }
        }
        context.sleep(stagger).await;
        if let Some(offender) = offender {
            if punished(&shared, &offender).await {
                continue;
            }
        }
        let Ok(evidence) = bytes.clone().try_into() else {
            warn!("evidence larger than a report carries; dropped");
            continue;
        };
        let nonce = next_nonce(&shared, &sender).await;
        let transaction = TransactionPayload {
            chain_id: shared.chain_id(),
            sender: key.public_key(),
            nonce,
            fee: shared.genesis().params.min_fee,
            call: Call::Staking(staking::Call::ReportEquivocation { kind, evidence }),
        }
        .sign(&key);
        match shared.admit(transaction.clone()).await {
            Ok(hash) => {
                info!(?kind, %hash, "consensus fault reported on chain");
                relay.relay(transaction);
                if seen.len() >= EVIDENCE_SEEN_MAX {
                    seen.pop_front();
                    reported.pop_front();
                }
                seen.push_back(bytes);
                // One report per offender at a time: the chain punishes it once anyway.
                reported.push_back((offender.unwrap_or(sender), context.current()));
            }
            Err(rejection) => warn!(?kind, %rejection, "evidence transaction not admitted"),
        }
    }
}

/// True if the finalized state shows `offender` disqualified now (punished already).
async fn punished<E: Storage + Clock + Metrics + Spawner>(
    shared: &Shared<E>,
    offender: &Address,
) -> bool {
    let chain = shared.chain().await;
    let tip = chain.tip().digest;
    let key = Disqualified::key(offender);
    let Ok(Some(bytes)) = chain.read(&tip, &key).await else {
        return false;
    };
    let Ok(until) = Disqualified::decode_value(&key, &bytes) else {
        return false;
    };
    let key = CurrentEpoch::key();
    let current = match chain.read(&tip, &key).await {
        Ok(Some(bytes)) => CurrentEpoch::decode_value(&key, &bytes).ok(),
        _ => None,
    };
    current.is_some_and(|current| current.epoch < until)
}

/// The nonce after `sender`'s finalized one and its pooled transactions.
pub(crate) async fn next_nonce<E: Storage + Clock + Metrics + Spawner>(
    shared: &Shared<E>,
    sender: &Address,
) -> u64 {
    let finalized = {
        let chain = shared.chain().await;
        let tip = chain.tip().digest;
        chain
            .account_at(&tip, sender)
            .await
            .unwrap_or_default()
            .nonce
    };
    shared.with_mempool(|pool| pool.next_nonce(sender, finalized))
}
