//! On-chain modules, one folder each (FRAME-pallet shaped).
//!
//! | index | module | owns |
//! |---|---|---|
//! | 0 | [`balances`] | accounts (nonce, free and reserved balance), total issuance, transfers, fees |
//! | 1 | [`dvci`] | regions, providers (bonded), host aggregates with a backup buffer, placement |
//! | 2 | [`market`] | catalog (products, templates), price table, leases with escrow metered per block |
//! | 3 | [`operations`] | desired state of environments (spec, generation) and reported status |
//! | 4 | [`provisioning`] | staked provisioners, assignments, cross-check rounds, slashing |

pub mod balances;
pub mod dvci;
pub mod market;
pub mod operations;
pub mod provisioning;
