//! This node's DKG secrets on disk, encrypted: the dealings it received as a player and the
//! shares it derived, so that a restart (a crash of every validator included) neither loses
//! this node's share of the current epoch's group key nor its part in the next epoch's DKG.
//!
//! Storage is commonware's `Metadata` (a key-value store synced atomically) in the partition
//! `<prefix>-beacon-secrets`, keyed by a [`Slot`]. Every value is sealed with
//! XChaCha20-Poly1305: the key is `SHA-256(domain ‖ consensus private key)` (the consensus key
//! is itself encrypted at rest by the keystore), the nonce the first 24 bytes of
//! `SHA-256(nonce key ‖ slot ‖ plaintext)` with a nonce key derived the same way under another
//! domain (unique per plaintext, reveals nothing without the key), the associated data the
//! chain id and the slot. A value that does not open (another key, a tampered file) reads as
//! absent. A failed write closes the store for the run (commonware's `Metadata` drops its
//! handle): the DKG then withholds its acknowledgements, so dealers reveal those shares.
//!
//! Bounds: values of at most [`VALUE_MAX_BYTES`]; the slots of at most [`EPOCHS_KEPT`] epochs
//! (older ones are removed by [`Secrets::retain_from`]), each with one share and one dealing per
//! dealer of a committee (at most `COMMITTEE_MAX`).

use chacha20poly1305::{
    aead::{Aead, KeyInit, Payload},
    XChaCha20Poly1305, XNonce,
};
use commonware_codec::{Encode as _, RangeCfg};
use commonware_runtime::{Clock, Metrics, Storage};
use commonware_storage::metadata::{Config, Metadata};
use commonware_utils::sequence::U64;
use logos_primitives::{hash, ChainId, PrivateKey};
use zeroize::Zeroizing;

/// Largest stored value, bytes: the largest DKG message sealed (24-byte nonce, 16-byte tag).
pub const VALUE_MAX_BYTES: usize = crate::dkg::MESSAGE_MAX_BYTES + 24 + 16;
/// Epochs whose secrets are kept (the current, the next and the previous).
pub const EPOCHS_KEPT: u64 = 3;
/// Domain of the encryption key.
const KEY_DOMAIN: &[u8] = b"logos-beacon-secrets-v2";
/// Domain of the key that derives nonces (apart from the encryption key).
const NONCE_DOMAIN: &[u8] = b"logos-beacon-secrets-nonce-v2";
/// Bits of a slot key below the epoch.
const LOW_BITS: u32 = 17;
/// Epoch bits kept in a slot key.
const EPOCH_MASK: u64 = (1 << (64 - LOW_BITS)) - 1;

/// Where a secret is kept: an epoch and what of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Slot {
    /// This node's share of the epoch's group key.
    Share(u64),
    /// The dealing received from the dealer at this position of the epoch's round.
    Dealing(u64, u16),
}

impl Slot {
    /// The storage key: the epoch in the high 47 bits, 0 for the share or 1 + the dealer's
    /// position in the low 17 (a position takes 16: no two slots share a key for epochs below
    /// 2^47, millions of years of epochs).
    fn key(self) -> U64 {
        let (epoch, low) = match self {
            Self::Share(epoch) => (epoch, 0u64),
            Self::Dealing(epoch, position) => (epoch, u64::from(position).saturating_add(1)),
        };
        U64::new((epoch & EPOCH_MASK) << LOW_BITS | low)
    }

    fn epoch_of(key: &U64) -> u64 {
        u64::from_be_bytes(key.as_ref().try_into().unwrap_or([0; 8])) >> LOW_BITS
    }
}

/// Errors of the secret store.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The storage engine failed.
    #[error("secret store: {0}")]
    Storage(#[from] commonware_storage::metadata::Error),
    /// A value is above [`VALUE_MAX_BYTES`].
    #[error("secret of {0} bytes above the bound")]
    TooLarge(usize),
    /// Sealing failed.
    #[error("secret could not be sealed")]
    Seal,
    /// The store is closed: it could not be opened, or an earlier write failed (commonware's
    /// `Metadata` drops its handle on a failed sync); nothing more is stored this run.
    #[error("secret store closed after an earlier failure")]
    Closed,
}

/// The encrypted store (see the module docs).
pub struct Secrets<E: Storage + Clock + Metrics> {
    store: Option<Metadata<E, U64, Vec<u8>>>,
    key: Zeroizing<[u8; 32]>,
    nonce_key: Zeroizing<[u8; 32]>,
    chain_id: ChainId,
}

impl<E: Storage + Clock + Metrics> Secrets<E> {
    /// Opens the store of the node whose partitions start with `prefix`, sealed with `signer`.
    pub async fn open(
        context: E,
        prefix: &str,
        signer: &PrivateKey,
        chain_id: ChainId,
    ) -> Result<Self, SecretsError> {
        let store = Metadata::init(
            context,
            Config {
                partition: format!("{prefix}-beacon-secrets"),
                codec_config: (RangeCfg::new(0..=VALUE_MAX_BYTES), ()),
            },
        )
        .await?;
        let secret = Zeroizing::new(signer.encode().to_vec());
        let key = Zeroizing::new(hash(&[KEY_DOMAIN, &secret]).0);
        let nonce_key = Zeroizing::new(hash(&[NONCE_DOMAIN, &secret]).0);
        Ok(Self {
            store: Some(store),
            key,
            nonce_key,
            chain_id,
        })
    }

    fn aad(&self, slot: Slot) -> Vec<u8> {
        let mut aad = self.chain_id.encode().to_vec();
        aad.extend(slot.key().as_ref());
        aad
    }

    /// The secret in `slot`, if one is stored and opens.
    pub fn get(&self, slot: Slot) -> Option<Zeroizing<Vec<u8>>> {
        let sealed = self.store.as_ref()?.get(&slot.key())?;
        if sealed.len() < 24 {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(24);
        let cipher = XChaCha20Poly1305::new(self.key.as_ref().into());
        let aad = self.aad(slot);
        cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .ok()
            .map(Zeroizing::new)
    }

    /// Seals `secret` into `slot` and syncs the store.
    pub async fn put(&mut self, slot: Slot, secret: &[u8]) -> Result<(), SecretsError> {
        if secret.len().saturating_add(24 + 16) > VALUE_MAX_BYTES {
            return Err(SecretsError::TooLarge(secret.len()));
        }
        let aad = self.aad(slot);
        let digest = hash(&[self.nonce_key.as_ref(), slot.key().as_ref(), secret]);
        let nonce = XNonce::from_slice(&digest.0[..24]);
        let cipher = XChaCha20Poly1305::new(self.key.as_ref().into());
        let ciphertext = cipher
            .encrypt(
                nonce,
                Payload {
                    msg: secret,
                    aad: &aad,
                },
            )
            .map_err(|_| SecretsError::Seal)?;
        let mut sealed = nonce.to_vec();
        sealed.extend(ciphertext);
        let mut store = self.store.take().ok_or(SecretsError::Closed)?;
        store.put(slot.key(), sealed);
        self.store = Some(store.sync().await?);
        Ok(())
    }

    /// Removes every secret of an epoch below `epoch` and syncs the store.
    pub async fn retain_from(&mut self, epoch: u64) -> Result<(), SecretsError> {
        let Some(store) = self.store.as_ref() else {
            return Ok(());
        };
        if store.keys().all(|key| Slot::epoch_of(key) >= epoch) {
            return Ok(());
        }
        let mut store = self.store.take().ok_or(SecretsError::Closed)?;
        store.retain(|key, _| Slot::epoch_of(key) >= epoch);
        self.store = Some(store.sync().await?);
        Ok(())
    }

    /// The shares stored, by epoch.
    pub fn shares(&self) -> Vec<(u64, Zeroizing<Vec<u8>>)> {
        let Some(store) = self.store.as_ref() else {
            return Vec::new();
        };
        let epochs: Vec<u64> = store
            .keys()
            .filter(|key| **key == Slot::Share(Slot::epoch_of(key)).key())
            .map(Slot::epoch_of)
            .collect();
        epochs
            .into_iter()
            .filter_map(|epoch| Some((epoch, self.get(Slot::Share(epoch))?)))
            .collect()
    }

    /// The dealings stored for `epoch`, by dealer position.
    pub fn dealings(&self, epoch: u64) -> Vec<(u16, Zeroizing<Vec<u8>>)> {
        let Some(store) = self.store.as_ref() else {
            return Vec::new();
        };
        let positions: Vec<u16> = store
            .keys()
            .filter(|key| Slot::epoch_of(key) == epoch)
            .filter_map(|key| {
                let low = u64::from_be_bytes(key.as_ref().try_into().ok()?) & ((1 << LOW_BITS) - 1);
                u16::try_from(low.checked_sub(1)?).ok()
            })
            .collect();
        positions
            .into_iter()
            .filter_map(|position| Some((position, self.get(Slot::Dealing(epoch, position))?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_cryptography::Signer as _;
    use commonware_runtime::{deterministic, Runner as _, Supervisor as _};

    fn chain() -> ChainId {
        ChainId(hash(&[b"secrets"]))
    }

    #[test]
    fn secrets_survive_a_reopen_sealed_and_open_only_with_their_key() {
        deterministic::Runner::default().start(|context| async move {
            let key = PrivateKey::from_seed(1);
            let mut secrets = Secrets::open(context.child("a"), "node", &key, chain())
                .await
                .unwrap();
            secrets.put(Slot::Share(4), b"share four").await.unwrap();
            secrets.put(Slot::Dealing(5, 2), b"dealing").await.unwrap();
            secrets.put(Slot::Dealing(5, 0), b"first").await.unwrap();
            drop(secrets);
            let reopened = Secrets::open(context.child("b"), "node", &key, chain())
                .await
                .unwrap();
            assert_eq!(&reopened.get(Slot::Share(4)).unwrap()[..], b"share four");
            let shares: Vec<(u64, Vec<u8>)> = reopened
                .shares()
                .into_iter()
                .map(|(epoch, bytes)| (epoch, bytes.to_vec()))
                .collect();
            assert_eq!(shares, vec![(4, b"share four".to_vec())]);
            let dealings: Vec<(u16, Vec<u8>)> = reopened
                .dealings(5)
                .into_iter()
                .map(|(position, bytes)| (position, bytes.to_vec()))
                .collect();
            assert_eq!(
                dealings,
                vec![(0, b"first".to_vec()), (2, b"dealing".to_vec())]
            );
            // Nothing is stored in clear.
            let store = reopened.store.as_ref().unwrap();
            let sealed = store.get(&Slot::Share(4).key()).unwrap();
            assert!(!sealed.windows(10).any(|window| window == b"share four"));
            drop(reopened);
            // Another node's key, or another chain, opens nothing.
            let other = Secrets::open(
                context.child("c"),
                "node",
                &PrivateKey::from_seed(2),
                chain(),
            )
            .await
            .unwrap();
            assert!(other.get(Slot::Share(4)).is_none());
            drop(other);
            let elsewhere =
                Secrets::open(context.child("d"), "node", &key, ChainId(hash(&[b"other"])))
                    .await
                    .unwrap();
            assert!(elsewhere.get(Slot::Share(4)).is_none());
            assert!(elsewhere.dealings(5).is_empty());
        });
    }

    #[test]
    fn slots_never_share_a_key() {
        let slots = [
            Slot::Share(0),
            Slot::Share(1),
            Slot::Dealing(0, 0),
            Slot::Dealing(0, u16::MAX),
            Slot::Dealing(1, 0),
            Slot::Dealing(1, u16::MAX),
            Slot::Share(EPOCH_MASK),
            Slot::Dealing(EPOCH_MASK, u16::MAX),
        ];
        let keys: std::collections::BTreeSet<U64> = slots.iter().map(|slot| slot.key()).collect();
        assert_eq!(keys.len(), slots.len());
        for slot in slots {
            let epoch = match slot {
                Slot::Share(epoch) | Slot::Dealing(epoch, _) => epoch,
            };
            assert_eq!(Slot::epoch_of(&slot.key()), epoch);
        }
    }

    #[test]
    fn a_tampered_or_oversize_secret_is_refused_and_old_epochs_go() {
        deterministic::Runner::default().start(|context| async move {
            let key = PrivateKey::from_seed(1);
            let mut secrets = Secrets::open(context.child("a"), "node", &key, chain())
                .await
                .unwrap();
            assert!(matches!(
                secrets.put(Slot::Share(1), &vec![0; VALUE_MAX_BYTES]).await,
                Err(SecretsError::TooLarge(_))
            ));
            secrets.put(Slot::Share(1), b"one").await.unwrap();
            secrets.put(Slot::Share(3), b"three").await.unwrap();
            // A flipped byte: the value no longer opens.
            let mut store = secrets.store.take().unwrap();
            let slot = Slot::Share(1).key();
            let mut sealed = store.get(&slot).unwrap().clone();
            let last = sealed.len() - 1;
            sealed[last] ^= 1;
            store.put(slot, sealed);
            secrets.store = Some(store);
            assert!(secrets.get(Slot::Share(1)).is_none());
            // A value moved to another slot does not open there either.
            let moved = secrets
                .store
                .as_ref()
                .unwrap()
                .get(&Slot::Share(3).key())
                .cloned();
            secrets
                .store
                .as_mut()
                .unwrap()
                .put(Slot::Share(2).key(), moved.unwrap());
            assert!(secrets.get(Slot::Share(2)).is_none());
            secrets.retain_from(3).await.unwrap();
            assert!(secrets.get(Slot::Share(3)).is_some());
            assert!(secrets
                .store
                .as_ref()
                .unwrap()
                .get(&Slot::Share(2).key())
                .is_none());
        });
    }
}
