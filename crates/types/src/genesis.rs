//! Genesis: the file that defines a network, and the state it starts from.
//!
//! A genesis file is TOML:
//! ```toml
//! chain_name = "logos-devnet"
//! timestamp_ms = 0
//! [params]
//! min_fee = "1000"
//! max_block_transactions = 2048
//! epoch_length_blocks = 100   # optional (staking default 7,200)
//! committee_size = 7          # optional (default 16)
//! elections = true            # optional (default: proof of authority)
//! [[validators]]
//! public_key = "0x…"          # ed25519, 32 bytes hex
//! p2p_address = "127.0.0.1:30300"
//! [[accounts]]
//! address = "0x…"             # 20 bytes hex
//! balance = "1000000000000"   # smallest unit, decimal string
//! [parent]                    # a spin-off only (`logos spinoff`)
//! chain_id = "0x…"            # the parent network's chain id
//! height = 1200               # the parent's finalized height the state was taken at
//! block_hash = "0x…"          # the parent's block at that height
//! state_root = "0x…"          # its state root
//! ```
//! The [`ChainId`] is the SHA-256 of the canonical encoding of the chain name, timestamp,
//! parameters, sorted validator keys and sorted accounts, so any change to the genesis (a
//! spin-off included) gives a new chain id.

use commonware_codec::{Encode, Write};
use logos_primitives::{hash, parse_public_key, Address, Amount, ChainId, Hash, PublicKey};
use std::{collections::BTreeMap, net::SocketAddr, path::Path};

/// Largest number of validators a genesis may list.
pub const GENESIS_VALIDATORS_MAX: usize = 256;
/// Largest number of accounts a genesis may list.
pub const GENESIS_ACCOUNTS_MAX: usize = 1_000_000;
/// Largest `max_block_transactions` (a block's receipts and the receipt store's decoding
/// bound; blocks are also bounded by the p2p message size).
pub const MAX_BLOCK_TRANSACTIONS_MAX: u32 = 65_536;

/// Chain parameters.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Params {
    /// Minimum fee per transaction, smallest unit.
    pub min_fee: Amount,
    /// Maximum transactions per block.
    pub max_block_transactions: u32,
    /// The account whose transactions are the privileged origin (catalog, prices, provider
    /// admission). It stands in until on-chain governance owns these calls; `None` disables
    /// privileged calls.
    #[serde(default)]
    pub privileged_account: Option<Address>,
    /// Epoch length from genesis on, blocks (`None`: the staking default, 7,200); governance
    /// changes it later (`staking::SetConfig`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch_length_blocks: Option<u64>,
    /// Seats of an elected committee (`None`: the staking default, 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committee_size: Option<u16>,
    /// Elect committees from stake from genesis on (default: proof of authority by the genesis
    /// validators until a governance proposal switches elections on).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub elections: bool,
    /// Providers take leases without Machine Integrity Attestation (a devnet without a TPM).
    /// Off by default: a provider must keep its machine attested (`attestation`). Part of the
    /// chain id when set, and shown by the CLI and RPC.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unattested: bool,
}

impl Params {
    /// True if the genesis sets any staking setting (they are then part of the chain id).
    pub fn sets_staking(&self) -> bool {
        self.epoch_length_blocks.is_some() || self.committee_size.is_some() || self.elections
    }

    /// The staking settings at genesis: the module defaults with this genesis' overrides (the
    /// unbonding period is raised to three epochs if a long epoch needs it).
    pub fn staking_config(&self) -> crate::staking::StakingConfig {
        let mut config = crate::staking::StakingConfig::default();
        if let Some(length) = self.epoch_length_blocks {
            config.epoch_length_blocks = length;
            config.unbonding_blocks = config.unbonding_blocks.max(length.saturating_mul(3));
        }
        if let Some(size) = self.committee_size {
            config.committee_size = size;
        }
        config.elections = self.elections;
        config
    }
}

impl Default for Params {
    fn default() -> Self {
        Self {
            min_fee: Amount(1_000),
            max_block_transactions: 2_048,
            privileged_account: None,
            epoch_length_blocks: None,
            committee_size: None,
            elections: false,
            unattested: false,
        }
    }
}

/// A validator listed in genesis.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GenesisValidator {
    /// ed25519 public key, `0x` hex.
    pub public_key: String,
    /// Where the validator listens for p2p connections.
    pub p2p_address: SocketAddr,
}

/// An account funded at genesis.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GenesisAccount {
    /// The account.
    pub address: Address,
    /// Its balance, smallest unit.
    pub balance: Amount,
}

/// Where a spin-off network comes from: the parent network's finalized block whose state
/// the spin-off's genesis was derived from (`logos spinoff`). It is part of the chain id.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GenesisParent {
    /// The parent network's chain id.
    pub chain_id: ChainId,
    /// The parent's finalized height the state was taken at.
    pub height: u64,
    /// The parent's block at `height` (its digest, `0x` hex).
    #[serde(with = "crate::runtime::hash_hex")]
    pub block_hash: Hash,
    /// That block's state root (`0x` hex).
    #[serde(with = "crate::runtime::hash_hex")]
    pub state_root: Hash,
}

/// A network's genesis.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Genesis {
    /// Human-readable network name.
    pub chain_name: String,
    /// Timestamp of the genesis block, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// Chain parameters.
    #[serde(default)]
    pub params: Params,
    /// The initial validator set (simplex participants).
    pub validators: Vec<GenesisValidator>,
    /// Initial balances.
    #[serde(default)]
    pub accounts: Vec<GenesisAccount>,
    /// The parent network of a spin-off (`None` for a network started from scratch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<GenesisParent>,
}

/// Errors loading or validating a genesis.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    /// The file could not be read.
    #[error("cannot read genesis {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid genesis TOML.
    #[error("invalid genesis TOML: {0}")]
    Toml(String),
    /// The genesis is inconsistent.
    #[error("invalid genesis: {0}")]
    Invalid(String),
}

impl Genesis {
    /// Reads and validates a genesis file.
    pub fn load(path: &Path) -> Result<Self, GenesisError> {
        let text = std::fs::read_to_string(path).map_err(|source| GenesisError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// Parses and validates genesis TOML.
    pub fn from_toml(text: &str) -> Result<Self, GenesisError> {
        let genesis: Genesis =
            toml::from_str(text).map_err(|error| GenesisError::Toml(error.to_string()))?;
        genesis.validate()?;
        Ok(genesis)
    }

    /// Serialises to TOML.
    pub fn to_toml(&self) -> Result<String, GenesisError> {
        toml::to_string_pretty(self).map_err(|error| GenesisError::Toml(error.to_string()))
    }

    /// Checks limits, key validity, duplicates and issuance overflow.
    pub fn validate(&self) -> Result<(), GenesisError> {
        let invalid = |message: String| Err(GenesisError::Invalid(message));
        if self.validators.is_empty() || self.validators.len() > GENESIS_VALIDATORS_MAX {
            return invalid(format!(
                "between 1 and {GENESIS_VALIDATORS_MAX} validators required, got {}",
                self.validators.len()
            ));
        }
        if self.accounts.len() > GENESIS_ACCOUNTS_MAX {
            return invalid(format!("more than {GENESIS_ACCOUNTS_MAX} accounts"));
        }
        if self.params.max_block_transactions == 0 {
            return invalid("max_block_transactions must be positive".into());
        }
        if self.params.max_block_transactions > MAX_BLOCK_TRANSACTIONS_MAX {
            return invalid(format!(
                "max_block_transactions above {MAX_BLOCK_TRANSACTIONS_MAX}"
            ));
        }
        if self.params.staking_config().check().is_err() {
            return invalid(format!(
                "staking settings out of bounds (epoch length {}..={} blocks, committee size \
                 {}..={})",
                crate::staking::EPOCH_LENGTH_MIN_BLOCKS,
                crate::staking::EPOCH_LENGTH_MAX_BLOCKS,
                crate::staking::COMMITTEE_MIN,
                crate::staking::COMMITTEE_MAX
            ));
        }
        let keys = self.validator_keys()?;
        let unique: std::collections::BTreeSet<_> = keys.iter().collect();
        if unique.len() != keys.len() {
            return invalid("duplicate validator key".into());
        }
        let mut total = Amount::ZERO;
        let mut seen = std::collections::BTreeSet::new();
        for account in &self.accounts {
            if !seen.insert(account.address) {
                return invalid(format!("duplicate account {}", account.address));
            }
            total = match total.checked_add(account.balance) {
                Some(total) => total,
                None => return invalid("total issuance overflows".into()),
            };
        }
        Ok(())
    }

    /// The validators' public keys, in file order.
    pub fn validator_keys(&self) -> Result<Vec<PublicKey>, GenesisError> {
        self.validators
            .iter()
            .map(|validator| {
                parse_public_key(&validator.public_key)
                    .map_err(|error| GenesisError::Invalid(format!("validator key: {error}")))
            })
            .collect()
    }

    /// The chain id: SHA-256 of the canonical encoding (see the module docs).
    pub fn chain_id(&self) -> ChainId {
        let mut bytes = Vec::new();
        // Validated genesis files have at most GENESIS_VALIDATORS_MAX keys; an unparsable key
        // (an unvalidated genesis) is left out, so the id of a bad file is still defined.
        (self.chain_name.len() as u32).write(&mut bytes);
        bytes.extend_from_slice(self.chain_name.as_bytes());
        self.timestamp_ms.write(&mut bytes);
        self.params.min_fee.write(&mut bytes);
        self.params.max_block_transactions.write(&mut bytes);
        match &self.params.privileged_account {
            Some(account) => {
                1u8.write(&mut bytes);
                account.write(&mut bytes);
            }
            None => 0u8.write(&mut bytes),
        }
        let mut keys: Vec<PublicKey> = self
            .validators
            .iter()
            .filter_map(|validator| parse_public_key(&validator.public_key).ok())
            .collect();
        keys.sort();
        (keys.len() as u32).write(&mut bytes);
        for key in &keys {
            bytes.extend_from_slice(&key.encode());
        }
        let balances = self.balances();
        (balances.len() as u32).write(&mut bytes);
        for (address, balance) in &balances {
            address.write(&mut bytes);
            balance.write(&mut bytes);
        }
        // Only a genesis that sets them commits to them: older ids stay as they were.
        if self.params.sets_staking() {
            let config = self.params.staking_config();
            config.epoch_length_blocks.write(&mut bytes);
            config.committee_size.write(&mut bytes);
            u8::from(config.elections).write(&mut bytes);
        }
        // Only a genesis without attestation commits to it (older ids stay as they were).
        if self.params.unattested {
            bytes.extend_from_slice(b"unattested");
        }
        // A spin-off commits to its parent (older ids stay as they were).
        if let Some(parent) = &self.parent {
            bytes.extend_from_slice(b"parent");
            parent.chain_id.0.write(&mut bytes);
            parent.height.write(&mut bytes);
            parent.block_hash.write(&mut bytes);
            parent.state_root.write(&mut bytes);
        }
        ChainId(hash(&[b"logos-genesis-v1", &bytes]))
    }

    /// Initial balances by address.
    pub fn balances(&self) -> BTreeMap<Address, Amount> {
        self.accounts
            .iter()
            .map(|account| (account.address, account.balance))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_cryptography::Signer;
    use logos_primitives::{format_public_key, PrivateKey};

    fn genesis() -> Genesis {
        Genesis {
            chain_name: "test".into(),
            timestamp_ms: 0,
            params: Params::default(),
            validators: vec![GenesisValidator {
                public_key: format_public_key(&PrivateKey::from_seed(1).public_key()),
                p2p_address: "127.0.0.1:1".parse().unwrap(),
            }],
            accounts: vec![GenesisAccount {
                address: Address([1; 20]),
                balance: Amount(100),
            }],
            parent: None,
        }
    }

    #[test]
    fn genesis_round_trips_through_toml_and_id_tracks_content() {
        let original = genesis();
        let parsed = Genesis::from_toml(&original.to_toml().unwrap()).unwrap();
        assert_eq!(parsed, original);
        assert_eq!(parsed.chain_id(), original.chain_id());
        let mut spin_off = original.clone();
        spin_off.chain_name = "spin-off".into();
        assert_ne!(spin_off.chain_id(), original.chain_id());
    }

    #[test]
    fn a_spin_off_commits_to_its_parent_and_round_trips() {
        let original = genesis();
        let parent = GenesisParent {
            chain_id: original.chain_id(),
            height: 1_200,
            block_hash: hash(&[b"block"]),
            state_root: hash(&[b"root"]),
        };
        let mut child = original.clone();
        child.parent = Some(parent.clone());
        let parsed = Genesis::from_toml(&child.to_toml().unwrap()).unwrap();
        assert_eq!(parsed, child);
        assert_ne!(child.chain_id(), original.chain_id());
        // Every field of the parent is committed to.
        let mut other_height = child.clone();
        other_height.parent = Some(GenesisParent {
            height: 1_201,
            ..parent.clone()
        });
        let mut other_root = child.clone();
        other_root.parent = Some(GenesisParent {
            state_root: hash(&[b"other"]),
            ..parent.clone()
        });
        let mut other_block = child.clone();
        other_block.parent = Some(GenesisParent {
            block_hash: hash(&[b"other"]),
            ..parent
        });
        for variant in [other_height, other_root, other_block] {
            assert_ne!(variant.chain_id(), child.chain_id());
        }
        // A genesis without a parent keeps the id it always had (no `[parent]` written).
        assert!(!original.to_toml().unwrap().contains("[parent]"));
        // A malformed parent hash is refused.
        let text = child
            .to_toml()
            .unwrap()
            .replace("block_hash = \"0x", "block_hash = \"0xzz");
        assert!(matches!(
            Genesis::from_toml(&text),
            Err(GenesisError::Toml(_))
        ));
    }

    #[test]
    fn inconsistent_genesis_is_rejected() {
        let mut duplicate = genesis();
        duplicate.accounts.push(duplicate.accounts[0].clone());
        assert!(matches!(
            duplicate.validate(),
            Err(GenesisError::Invalid(_))
        ));
        let mut empty = genesis();
        empty.validators.clear();
        assert!(matches!(empty.validate(), Err(GenesisError::Invalid(_))));
        assert!(matches!(
            Genesis::from_toml("chain_name = 3"),
            Err(GenesisError::Toml(_))
        ));
    }

    #[test]
    fn block_size_beyond_what_receipts_can_decode_is_rejected() {
        let mut at_cap = genesis();
        at_cap.params.max_block_transactions = MAX_BLOCK_TRANSACTIONS_MAX;
        assert!(at_cap.validate().is_ok());
        let mut above = genesis();
        above.params.max_block_transactions = MAX_BLOCK_TRANSACTIONS_MAX + 1;
        assert!(matches!(above.validate(), Err(GenesisError::Invalid(_))));
        let mut zero = genesis();
        zero.params.max_block_transactions = 0;
        assert!(matches!(zero.validate(), Err(GenesisError::Invalid(_))));
    }

    /// Staking settings out of bounds are refused; set ones change the chain id, absent ones
    /// leave it as it was.
    #[test]
    fn staking_settings_are_bounded_and_committed_to_only_when_set() {
        let plain = genesis();
        for (length, size) in [
            (Some(0), None),
            (Some(9), None),
            (None, Some(1)),
            (None, Some(u16::MAX)),
        ] {
            let mut bad = genesis();
            bad.params.epoch_length_blocks = length;
            bad.params.committee_size = size;
            assert!(bad.validate().is_err(), "{length:?} {size:?}");
        }
        let mut set = genesis();
        set.params.epoch_length_blocks = Some(100);
        set.validate().unwrap();
        assert_ne!(set.chain_id(), plain.chain_id());
        let mut elections = genesis();
        elections.params.elections = true;
        assert_ne!(elections.chain_id(), set.chain_id());
        let text = plain.to_toml().unwrap();
        assert!(!text.contains("epoch_length_blocks") && !text.contains("elections"));
    }
}
