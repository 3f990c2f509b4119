//! The p2p peers a validator lets connect besides the other validators: the full nodes of its
//! configuration (`full_nodes`) and those registered on chain (`logos_types::peers`).
//!
//! commonware-p2p refuses any key it does not track, so a full node needs a slot on every
//! validator it dials. [`track_registered`] takes each finalized block as it is published and
//! notes whether it emitted `FullNodeRegistered` or `FullNodeDeregistered` (every write of the
//! registry emits one; see `logos_types::peers`). When one did (or blocks were missed, or the
//! last read failed, or at start), it reads [`FullNodeKeys`] and each [`FullNodes`] record at
//! the finalized tip, at once but at most once per [`REGISTRY_POLL_MS`] (at most 257 reads, so
//! not on every block: a registration is let in within one block, a burst of them within a
//! quarter second, so every validator lets a new node in at nearly the same time); when
//! the resulting secondary set differs from the one tracked, it tracks a new peer set
//! (validators primary, full nodes secondary) under the tip's height (strictly increasing, as
//! commonware requires). Registered keys that are a validator's, not a valid ed25519 point, or
//! whose address cannot be a source are left out (the module checks the last two; a
//! validator's key there would take its connections). Nodes keep one peer set
//! (`tracked_peer_sets = 1`), so a deregistered node is disconnected and refused as soon as
//! the next set is tracked.
//!
//! The primary peers are the genesis validators and the members of the previous, current and
//! next committees at the tip (their consensus keys and on-chain p2p addresses; a genesis
//! validator keeps its configured address): an elected candidate is dialed a full epoch
//! before it serves, and an unseated one keeps its slot for the epoch after. An epoch start
//! (`EpochStarted`) makes the sets be read again, like a registry change.

use crate::{
    chain::{ChainError, Executed},
    shared::Shared,
};
use commonware_p2p::{Address, AddressableManager, AddressableTrackedPeers};
use commonware_runtime::{Clock, Metrics, Spawner, Storage};
use commonware_utils::ordered::Map;
use futures::FutureExt as _;
use logos_primitives::{NodeKey, PublicKey};
use logos_types::{
    codec::decode,
    peers::{self, FullNode, FullNodeKeys, FullNodes},
    staking, Event, StorageMap, StorageValue,
};
use std::{net::SocketAddr, sync::Arc, time::Duration};
use tokio::sync::broadcast::error::RecvError;
use tracing::{info, warn};

/// Shortest time between two reads of the on-chain registry, ms (changes within it are read
/// once).
pub const REGISTRY_POLL_MS: u64 = 250;

/// The registered full nodes at the finalized tip, ascending by key, and the tip's height.
///
/// The chain lock is taken for one read at a time (at most 257), so block verification and
/// finalization are not held up; a tip that moves meanwhile makes a later read fail
/// (`UnknownParent`: the state after the old tip is gone) rather than mix two states.
pub async fn read_registry<E: Storage + Clock + Metrics + Spawner>(
    shared: &Shared<E>,
) -> Result<(u64, Vec<(NodeKey, FullNode)>), ChainError> {
    let tip = shared.tip().await;
    let read = |key: logos_types::StorageKey| {
        let digest = tip.digest;
        async move { shared.chain().await.read(&digest, &key).await }
    };
    let Some(bytes) = read(FullNodeKeys::key()).await? else {
        return Ok((tip.height.get(), Vec::new()));
    };
    let keys: <FullNodeKeys as logos_types::StorageItem>::Value =
        decode(&bytes).map_err(|error| ChainError::Storage(error.to_string()))?;
    let mut registry = Vec::with_capacity(keys.len());
    for key in keys {
        let Some(bytes) = read(FullNodes::key(&key)).await? else {
            return Err(ChainError::Storage(format!(
                "listed full node {key} has no record"
            )));
        };
        let node: FullNode =
            decode(&bytes).map_err(|error| ChainError::Storage(error.to_string()))?;
        registry.push((key, node));
    }
    Ok((tip.height.get(), registry))
}

/// The secondary peers: `configured` plus every usable `registry` entry (see the module docs);
/// a key both configured and registered keeps its configured address.
pub fn secondary_peers(
    configured: &Map<PublicKey, Address>,
    registry: &[(NodeKey, FullNode)],
    validators: &[PublicKey],
) -> Map<PublicKey, Address> {
    let mut peers: Vec<(PublicKey, Address)> = configured
        .iter_pairs()
        .map(|(key, address)| (key.clone(), address.clone()))
        .collect();
    for (key, node) in registry {
        let Ok(key) = key.public_key() else {
            continue;
        };
        let unusable = !node.address.is_source()
            || validators.contains(&key)
            || configured.position(&key).is_some();
        if !unusable {
            peers.push((key, node.address.socket_address().into()));
        }
    }
    Map::from_iter_dedup(peers)
}

/// The primary peers: `validators` (the genesis validators at their configured addresses)
/// and every member of `state`'s committees whose key is valid and address can be a source.
pub fn primary_peers(
    validators: &Map<PublicKey, Address>,
    committees: &[(PublicKey, SocketAddr)],
) -> Map<PublicKey, Address> {
    let mut peers: Vec<(PublicKey, Address)> = validators
        .iter_pairs()
        .map(|(key, address)| (key.clone(), address.clone()))
        .collect();
    for (key, address) in committees {
        let usable = !address.ip().is_unspecified() && address.port() != 0;
        if usable && validators.position(key).is_none() {
            peers.push((key.clone(), (*address).into()));
        }
    }
    Map::from_iter_dedup(peers)
}

/// The members of the previous, current and next committees at the finalized tip, with their
/// on-chain p2p addresses.
pub async fn read_committee_peers<E: Storage + Clock + Metrics + Spawner>(
    shared: &Shared<E>,
) -> Result<Vec<(PublicKey, SocketAddr)>, ChainError> {
    let state = crate::epochs::read_epoch_state(shared).await?;
    let mut members = Vec::new();
    for (epoch, keys) in &state.committees {
        let addresses = state
            .addresses
            .get(epoch)
            .map(Vec::as_slice)
            .unwrap_or_default();
        members.extend(keys.iter().cloned().zip(addresses.iter().copied()));
    }
    Ok(members)
}

/// Whether a finalized block's execution changed the registry or the committees: an event of
/// a registration or deregistration, from a transaction or an end-of-block hook, or the start
/// of an epoch.
pub fn changes_registry(executed: &Executed) -> bool {
    let registry_event = |event: &Event| {
        matches!(
            event,
            Event::Peers(
                peers::Event::FullNodeRegistered { .. } | peers::Event::FullNodeDeregistered { .. }
            ) | Event::Staking(staking::Event::EpochStarted { .. })
        )
    };
    executed
        .receipts
        .iter()
        .flat_map(|receipt| receipt.events.iter())
        .chain(executed.block_events.iter())
        .any(registry_event)
}

/// Spawns the registry follower (see the module docs): `validators` and the recent
/// committees are tracked as primary peers, `configured` and (if `registry`: validators serve
/// full nodes, full nodes serve none) the registry as secondary ones. The caller has tracked
/// `validators` and `configured` under id 0; the follower tracks under the tip's height, so
/// ids only grow. It takes each finalized block as it is published (so the notification
/// channel holds none for it) and stops when the p2p manager is closed.
pub fn track_registered<E, M>(
    context: E,
    shared: Arc<Shared<E>>,
    mut manager: M,
    validators: Map<PublicKey, Address>,
    configured: Map<PublicKey, Address>,
    registry: bool,
) where
    E: Storage + Clock + Metrics + Spawner,
    M: AddressableManager<PublicKey = PublicKey>,
{
    // Subscribed before the first read, so no change between the two is missed.
    let mut blocks = shared.subscribe();
    context.child("registry").spawn(move |context| async move {
        let mut tracked = (validators.clone(), configured.clone());
        // Read at start: the registry may already hold nodes.
        let mut stale = true;
        let poll = Duration::from_millis(REGISTRY_POLL_MS);
        let mut last_read: Option<std::time::SystemTime> = None;
        loop {
            // Until a finalized block changed the registry (or blocks were missed).
            while !stale {
                match blocks.recv().await {
                    Ok(finalized) => stale |= changes_registry(&finalized.executed),
                    // Skipped blocks may have changed it.
                    Err(RecvError::Lagged(_)) => stale = true,
                    Err(RecvError::Closed) => return,
                }
            }
            // At most one read per REGISTRY_POLL_MS: blocks published meanwhile are taken
            // (the coming read covers them).
            let since = last_read.and_then(|at| context.current().duration_since(at).ok());
            let wait = since.map_or(Duration::ZERO, |since| poll.saturating_sub(since));
            if !wait.is_zero() {
                let check = context.sleep(wait).fuse();
                futures::pin_mut!(check);
                loop {
                    futures::select_biased! {
                        received = blocks.recv().fuse() => if let Err(RecvError::Closed) = received {
                            return;
                        },
                        () = check => break,
                    }
                }
            }
            last_read = Some(context.current());
            let read = async {
                let committees = read_committee_peers(&shared).await?;
                let (height, nodes) = match registry {
                    true => read_registry(&shared).await?,
                    false => (shared.tip().await.height.get(), Vec::new()),
                };
                Ok::<_, ChainError>((height, committees, nodes))
            };
            let (height, committees, nodes) = match read.await {
                Ok(read) => read,
                Err(error) => {
                    warn!(%error, "full-node registry or committees unreadable");
                    continue;
                }
            };
            let primary = primary_peers(&validators, &committees);
            let primary_keys: Vec<PublicKey> = primary.iter().cloned().collect();
            let secondary = secondary_peers(&configured, &nodes, &primary_keys);
            let secondary = Map::from_iter_dedup(
                secondary
                    .iter_pairs()
                    .filter(|(key, _)| primary.position(key).is_none())
                    .map(|(key, address)| (key.clone(), address.clone())),
            );
            if (&primary, &secondary) == (&tracked.0, &tracked.1) {
                stale = false;
                continue;
            }
            let peers = AddressableTrackedPeers::new(primary.clone(), secondary.clone());
            if !manager.track(height, peers).accepted() {
                warn!(
                    height,
                    "p2p is closed; no longer tracking registered full nodes"
                );
                return;
            }
            info!(
                height,
                committee_peers = primary.len(),
                full_nodes = secondary.len(),
                "tracking committees and registered full nodes"
            );
            tracked = (primary, secondary);
            stale = false;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_cryptography::Signer;
    use logos_primitives::{Address as Account, Amount, PrivateKey};
    use std::net::SocketAddr;

    fn key(seed: u64) -> PublicKey {
        PrivateKey::from_seed(seed).public_key()
    }

    fn registered(seed: u64, address: &str) -> (NodeKey, FullNode) {
        (
            NodeKey::from_public_key(&key(seed)),
            FullNode {
                owner: Account([1; 20]),
                address: address.parse().unwrap(),
                deposit: Amount(1),
            },
        )
    }

    fn executed(events: Vec<Event>, block_events: Vec<Event>) -> Executed {
        Executed {
            receipts: vec![logos_types::Receipt {
                transaction: logos_primitives::hash(&[b"test"]),
                success: true,
                error: None,
                events,
            }],
            receipts_root: logos_primitives::hash(&[b"test"]),
            block_events,
            writes: None,
        }
    }

    /// Only a registration or deregistration, from a transaction or a hook, makes the
    /// registry be read again; a block of transfers or a deposit change does not.
    #[test]
    fn only_registry_events_make_the_registry_be_read_again() {
        let transfer = Event::Balances(logos_types::balances::Event::Transferred {
            from: Account([1; 20]),
            to: Account([2; 20]),
            amount: Amount(1),
        });
        let deposit = Event::Peers(peers::Event::MinimumDepositChanged { deposit: Amount(5) });
        let node = NodeKey::from_public_key(&key(1));
        let registered = Event::Peers(peers::Event::FullNodeRegistered {
            key: node,
            owner: Account([1; 20]),
        });
        let deregistered = Event::Peers(peers::Event::FullNodeDeregistered { key: node });
        assert!(!changes_registry(&executed(
            vec![transfer.clone(), deposit],
            vec![]
        )));
        assert!(changes_registry(&executed(
            vec![transfer.clone(), registered],
            vec![]
        )));
        assert!(changes_registry(&executed(
            vec![transfer],
            vec![deregistered]
        )));
    }

    /// Registered nodes join the configured ones; a validator's key, an invalid point and an
    /// address that cannot be a source are left out, and a configured key keeps its address.
    #[test]
    fn registered_full_nodes_join_the_configured_ones_except_what_cannot_be_trusted() {
        let configured = Map::from_iter_dedup([(
            key(10),
            Address::from("127.0.0.1:1".parse::<SocketAddr>().unwrap()),
        )]);
        let invalid = (0u8..=255)
            .map(|byte| NodeKey([byte; 32]))
            .find(|key| key.public_key().is_err())
            .unwrap();
        let registry = vec![
            registered(1, "10.0.0.1:30400"),
            registered(2, "127.0.0.1:1"), // a validator's key
            registered(3, "0.0.0.0:1"),
            (invalid, registered(4, "10.0.0.4:1").1),
            registered(10, "10.0.0.10:1"), // configured already
        ];
        let peers = secondary_peers(&configured, &registry, &[key(2)]);
        let mut keys: Vec<PublicKey> = peers.iter().cloned().collect();
        keys.sort();
        let mut expected = vec![key(1), key(10)];
        expected.sort();
        assert_eq!(keys, expected);
        let configured_address = peers.get_value(&key(10)).unwrap();
        assert_eq!(
            *configured_address,
            Address::from("127.0.0.1:1".parse::<SocketAddr>().unwrap())
        );
    }
}
