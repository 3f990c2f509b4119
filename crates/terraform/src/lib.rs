//! The Terraform provider of the Logos sub0layer (source address `logos/logos`), speaking
//! Terraform's plugin protocol 6 through the `tf-provider` crate (gRPC over mutual TLS on
//! loopback, the go-plugin handshake).
//!
//! ```hcl
//! provider "logos" {
//!   rpc      = "http://127.0.0.1:8545"   # default
//!   keystore = "/tmp/logos-devnet/keys"  # default ~/.logos/keys
//!   key      = "dev"                     # the tenant's key; leases need one
//!   genesis  = "/tmp/logos-devnet/genesis.toml" # optional: reads proven against it
//! }
//! resource "logos_lease" "node" {
//!   template = "Logos full node"   # a catalog template's name
//!   blocks   = 36000               # blocks of escrow bought over the lease's life
//! }
//! data "logos_catalog" "all" {}
//! data "logos_prices" "now" {}
//! ```
//!
//! How Terraform's operations map to the chain ([`lease`]): create is `CreateLease` (escrow
//! `blocks` × the template's price) followed until the environment is Verified (a leased full
//! node's p2p key registered on the way, as `logos lease create --wait` does); read is the
//! finalized lease record (a lease closed outside Terraform reads as gone, so the next plan
//! shows the drift and creates it again); raising `blocks` is `ExtendLease` by the difference,
//! in place (lowering it is refused at plan: paid escrow comes back only on close); a new
//! `template` or `region` replaces the lease; destroy is `CloseLease`, which refunds the unspent
//! escrow (and deregisters the full node's key). The key never leaves this process: Terraform
//! sees only the lease's public fields.
//!
//! Signing: the key file is decrypted with `LOGOS_PASSPHRASE` or `LOGOS_PASSPHRASE_FILE`
//! (Terraform passes its environment to the provider; devnet keys need none).

pub mod connection;
pub mod data;
pub mod lease;
pub mod provider;

pub use provider::LogosProvider;

/// Serves the provider to the Terraform process that started this one (blocks until it is
/// done with it).
pub async fn serve() -> anyhow::Result<()> {
    tf_provider::serve("logos", LogosProvider::default()).await
}
