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
//!   blocks   = 36000               # blocks of escrow bought for each lease over its life
//!   replicas = 2                   # optional: leases of the template kept open (default 1)
//!   wait_until = "Verified"        # optional: or "Placed" (see lease::WaitUntil)
//! }
//! data "logos_catalog" "all" {}
//! data "logos_prices" "now" {}
//! ```
//!
//! How Terraform's operations map to the chain ([`lease`]): create is one `CreateLease` per
//! replica (escrow `blocks` × the template's price each), the lease each receipt names checked
//! on chain (the key's, of that template, new), then each followed until its environment is
//! Verified (a leased full node's p2p key registered on the way and kept in the private
//! state), or only until it is placed (`wait_until = "Placed"`); read is the finalized lease records: all closed outside Terraform, the resource
//! reads as gone, so the next plan shows the drift and creates it again; some closed, it reads
//! with fewer `replicas`, so the plan leases again in place; absent, or another account's, it
//! is an error (the chain never deletes a lease, so absence means a stale or lying server);
//! raising `blocks` is `ExtendLease` of each lease up to it (what each was bought for is read
//! on chain, so a retried apply pays nothing twice), in place (lowering it is refused at plan:
//! paid escrow comes back only on close); raising `replicas` leases more in place, lowering it
//! closes the newest; a new `template` or `region` replaces the leases; destroy is `CloseLease`
//! of each, which refunds the unspent escrow, and deregisters the full-node keys registered at
//! create; `terraform import logos_lease.NAME ID[,ID…]` adopts open leases of the key (one
//! template and region). If a create's receipt is lost after submission, the lease is found
//! among the newest; failing that, the error names the transaction. A failure part-way keeps
//! every lease already paid for in the state. The key never leaves this process: Terraform
//! sees only the leases' public fields.
//!
//! Trust: with `genesis`, every read the provider decides on (the catalog and prices it pays
//! by, the leases it reads, extends and closes) is proven against the genesis validators;
//! without it the RPC server is trusted, and the provider says so in a warning.
//!
//! Signing: the key file is decrypted with `LOGOS_PASSPHRASE` or `LOGOS_PASSPHRASE_FILE`
//! (Terraform passes its environment to the provider; devnet keys need none).

pub mod connection;
pub mod data;
pub mod lease;
pub mod provider;

pub use provider::LogosProvider;

use tf_provider::schema::{Attribute, AttributeConstraint, AttributeType, Description};

/// A schema attribute of `kind` with `constraint`, described by `text`.
pub(crate) fn attribute(
    kind: AttributeType,
    constraint: AttributeConstraint,
    text: &str,
) -> Attribute {
    Attribute {
        attr_type: kind,
        description: Description::plain(text),
        constraint,
        ..Default::default()
    }
}

/// Serves the provider to the Terraform process that started this one (blocks until it is
/// done with it).
pub async fn serve() -> anyhow::Result<()> {
    tf_provider::serve("logos", LogosProvider::default()).await
}
