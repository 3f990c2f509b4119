//! W3bI's web console: `logos w3bi` runs a local HTTP server that holds the user's key (the
//! browser never sees it) and serves, on loopback by default:
//! - **tenant** pages: the catalog with live prices and a deploy form per template; each
//!   lease with its conditions, endpoint, cost so far and escrow left, its logs streamed from
//!   the provider's agent, CPU/memory/disk charts from the agent's signed stats, and extend,
//!   update (new generation), add a replica (another lease of the template) and close;
//! - **provider** pages: every machine with its region, resources, host aggregate, reliability
//!   score, earnings from the leases listed and attestation state;
//! - **community** pages: the network (committee, finalized height, finality latency, block
//!   rate, regions and capacity) and governance (proposals with tallies, and voting).
//!
//! Stack: server-rendered HTML (`maud`, which escapes every value) with one small, readable
//! script (`assets/console.js`, no framework, no build step, no CDN) that listens to
//! `/events` (server-sent events fed by the node's `logos_subscribeFinalizedHeads`) and
//! re-renders the page's live fragments; charts are SVG drawn by that script.
//!
//! Security ([`guard`]): `logos w3bi` prints its URL with a per-process key, which the browser
//! trades for a session cookie (`HttpOnly`, `SameSite=Strict`): other users of the machine,
//! who can reach loopback too, get nothing without it. The server answers only requests whose
//! `Host` is its listen address (a page of another site cannot reach it by DNS rebinding) and
//! that no other site made (fetch metadata); every state-changing request is a POST
//! carrying the per-process token embedded in the console's own forms and no foreign `Origin`
//! (cross-site forms are refused); responses forbid framing and foreign scripts (CSP); bodies
//! are at most [`routes::BODY_MAX_BYTES`]; log streams and background watchers are bounded.

pub mod attestation;
pub mod chain;
pub mod guard;
pub mod live;
pub mod pages;
pub mod routes;

use logos_client::{keystore, Client, ClientError, Wallet};
use std::{net::SocketAddr, path::PathBuf, sync::Arc};

/// Node RPC endpoint used when none is given.
pub const DEFAULT_RPC: &str = "http://127.0.0.1:8545";
/// Listen address used when none is given (loopback: the console signs with the user's key).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// `logos w3bi`'s options.
#[derive(clap::Args, Clone, Debug)]
pub struct W3biArgs {
    /// Address to serve the console on. Anything but loopback lets others use your key.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Node RPC endpoint (HTTP; its WebSocket on the same port feeds live updates).
    #[arg(long, default_value = DEFAULT_RPC, env = "LOGOS_RPC")]
    pub rpc: String,
    /// Keystore directory.
    #[arg(long, env = "LOGOS_KEYSTORE")]
    pub keystore: Option<PathBuf>,
    /// Key to sign with (none: the console only reads).
    #[arg(long, env = "LOGOS_FROM")]
    pub from: Option<String>,
    /// Genesis file: reads of the agent's address and key are proven against its validators
    /// (logs and stats need it).
    #[arg(long, env = "LOGOS_GENESIS")]
    pub genesis: Option<PathBuf>,
}

/// Why the console could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key could not be loaded.
    #[error(transparent)]
    Keystore(#[from] keystore::KeystoreError),
    /// The node could not be reached, or is another chain than the genesis'.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The listen address could not be bound, or serving failed.
    #[error("serving on {address}: {source}")]
    Serve {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// No randomness for the console's token.
    #[error("no randomness: {0}")]
    Randomness(String),
}

/// What every request handler shares.
pub struct Console {
    /// The chain client (trusted when a genesis was given).
    pub client: Client,
    /// The signing key (none: read-only console).
    pub wallet: Option<Wallet>,
    /// The address the console serves on (what `Host` must say).
    pub listen: SocketAddr,
    /// The token every form carries (hex of 32 random bytes, per process).
    pub token: String,
    /// The session secret (hex of 32 random bytes, per process): printed in the console's
    /// URL, then carried by the browser's cookie.
    pub session: String,
    /// Finalized heads as seen live.
    pub heads: live::Heads,
    /// Bounds the log streams open at once.
    pub streams: Arc<tokio::sync::Semaphore>,
    /// Bounds the background followers of new leases.
    pub watchers: Arc<tokio::sync::Semaphore>,
    /// One transaction at a time from the console's account (nonces in order).
    pub submitting: tokio::sync::Mutex<()>,
}

/// Log streams open at once.
pub const STREAMS_MAX: usize = 8;
/// New leases followed at once (to register a leased full node's key).
pub const WATCHERS_MAX: usize = 16;

impl Console {
    /// Connects and loads the key as `args` say.
    pub async fn open(args: &W3biArgs) -> Result<Self, Error> {
        let client = Client::connect_with(&args.rpc, args.genesis.as_deref()).await?;
        let wallet = match &args.from {
            Some(name) => {
                let directory = keystore::directory(args.keystore.clone());
                Some(Wallet::new(keystore::load(&directory, name)?))
            }
            None => None,
        };
        let secret = || {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes)
                .map(|()| hex::encode(bytes))
                .map_err(|error| Error::Randomness(error.to_string()))
        };
        Ok(Self {
            client,
            wallet,
            listen: args.listen,
            token: secret()?,
            session: secret()?,
            heads: live::Heads::default(),
            streams: Arc::new(tokio::sync::Semaphore::new(STREAMS_MAX)),
            watchers: Arc::new(tokio::sync::Semaphore::new(WATCHERS_MAX)),
            submitting: tokio::sync::Mutex::new(()),
        })
    }
}

/// Runs the console until the process is stopped: follows the chain's finalized heads and
/// serves the pages. Prints the URL once listening.
pub async fn run(args: W3biArgs) -> Result<(), Error> {
    if !args.listen.ip().is_loopback() {
        eprintln!(
            "*** the console listens on {}: anyone who reaches it can spend from {}",
            args.listen,
            args.from.as_deref().unwrap_or("(no key)")
        );
    }
    let console = Arc::new(Console::open(&args).await?);
    let serve_error = |source| Error::Serve {
        address: args.listen,
        source,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(serve_error)?;
    tokio::spawn(live::follow(console.clone(), args.rpc.clone()));
    // The key in the URL is the session: only who reads this can use the console.
    println!("console: http://{}/?key={}", args.listen, console.session);
    axum::serve(listener, routes::router(console))
        .await
        .map_err(serve_error)
}
