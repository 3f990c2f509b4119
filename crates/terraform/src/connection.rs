//! The provider's connection to the chain, made once by `configure` and shared by its
//! resources and data sources (Terraform asks for those before it configures the provider).

use logos_client::{keystore, Client, ClientError, Wallet};
use std::{
    path::PathBuf,
    sync::{Arc, RwLock},
};

/// Node RPC endpoint used when the provider block names none.
pub const DEFAULT_RPC: &str = "http://127.0.0.1:8545";

/// The provider block's settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// Node RPC endpoint (HTTP).
    pub rpc: Option<String>,
    /// Keystore directory (default `~/.logos/keys`).
    pub keystore: Option<PathBuf>,
    /// Name of the signing key in the keystore.
    pub key: Option<String>,
    /// Genesis file: when given, the chain's identity is checked against it and reads are
    /// proven against its validators.
    pub genesis: Option<PathBuf>,
}

/// What the provider could not set up, or a call that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The provider block was not applied yet.
    #[error("the logos provider is not configured")]
    NotConfigured,
    /// A resource needs a signing key and the provider block names none.
    #[error("no signing key: set `key` (a key of the keystore) in the provider block")]
    NoKey,
    /// The key could not be loaded.
    #[error(transparent)]
    Keystore(#[from] keystore::KeystoreError),
    /// The chain or its RPC server refused or failed.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// A client of the chain and the tenant's wallet.
pub struct Connection {
    /// The chain client.
    pub client: Client,
    /// The signing key (none if the provider block names no key: data sources only).
    pub wallet: Option<Wallet>,
    /// Reads are proven against the genesis validators (the provider block named a genesis).
    pub proven: bool,
    /// Held while a transaction is submitted and awaited: Terraform runs operations in
    /// parallel and one account's nonces must go out in order.
    pub submitting: tokio::sync::Mutex<()>,
}

impl Connection {
    /// Loads the key and connects as `settings` say.
    pub async fn open(settings: &Settings) -> Result<Self, Error> {
        let rpc = settings.rpc.as_deref().unwrap_or(DEFAULT_RPC);
        let client = Client::connect_with(rpc, settings.genesis.as_deref()).await?;
        let wallet = match &settings.key {
            Some(name) => {
                let directory = keystore::directory(settings.keystore.clone());
                Some(Wallet::new(keystore::load(&directory, name)?))
            }
            None => None,
        };
        Ok(Self {
            client,
            wallet,
            proven: settings.genesis.is_some(),
            submitting: tokio::sync::Mutex::new(()),
        })
    }

    /// Reads `key` of map `I` at the finalized head: proven when [`Connection::proven`].
    pub async fn read<I: logos_types::storage::StorageMap>(
        &self,
        key: &I::Key,
    ) -> Result<Option<I::Value>, Error> {
        let (value, _) = match self.proven {
            true => self.client.map_proven::<I>(key).await?,
            false => self.client.map::<I>(key).await?,
        };
        Ok(value)
    }

    /// The signing key, or [`Error::NoKey`].
    pub fn wallet(&self) -> Result<&Wallet, Error> {
        self.wallet.as_ref().ok_or(Error::NoKey)
    }
}

/// The connection, once configured, shared by the provider and what it serves.
#[derive(Clone, Default)]
pub struct Shared(Arc<RwLock<Option<Arc<Connection>>>>);

impl Shared {
    /// Installs `connection` (a second `configure` replaces the first).
    pub fn set(&self, connection: Connection) {
        if let Ok(mut slot) = self.0.write() {
            *slot = Some(Arc::new(connection));
        }
    }

    /// The connection, or [`Error::NotConfigured`].
    pub fn get(&self) -> Result<Arc<Connection>, Error> {
        let slot = self.0.read().map_err(|_| Error::NotConfigured)?;
        slot.clone().ok_or(Error::NotConfigured)
    }
}
