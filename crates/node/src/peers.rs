//! The p2p peers a validator lets connect besides the other validators: the full nodes of its
//! configuration (`full_nodes`) and those registered on chain (`logos_types::peers`).
//!
//! commonware-p2p refuses any key it does not track, so a full node needs a slot on every
//! validator it dials. [`track_registered`] polls finalized state every
//! [`REGISTRY_POLL_MS`]: when the finalized tip moved, it reads [`FullNodeKeys`] and each
//! [`FullNodes`] record, and when the resulting secondary set differs from the one tracked, it
//! tracks a new peer set (validators primary, full nodes secondary) under the tip's height
//! (strictly increasing, as commonware requires). Registered keys that are a validator's, not a
//! valid ed25519 point, or whose address cannot be a source are left out (the module checks the
//! last two; a validator's key there would take its connections). Nodes keep one peer set
//! (`tracked_peer_sets = 1`), so a deregistered node is disconnected and refused as soon as
//! the next set is tracked.

use crate::{chain::ChainError, shared::Shared};
use commonware_p2p::{Address, AddressableManager, AddressableTrackedPeers};
use commonware_runtime::{Clock, Metrics, Spawner, Storage};
use commonware_utils::ordered::Map;
use logos_primitives::{NodeKey, PublicKey};
use logos_types::{
    codec::decode,
    peers::{FullNode, FullNodeKeys, FullNodes},
    StorageMap, StorageValue,
};
use std::{sync::Arc, time::Duration};
use tracing::{info, warn};

/// Time between reads of the on-chain registry, ms.
pub const REGISTRY_POLL_MS: u64 = 1_000;

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

/// Spawns the registry poll (see the module docs): `validators` are tracked as primary peers,
/// `configured` and the registry as secondary ones. The caller has tracked `validators` and
/// `configured` under id 0; the poll tracks under the tip's height, so ids only grow.
pub fn track_registered<E, M>(
    context: E,
    shared: Arc<Shared<E>>,
    mut manager: M,
    validators: Map<PublicKey, Address>,
    configured: Map<PublicKey, Address>,
) where
    E: Storage + Clock + Metrics + Spawner,
    M: AddressableManager<PublicKey = PublicKey>,
{
    let validator_keys: Vec<PublicKey> = validators.iter().cloned().collect();
    context.child("registry").spawn(move |context| async move {
        let mut tracked = configured.clone();
        let mut polled_height = 0;
        loop {
            context.sleep(Duration::from_millis(REGISTRY_POLL_MS)).await;
            // The registry changes only with the finalized tip: read it only then.
            let tip = shared.tip().await.height.get();
            if tip == polled_height {
                continue;
            }
            let (height, registry) = match read_registry(&shared).await {
                Ok(read) => read,
                Err(error) => {
                    warn!(%error, "full-node registry unreadable");
                    continue;
                }
            };
            polled_height = height;
            let secondary = secondary_peers(&configured, &registry, &validator_keys);
            if secondary == tracked {
                continue;
            }
            let peers = AddressableTrackedPeers::new(validators.clone(), secondary.clone());
            if !manager.track(height, peers).accepted() {
                // Retried at the next tip (a later height, as commonware requires).
                warn!(height, "p2p refused the new peer set");
                continue;
            }
            info!(
                height,
                full_nodes = secondary.len(),
                "tracking registered full nodes"
            );
            tracked = secondary;
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
