//! End-to-end tests with real `logos` processes on loopback.

use commonware_cryptography::Signer;
use jsonrpsee::{
    core::client::Subscription, http_client::HttpClientBuilder, ws_client::WsClientBuilder,
};
use logos_api::rpc::{codes, EventRecord, LogosApiClient};
use logos_primitives::{Address, Amount, ChainId, PrivateKey};
use logos_types::{balances, codec::encode as codec_bytes, Call, Event, TransactionPayload};
use std::{
    io::{Read, Write},
    net::TcpStream,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

mod common;

use common::{load_key, runtime, stdout_lines, LOGOS};

struct Devnet {
    dir: PathBuf,
    rpc: Vec<String>,
    processes: Vec<Option<Child>>,
}

impl Devnet {
    /// Writes a devnet with `validators` validators and `accounts` funded accounts. Ports:
    /// p2p `port_base + i`, RPC `+ 1000`, metrics `+ 2000`; keep them below the ephemeral
    /// range (32768 and up on Linux), where outgoing connections take their local ports.
    fn init(
        name: &str,
        validators: usize,
        accounts: usize,
        port_base: u16,
        extra_config: &str,
    ) -> Self {
        let dir = std::env::temp_dir().join(format!("logos-e2e-{name}-{}", std::process::id()));
        let status = Command::new(LOGOS)
            .args([
                "devnet",
                "--init-only",
                "--validators",
                &validators.to_string(),
                "--accounts",
                &accounts.to_string(),
            ])
            .args(["--p2p-base-port", &port_base.to_string()])
            .args(["--rpc-base-port", &(port_base + 1_000).to_string()])
            .args(["--metrics-base-port", &(port_base + 2_000).to_string()])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        for i in 0..validators {
            let config = dir.join(format!("validator-{i}/config.toml"));
            let mut text = std::fs::read_to_string(&config).unwrap();
            text.push_str(extra_config);
            std::fs::write(&config, text).unwrap();
        }
        let rpc = (0..validators)
            .map(|i| format!("http://127.0.0.1:{}", port_base as usize + 1_000 + i))
            .collect();
        let mut devnet = Self {
            dir,
            rpc,
            processes: (0..validators).map(|_| None).collect(),
        };
        for i in 0..validators {
            devnet.start(i);
        }
        devnet
    }

    fn start(&mut self, index: usize) {
        let config = self.dir.join(format!("validator-{index}/config.toml"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("validator-{index}/node.log")))
            .unwrap();
        let mut child = Command::new(LOGOS)
            .args(["node", "run", "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let receiver = stdout_lines(&mut child);
        let line = receiver
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_default();
        self.processes[index] = Some(child);
        assert!(
            line.contains("\"ready\":true"),
            "validator {index} not ready: {line:?}; see {}",
            self.dir.display()
        );
    }

    /// SIGKILL, as a crash would.
    fn kill(&mut self, index: usize) {
        let mut child = self.processes[index].take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn key(&self, name: &str) -> PrivateKey {
        load_key(&self.dir.join(format!("keys/{name}.key")))
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        for child in self.processes.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn client(url: &str) -> jsonrpsee::http_client::HttpClient {
    HttpClientBuilder::default()
        .request_timeout(Duration::from_secs(10))
        .build(url)
        .unwrap()
}

fn transfer(
    key: &PrivateKey,
    chain_id: ChainId,
    nonce: u64,
    to: Address,
    amount: u128,
    fee: u128,
) -> TransactionPayload {
    TransactionPayload {
        chain_id,
        sender: key.public_key(),
        nonce,
        fee: Amount(fee),
        call: Call::Balances(balances::Call::Transfer {
            to,
            amount: Amount(amount),
        }),
    }
}

fn to_hex(payload: TransactionPayload, key: &PrivateKey) -> String {
    format!("0x{}", hex::encode(codec_bytes(&payload.sign(key))))
}

async fn head_height(url: &str) -> u64 {
    client(url)
        .get_finalized_head()
        .await
        .map(|head| head.height)
        .unwrap_or(0)
}

async fn wait_for_height(url: &str, height: u64, bound: Duration) {
    let deadline = Instant::now() + bound;
    while head_height(url).await < height {
        assert!(
            Instant::now() < deadline,
            "{url} did not reach height {height} within {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends one round of transfers (one per sender) to `url`; returns how many were accepted.
async fn load_round(
    url: &str,
    chain_id: ChainId,
    senders: &[PrivateKey],
    nonces: &mut [u64],
    recipient: Address,
) -> u64 {
    let client = client(url);
    let mut accepted = 0;
    for (key, nonce) in senders.iter().zip(nonces.iter_mut()) {
        let payload = transfer(key, chain_id, *nonce, recipient, 1, 1_000);
        if client
            .submit_transaction(to_hex(payload, key))
            .await
            .is_ok()
        {
            *nonce += 1;
            accepted += 1;
        }
    }
    accepted
}

#[test]
fn killed_validator_restarts_and_catches_up_to_the_same_state() {
    let mut devnet = Devnet::init("kill", 4, 4, 20_300, "");
    let senders: Vec<PrivateKey> = (0..4)
        .map(|j| devnet.key(&format!("account-{j}")))
        .collect();
    let recipient = Address([0x55; 20]);
    let rpc = devnet.rpc.clone();
    let runtime = runtime();
    let chain_id = runtime.block_on(async { client(&rpc[0]).chain_info().await.unwrap().chain_id });
    let mut nonces = vec![0u64; senders.len()];
    let mut accepted = 0;
    runtime.block_on(async {
        wait_for_height(&rpc[0], 2, Duration::from_secs(60)).await;
        for round in 0..30 {
            accepted +=
                load_round(&rpc[round % 3], chain_id, &senders, &mut nonces, recipient).await;
        }
    });
    let height_before_kill = runtime.block_on(head_height(&rpc[3]));
    devnet.kill(3);
    runtime.block_on(async {
        for round in 0..30 {
            accepted +=
                load_round(&rpc[round % 3], chain_id, &senders, &mut nonces, recipient).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    devnet.start(3);
    runtime.block_on(async {
        for round in 0..20 {
            accepted +=
                load_round(&rpc[round % 4], chain_id, &senders, &mut nonces, recipient).await;
        }
        // Every accepted transfer finalizes: each sender's finalized nonce reaches what we sent.
        let deadline = Instant::now() + Duration::from_secs(60);
        for (key, expected) in senders.iter().zip(&nonces) {
            let address = Address::from_public_key(&key.public_key());
            loop {
                let account = client(&rpc[0])
                    .get_account(address.to_string())
                    .await
                    .unwrap();
                if account.nonce == *expected {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "sender {address} stuck at nonce {}",
                    account.nonce
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let target = head_height(&rpc[0]).await + 5;
        for url in &rpc {
            wait_for_height(url, target, Duration::from_secs(60)).await;
        }
        assert!(target > height_before_kill);
        // No finalized block lost, and the same block (hence state root) at every height.
        let restarted = client(&rpc[3]);
        let reference = client(&rpc[0]);
        for height in 1..=target {
            let ours = restarted
                .get_block_by_height(height)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("height {height} missing"));
            let theirs = reference
                .get_block_by_height(height)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                (ours.hash, ours.state_root),
                (theirs.hash, theirs.state_root),
                "height {height}"
            );
        }
        // Identical account state on every validator.
        let recipient_balances: Vec<Amount> = balances_on_every_validator(&rpc, recipient).await;
        assert!(
            recipient_balances
                .iter()
                .all(|balance| *balance == Amount(accepted as u128)),
            "{recipient_balances:?} != {accepted}"
        );
    });
}

async fn balances_on_every_validator(rpc: &[String], address: Address) -> Vec<Amount> {
    let mut balances = Vec::new();
    for url in rpc {
        balances.push(
            client(url)
                .get_account(address.to_string())
                .await
                .unwrap()
                .balance,
        );
    }
    balances
}

/// Posts `body` to `address` over plain HTTP/1.1 and returns the whole response as text.
fn raw_post(address: &str, body: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let _ = stream.write_all(body);
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

fn error_code(
    result: Result<impl std::fmt::Debug, jsonrpsee::core::client::Error>,
) -> (i32, String) {
    match result {
        Err(jsonrpsee::core::client::Error::Call(error)) => {
            (error.code(), error.message().to_string())
        }
        other => panic!("expected a call error, got {other:?}"),
    }
}

#[test]
fn rpc_rejects_bad_input_with_clear_errors() {
    let devnet = Devnet::init("rpc", 1, 1, 23_300, "rpc_requests_per_second = 200\n");
    let url = devnet.rpc[0].clone();
    let address = url.trim_start_matches("http://").to_string();
    let key = devnet.key("account-0");
    let sender = Address::from_public_key(&key.public_key());
    let runtime = runtime();
    runtime.block_on(async {
        wait_for_height(&url, 1, Duration::from_secs(30)).await;
        let client = client(&url);
        let chain_id = client.chain_info().await.unwrap().chain_id;

        // Malformed JSON: JSON-RPC parse error.
        let response = raw_post(&address, br#"{"jsonrpc":"2.0","method":"#);
        assert!(
            response.contains("-32700") && response.contains("Parse error"),
            "{response}"
        );
        // Oversize body: refused before parsing.
        let response = raw_post(&address, &vec![b' '; 2 * 1024 * 1024]);
        assert!(
            response.starts_with("HTTP/1.1 413"),
            "{}",
            &response[..response.len().min(200)]
        );
        // Not hex / not a transaction.
        let (code, message) = error_code(client.submit_transaction("0xzz".into()).await);
        assert_eq!(code, codes::MALFORMED_TRANSACTION, "{message}");
        let (code, message) = error_code(client.submit_transaction("0x0102".into()).await);
        assert_eq!(code, codes::MALFORMED_TRANSACTION, "{message}");
        // Oversize transaction (the body itself is within limits).
        let (code, message) = error_code(
            client
                .submit_transaction(format!("0x{}", "00".repeat(2_048)))
                .await,
        );
        assert_eq!(
            (code, message.as_str()),
            (
                codes::MALFORMED_TRANSACTION,
                "transaction is 2048 bytes, the limit is 1024"
            )
        );
        // Bad signature: flip a signature bit.
        let mut bytes = codec_bytes(&transfer(&key, chain_id, 0, sender, 1, 1_000).sign(&key));
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let (code, message) = error_code(
            client
                .submit_transaction(format!("0x{}", hex::encode(bytes)))
                .await,
        );
        assert_eq!(
            (code, message.as_str()),
            (codes::BAD_SIGNATURE, "bad signature")
        );
        // Wrong chain id.
        let other = ChainId(logos_primitives::hash(&[b"another network"]));
        let (code, message) = error_code(
            client
                .submit_transaction(to_hex(transfer(&key, other, 0, sender, 1, 1_000), &key))
                .await,
        );
        assert_eq!(code, codes::WRONG_CHAIN_ID);
        assert!(message.contains("wrong chain id"), "{message}");
        // Fee below the minimum, and more than the balance.
        let (code, _) = error_code(
            client
                .submit_transaction(to_hex(transfer(&key, chain_id, 0, sender, 1, 999), &key))
                .await,
        );
        assert_eq!(code, codes::FEE_TOO_LOW);
        let (code, message) = error_code(
            client
                .submit_transaction(to_hex(
                    transfer(&key, chain_id, 0, sender, u128::MAX / 2, 1_000),
                    &key,
                ))
                .await,
        );
        assert_eq!(code, codes::INSUFFICIENT_BALANCE, "{message}");

        // A valid transfer is accepted and its event reaches a WebSocket subscriber.
        let ws = WsClientBuilder::default()
            .build(url.replace("http://", "ws://"))
            .await
            .unwrap();
        let mut events: Subscription<EventRecord> = ws.subscribe_events().await.unwrap();
        let recipient = Address([0x77; 20]);
        let valid = to_hex(transfer(&key, chain_id, 0, recipient, 5, 1_000), &key);
        client.submit_transaction(valid.clone()).await.unwrap();
        // Replay while pooled: already known.
        let (code, _) = error_code(client.submit_transaction(valid.clone()).await);
        assert_eq!(code, codes::ALREADY_KNOWN);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let record = tokio::time::timeout(Duration::from_secs(30), futures_next(&mut events))
                .await
                .unwrap();
            if let Event::Balances(balances::Event::Transferred { to, amount, .. }) = record.event {
                assert_eq!((to, amount), (recipient, Amount(5)));
                break;
            }
            assert!(Instant::now() < deadline);
        }
        // Replay after finality: stale nonce, and the error names who refused it.
        let refused = client.submit_transaction(valid).await;
        let Err(jsonrpsee::core::client::Error::Call(error)) = &refused else {
            panic!("a replay after finality was accepted: {refused:?}");
        };
        assert_eq!(error.code(), codes::STALE_NONCE, "{}", error.message());
        let data: serde_json::Value =
            serde_json::from_str(error.data().expect("error data").get()).unwrap();
        assert_eq!(
            data,
            serde_json::json!({"module": "mempool", "error": "StaleNonce"})
        );

        // A call that fails in execution: its receipt, served over RPC, names the module and
        // error with their stable indices.
        let chain = logos_client::Client::connect(&url).await.unwrap();
        let wallet = logos_client::Wallet::new(key.clone());
        let zero = Call::Balances(balances::Call::Transfer {
            to: recipient,
            amount: Amount::ZERO,
        });
        let (receipt, height) = chain.submit_and_wait(&wallet, zero).await.unwrap();
        assert!(!receipt.success);
        let block = client.get_block_by_height(height).await.unwrap().unwrap();
        let served = serde_json::to_value(block.receipts.unwrap()).unwrap();
        let failure = served
            .as_array()
            .unwrap()
            .iter()
            .find(|receipt| receipt["success"] == false)
            .expect("the failed receipt is served");
        assert_eq!(failure["error"]["module"], "balances");
        assert_eq!(failure["error"]["error"], "ZeroAmount");
        assert_eq!(failure["error"]["index"], serde_json::json!([0, 1]));
        assert_eq!(failure["error"]["message"], "zero amount");

        // Rate limit: 200 requests per second; a burst of 600 gets some refusals.
        let mut limited = 0;
        let burst: Vec<_> = (0..600).map(|_| client.chain_info()).collect();
        for result in futures::future::join_all(burst).await {
            if let Err(jsonrpsee::core::client::Error::Call(error)) = result {
                assert_eq!(error.code(), -32029);
                limited += 1;
            }
        }
        assert!(limited > 0, "no request was rate limited");
    });
}

async fn futures_next(subscription: &mut Subscription<EventRecord>) -> EventRecord {
    subscription
        .next()
        .await
        .expect("subscription open")
        .expect("valid notification")
}
