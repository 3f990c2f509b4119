//! End-to-end tests with real `logos` processes on loopback.

use commonware_cryptography::Signer;
use jsonrpsee::{
    core::client::Subscription, http_client::HttpClientBuilder, ws_client::WsClientBuilder,
};
use logos_api::rpc::{codes, EventRecord, LogosApiClient};
use logos_primitives::{format_public_key, Address, Amount, ChainId, PrivateKey};
use logos_types::{balances, codec::encode as codec_bytes, Call, Event, TransactionPayload};
use std::{
    io::{Read, Write},
    net::TcpStream,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

mod common;

use common::{load_key, logos_command, runtime, stdout_lines};

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
        Self::init_with_full_nodes(name, validators, accounts, port_base, extra_config, 0)
    }

    /// [`Self::init`] with `full_nodes` full-node configurations written (and listed in every
    /// validator's `full_nodes`) but not started: `full-node-<k>/config.toml`.
    fn init_with_full_nodes(
        name: &str,
        validators: usize,
        accounts: usize,
        port_base: u16,
        extra_config: &str,
        full_nodes: usize,
    ) -> Self {
        Self::init_with_args(
            name,
            validators,
            accounts,
            port_base,
            extra_config,
            full_nodes,
            &[],
        )
    }

    /// [`Self::init_with_full_nodes`] with `extra_args` passed to `logos devnet`.
    fn init_with_args(
        name: &str,
        validators: usize,
        accounts: usize,
        port_base: u16,
        extra_config: &str,
        full_nodes: usize,
        extra_args: &[&str],
    ) -> Self {
        let dir = std::env::temp_dir().join(format!("logos-e2e-{name}-{}", std::process::id()));
        let status = logos_command()
            .args([
                "devnet",
                "--init-only",
                "--validators",
                &validators.to_string(),
                "--accounts",
                &accounts.to_string(),
                "--full-nodes",
                &full_nodes.to_string(),
            ])
            .args(["--p2p-base-port", &port_base.to_string()])
            .args(["--rpc-base-port", &(port_base + 1_000).to_string()])
            .args(["--metrics-base-port", &(port_base + 2_000).to_string()])
            .args(extra_args)
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        for i in 0..validators {
            let config = dir.join(format!("validator-{i}/config.toml"));
            // `extra_config` overrides the devnet's own value of each key it sets.
            let overridden: Vec<&str> = extra_config
                .lines()
                .filter_map(|line| line.split('=').next())
                .map(str::trim)
                .collect();
            let mut text: String = std::fs::read_to_string(&config)
                .unwrap()
                .lines()
                .filter(|line| !overridden.contains(&line.split('=').next().unwrap_or("").trim()))
                .map(|line| format!("{line}\n"))
                .collect();
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
        let mut child = logos_command()
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
        let info = client.chain_info().await.unwrap();
        let chain_id = info.chain_id;
        // A devnet's providers attest when swtpm is installed (the project's scripts install
        // it), and RPC says whether they must.
        assert_eq!(
            info.unattested,
            !logos_mia_collect::swtpm::Swtpm::installed(),
            "RPC says whether providers must attest"
        );

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

/// The Prometheus gauge `name` of the node whose metrics listen on `port`.
fn gauge(port: u16, name: &str) -> Option<f64> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).ok()?;
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find(|line| {
            line.split_whitespace()
                .next()
                .is_some_and(|metric| metric.ends_with(name))
        })
        .and_then(|line| line.split_whitespace().nth(1)?.parse().ok())
}

#[test]
fn senders_with_unpayable_follow_ups_cannot_halt_the_chain() {
    const ATTACKERS: usize = 20;
    const PORT_BASE: u16 = 21_400;
    let devnet = Devnet::init("poison", 4, ATTACKERS + 1, PORT_BASE, "");
    let attackers: Vec<PrivateKey> = (0..ATTACKERS)
        .map(|j| devnet.key(&format!("account-{j}")))
        .collect();
    let honest = devnet.key(&format!("account-{ATTACKERS}"));
    let rpc = devnet.rpc.clone();
    let runtime = runtime();
    runtime.block_on(async {
        wait_for_height(&rpc[0], 2, Duration::from_secs(60)).await;
        let chain_id = client(&rpc[0]).chain_info().await.unwrap().chain_id;
        let fee = 1_000;
        let sink = Address([0x66; 20]);
        // Each attacker drains its balance through validator 0 and, before that finalizes,
        // sends a next nonce whose fee the drain leaves unpayable, to validator 0 and to
        // validator 1. Where the drain is pooled its pending spend refuses the follow-up; where
        // it is not (yet) the follow-up would be a gap. Nothing unpayable is pooled anywhere.
        for key in &attackers {
            let address = Address::from_public_key(&key.public_key());
            let balance = client(&rpc[0])
                .get_account(address.to_string())
                .await
                .unwrap()
                .balance;
            let drain = transfer(key, chain_id, 0, sink, balance.0 - fee, fee);
            client(&rpc[0])
                .submit_transaction(to_hex(drain, key))
                .await
                .unwrap();
            for (url, allowed) in [
                (&rpc[0], vec![codes::INSUFFICIENT_BALANCE]),
                (&rpc[1], vec![codes::INSUFFICIENT_BALANCE, codes::NONCE_GAP]),
            ] {
                let follow_up = transfer(key, chain_id, 1, sink, 1, fee);
                let (code, message) =
                    error_code(client(url).submit_transaction(to_hex(follow_up, key)).await);
                assert!(allowed.contains(&code), "{url}: {code} {message}");
                if code == codes::INSUFFICIENT_BALANCE {
                    assert!(message.contains("pooled transactions"), "{message}");
                }
            }
        }
        // Every drain finalizes, no follow-up does.
        let deadline = Instant::now() + Duration::from_secs(30);
        for key in &attackers {
            let address = Address::from_public_key(&key.public_key());
            loop {
                let account = client(&rpc[2])
                    .get_account(address.to_string())
                    .await
                    .unwrap();
                if account.nonce == 1 {
                    assert_eq!(account.balance, Amount::ZERO);
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "drain of {address} never finalized"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        // The chain keeps finalizing through every leader, and an honest transfer sent now
        // finalizes within 2 s.
        let start_height = head_height(&rpc[0]).await;
        wait_for_height(&rpc[0], start_height + 40, Duration::from_secs(20)).await;
        let honest_address = Address::from_public_key(&honest.public_key());
        let submitted = Instant::now();
        client(&rpc[3])
            .submit_transaction(to_hex(
                transfer(&honest, chain_id, 0, sink, 7, fee),
                &honest,
            ))
            .await
            .unwrap();
        loop {
            let account = client(&rpc[3])
                .get_account(honest_address.to_string())
                .await
                .unwrap();
            if account.nonce == 1 {
                break;
            }
            assert!(
                submitted.elapsed() < Duration::from_secs(2),
                "honest transfer not final within 2 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!("honest transfer final after {:?}", submitted.elapsed());
        for key in &attackers {
            let address = Address::from_public_key(&key.public_key());
            let account = client(&rpc[1])
                .get_account(address.to_string())
                .await
                .unwrap();
            assert_eq!(account.nonce, 1, "a follow-up of {address} was included");
        }
        // Nothing is left pooled anywhere.
        wait_for_height(
            &rpc[0],
            head_height(&rpc[0]).await + 2,
            Duration::from_secs(10),
        )
        .await;
        for i in 0..4 {
            let pooled = gauge(PORT_BASE + 2_000 + i, "mempool_transactions");
            assert_eq!(pooled, Some(0.0), "validator {i} still pools transactions");
        }
    });
}

/// Posts `body` over HTTP/1.1 from the local address `source`; the response text.
async fn post_from(source: &str, server: &str, body: &str) -> String {
    request_from(source, server, "POST /", body).await
}

/// `GET /health` on `server` from the loopback address `source`: the raw HTTP response.
async fn health_from(source: &str, server: &str) -> String {
    request_from(source, server, "GET /health", "").await
}

/// Sends `request` (method and path) with `body` on a fresh connection from `source` and
/// reads the whole response.
async fn request_from(source: &str, server: &str, request: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(server.parse().unwrap()).await.unwrap();
    let head = format!(
        "{request} HTTP/1.1\r\nHost: {server}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut response = String::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await;
    response
}

fn batch_of(calls: usize) -> String {
    let entries: Vec<String> = (0..calls)
        .map(|id| {
            format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"logos_getBlockByHeight","params":[{id}]}}"#
            )
        })
        .collect();
    format!("[{}]", entries.join(","))
}

#[test]
fn rpc_limits_batches_and_floods_per_client() {
    let devnet = Devnet::init(
        "limits",
        1,
        1,
        26_100,
        "rpc_requests_per_second_per_ip = 60\nrpc_requests_per_second_per_connection = 20\nrpc_batch_max = 50\nrpc_connections_per_ip_max = 256\n",
    );
    let url = devnet.rpc[0].clone();
    let server = url.trim_start_matches("http://").to_string();
    let runtime = runtime();
    runtime.block_on(async {
        wait_for_height(&url, 1, Duration::from_secs(30)).await;
        tokio::time::sleep(Duration::from_secs(1)).await; // let the buckets refill
                                                          // A 10,000-call batch (about 800 KB, under the body limit) is refused whole, before
                                                          // any call runs.
        let body = batch_of(10_000);
        assert!(body.len() > 700_000 && body.len() < 1 << 20);
        let started = Instant::now();
        let response = post_from("127.0.0.1", &server, &body).await;
        assert!(
            response.contains(&codes::BATCH_TOO_LARGE.to_string()),
            "{}",
            &response[..response.len().min(300)]
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        // A batch within the size limit is charged per call: 50 calls exceed one connection's
        // 20 per second.
        let response = post_from("127.0.0.1", &server, &batch_of(50)).await;
        assert!(
            response.contains(&codes::RATE_LIMITED_CONNECTION.to_string()),
            "{}",
            &response[..response.len().min(300)]
        );
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        // One WebSocket connection flooding: its own bucket refuses it.
        let ws = WsClientBuilder::default()
            .build(url.replace("http://", "ws://"))
            .await
            .unwrap();
        let flood: Vec<_> = (0..100).map(|_| ws.chain_info()).collect();
        let codes_seen: Vec<i32> = futures::future::join_all(flood)
            .await
            .into_iter()
            .filter_map(|result| match result {
                Err(jsonrpsee::core::client::Error::Call(error)) => Some(error.code()),
                _ => None,
            })
            .collect();
        assert!(codes_seen.len() >= 50, "{} refused", codes_seen.len());
        assert!(codes_seen
            .iter()
            .all(|code| *code == codes::RATE_LIMITED_CONNECTION));
        // Many connections from one address: the address's bucket refuses them.
        let requests: Vec<_> = (0..120)
            .map(|_| {
                post_from(
                    "127.0.0.1",
                    &server,
                    r#"{"jsonrpc":"2.0","id":1,"method":"logos_chainInfo"}"#,
                )
            })
            .collect();
        let responses = futures::future::join_all(requests).await;
        let per_ip = responses
            .iter()
            .filter(|response| response.contains(&codes::RATE_LIMITED_IP.to_string()))
            .count();
        assert!(per_ip >= 40, "{per_ip} refused per IP");
        // Another client, from another address, is still served at once.
        let response = post_from(
            "127.0.0.2",
            &server,
            r#"{"jsonrpc":"2.0","id":1,"method":"logos_chainInfo"}"#,
        )
        .await;
        assert!(response.contains("\"chain_id\""), "{response}");
        assert!(!response.contains("\"error\""), "{response}");
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        // `/health` pays like a call: a flood of it from one address gets 429 with the
        // address's refusal, and another address is still told the node's health.
        let flood: Vec<_> = (0..120)
            .map(|_| health_from("127.0.0.3", &server))
            .collect();
        let responses = futures::future::join_all(flood).await;
        let refused = responses
            .iter()
            .filter(|response| response.starts_with("HTTP/1.1 429"))
            .count();
        assert!(refused >= 40, "{refused} /health requests refused");
        assert!(responses
            .iter()
            .filter(|response| response.starts_with("HTTP/1.1 429"))
            .all(|response| response.contains("rate limit of 127.0.0.3 exceeded")));
        let response = health_from("127.0.0.4", &server).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.contains("\"synced\":true"), "{response}");

        // A state-operations call (an answer of up to ~8 MiB) weighs 16 calls, is not served in
        // a batch nor over a WebSocket; one alone over HTTP is answered.
        let state_call = |id: usize| {
            format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"logos_getStateOperations","params":[1,0,1,false]}}"#
            )
        };
        // An answer (the operation, or the log refusing that size), not a refusal to serve.
        let answered = |response: &str| {
            response.contains("\"result\":\"0x")
                || response.contains(&format!("\"code\":{}", codes::INVALID_PARAMS))
        };
        let two = format!("[{},{}]", state_call(0), state_call(1));
        let response = post_from("127.0.0.5", &server, &two).await;
        assert!(response.contains("\"code\":-32600"), "{response}");
        assert!(response.contains("not served in a batch"), "{response}");
        let ws = WsClientBuilder::default()
            .build(url.replace("http://", "ws://"))
            .await
            .unwrap();
        match ws.get_state_operations(1, 0, 1, false).await {
            Err(jsonrpsee::core::client::Error::Call(error)) => {
                assert_eq!(error.code(), -32600, "{error}");
            }
            other => panic!("a state call over a WebSocket: {other:?}"),
        }
        let response = post_from("127.0.0.6", &server, &state_call(0)).await;
        assert!(answered(&response), "{response}");
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        // A flood of state calls from one address over many connections: three fit its 60
        // tokens a second (one more per 16 tokens refilled meanwhile), the rest are refused;
        // another address is answered.
        let one = state_call(0);
        let started = Instant::now();
        let flood: Vec<_> = (0..8)
            .map(|_| post_from("127.0.0.8", &server, &one))
            .collect();
        let responses = futures::future::join_all(flood).await;
        let refilled = started.elapsed().as_millis() * 60 / 16 / 1_000;
        let served = responses.iter().filter(|response| answered(response)).count();
        let refused = responses
            .iter()
            .filter(|response| response.contains(&codes::RATE_LIMITED_IP.to_string()))
            .count();
        assert_eq!(served + refused, 8, "{responses:?}");
        assert!(
            served >= 3 && served as u128 <= 4 + refilled,
            "{served} of 8 served in {:?}",
            started.elapsed()
        );
        let response = post_from("127.0.0.9", &server, &state_call(0)).await;
        assert!(answered(&response), "{response}");
    });
}

/// Forwards the JSON-RPC `request` to `url` and returns its answer (for the lying proxies).
async fn forward(
    http: &reqwest::Client,
    url: &str,
    request: &serde_json::Value,
) -> serde_json::Value {
    http.post(url)
        .json(request)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Serves `app` on a free loopback port; returns its URL.
async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// How the lying RPC server of [`lying_proxy`] lies.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lie {
    /// Another chain's value, proof and state root, dressed with a genuine height and hash.
    ForeignState,
    /// As `ForeignState`, and the genuine header rewritten to carry the foreign state root.
    ForgedHeader,
    /// The genuine chain's identity, everything else (state, headers, certificates) foreign.
    AllForeign,
    /// The genuine answer with the value dropped: "absent", with the value's proof.
    HiddenValue,
}

/// A JSON-RPC server that forwards to `genuine` except that storage reads come from `foreign`
/// (see [`Lie`]). Returns its URL.
async fn lying_proxy(genuine: String, foreign: String, lie: Lie) -> String {
    use axum::{extract::State, routing::post, Json, Router};
    type Shared = (String, String, Lie, reqwest::Client);
    async fn handle(
        State((genuine, foreign, lie, http)): State<Shared>,
        Json(request): Json<serde_json::Value>,
    ) -> Json<serde_json::Value> {
        let method = request["method"].as_str().unwrap_or_default().to_string();
        if lie == Lie::AllForeign && method != "logos_chainInfo" {
            return Json(forward(&http, &foreign, &request).await);
        }
        if lie == Lie::HiddenValue {
            let mut response = forward(&http, &genuine, &request).await;
            if method == "logos_getStorage" {
                response["result"]["value"] = serde_json::Value::Null;
            }
            return Json(response);
        }
        if method == "logos_getStorage" {
            let mut response = forward(&http, &foreign, &request).await;
            // A height the genuine chain has finalized, with its genuine block hash.
            let head = forward(&http, &genuine, &serde_json::json!({"jsonrpc":"2.0","id":1,"method":"logos_getFinalizedHead","params":[]})).await;
            response["result"]["height"] = head["result"]["height"].clone();
            response["result"]["block_hash"] = head["result"]["hash"].clone();
            return Json(response);
        }
        let mut response = forward(&http, &genuine, &request).await;
        if method == "logos_getBlockByHeight" {
            // The JSON block, genuine hash and all, claims the foreign root (what fooled
            // clients that compared JSON fields).
            let head = forward(&http, &foreign, &serde_json::json!({"jsonrpc":"2.0","id":1,"method":"logos_getFinalizedHead","params":[]})).await;
            response["result"]["state_root"] = head["result"]["state_root"].clone();
        }
        if method == "logos_getBlockHeader" && lie == Lie::ForgedHeader {
            use commonware_codec::{DecodeExt, Encode};
            let bytes = hex::decode(
                response["result"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("0x"),
            )
            .unwrap();
            let mut header =
                logos_api::block::BlockHeader::decode(commonware_codec::Copying(bytes.as_slice()))
                    .unwrap();
            let head = forward(&http, &foreign, &serde_json::json!({"jsonrpc":"2.0","id":1,"method":"logos_getFinalizedHead","params":[]})).await;
            let root = head["result"]["state_root"].as_str().unwrap().to_string();
            header.state_root = logos_primitives::parse_hash(&root).unwrap();
            response["result"] = format!("0x{}", hex::encode(header.encode())).into();
        }
        Json(response)
    }
    let app = Router::new().route("/", post(handle)).with_state((
        genuine,
        foreign,
        lie,
        reqwest::Client::new(),
    ));
    serve(app).await
}

/// `logos query account ADDRESS --prove --genesis GENESIS --rpc RPC`: (success, stdout, stderr).
fn prove_account(address: Address, genesis: &std::path::Path, rpc: &str) -> (bool, String, String) {
    let output = logos_command()
        .args([
            "query",
            "account",
            &address.to_string(),
            "--prove",
            "--json",
            "--rpc",
            rpc,
        ])
        .arg("--genesis")
        .arg(genesis)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[test]
fn a_lying_server_cannot_forge_a_proven_read() {
    let genuine = Devnet::init("trust-a", 1, 1, 26_300, "");
    let foreign = Devnet::init("trust-b", 1, 2, 26_400, "");
    let genesis = genuine.dir.join("genesis.toml");
    let victim = Address::from_public_key(&foreign.key("account-1").public_key());
    let ours = Address::from_public_key(&genuine.key("account-0").public_key());
    let runtime = runtime();
    let proxies = runtime.block_on(async {
        wait_for_height(&genuine.rpc[0], 2, Duration::from_secs(30)).await;
        wait_for_height(&foreign.rpc[0], 2, Duration::from_secs(30)).await;
        let mut proxies = Vec::new();
        for lie in [
            Lie::ForeignState,
            Lie::ForgedHeader,
            Lie::AllForeign,
            Lie::HiddenValue,
        ] {
            proxies.push(lying_proxy(genuine.rpc[0].clone(), foreign.rpc[0].clone(), lie).await);
        }
        proxies
    });
    let [state_proxy, header_proxy, foreign_proxy, hiding_proxy] = &proxies[..] else {
        unreachable!()
    };
    // The honest server's answer verifies.
    let (ok, stdout, stderr) = prove_account(ours, &genesis, &genuine.rpc[0]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("\"verified\": true"), "{stdout}");
    // The foreign chain's genuine proof, paired with a genuine block of the trusted chain.
    let (ok, stdout, stderr) = prove_account(victim, &genesis, state_proxy);
    assert!(!ok, "a foreign state was accepted: {stdout}");
    assert!(
        stderr.contains("not proven") && stderr.contains("carries"),
        "{stderr}"
    );
    // The same with the header rewritten to carry the foreign root: the certificate no longer
    // signs the digest recomputed from it.
    let (ok, stdout, stderr) = prove_account(victim, &genesis, header_proxy);
    assert!(!ok, "a forged header was accepted: {stdout}");
    assert!(stderr.contains("does not sign block"), "{stderr}");
    // The genuine chain's chain info in front of another chain's state, headers and
    // certificates: the trusted validators signed none of them.
    let (ok, stdout, stderr) = prove_account(victim, &genesis, foreign_proxy);
    assert!(!ok, "another chain's certificate was accepted: {stdout}");
    assert!(stderr.contains("not proven"), "{stderr}");
    // An existing account reported absent: the value's proof is no proof of absence.
    let (ok, stdout, stderr) = prove_account(ours, &genesis, hiding_proxy);
    assert!(!ok, "a hidden value passed as absent: {stdout}");
    // A genuinely absent account is proven absent.
    let nobody = Address([0x99; 20]);
    let (ok, stdout, stderr_absent) = prove_account(nobody, &genesis, &genuine.rpc[0]);
    assert!(ok, "{stderr_absent}");
    assert!(
        stdout.contains("\"exists\": false") && stdout.contains("\"verified\": true"),
        "{stdout}"
    );
    let _ = stderr;
    // The foreign server itself, with its own validator list: refused by the trusted genesis.
    let (ok, _, stderr) = prove_account(victim, &genesis, &foreign.rpc[0]);
    assert!(!ok);
    assert!(stderr.contains("the trusted genesis defines"), "{stderr}");
    // No genesis, no proven read.
    let output = logos_command()
        .args([
            "query",
            "account",
            &ours.to_string(),
            "--prove",
            "--rpc",
            &genuine.rpc[0],
        ])
        .env_remove("LOGOS_GENESIS")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--genesis"));
    // The daemons' proven reads go through the same client and fail the same way.
    runtime.block_on(async {
        let genesis = logos_types::Genesis::load(&genesis).unwrap();
        for proxy in [state_proxy, header_proxy, foreign_proxy, hiding_proxy] {
            let client = logos_client::Client::connect_trusted(proxy, &genesis)
                .await
                .unwrap();
            let asked = if proxy == hiding_proxy { ours } else { victim };
            let refused = client.map_proven::<balances::Accounts>(&asked).await;
            assert!(
                matches!(
                    refused,
                    Err(logos_client::ClientError::NotProven(_)
                        | logos_client::ClientError::Malformed(_))
                ),
                "{proxy}: {refused:?}"
            );
        }
    });
}

/// How [`receipt_proxy`] lies about receipts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ReceiptLie {
    /// The failed call's receipt rewritten as a success (bytes and parsed receipt).
    Flipped,
    /// The genuine receipt and proof, claimed at another position of the block.
    Moved,
    /// The genuine receipt and proof, claimed in the block before.
    OtherBlock,
}

/// A JSON-RPC server that forwards to `genuine` and rewrites `logos_getReceipt` answers.
async fn receipt_proxy(genuine: String, lie: ReceiptLie) -> String {
    use axum::{extract::State, routing::post, Json, Router};
    async fn handle(
        State((genuine, lie, http)): State<(String, ReceiptLie, reqwest::Client)>,
        Json(request): Json<serde_json::Value>,
    ) -> Json<serde_json::Value> {
        let mut response = forward(&http, &genuine, &request).await;
        let result = &mut response["result"];
        if request["method"] == "logos_getReceipt" && result.is_object() {
            match lie {
                ReceiptLie::Flipped => {
                    result["receipt"]["success"] = true.into();
                    result["receipt"]["error"] = serde_json::Value::Null;
                    let bytes = serde_json::to_vec(&result["receipt"]).unwrap();
                    result["receipt_bytes"] = format!("0x{}", hex::encode(bytes)).into();
                }
                ReceiptLie::Moved => {
                    let index = result["index"].as_u64().unwrap();
                    result["index"] = (index ^ 1).into();
                }
                ReceiptLie::OtherBlock => {
                    let height = result["height"].as_u64().unwrap();
                    result["height"] = (height - 1).into();
                }
            }
        }
        Json(response)
    }
    let app =
        Router::new()
            .route("/", post(handle))
            .with_state((genuine, lie, reqwest::Client::new()));
    serve(app).await
}

/// `logos tx status HASH --rpc RPC [--genesis GENESIS]`: the JSON on success, stderr otherwise.
fn tx_status(
    hash: &str,
    rpc: &str,
    genesis: Option<&std::path::Path>,
) -> Result<serde_json::Value, String> {
    let mut command = logos_command();
    command
        .args(["tx", "status", hash, "--json", "--rpc", rpc])
        .env_remove("LOGOS_GENESIS")
        .env("RUST_BACKTRACE", "0");
    if let Some(genesis) = genesis {
        command.arg("--genesis").arg(genesis);
    }
    let output = command.output().unwrap();
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).to_string());
    }
    Ok(serde_json::from_slice(&output.stdout).unwrap())
}

#[test]
fn tx_status_proves_receipts_that_survive_a_restart_and_refuses_forged_ones() {
    let mut devnet = Devnet::init("receipts", 1, 1, 26_600, "");
    let genesis = devnet.dir.join("genesis.toml");
    let rpc = devnet.rpc[0].clone();
    let key = devnet.key("account-0");
    let runtime = runtime();
    let (succeeded, failed) = runtime.block_on(async {
        wait_for_height(&rpc, 2, Duration::from_secs(30)).await;
        let client = client(&rpc);
        let chain_id = client.chain_info().await.unwrap().chain_id;
        let transfer = transfer(&key, chain_id, 0, Address([0x66; 20]), 5, 1_000);
        let succeeded = client
            .submit_transaction(to_hex(transfer, &key))
            .await
            .unwrap()
            .hash;
        // Admitted (the fee is payable), refused by the market when it runs: no such lease.
        let close = TransactionPayload {
            chain_id,
            sender: key.public_key(),
            nonce: 1,
            fee: Amount(1_000),
            call: Call::Market(logos_types::market::Call::CloseLease {
                lease: logos_types::market::LeaseId(999_999),
            }),
        };
        let failed = client
            .submit_transaction(to_hex(close, &key))
            .await
            .unwrap()
            .hash;
        (succeeded, failed)
    });
    // Both finalize; their receipts are proven against the finalized blocks.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (ok, refused) = loop {
        let ok = tx_status(&succeeded, &rpc, Some(&genesis)).unwrap();
        let refused = tx_status(&failed, &rpc, Some(&genesis)).unwrap();
        if ok["status"] == "finalized" && refused["status"] == "finalized" {
            break (ok, refused);
        }
        assert!(
            ["pending", "finalized"].contains(&ok["status"].as_str().unwrap()),
            "{ok}"
        );
        assert!(Instant::now() < deadline, "not finalized: {ok} {refused}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(ok["success"], true, "{ok}");
    assert_eq!(ok["verified"], true, "{ok}");
    assert!(ok["events"].to_string().contains("transferred"), "{ok}");
    assert_eq!(refused["success"], false, "{refused}");
    assert_eq!(refused["verified"], true, "{refused}");
    assert_eq!(refused["error"]["module"], "market", "{refused}");
    // Without a trusted genesis the same answer, unverified.
    let unverified = tx_status(&failed, &rpc, None).unwrap();
    assert_eq!(unverified["success"], false);
    assert_eq!(unverified["verified"], false);
    // A hash nobody sent, and a malformed one.
    let unknown = format!("0x{}", "ab".repeat(32));
    assert_eq!(
        tx_status(&unknown, &rpc, Some(&genesis)).unwrap()["status"],
        "unknown"
    );
    assert!(tx_status("0x1234", &rpc, None)
        .unwrap_err()
        .contains("bad transaction hash"));
    // The transaction lookup agrees with the receipt.
    runtime.block_on(async {
        let found = client(&rpc)
            .get_transaction(failed.clone())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.height, refused["height"].as_u64());
        assert_eq!(found.index, refused["index"].as_u64().map(|index| index as u32));
        assert_eq!(found.transaction.hash, failed);
        // Malformed and oversize hashes, on both lookups: refused as parameters.
        for hash in ["0xnothex".to_string(), format!("0x{}", "ab".repeat(4_096))] {
            let bad = client(&rpc).get_receipt(hash.clone()).await.unwrap_err();
            assert!(
                matches!(&bad, jsonrpsee::core::ClientError::Call(error) if error.code() == codes::INVALID_PARAMS),
                "{bad}"
            );
            let bad = client(&rpc).get_transaction(hash).await.unwrap_err();
            assert!(
                matches!(&bad, jsonrpsee::core::ClientError::Call(error) if error.code() == codes::INVALID_PARAMS),
                "{bad}"
            );
        }
    });
    // Receipts are on disk: a crash and restart keeps them, still proven.
    devnet.kill(0);
    devnet.start(0);
    runtime.block_on(wait_for_height(
        &rpc,
        refused["height"].as_u64().unwrap() + 2,
        Duration::from_secs(30),
    ));
    let after = tx_status(&failed, &rpc, Some(&genesis)).unwrap();
    assert_eq!(after, refused, "same proven receipt after the restart");
    // A server that rewrites a receipt, or moves a genuine one, is caught.
    for lie in [
        ReceiptLie::Flipped,
        ReceiptLie::Moved,
        ReceiptLie::OtherBlock,
    ] {
        let proxy = runtime.block_on(receipt_proxy(rpc.clone(), lie));
        let refused = tx_status(&failed, &proxy, Some(&genesis)).unwrap_err();
        assert!(refused.contains("not proven"), "{refused}");
        // Unverified, the lie goes through: which is why daemons trust a genesis.
        let fooled = tx_status(&failed, &proxy, None).unwrap();
        if lie == ReceiptLie::Flipped {
            assert_eq!(fooled["success"], true, "{fooled}");
        }
    }
}

/// Starts `logos node run --role full --config <config>` (stderr to `node.log` beside it) and
/// returns the process and its ready line (empty if none came within 60 s).
fn start_full_node(config: &std::path::Path, passphrase: &str) -> (Child, String) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(config.parent().unwrap().join("node.log"))
        .unwrap();
    let mut child = logos_command()
        .args(["node", "run", "--role", "full", "--config"])
        .arg(config)
        .env("LOGOS_PASSPHRASE", passphrase)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let line = stdout_lines(&mut child)
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_default();
    (child, line)
}

/// A full node started after the chain has run catches up over p2p and serves the validators'
/// JSON-RPC: the same account and blocks, proofs that verify against the genesis, finalized
/// heads over WebSocket, and transactions relayed to the validators. A full node whose key no
/// validator lists gets nowhere, and a validator's key cannot run a full node.
#[test]
fn a_full_node_follows_over_p2p_and_serves_the_validators_rpc() {
    const PORT_BASE: u16 = 27_800;
    let mut devnet = Devnet::init_with_full_nodes("full", 4, 2, PORT_BASE, "", 1);
    let validator = devnet.rpc[0].clone();
    let full_rpc = format!("http://127.0.0.1:{}", PORT_BASE + 1_000 + 4);
    let sender = devnet.key("account-0");
    let recipient = Address([0x5a; 20]);
    let runtime = runtime();
    let chain_id = runtime.block_on(async {
        wait_for_height(&validator, 2, Duration::from_secs(30)).await;
        let chain_id = client(&validator).chain_info().await.unwrap().chain_id;
        let payload = transfer(&sender, chain_id, 0, recipient, 7, 1_000);
        client(&validator)
            .submit_transaction(to_hex(payload, &sender))
            .await
            .unwrap();
        // Enough blocks that the full node has to backfill many of them.
        wait_for_height(&validator, 400, Duration::from_secs(60)).await;
        chain_id
    });

    // A validator's key cannot run a full node.
    let validator_config = devnet.dir.join("validator-0/config.toml");
    let refused = logos_command()
        .args(["node", "run", "--role", "full", "--config"])
        .arg(&validator_config)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("must not be a validator's"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let (child, ready) = start_full_node(&devnet.dir.join("full-node-0/config.toml"), "");
    devnet.processes.push(Some(child));
    assert!(ready.contains("\"role\":\"full\""), "not ready: {ready:?}");
    let head = runtime.block_on(head_height(&validator));
    runtime.block_on(wait_for_height(&full_rpc, head, Duration::from_secs(60)));

    runtime.block_on(async {
        // Same block at a height both have, same account.
        let (ours, theirs) = (client(&full_rpc), client(&validator));
        assert_eq!(
            ours.get_raw_block(head).await.unwrap(),
            theirs.get_raw_block(head).await.unwrap()
        );
        let address = recipient.to_string();
        let (a, b) = (
            ours.get_account(address.clone()).await.unwrap(),
            theirs.get_account(address).await.unwrap(),
        );
        assert_eq!((a.nonce, a.balance), (b.nonce, b.balance));
        assert_eq!(a.balance, Amount(7));

        // Finalized heads over WebSocket.
        let ws = WsClientBuilder::default()
            .build(full_rpc.replace("http://", "ws://"))
            .await
            .unwrap();
        let mut heads: Subscription<logos_api::rpc::Head> =
            ws.subscribe_finalized_heads().await.unwrap();
        let next = tokio::time::timeout(Duration::from_secs(10), heads.next())
            .await
            .expect("a finalized head within 10 s")
            .unwrap()
            .unwrap();
        assert!(next.height >= head);

        // A transaction given to the full node is relayed and finalized by the validators.
        let payload = transfer(&sender, chain_id, 1, recipient, 3, 1_000);
        ours.submit_transaction(to_hex(payload, &sender))
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let balance = theirs
                .get_account(recipient.to_string())
                .await
                .unwrap()
                .balance;
            if balance == Amount(10) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "relayed transfer not finalized: {balance:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    // Proven reads from the full node verify against the genesis validators.
    let (ok, stdout, stderr) =
        prove_account(recipient, &devnet.dir.join("genesis.toml"), &full_rpc);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("\"verified\": true"), "{stdout}");

    // A full node no validator lists is refused by every validator's p2p handshake.
    let stranger = devnet.dir.join("stranger");
    std::fs::create_dir_all(&stranger).unwrap();
    let status = logos_command()
        .args(["keys", "new", "stranger", "--keystore"])
        .arg(&stranger)
        .env("LOGOS_PASSPHRASE", "stranger passphrase")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let config = std::fs::read_to_string(devnet.dir.join("full-node-0/config.toml"))
        .unwrap()
        .replace("../keys/full-node-0.key", "stranger.key")
        .replace(
            &format!(":{}", PORT_BASE + 4),
            &format!(":{}", PORT_BASE + 5),
        )
        .replace(
            &format!(":{}", PORT_BASE + 1_004),
            &format!(":{}", PORT_BASE + 1_005),
        )
        .replace(
            &format!(":{}", PORT_BASE + 2_004),
            &format!(":{}", PORT_BASE + 2_005),
        );
    std::fs::write(stranger.join("config.toml"), config).unwrap();
    let (child, ready) = start_full_node(&stranger.join("config.toml"), "stranger passphrase");
    devnet.processes.push(Some(child));
    assert!(ready.contains("\"ready\":true"), "not ready: {ready:?}");
    std::thread::sleep(Duration::from_secs(5));
    let stranger_rpc = format!("http://127.0.0.1:{}", PORT_BASE + 1_005);
    assert_eq!(
        runtime.block_on(head_height(&stranger_rpc)),
        0,
        "an unlisted peer synced"
    );
}

/// Serves `body` as the answer (200, JSON) to every request on a fresh loopback port, as a
/// lying `/health` would, with a `Content-Length` or (without `announce_length`) until the
/// connection closes; returns its address.
async fn lying_health(body: String, announce_length: bool) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4_096];
                let _ = stream.read(&mut request).await;
                let length = if announce_length {
                    format!("Content-Length: {}\r\n", body.len())
                } else {
                    String::new()
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{length}Connection: close\r\n\r\n"
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body.as_bytes()).await;
            });
        }
    });
    address
}

/// The nonce of `address`'s account at the tip of `url`.
async fn account_nonce(url: &str, address: &Address) -> u64 {
    let chain = logos_client::Client::connect(url).await.unwrap();
    let (account, _) = chain.map::<balances::Accounts>(address).await.unwrap();
    account.map(|account| account.nonce).unwrap_or(0)
}

/// `GET http://127.0.0.1:{port}/health`: status and body.
fn health(port: u16) -> (u16, serde_json::Value) {
    runtime().block_on(async {
        let response = reqwest::get(format!("http://127.0.0.1:{port}/health"))
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    })
}

/// State sync from the command line, the attacker's side first: a node told to sync its state
/// from a server that is not there, or from a server of another chain, says why and starts
/// from genesis (nothing half-synced left behind); one that runs out of time does too. From a
/// validator's RPC it takes the state after a finalized block (its `/health` says which, its
/// state is at least there before it follows a single block over p2p), keeps its floor in the
/// data directory, and after a restart without the flag carries on from it. Epochs are 20
/// blocks, so the sync certifies its block through committee changes; the synced node keeps
/// that walk and serves it: a client follows the committees from genesis through it alone, and
/// another node syncs its state from it.
#[test]
fn a_full_node_syncs_its_state_from_an_rpc_or_starts_from_genesis() {
    const PORT_BASE: u16 = 24_300;
    const RPC_PORT: u16 = PORT_BASE + 1_010;
    const SECOND_RPC_PORT: u16 = PORT_BASE + 1_011;
    let devnet = Devnet::init_with_args(
        "statesync",
        4,
        1,
        PORT_BASE,
        "",
        0,
        &["--epoch-length-blocks", "20"],
    );
    let validator = devnet.rpc[0].clone();
    let runtime = runtime();
    runtime.block_on(wait_for_height(&validator, 60, Duration::from_secs(60)));
    let genesis = devnet.dir.join("genesis.toml");
    let mut other_chain = logos_types::Genesis::load(&genesis).unwrap();
    other_chain.chain_name = "another chain".into();
    let other_genesis = devnet.dir.join("other-genesis.toml");
    std::fs::write(&other_genesis, other_chain.to_toml().unwrap()).unwrap();
    // Starts a full node on `data_dir` with `args` and RPC port `port` and waits for its
    // ready line; the running node and its log's path.
    let spawn = |name: &str, genesis: &std::path::Path, port: u16, args: &[&str]| {
        let data_dir = devnet.dir.join(name);
        let log_path = devnet.dir.join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path).unwrap();
        let mut child = logos_command()
            .args(["node", "run", "--role", "full", "--genesis"])
            .arg(genesis)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--rpc-listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .env("LOGOS_PASSPHRASE", "node passphrase")
            .env_remove("LOGOS_CHAIN_RPC")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let ready = stdout_lines(&mut child)
            .recv_timeout(Duration::from_secs(90))
            .unwrap_or_default();
        let log = std::fs::read_to_string(&log_path).unwrap();
        assert!(
            ready.contains("\"ready\":true"),
            "not ready: {ready:?}\n{log}"
        );
        (child, log_path)
    };
    // [`spawn`] on the test's RPC port; its `/health`, standard error and data directory
    // once stopped.
    let start = |name: &str, genesis: &std::path::Path, args: &[&str]| {
        let (mut child, log_path) = spawn(name, genesis, RPC_PORT, args);
        let (_, body) = health(RPC_PORT);
        child.kill().unwrap();
        child.wait().unwrap();
        let log = std::fs::read_to_string(&log_path).unwrap();
        (body, log, devnet.dir.join(name))
    };
    let nobody = format!("http://127.0.0.1:{}", PORT_BASE + 1_900);
    for (name, genesis, rpc, timeout_ms, why) in [
        (
            "absent",
            &genesis,
            nobody.as_str(),
            "60000",
            "state sync failed",
        ),
        (
            "foreign",
            &other_genesis,
            validator.as_str(),
            "60000",
            "state sync failed",
        ),
        (
            "slow",
            &genesis,
            validator.as_str(),
            "1",
            "state sync timed out",
        ),
    ] {
        let args = [
            "--state-sync",
            "--state-sync-rpc",
            rpc,
            "--state-sync-timeout-ms",
            timeout_ms,
        ];
        let (body, log, data_dir) = start(name, genesis, &args);
        assert!(log.contains(why), "{name}: {log}");
        assert_eq!(body["finalized_height"], 0, "{name}: {body}");
        assert!(body.get("state_synced_at").is_none(), "{name}: {body}");
        assert!(!data_dir.join("state-sync-floor").exists(), "{name}");
        assert!(!data_dir.join("state-sync-partial").exists(), "{name}");
    }

    let args = ["--state-sync", "--state-sync-rpc", validator.as_str()];
    let (body, log, data_dir) = start("synced", &genesis, &args);
    let synced_at = body["state_synced_at"]
        .as_u64()
        .unwrap_or_else(|| panic!("{body}\n{log}"));
    assert!(synced_at >= 60, "{body}");
    assert!(
        body["finalized_height"].as_u64().unwrap() >= synced_at,
        "{body}"
    );
    assert!(log.contains("state synced"), "{log}");
    assert!(data_dir.join("state-sync-floor").exists());
    // A restart without the flag carries on from the floor and its state.
    let (body, log, _) = start("synced", &genesis, &[]);
    assert_eq!(
        body["state_synced_at"].as_u64(),
        Some(synced_at),
        "{body}\n{log}"
    );
    assert!(
        body["finalized_height"].as_u64().unwrap() >= synced_at,
        "{body}"
    );
    assert!(!log.contains("state synced"), "synced again: {log}");

    // The synced node serves the committee walk below its floor: a client trusting only the
    // genesis follows every committee change through it, and another node syncs from it.
    let (mut first, _) = spawn("synced", &genesis, RPC_PORT, &[]);
    let first_rpc = format!("http://127.0.0.1:{RPC_PORT}");
    let floor_epoch = (synced_at - 1) / 20;
    assert!(floor_epoch >= 2, "floor {synced_at} in epoch {floor_epoch}");
    let anchor = logos_types::Genesis::load(&genesis).unwrap();
    let walked = runtime.block_on(async {
        let client = logos_client::Client::connect_trusted(&first_rpc, &anchor)
            .await
            .unwrap();
        // Below the floor, only epochs' last blocks are kept: any other height is unknown.
        use logos_api::rpc::LogosApiClient as _;
        let inside = floor_epoch * 20 - 1;
        assert_eq!(client.rpc().get_block_header(inside).await.unwrap(), None);
        assert_eq!(client.rpc().get_finalization(inside).await.unwrap(), None);
        client.committee(floor_epoch).await
    });
    let walked = walked.unwrap_or_else(|error| panic!("walk through the synced node: {error}"));
    assert_eq!(walked.start_height, floor_epoch * 20 + 1);
    let args = ["--state-sync", "--state-sync-rpc", first_rpc.as_str()];
    let (mut second, log_path) = spawn("synced-from-synced", &genesis, SECOND_RPC_PORT, &args);
    let (_, body) = health(SECOND_RPC_PORT);
    let log = std::fs::read_to_string(&log_path).unwrap();
    for child in [&mut first, &mut second] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let second_at = body["state_synced_at"]
        .as_u64()
        .unwrap_or_else(|| panic!("{body}\n{log}"));
    assert!(second_at >= synced_at, "{body}");
    assert!(log.contains("state synced"), "{log}");
}

/// A full node no validator's file lists gets a slot by registration on chain: started with no
/// file (`--genesis`, `--data-dir`, key created), it offers at `/health` a registration signed
/// by its key for one account (503 while not synced); `logos node register` submits it, every
/// validator tracks the key within about a second, and the node syncs and serves the chain.
/// Malformed `--register-for` values are refused before anything starts; deregistering
/// disconnects it and gives the deposit back.
#[test]
fn a_full_node_registered_on_chain_is_let_in_by_every_validator() {
    const PORT_BASE: u16 = 28_600;
    const RPC_PORT: u16 = PORT_BASE + 1_010;
    let mut devnet = Devnet::init("registered", 4, 2, PORT_BASE, "");
    let validator = devnet.rpc[0].clone();
    let runtime = runtime();
    runtime.block_on(wait_for_height(&validator, 20, Duration::from_secs(30)));
    let owner = devnet.key("account-0");
    let owner_address = Address::from_public_key(&owner.public_key());
    let genesis = devnet.dir.join("genesis.toml");
    let data_dir = devnet.dir.join("registered-node");
    let run = |register_for: &str| {
        let mut command = logos_command();
        command
            .args(["node", "run", "--role", "full", "--genesis"])
            .arg(&genesis)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--rpc-listen", &format!("127.0.0.1:{RPC_PORT}")])
            .args(["--register-for", register_for])
            .env("LOGOS_PASSPHRASE", "node passphrase");
        command
    };
    for malformed in [
        "no-at-sign",
        "0x12@127.0.0.1:0",
        &format!("{owner_address}@localhost:1"),
        &format!("{owner_address}@127.0.0.1"),
    ] {
        let output = run(malformed).output().unwrap();
        assert!(!output.status.success(), "{malformed} accepted");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("--register-for"),
            "{malformed}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let log = std::fs::File::create(devnet.dir.join("registered-node.log")).unwrap();
    let mut child = run(&format!("{owner_address}@127.0.0.1:0"))
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let ready = stdout_lines(&mut child)
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_default();
    devnet.processes.push(Some(child));
    assert!(ready.contains("\"role\":\"full\""), "not ready: {ready:?}");
    assert!(data_dir.join("p2p.key").exists(), "key created");
    std::thread::sleep(Duration::from_secs(3));
    let (status, body) = health(RPC_PORT);
    assert_eq!(status, 503, "synced without a slot: {body}");
    assert_eq!(body["finalized_height"], 0);
    assert_eq!(body["registration"]["owner"], owner_address.to_string());
    assert_eq!(body["registration"]["address"], "127.0.0.1:0");
    let key = body["registration"]["key"].as_str().unwrap().to_string();
    assert_eq!(body["public_key"], key);

    let cli = |args: &[&str]| {
        let output = logos_command()
            .args(args)
            .args(["--json", "--rpc", &validator, "--key-file"])
            .arg(devnet.dir.join("keys/account-0.key"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    // A lying /health (the node, or anyone between) gets nothing submitted: each forged offer
    // is refused with its reason before a fee is spent.
    let nonce_before = runtime.block_on(account_nonce(&validator, &owner_address));
    let genuine = body["registration"].clone();
    let stranger = PrivateKey::from_seed(4_242);
    let foreign_chain = ChainId(logos_primitives::hash(&[b"another chain"]));
    let (foreign_key, foreign_signature) = logos_types::peers::sign_registration(
        &stranger,
        &foreign_chain,
        &owner_address,
        &"127.0.0.1:0".parse().unwrap(),
    );
    let mut moved = genuine.clone();
    moved["address"] = "10.9.9.9:30400".into();
    let mut other_owner = genuine.clone();
    other_owner["owner"] = Address([9; 20]).to_string().into();
    let mut flipped = genuine.clone();
    let signature = genuine["signature"].as_str().unwrap();
    let last = signature.chars().last().unwrap();
    let flipped_last = if last == '0' { '1' } else { '0' };
    flipped["signature"] = format!("{}{flipped_last}", &signature[..signature.len() - 1]).into();
    let other_chain = serde_json::json!({
        "key": foreign_key,
        "owner": owner_address,
        "address": "127.0.0.1:0",
        "signature": foreign_signature,
    });
    let offer = |registration: &serde_json::Value| {
        serde_json::json!({ "synced": true, "registration": registration }).to_string()
    };
    let lies = [
        (offer(&moved), "does not verify"),
        (offer(&other_chain), "does not verify"),
        (offer(&flipped), "does not verify"),
        (offer(&other_owner), "the registration is for"),
        ("not json".to_string(), "offers no registration"),
    ];
    // The genuine offer padded past the bound: refused whether the length is announced or
    // not (read until the connection closes).
    let padded = serde_json::json!({ "registration": genuine, "pad": "x".repeat(100_000) });
    let oversized = [(padded.to_string(), true), (padded.to_string(), false)];
    let lies = lies
        .into_iter()
        .map(|(lie, reason)| (lie, true, reason))
        .chain(
            oversized
                .into_iter()
                .map(|(lie, length)| (lie, length, "offers no registration")),
        );
    for (lie, announce_length, reason) in lies {
        let liar = runtime.block_on(lying_health(lie.clone(), announce_length));
        let output = logos_command()
            .args(["node", "register", "--node", &liar.to_string()])
            .args(["--rpc", &validator, "--key-file"])
            .arg(devnet.dir.join("keys/account-0.key"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "accepted {}",
            &lie[..lie.len().min(200)]
        );
        assert!(stderr.contains(reason), "{reason}: {stderr}");
    }
    assert_eq!(
        runtime.block_on(account_nonce(&validator, &owner_address)),
        nonce_before,
        "a forged offer was submitted"
    );

    let registered = cli(&[
        "node",
        "register",
        "--node",
        &format!("127.0.0.1:{RPC_PORT}"),
    ]);
    assert_eq!(registered["key"], key);
    let node_rpc = format!("http://127.0.0.1:{RPC_PORT}");
    let head = runtime.block_on(head_height(&validator));
    runtime.block_on(wait_for_height(&node_rpc, head, Duration::from_secs(30)));
    let (status, body) = health(RPC_PORT);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["synced"], true);
    runtime.block_on(async {
        assert_eq!(
            client(&node_rpc).get_raw_block(head).await.unwrap(),
            client(&validator).get_raw_block(head).await.unwrap()
        );
        let chain = logos_client::Client::connect(&validator).await.unwrap();
        let (account, _) = chain
            .map::<balances::Accounts>(&owner_address)
            .await
            .unwrap();
        assert_eq!(
            account.unwrap().reserved,
            logos_types::peers::DEFAULT_MINIMUM_DEPOSIT
        );
    });

    let deregistered = cli(&["node", "deregister", "--node-key", &key]);
    assert_eq!(deregistered["key"], key);
    // Deregistered, it loses its slot: every validator tracks a set without it at its next
    // read (one set kept) and disconnects it, so it stops while the chain goes on.
    std::thread::sleep(Duration::from_secs(3));
    let stalled = runtime.block_on(head_height(&node_rpc));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        runtime.block_on(head_height(&node_rpc)),
        stalled,
        "still following"
    );
    assert!(runtime.block_on(head_height(&validator)) > stalled + 10);
    runtime.block_on(async {
        let chain = logos_client::Client::connect(&validator).await.unwrap();
        let (account, _) = chain
            .map::<balances::Accounts>(&owner_address)
            .await
            .unwrap();
        assert_eq!(account.unwrap().reserved, Amount::ZERO);
    });
}

/// Runs `logos` with `args` against `devnet`'s first validator (and its keystore when signing);
/// returns stdout, or stderr as the error when the command fails.
fn logos_cli(devnet: &Devnet, args: &[&str]) -> Result<String, String> {
    // A validator's node records its votes from the validator's account: a call from that
    // account can lose its nonce to them, and the client says so rather than resubmit.
    let result = logos_cli_once(devnet, args);
    match &result {
        Err(error) if error.contains("was used by another transaction") => {
            logos_cli_once(devnet, args)
        }
        _ => result,
    }
}

fn logos_cli_once(devnet: &Devnet, args: &[&str]) -> Result<String, String> {
    let mut command = logos_command();
    command.args(args).args(["--rpc", &devnet.rpc[0]]);
    if args.contains(&"--from") {
        command.arg("--keystore").arg(devnet.dir.join("keys"));
    }
    let output = command.output().unwrap();
    match output.status.success() {
        true => Ok(String::from_utf8_lossy(&output.stdout).into_owned()),
        false => Err(String::from_utf8_lossy(&output.stderr).into_owned()),
    }
}

/// `logos gov show ID --json`.
fn proposal(devnet: &Devnet, id: u64) -> serde_json::Value {
    let shown = logos_cli(devnet, &["gov", "show", &id.to_string(), "--json"]).unwrap();
    serde_json::from_str(&shown).unwrap()
}

/// The DAO end to end, through the CLI as people use it: stake bonded, a price changed by a
/// proposal in exactly its enactment block, a proposal without quorum failing, and the
/// bootstrap authority giving its power away, after which its privileged calls are refused
/// with an error that says what to do instead.
#[test]
fn governance_changes_a_price_at_its_enactment_block_and_outlives_the_authority() {
    use logos_types::{
        dvci::ResourceClass,
        governance::{self, GovernanceConfig},
        market::{self, Prices},
    };
    const PORT_BASE: u16 = 27_300;
    let devnet = Devnet::init("gov", 4, 1, PORT_BASE, "");
    let rt = runtime();
    let url = devnet.rpc[0].clone();
    let dev = logos_client::Wallet::new(devnet.key("dev"));
    let client = rt.block_on(logos_client::Client::connect(&url)).unwrap();
    // The bootstrap authority shortens the periods for the test (its own privileged call).
    let config = GovernanceConfig {
        deposit: Amount(1_000_000),
        // Long enough for the CLI calls below, each waiting for finality.
        voting_period_blocks: 150,
        enactment_delay_blocks: 5,
        quorum_percent: 30,
        threshold_percent: 50,
    };
    rt.block_on(client.execute(
        &dev,
        Call::Governance(governance::Call::SetConfig { config }),
    ))
    .unwrap();
    // Stakes of 50 %, 30 % and 20 %.
    for (name, stake) in [("validator-0", 5), ("validator-1", 3), ("validator-2", 2)] {
        let amount = (stake * 1_000_000u128).to_string();
        logos_cli(
            &devnet,
            &["stake", "bond", "--amount", &amount, "--from", name],
        )
        .unwrap();
    }
    let status: serde_json::Value = serde_json::from_str(
        &logos_cli(
            &devnet,
            &[
                "stake",
                "status",
                &Address::from_public_key(&devnet.key("validator-0").public_key()).to_string(),
                "--json",
            ],
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(status["active"], "5000000");
    // Subscribe before anything is enacted: the events say in which block it happened.
    let ws = rt
        .block_on(WsClientBuilder::default().build(url.replace("http://", "ws://")))
        .unwrap();
    let mut events: Subscription<EventRecord> = rt.block_on(ws.subscribe_events()).unwrap();
    let propose = |price: &str, from: &str| -> serde_json::Value {
        let out = logos_cli(
            &devnet,
            &[
                "gov",
                "propose",
                "set-price",
                "--class",
                "compute-hosted",
                "--amount",
                price,
                "--from",
                from,
                "--json",
            ],
        )
        .unwrap();
        serde_json::from_str(&out).unwrap()
    };
    let approved = propose("5000", "validator-2");
    let starved = propose("7000", "validator-2");
    let (approved_id, starved_id) = (
        approved["id"].as_u64().unwrap(),
        starved["id"].as_u64().unwrap(),
    );
    let vote = |id: u64, side: &str, from: &str| {
        logos_cli(
            &devnet,
            &["gov", "vote", &id.to_string(), side, "--from", from],
        )
        .unwrap();
    };
    vote(approved_id, "--aye", "validator-0");
    vote(approved_id, "--nay", "validator-1");
    // 20 % turnout: below the 30 % quorum.
    vote(starved_id, "--aye", "validator-2");
    let live = proposal(&devnet, approved_id);
    assert_eq!(live["status"], "voting");
    assert_eq!(live["tally"]["ayes"], "5000000");
    // Votes after the close are refused.
    let enact_wait = starved["voting_ends_at"].as_u64().unwrap() + 7;
    rt.block_on(wait_for_height(&url, enact_wait, Duration::from_secs(120)));
    let late = logos_cli(
        &devnet,
        &[
            "gov",
            "vote",
            &approved_id.to_string(),
            "--aye",
            "--from",
            "validator-2",
        ],
    )
    .unwrap_err();
    assert!(late.contains("VotingClosed"), "{late}");
    let enacted = proposal(&devnet, approved_id);
    assert_eq!(enacted["status"], "enacted", "{enacted}");
    let enactment_height = enacted["enactment_height"].as_u64().unwrap();
    assert_eq!(
        enactment_height,
        approved["voting_ends_at"].as_u64().unwrap() + 5
    );
    assert_eq!(proposal(&devnet, starved_id)["status"], "no_quorum");
    // The price changed in the enactment block (at its start), and only then.
    let mut price_set_at = Vec::new();
    let mut enacted_at = None;
    while enacted_at.is_none() || price_set_at.is_empty() {
        let record = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(30), futures_next(&mut events))
                .await
                .expect("events arrive")
        });
        match record.event {
            Event::Market(market::Event::PriceSet { .. }) => price_set_at.push(record.height),
            Event::Governance(governance::Event::Enacted { proposal, success }) => {
                assert_eq!(proposal.get(), approved_id);
                assert!(success);
                enacted_at = Some(record.height);
            }
            _ => {}
        }
    }
    assert_eq!(enacted_at, Some(enactment_height));
    assert_eq!(price_set_at, vec![enactment_height]);
    let (price, _) = rt
        .block_on(client.map::<Prices>(&ResourceClass::ComputeHosted))
        .unwrap();
    assert_eq!(price, Some(Amount(5_000)));
    // The authority gives its power away; its privileged calls then fail, saying why.
    let removed =
        rt.block_on(client.execute(&dev, Call::Governance(governance::Call::RemoveAuthority)));
    assert!(removed.is_ok(), "{removed:?}");
    let refused = rt
        .block_on(client.execute(
            &dev,
            Call::Market(market::Call::SetPrice {
                class: ResourceClass::ComputeHosted,
                price: Amount(1),
            }),
        ))
        .unwrap_err()
        .to_string();
    assert!(refused.contains("BadOrigin"), "{refused}");
    assert!(refused.contains("logos gov propose"), "{refused}");
    let (price, _) = rt
        .block_on(client.map::<Prices>(&ResourceClass::ComputeHosted))
        .unwrap();
    assert_eq!(price, Some(Amount(5_000)));
    // The committee query answers with the genesis validators (proof of authority).
    let committee: serde_json::Value =
        serde_json::from_str(&logos_cli(&devnet, &["query", "committee", "--json"]).unwrap())
            .unwrap();
    assert_eq!(committee["members"].as_array().unwrap().len(), 4);
}

/// Elected committees run consensus across processes: five validators with epochs of 60
/// blocks and elections from genesis; four bond and declare themselves candidates with their
/// own consensus keys and on-chain p2p addresses, the fifth does not. From the first epoch
/// whose committee is those four, every block is proposed by one of them, and the fifth
/// (out of the committee) keeps following the chain over p2p as a full node. A light client
/// trusting only the genesis proves a read in the elected epoch by following the committee
/// changes, and refuses a server that falsifies one of them.
#[test]
fn elected_committees_run_consensus_and_the_rest_follow() {
    const PORT_BASE: u16 = 21_900;
    const EPOCH_BLOCKS: u64 = 60;
    let devnet = Devnet::init_with_args(
        "epochs",
        5,
        0,
        PORT_BASE,
        "",
        0,
        &[
            "--epoch-length-blocks",
            &EPOCH_BLOCKS.to_string(),
            "--committee-size",
            "4",
            "--elections",
        ],
    );
    let rt = runtime();
    rt.block_on(wait_for_height(&devnet.rpc[0], 1, Duration::from_secs(60)));
    let mut candidates = Vec::new();
    for i in 0..4u16 {
        let name = format!("validator-{i}");
        let amount = (u128::from(i + 2) * 1_000_000_000).to_string();
        logos_cli(
            &devnet,
            &["stake", "bond", "--amount", &amount, "--from", &name],
        )
        .unwrap();
        let address = format!("127.0.0.1:{}", PORT_BASE + i);
        logos_cli(
            &devnet,
            &[
                "stake",
                "validate",
                "--consensus-key",
                &name,
                "--p2p-address",
                &address,
                "--from",
                &name,
            ],
        )
        .unwrap();
        candidates.push(format_public_key(&devnet.key(&name).public_key()));
    }
    candidates.sort();
    // The first epoch served by the elected four (an election needs its candidates declared
    // before the epoch two earlier ends).
    let committee = |epoch: u64| -> Option<Vec<String>> {
        let shown = logos_cli(
            &devnet,
            &[
                "query",
                "committee",
                "--json",
                "--epoch",
                &epoch.to_string(),
            ],
        )
        .ok()?;
        let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
        let mut keys: Vec<String> = shown["members"]
            .as_array()?
            .iter()
            .map(|member| member["consensus_key"].as_str().unwrap().to_string())
            .collect();
        keys.sort();
        Some(keys)
    };
    let mut elected = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    while elected.is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the four were never elected"
        );
        elected = (2..12).find(|epoch| committee(*epoch).as_ref() == Some(&candidates));
        std::thread::sleep(Duration::from_millis(500));
    }
    let epoch = elected.unwrap();
    let first = epoch * EPOCH_BLOCKS + 1;
    let last = first + EPOCH_BLOCKS / 2;
    rt.block_on(async {
        // Both the members and the outsider reach well into the elected epoch.
        wait_for_height(&devnet.rpc[0], last, Duration::from_secs(240)).await;
        wait_for_height(&devnet.rpc[4], last, Duration::from_secs(60)).await;
        let outsider = format_public_key(&devnet.key("validator-4").public_key());
        for height in first..=last {
            let block = client(&devnet.rpc[4])
                .get_block_by_height(height)
                .await
                .unwrap()
                .unwrap();
            assert!(
                candidates.contains(&block.proposer) && block.proposer != outsider,
                "block {height} of epoch {epoch} proposed by {}",
                block.proposer
            );
        }
    });
    // A light client that trusts only the genesis follows the committee changes to the
    // elected epoch: a proven read at a height the elected four finalized.
    let genesis = devnet.dir.join("genesis.toml");
    let account = Address::from_public_key(&devnet.key("validator-0").public_key());
    // The proof RPC from the attacker's side: epoch 0 (the genesis validators), an epoch not
    // started and the largest number answer null; a malformed epoch is refused.
    rt.block_on(async {
        let rpc = client(&devnet.rpc[0]);
        for unknown in [0, epoch + 1_000, u64::MAX] {
            assert_eq!(rpc.get_epoch_proof(unknown).await.unwrap(), None);
        }
        let proof = rpc.get_epoch_proof(epoch).await.unwrap().unwrap();
        assert_eq!(proof.epoch, epoch);
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"logos_getEpochProof","params":["x"]}"#;
        let server = devnet.rpc[0].trim_start_matches("http://");
        let answer = post_from("127.0.0.1", server, body).await;
        assert!(answer.contains("\"error\""), "{answer}");
    });
    let (ok, stdout, stderr) = prove_account(account, &genesis, &devnet.rpc[4]);
    assert!(ok, "{stderr}");
    let proven: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(proven["height"].as_u64().unwrap() >= first, "{stdout}");
    assert_eq!(proven["verified"], true);
    // From the attacker's side: a server that falsifies a step of the walk is refused.
    // The genesis committee, retired since (this test holds all its keys), signs the genuine
    // header of a height of the elected epoch: refused, its epoch does not span that height.
    let genesis_keys: Vec<PrivateKey> = (0..5)
        .map(|i| devnet.key(&format!("validator-{i}")))
        .collect();
    let chain_id = rt
        .block_on(logos_client::Client::connect(&devnet.rpc[0]))
        .unwrap()
        .info()
        .chain_id;
    let proxy = rt.block_on(retired_committee_proxy(
        devnet.rpc[0].clone(),
        chain_id,
        genesis_keys,
    ));
    let (ok, stdout, stderr) = prove_account(account, &genesis, &proxy);
    assert!(
        !ok,
        "a retired committee's certificate was accepted: {stdout}"
    );
    assert!(
        stderr.contains("is of epoch 0, which spans heights 1 to"),
        "{stderr}"
    );
    for (lie, why) in [
        (
            EpochLie::OtherCommittee,
            "the committee's proof does not verify",
        ),
        (EpochLie::EarlierBlock, "is not the last block before it"),
        (
            EpochLie::Missing,
            "the server has no proof of its committee",
        ),
    ] {
        let proxy = rt.block_on(epoch_lying_proxy(devnet.rpc[0].clone(), epoch, lie));
        let (ok, stdout, stderr) = prove_account(account, &genesis, &proxy);
        assert!(!ok, "{lie:?} was accepted: {stdout}");
        assert!(
            stderr.contains(&format!("epoch {epoch}: ")) && stderr.contains(why),
            "{lie:?}: {stderr}"
        );
    }
}

/// A JSON-RPC server that forwards to `genuine`, except that every finalization it serves is
/// a certificate of epoch 0 signed by all of `keys` (a committee since retired) over the
/// genuine header's digest. Returns its URL.
async fn retired_committee_proxy(
    genuine: String,
    chain_id: ChainId,
    keys: Vec<PrivateKey>,
) -> String {
    use axum::{extract::State, routing::post, Json, Router};
    use commonware_codec::{DecodeExt, Encode};
    use commonware_consensus::{
        simplex::types::{Finalization, Finalize, Proposal},
        types::{Epoch, Round, View},
    };
    type Shared = (String, ChainId, Vec<PrivateKey>, reqwest::Client);
    async fn handle(
        State((genuine, chain_id, keys, http)): State<Shared>,
        Json(request): Json<serde_json::Value>,
    ) -> Json<serde_json::Value> {
        let mut response = forward(&http, &genuine, &request).await;
        if request["method"] != "logos_getFinalization" {
            return Json(response);
        }
        let height = request["params"][0].as_u64().unwrap();
        let request = serde_json::json!({"jsonrpc":"2.0","id":1,"method":"logos_getBlockHeader","params":[height]});
        let header = forward(&http, &genuine, &request).await;
        let Some(hex_header) = header["result"].as_str() else {
            return Json(response);
        };
        let bytes = hex::decode(hex_header.trim_start_matches("0x")).unwrap();
        let digest =
            logos_api::block::BlockHeader::decode(commonware_codec::Copying(bytes.as_slice()))
                .unwrap()
                .digest();
        let validators: Vec<_> = keys.iter().map(|key| key.public_key()).collect();
        let namespace = chain_id.consensus_namespace();
        let proposal = Proposal::new(
            Round::new(Epoch::new(0), View::new(1_000_000 + height)),
            View::new(999_999 + height),
            digest,
        );
        let votes: Vec<_> = keys
            .iter()
            .map(|key| {
                let scheme = logos_api::consensus::Scheme::signer(
                    &namespace,
                    logos_api::consensus::participants(&validators),
                    key.clone(),
                )
                .unwrap();
                Finalize::sign(&scheme, proposal.clone()).unwrap()
            })
            .collect();
        let scheme = logos_api::consensus::Scheme::signer(
            &namespace,
            logos_api::consensus::participants(&validators),
            keys[0].clone(),
        )
        .unwrap();
        let votes = commonware_utils::iter::NonEmpty::try_new(votes.into_iter()).unwrap();
        let certificate =
            Finalization::from_owned_finalizes(&scheme, votes, &commonware_parallel::Sequential)
                .unwrap();
        response["result"] = format!("0x{}", hex::encode(certificate.encode())).into();
        Json(response)
    }
    let app = Router::new().route("/", post(handle)).with_state((
        genuine,
        chain_id,
        keys,
        reqwest::Client::new(),
    ));
    serve(app).await
}

/// How [`epoch_lying_proxy`] lies about one epoch's committee.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EpochLie {
    /// The epoch's proof with the committee of epoch 1 (a genuine value of another key).
    OtherCommittee,
    /// The proof moved to the block before the epoch's boundary.
    EarlierBlock,
    /// No proof at all.
    Missing,
}

/// A JSON-RPC server that forwards to `genuine`, except that `logos_getEpochProof(epoch)` is
/// falsified as `lie` says. Returns its URL.
async fn epoch_lying_proxy(genuine: String, epoch: u64, lie: EpochLie) -> String {
    use axum::{extract::State, routing::post, Json, Router};
    type Shared = (String, u64, EpochLie, reqwest::Client);
    async fn handle(
        State((genuine, epoch, lie, http)): State<Shared>,
        Json(request): Json<serde_json::Value>,
    ) -> Json<serde_json::Value> {
        let mut response = forward(&http, &genuine, &request).await;
        if request["method"] != "logos_getEpochProof" || request["params"][0] != epoch {
            return Json(response);
        }
        match lie {
            EpochLie::OtherCommittee => {
                let mut other = request.clone();
                other["params"][0] = 1.into();
                let other = forward(&http, &genuine, &other).await;
                response["result"]["committee"] = other["result"]["committee"].clone();
            }
            EpochLie::EarlierBlock => {
                let height = response["result"]["height"].as_u64().unwrap();
                response["result"]["height"] = (height - 1).into();
            }
            EpochLie::Missing => response["result"] = serde_json::Value::Null,
        }
        Json(response)
    }
    let app = Router::new().route("/", post(handle)).with_state((
        genuine,
        epoch,
        lie,
        reqwest::Client::new(),
    ));
    serve(app).await
}

/// `logos spinoff …` with `args`: (success, stdout, stderr).
fn spinoff(args: &[&str]) -> (bool, String, String) {
    let output = logos_command()
        .arg("spinoff")
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

/// A JSON-RPC server that forwards to `genuine`, except that the raw block at `height` comes
/// back with one byte changed. Returns its URL.
async fn block_tampering_proxy(genuine: String, height: u64) -> String {
    use axum::{extract::State, routing::post, Json, Router};
    async fn handle(
        State((genuine, height, http)): State<(String, u64, reqwest::Client)>,
        Json(request): Json<serde_json::Value>,
    ) -> Json<serde_json::Value> {
        let mut response = forward(&http, &genuine, &request).await;
        if request["method"] == "logos_getRawBlock" && request["params"][0] == height {
            let hex = response["result"]
                .as_str()
                .unwrap()
                .trim_start_matches("0x");
            let mut bytes = hex::decode(hex).unwrap();
            // The first byte of the parent digest: a block that claims another history.
            bytes[0] ^= 1;
            response["result"] = format!("0x{}", hex::encode(bytes)).into();
        }
        Json(response)
    }
    let app = Router::new().route("/", post(handle)).with_state((
        genuine,
        height,
        reqwest::Client::new(),
    ));
    serve(app).await
}

/// Every account's total balance (free + reserved) in `url`'s finalized state.
async fn totals(url: &str, addresses: &[Address]) -> std::collections::BTreeMap<Address, Amount> {
    let chain = logos_client::Client::connect(url).await.unwrap();
    let mut totals = std::collections::BTreeMap::new();
    for address in addresses {
        let (account, _) = chain.map::<balances::Accounts>(address).await.unwrap();
        let account = account.unwrap_or_default();
        let total = account.balance.checked_add(account.reserved).unwrap();
        if total != Amount::ZERO {
            totals.insert(*address, total);
        }
    }
    totals
}

/// Waits until every genesis validator's DKG log for epoch 1 is complete on chain (the parts pay
/// fees from the validators' accounts); panics after 60 s.
async fn dkg_logs_in(url: &str, genesis: &logos_types::Genesis) {
    use logos_types::{
        beacon::{DealingKey, Dealings},
        staking::Epoch,
    };
    let chain = logos_client::Client::connect(url).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    for validator in &genesis.validators {
        let key = logos_primitives::parse_public_key(&validator.public_key).unwrap();
        let dealing = DealingKey {
            epoch: Epoch(1),
            dealer: logos_primitives::NodeKey::from_public_key(&key),
        };
        loop {
            let (stored, _) = chain.map::<Dealings>(&dealing).await.unwrap();
            if stored.is_some_and(|dealing| dealing.complete) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "no DKG log of {key}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A spin-off end to end: a network is derived from a running devnet's state at height H
/// (bonded stake and a fresh account included), every balance in the child's genesis equals
/// the parent's at H and the child's issuance the parent's, the child finalizes with its own
/// validators from `logos devnet --resume`, refuses a transaction signed for the parent
/// (wrong chain id), and runs independently. From the attacker's side: a server that alters a
/// replayed block, a parent chain id that is not the server's, a height not yet finalized and
/// a directory already in use are refused, and write no network.
#[test]
fn a_spin_off_keeps_the_parents_balances_at_its_height_and_runs_on_its_own() {
    const PORT_BASE: u16 = 20_800;
    const CHILD_PORT_BASE: u16 = 25_000;
    // Epochs of 1,000,000 blocks: no vote sample (and no record transaction of the
    // validators) falls in the test, and the validators' DKG logs for epoch 1 are in before H
    // (waited for below), so no balance moves after H.
    let parent = Devnet::init_with_args(
        "spinoff",
        4,
        2,
        PORT_BASE,
        "",
        0,
        &["--epoch-length-blocks", "1000000"],
    );
    let rt = runtime();
    let url = parent.rpc[0].clone();
    let dev = logos_client::Wallet::new(parent.key("dev"));
    let bonder = logos_client::Wallet::new(parent.key("account-0"));
    let recipient = Address([0x5a; 20]);
    let chain = rt.block_on(logos_client::Client::connect(&url)).unwrap();
    let parent_id = chain.info().chain_id;
    rt.block_on(chain.execute(
        &dev,
        Call::Balances(balances::Call::Transfer {
            to: recipient,
            amount: Amount(123_456_789),
        }),
    ))
    .unwrap();
    // Bonded stake is reserved on the parent; the child returns it to its owner.
    rt.block_on(chain.execute(
        &bonder,
        Call::Staking(logos_types::staking::Call::Bond {
            amount: Amount(10_000_000_000),
        }),
    ))
    .unwrap();
    let parent_genesis = logos_types::Genesis::load(&parent.dir.join("genesis.toml")).unwrap();
    let mut addresses: Vec<Address> = parent_genesis
        .accounts
        .iter()
        .map(|account| account.address)
        .collect();
    addresses.push(recipient);
    rt.block_on(dkg_logs_in(&url, &parent_genesis));
    let before = rt.block_on(totals(&url, &addresses));
    let height = rt.block_on(head_height(&url));
    let (issuance, _) = rt
        .block_on(chain.value::<balances::TotalIssuance>())
        .unwrap();
    assert!(before[&bonder.address()] > Amount::ZERO);
    let dir = parent.dir.with_file_name(format!(
        "{}-child",
        parent.dir.file_name().unwrap().to_string_lossy()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let dir_text = dir.to_string_lossy().to_string();
    let height_text = height.to_string();
    let parent_id_text = parent_id.to_string();
    let child_ports = [
        "--p2p-base-port".to_string(),
        CHILD_PORT_BASE.to_string(),
        "--rpc-base-port".into(),
        (CHILD_PORT_BASE + 1_000).to_string(),
        "--metrics-base-port".into(),
        (CHILD_PORT_BASE + 2_000).to_string(),
    ];
    let with = |from: &str, height: &str, chain_id: &str| -> Vec<String> {
        let mut args: Vec<String> = [
            "--from",
            from,
            "--height",
            height,
            "--name",
            "child",
            "--validators",
            "3",
            "--dir",
            &dir_text,
            "--parent-chain-id",
            chain_id,
        ]
        .iter()
        .map(|arg| arg.to_string())
        .collect();
        args.extend(child_ports.iter().cloned());
        args
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        spinoff(&args)
    };

    // A server that alters one replayed block is caught; nothing is written.
    let liar = rt.block_on(block_tampering_proxy(url.clone(), height / 2));
    let (ok, _, stderr) = run(with(&liar, &height_text, &parent_id_text));
    assert!(!ok && stderr.contains("does not extend"), "{stderr}");
    assert!(!dir.join("genesis.toml").exists());
    // A parent chain id the server's genesis does not hash to.
    let other_id = ChainId(logos_primitives::hash(&[b"another network"])).to_string();
    let (ok, _, stderr) = run(with(&url, &height_text, &other_id));
    assert!(
        !ok && stderr.contains("not to the parent chain id"),
        "{stderr}"
    );
    // A height the parent has not finalized.
    let (ok, _, stderr) = run(with(&url, "100000000", &parent_id_text));
    assert!(!ok && stderr.contains("below the asked height"), "{stderr}");
    assert!(!dir.join("genesis.toml").exists());

    // The spin-off itself.
    let (ok, stdout, stderr) = run(with(&url, &height_text, &parent_id_text));
    assert!(ok, "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let child_genesis = logos_types::Genesis::load(&dir.join("genesis.toml")).unwrap();
    assert_eq!(summary["chain_id"], child_genesis.chain_id().to_string());
    // The parent's balances did not move after H (no transaction since), so `before` is
    // their value at H; every account's balance in the child's genesis equals it, and no
    // other account exists.
    assert_eq!(rt.block_on(totals(&url, &addresses)), before);
    assert_eq!(child_genesis.balances(), before);
    let child_total = child_genesis
        .accounts
        .iter()
        .fold(Amount::ZERO, |sum, account| {
            sum.checked_add(account.balance).unwrap()
        });
    assert_eq!(child_total, issuance);
    let parent_ref = child_genesis.parent.clone().unwrap();
    let block = rt
        .block_on(client(&url).get_block_by_height(height))
        .unwrap()
        .unwrap();
    assert_eq!(parent_ref.chain_id, parent_id);
    assert_eq!(parent_ref.height, height);
    assert_eq!(
        logos_primitives::format_hash(&parent_ref.block_hash),
        block.hash
    );
    assert_eq!(
        logos_primitives::format_hash(&parent_ref.state_root),
        block.state_root
    );
    assert_ne!(child_genesis.chain_id(), parent_id);
    // The directory is taken now: a second spin-off into it is refused.
    let (ok, _, stderr) = run(with(&url, &height_text, &parent_id_text));
    assert!(!ok && stderr.contains("not empty"), "{stderr}");

    // `logos devnet --resume --dir DIR` starts the child with its own validators.
    let mut child = logos_command()
        .args(["devnet", "--resume", "--dir", &dir_text])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child_url = format!("http://127.0.0.1:{}", CHILD_PORT_BASE + 1_000);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async {
            wait_for_height(&child_url, 5, Duration::from_secs(90)).await;
            let info = client(&child_url).chain_info().await.unwrap();
            assert_eq!(info.chain_id, child_genesis.chain_id());
            assert_eq!(info.parent, Some(parent_ref.clone()));
            let child_keys: Vec<String> = child_genesis
                .validators
                .iter()
                .map(|validator| validator.public_key.clone())
                .collect();
            assert_eq!(info.validators, child_keys);
            assert!(info.validators.iter().all(|key| !parent_genesis
                .validators
                .iter()
                .any(|v| &v.public_key == key)));
            // A transaction signed for the parent: refused by the child, wrong chain id.
            let dev_key = parent.key("dev");
            let nonce = account_nonce(&url, &dev.address()).await;
            let for_parent = transfer(&dev_key, parent_id, nonce, recipient, 1, 1_000);
            let (code, message) = error_code(
                client(&child_url)
                    .submit_transaction(to_hex(for_parent, &dev_key))
                    .await,
            );
            assert_eq!(code, codes::WRONG_CHAIN_ID, "{message}");
            // The same key signing for the child moves its balance there, not on the parent.
            let on_child = logos_client::Client::connect(&child_url).await.unwrap();
            // A wallet of its own: its nonces on the child start again at 0.
            let dev_on_child = logos_client::Wallet::new(dev_key);
            on_child
                .execute(
                    &dev_on_child,
                    Call::Balances(balances::Call::Transfer {
                        to: recipient,
                        amount: Amount(1),
                    }),
                )
                .await
                .unwrap();
            let child_recipient = totals(&child_url, &[recipient]).await[&recipient];
            assert_eq!(child_recipient, Amount(123_456_790));
            assert_eq!(
                totals(&url, &[recipient]).await[&recipient],
                Amount(123_456_789)
            );
        })
    }));
    terminate_and_wait(&mut child);
    outcome.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGTERM through kill(1), then waits (the devnet stops its validators on SIGTERM).
fn terminate_and_wait(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}
