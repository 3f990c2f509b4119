//! On-chain modules, one folder each (FRAME-pallet shaped).
//!
//! | index | module | owns |
//! |---|---|---|
//! | 0 | [`balances`] | accounts (nonce, balance), total issuance, transfers, fees |

pub mod balances;
