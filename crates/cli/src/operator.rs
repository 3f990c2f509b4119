//! `logos provider …`, `logos agent run` and `logos provisioner …`: the operator side of the
//! sub0layer.

use crate::{client::DEFAULT_RPC, output::Format, progress};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use logos_agent::{
    attest::{AttestConfig, Attestor},
    container::{
        network::{Network, PUBLISHED_PORTS},
        seccomp, shim, ContainerConfig, ContainerDriver, DEFAULT_IMAGE_CACHE_MAX_BYTES,
        DEFAULT_LOG_BYTES_PER_SECOND, DEFAULT_LOG_FILE_MAX_BYTES, ENVIRONMENTS_MAX,
    },
    gatekeeper::{self, AgentConfig},
    image::{ImageLimits, DEFAULT_IMAGE_MAX_BYTES},
};
use logos_client::{keystore, Client, Wallet};
use logos_devnet::{runtime, wait_for_signal};
use logos_mia_collect::files::FileSnapshot;
use logos_primitives::{Amount, NodeKey};
use logos_provisioner::{Provisioner, ProvisionerConfig};
use logos_types::{
    dvci::{self, ProviderId, Providers, RegionId, ResourceClass},
    provisioning, Call,
};
use std::{net::SocketAddr, path::PathBuf};

/// Time between the attestor's reads of its machine's record, ms.
const ATTEST_POLL_MS: u64 = 1_000;

/// Relayed connections one environment may hold besides one per validator (RPC clients).
const RELAY_RPC_CONNECTIONS_PER_ENVIRONMENT: u32 = 8;

/// One environment's share of the relays with `validators` p2p relays: a p2p connection per
/// validator plus [`RELAY_RPC_CONNECTIONS_PER_ENVIRONMENT`].
fn relay_share(validators: u16) -> u32 {
    u32::from(validators).saturating_add(RELAY_RPC_CONNECTIONS_PER_ENVIRONMENT)
}

/// Key selection shared by operator commands.
#[derive(clap::Args, Clone, Debug)]
pub struct KeyArgs {
    /// Name of the signing key in the keystore (default: `logos init --from`).
    #[arg(long, env = "LOGOS_FROM")]
    pub from: Option<String>,
    /// Path of a key file (instead of --from).
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// Keystore directory.
    #[arg(long, env = "LOGOS_KEYSTORE")]
    pub keystore: Option<PathBuf>,
}

impl KeyArgs {
    /// Loads the selected key and connects to `rpc`.
    pub async fn connect(&self, rpc: &str) -> Result<(Wallet, Client)> {
        Ok((self.wallet()?, Client::connect(rpc).await?))
    }

    /// Loads the selected key.
    pub fn wallet(&self) -> Result<Wallet> {
        let key = match (&self.key_file, &self.from) {
            (Some(path), _) => keystore::load_file(path)?,
            (None, Some(name)) => {
                keystore::load(&keystore::directory(self.keystore.clone()), name)?
            }
            (None, None) => bail!(
                "no signing key chosen: give --from NAME (a key of the keystore, see `logos keys \
                 list`) or --key-file PATH, or choose one for every command with `logos init \
                 --from NAME`"
            ),
        };
        Ok(Wallet::new(key))
    }
}

/// `logos provider …`
#[derive(Subcommand)]
pub enum ProviderCommand {
    /// Collect one attestation on this machine by hand (TPM quote, measured-boot and IMA logs,
    /// file snapshot, LKRG, eBPF, tamper flag), check it as the chain would, and show each
    /// component.
    Attest(crate::attest::ProviderAttestArgs),
    /// Register the signing account's machine as a provider (pending until admitted).
    Register {
        #[command(flatten)]
        key: KeyArgs,
        /// Where the machine's agent listens (`host:port`).
        #[arg(long)]
        endpoint: String,
        /// Virtual CPUs offered.
        #[arg(long)]
        vcpu: u32,
        /// Memory offered, MiB.
        #[arg(long)]
        memory_mib: u64,
        /// Disk offered, GiB.
        #[arg(long)]
        disk_gib: u64,
        /// GPUs offered.
        #[arg(long, default_value_t = 0)]
        gpus: u32,
        /// Resource class: compute-kvm, compute-hosted, gpu or storage.
        #[arg(long, default_value = "compute-hosted")]
        class: ResourceClass,
        /// Region id.
        #[arg(long, default_value = "1")]
        region: RegionId,
        /// Bond in the smallest unit.
        #[arg(long)]
        bond: Amount,
        /// The agent's public key (`0x` hex; `logos keys show`): the key it signs stats with.
        #[arg(long)]
        agent_key: Option<NodeKey>,
        /// Node RPC endpoint.
        #[arg(long, default_value = DEFAULT_RPC, env = "LOGOS_RPC")]
        rpc: String,
        #[command(flatten)]
        format: Format,
    },
    /// Set the key a provider's agent signs with (owner only).
    SetAgentKey {
        #[command(flatten)]
        key: KeyArgs,
        /// Provider id.
        #[arg(long)]
        provider: ProviderId,
        /// The agent's public key (`0x` hex).
        #[arg(long)]
        agent_key: NodeKey,
        /// Node RPC endpoint.
        #[arg(long, default_value = DEFAULT_RPC, env = "LOGOS_RPC")]
        rpc: String,
        #[command(flatten)]
        format: Format,
    },
    /// A provider's record (status, inventory, allocation, bond).
    Status {
        /// Provider id.
        id: ProviderId,
        /// Node RPC endpoint.
        #[arg(long, default_value = DEFAULT_RPC, env = "LOGOS_RPC")]
        rpc: String,
        /// Genesis file whose validators are trusted to prove the record.
        #[arg(long, env = "LOGOS_GENESIS")]
        genesis: Option<PathBuf>,
        #[command(flatten)]
        format: Format,
    },
}

/// `logos agent …`
#[derive(Subcommand)]
pub enum AgentCommand {
    /// Run the provider agent with the container driver (runc; needs root: namespaces,
    /// cgroups, loop-mounted disks, the firewall).
    Run(Box<AgentRunArgs>),
    /// (internal) The shim of one environment: runs `runc run` for the agent, keeps the
    /// workload's output in rotating logs and its exit status.
    #[command(hide = true)]
    Shim(ShimArgs),
}

/// `logos agent run` options.
#[derive(clap::Args)]
pub struct AgentRunArgs {
    /// The provider id this machine is registered as.
    #[arg(long)]
    pub provider: ProviderId,
    /// Node RPC endpoint (read with proofs; also the target of the environments' relay).
    #[arg(long, default_value = DEFAULT_RPC, env = "LOGOS_RPC")]
    pub rpc: String,
    /// API listen address.
    #[arg(long, default_value = "127.0.0.1:7100")]
    pub listen: SocketAddr,
    /// Network index N (1 to 250): bridge lgbrN, environments on 10.88.N.0/24, host ids of
    /// environments from (256 N + 2) × 65536.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=250))]
    pub network_index: u8,
    /// Directory for environment state.
    #[arg(long)]
    pub state_dir: PathBuf,
    /// Genesis file of the network: its validators are trusted to prove every chain read
    /// the agent acts on, and it is bound read-only into environments at
    /// /opt/logos/genesis.toml.
    #[arg(long, env = "LOGOS_GENESIS")]
    pub genesis: PathBuf,
    /// Port of the chain relay on the bridge address.
    #[arg(long, default_value_t = 8545)]
    pub relay_port: u16,
    /// First p2p relay port on the bridge address: genesis validator `i` is relayed from
    /// this port + i (a leased full node dials them, `${CHAIN_P2P}`).
    #[arg(long, default_value_t = 30300)]
    pub p2p_relay_port: u16,
    /// The IP validators see relayed p2p connections come from (this machine's address
    /// towards them: a leased full node registers it, `${P2P_EGRESS}`, and validators
    /// refuse its connections from any other IP; a devnet on one host: 127.0.0.1).
    #[arg(long)]
    pub p2p_egress_ip: std::net::IpAddr,
    /// The address environments' declared ports are published on (this machine's address
    /// towards tenants; default: the bridge address, reachable from this machine only).
    #[arg(long)]
    pub public_ip: Option<std::net::Ipv4Addr>,
    /// First published port: the environment on host H of the bridge gets
    /// base + (H − 2) × 16 + i for its i-th declared port.
    #[arg(long, default_value_t = 24_000)]
    pub publish_port_base: u16,
    /// The agent's key file (its public key is the provider's agent key on chain): signs
    /// stats. Without it, stats are refused.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// A registry (`host:port`) reached over plain HTTP (repeatable; e.g. the devnet's
    /// loopback registry). Others are reached over HTTPS.
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    /// The container engines' default seccomp profile.
    #[arg(long, default_value = seccomp::DEFAULT_PROFILE_PATH)]
    pub seccomp_profile: PathBuf,
    /// Largest image (config and compressed layers), bytes.
    #[arg(long, default_value_t = DEFAULT_IMAGE_MAX_BYTES)]
    pub image_max_bytes: u64,
    /// Cached images beyond this are evicted, bytes.
    #[arg(long, default_value_t = DEFAULT_IMAGE_CACHE_MAX_BYTES)]
    pub image_cache_max_bytes: u64,
    /// A workload's log is rotated at this size (two files kept), bytes.
    #[arg(long, default_value_t = DEFAULT_LOG_FILE_MAX_BYTES)]
    pub log_file_max_bytes: u64,
    /// Most output a workload writes per second (it blocks beyond), bytes.
    #[arg(long, default_value_t = DEFAULT_LOG_BYTES_PER_SECOND)]
    pub log_bytes_per_second: u64,
    /// Requests per second the API serves to callers the chain does not know, and (apart) to
    /// unsigned reads; eligible provisioners and local tenants have budgets of their own.
    #[arg(long, default_value_t = 200)]
    pub requests_per_second: u32,
    /// Time between garbage collections, ms.
    #[arg(long, default_value_t = 3_000)]
    pub gc_interval_ms: u64,
    /// Destroy every environment when stopped (throwaway networks such as a devnet), and
    /// take down the bridge, firewall rules and cgroups.
    #[arg(long)]
    pub destroy_on_exit: bool,
    /// Attest this machine (Machine Integrity Attestation) through the TPM at this TSS2 TCTI
    /// (`device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`); needs `--key-file`.
    #[arg(long, conflicts_with = "swtpm")]
    pub tpm_tcti: Option<String>,
    /// Attest through a software TPM (swtpm) started here with its state in this directory
    /// (a devnet's machines; its TCTI is written to `DIR/tcti`); needs `--key-file`.
    #[arg(long)]
    pub swtpm: Option<PathBuf>,
    /// The certificate authority (swtpm's `swtpm_localca`, in this directory) that certifies
    /// the EK of a software TPM manufactured by `--swtpm`, and whose certificates make its
    /// chain (a devnet's own CA, the one its genesis approves); default: the system's.
    #[arg(long, requires = "swtpm")]
    pub swtpm_ca: Option<PathBuf>,
    /// The attestation key file (created under the TPM's EK when absent); default
    /// `STATE_DIR/attestation-key.json`.
    #[arg(long)]
    pub ak_file: Option<PathBuf>,
    /// The EK's certificate (DER or PEM), for a TPM that does not hold it in its NV (firmware
    /// TPMs' makers publish it online).
    #[arg(long)]
    pub ek_certificate: Option<PathBuf>,
    /// The CA certificates above the EK's (a PEM bundle, issuer first, root last, or one DER
    /// certificate), up to a root the chain approved; default with `--swtpm-ca`: that CA's.
    #[arg(long)]
    pub ek_chain: Option<PathBuf>,
    /// A path the file-integrity snapshot covers (repeat the flag).
    #[arg(long = "attest-file")]
    pub attest_files: Vec<PathBuf>,
    /// AIDE's database: the file snapshot is its hash (instead of `--attest-file`).
    #[arg(long, conflicts_with = "attest_files")]
    pub aide_db: Option<PathBuf>,
    /// The IMA measurement list.
    #[arg(long, default_value = logos_mia_collect::logs::IMA_BINARY_PATH)]
    pub ima_log: PathBuf,
    /// The tamper flag's file or sysfs path (`0` closed, `1` opened).
    #[arg(long)]
    pub tamper: Option<PathBuf>,
    /// Report the loaded eBPF programs (host-wide: container runtimes load some per
    /// container, so the reference must allow for them).
    #[arg(long)]
    pub attest_ebpf: bool,
    /// Reports per attestation period (at least 2: one per period lands after the deadline).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(2..=64))]
    pub reports_per_period: u64,
}

/// `logos agent shim` options.
#[derive(clap::Args)]
pub struct ShimArgs {
    /// Directory of the logs.
    #[arg(long)]
    pub log_dir: PathBuf,
    /// Size at which the log is rotated, bytes.
    #[arg(long)]
    pub log_file_max_bytes: u64,
    /// Most output written per second, bytes.
    #[arg(long)]
    pub log_bytes_per_second: u64,
    /// Where the exit status is written.
    #[arg(long)]
    pub exit_file: PathBuf,
    /// runc's arguments.
    #[arg(last = true)]
    pub runc_args: Vec<String>,
}

/// `logos provisioner …`
#[derive(Subcommand)]
pub enum ProvisionerCommand {
    /// Register the signing account as a provisioner with a stake.
    Register {
        #[command(flatten)]
        key: KeyArgs,
        /// Stake in the smallest unit.
        #[arg(long)]
        stake: Amount,
        /// Node RPC endpoint.
        #[arg(long, default_value = DEFAULT_RPC, env = "LOGOS_RPC")]
        rpc: String,
        #[command(flatten)]
        format: Format,
    },
    /// Run the provisioner daemon.
    Run {
        #[command(flatten)]
        key: KeyArgs,
        /// Node RPC endpoint.
        #[arg(long, default_value = DEFAULT_RPC, env = "LOGOS_RPC")]
        rpc: String,
        /// Time between head polls, ms.
        #[arg(long, default_value_t = 100)]
        poll_ms: u64,
        /// Longest time between full resyncs, ms.
        #[arg(long, default_value_t = 2_000)]
        resync_ms: u64,
        /// Timeout of agent requests and health probes, ms.
        #[arg(long, default_value_t = 2_000)]
        probe_timeout_ms: u64,
        /// Genesis file of the network: its validators are trusted to prove every read the
        /// provisioner acts on.
        #[arg(long, env = "LOGOS_GENESIS")]
        genesis: PathBuf,
    },
}

/// Runs `logos provider …`.
pub fn run_provider(command: ProviderCommand) -> Result<()> {
    runtime()?.block_on(async move {
        match command {
            ProviderCommand::Attest(args) => crate::attest::run_provider_attest(args),
            ProviderCommand::Register {
                key,
                endpoint,
                vcpu,
                memory_mib,
                disk_gib,
                gpus,
                class,
                region,
                bond,
                agent_key,
                rpc,
                format,
            } => {
                let (wallet, client) = key.connect(&rpc).await?;
                let call = dvci::Call::RegisterProvider {
                    endpoint: endpoint.as_str().try_into()?,
                    inventory: dvci::Resources {
                        vcpu,
                        memory_mib,
                        disk_gib,
                        gpus,
                    },
                    class,
                    region,
                    bond,
                };
                let registered = client.register_provider(&wallet, call);
                let (provider, height) =
                    progress::wait("provider registration: submitted, waiting for finality", async {
                        Ok(registered.await?)
                    })
                    .await?;
                if let Some(agent_key) = agent_key {
                    let call = Call::Dvci(dvci::Call::SetAgentKey { provider, key: agent_key });
                    progress::execute(&client, &wallet, call, "agent key").await?;
                }
                format.print(
                    &serde_json::json!({"provider": provider, "height": height, "status": "pending", "agent_key": agent_key}),
                )
            }
            ProviderCommand::SetAgentKey {
                key,
                provider,
                agent_key,
                rpc,
                format,
            } => {
                let (wallet, client) = key.connect(&rpc).await?;
                let call = Call::Dvci(dvci::Call::SetAgentKey { provider, key: agent_key });
                let (_, height) = progress::execute(&client, &wallet, call, "agent key").await?;
                format.print(
                    &serde_json::json!({"provider": provider, "agent_key": agent_key, "height": height}),
                )
            }
            ProviderCommand::Status {
                id,
                rpc,
                genesis,
                format,
            } => {
                let client = crate::client::trusted_client(&rpc, genesis.as_deref()).await?;
                let (provider, height) = client.map_proven::<Providers>(&id).await?;
                let provider = provider.with_context(|| format!("no provider {id}"))?;
                let mut value = serde_json::to_value(&provider)?;
                value["id"] = id.get().into();
                value["height"] = height.into();
                value["attestation"] = attestation_state(&client, id).await?;
                format.print(&value)
            }
        }
    })
}

/// A provider's Machine Integrity Attestation as proven chain state shows it:
/// `{"state": "unattested"}` on a chain whose genesis lets providers go without,
/// `{"state": "attested", "until": H}` (the height its last verified report covers), or the
/// machine's step without such a report: `unregistered`, `awaiting_draw`,
/// `awaiting_challenge`, `challenged`, `attesting` (AK proven, no report covering now) or
/// `excluded` (with `at` and `reason`).
async fn attestation_state(client: &Client, id: ProviderId) -> Result<serde_json::Value> {
    use logos_types::attestation::{MachineStatus, Machines};
    let (unattested, _) = client.value_proven::<dvci::Unattested>().await?;
    if unattested {
        return Ok(serde_json::json!({"state": "unattested"}));
    }
    if let (Some(until), head) = client.map_proven::<dvci::Attested>(&id).await? {
        if until >= head {
            return Ok(serde_json::json!({"state": "attested", "until": until}));
        }
    }
    let (machine, _) = client.map_proven::<Machines>(&id).await?;
    Ok(match machine.map(|machine| machine.status) {
        None => serde_json::json!({"state": "unregistered"}),
        Some(MachineStatus::AwaitingDraw) => serde_json::json!({"state": "awaiting_draw"}),
        Some(MachineStatus::AwaitingChallenge { .. }) => {
            serde_json::json!({"state": "awaiting_challenge"})
        }
        Some(MachineStatus::Challenged { .. }) => serde_json::json!({"state": "challenged"}),
        Some(MachineStatus::Attesting) => serde_json::json!({"state": "attesting"}),
        Some(MachineStatus::Excluded { at, reason }) => {
            serde_json::json!({"state": "excluded", "at": at, "reason": reason})
        }
    })
}

/// Runs `logos agent …`.
pub fn run_agent(command: AgentCommand) -> Result<()> {
    match command {
        AgentCommand::Shim(ShimArgs {
            log_dir,
            log_file_max_bytes,
            log_bytes_per_second,
            exit_file,
            runc_args,
        }) => {
            let config = shim::ShimConfig {
                runc_args,
                log_dir,
                log_file_max_bytes,
                log_bytes_per_second,
                exit_file,
            };
            let code = shim::run(&config)?;
            std::process::exit(code.clamp(0, 255));
        }
        AgentCommand::Run(args) => run_agent_daemon(*args),
    }
}

/// The ports one environment may hold at once through the relays, and all of them.
fn relay_slots(validators: u16) -> (u32, u32) {
    let share = relay_share(validators);
    let total = share.saturating_mul(u32::try_from(ENVIRONMENTS_MAX).unwrap_or(u32::MAX));
    (share, total)
}

fn run_agent_daemon(args: AgentRunArgs) -> Result<()> {
    let AgentRunArgs {
        provider,
        rpc,
        listen,
        network_index,
        state_dir,
        genesis,
        relay_port,
        p2p_relay_port,
        p2p_egress_ip,
        public_ip,
        publish_port_base,
        key_file,
        insecure_registries,
        seccomp_profile,
        image_max_bytes,
        image_cache_max_bytes,
        log_file_max_bytes,
        log_bytes_per_second,
        requests_per_second,
        gc_interval_ms,
        destroy_on_exit,
        tpm_tcti,
        swtpm,
        swtpm_ca,
        ak_file,
        ek_certificate,
        ek_chain,
        attest_files,
        aide_db,
        ima_log,
        tamper,
        attest_ebpf,
        reports_per_period,
    } = args;
    let validators = logos_types::Genesis::load(&genesis)?.validators;
    let p2p_relays = u16::try_from(validators.len()).context("too many validators to relay")?;
    let relay_ports = u32::from(p2p_relay_port)..u32::from(p2p_relay_port) + u32::from(p2p_relays);
    if relay_ports.end > 1 << 16 {
        anyhow::bail!("--p2p-relay-port {p2p_relay_port}: no room for {p2p_relays} relay ports");
    }
    if relay_ports.contains(&u32::from(relay_port)) {
        anyhow::bail!("--relay-port {relay_port} is one of the p2p relay ports {relay_ports:?}");
    }
    if u32::from(publish_port_base) + u32::from(PUBLISHED_PORTS) > 1 << 16 {
        anyhow::bail!("--publish-port-base {publish_port_base}: no room for {PUBLISHED_PORTS} published ports");
    }
    let key = key_file.as_deref().map(keystore::load_file).transpose()?;
    crate::node::init_logging("info");
    // The software TPM lives as long as this agent (a restart is the machine's reboot).
    let ca = swtpm_ca
        .as_deref()
        .map(logos_mia_collect::swtpm::LocalCa::at)
        .transpose()?;
    let swtpm = swtpm
        .map(|dir| -> Result<_> {
            use logos_mia_collect::swtpm::Swtpm;
            let tpm = match &ca {
                Some(ca) => Swtpm::start_certified(&dir, 0, ca)?,
                None => Swtpm::start(&dir, 0)?,
            };
            std::fs::write(dir.join("tcti"), tpm.tcti())?;
            Ok(tpm)
        })
        .transpose()?;
    let ek_chain = match (ek_chain, &ca) {
        (Some(path), _) => Some(path),
        (None, Some(ca)) => Some(ca.bundle()?),
        (None, None) => None,
    };
    let tcti = tpm_tcti.or_else(|| swtpm.as_ref().map(|tpm| tpm.tcti()));
    let attest = match (&tcti, &key) {
        (Some(tcti), Some(key)) => Some((
            AttestConfig {
                provider,
                tcti: tcti.clone(),
                ak_file: ak_file.unwrap_or_else(|| state_dir.join("attestation-key.json")),
                ek_certificate,
                ek_chain,
                ima_log,
                files: match aide_db {
                    Some(database) => FileSnapshot::Aide(database),
                    None if attest_files.is_empty() => FileSnapshot::None,
                    None => FileSnapshot::Paths(attest_files),
                },
                tamper,
                ebpf: attest_ebpf,
                poll_ms: ATTEST_POLL_MS,
                reports_per_period,
            },
            Wallet::new(key.clone()),
        )),
        (Some(_), None) => bail!("attestation (--tpm-tcti, --swtpm) needs --key-file: the agent reports from its agent account"),
        (None, _) => None,
    };
    let binds = vec![(
        genesis.canonicalize()?,
        "/opt/logos/genesis.toml".to_string(),
    )];
    let mut network = Network {
        index: network_index,
        relay_port,
        p2p_relay_port,
        p2p_relays,
        p2p_egress_ip,
        public_ip: std::net::Ipv4Addr::UNSPECIFIED,
        publish_port_base,
    };
    network.public_ip = public_ip.unwrap_or_else(|| network.gateway());
    let container = ContainerConfig {
        state_dir,
        name: format!("agent-{network_index}"),
        network,
        binds,
        shim_command: vec![
            std::env::current_exe()?.display().to_string(),
            "agent".into(),
            "shim".into(),
        ],
        seccomp_profile,
        insecure_registries,
        image_limits: ImageLimits { image_max_bytes },
        image_cache_max_bytes,
        log_file_max_bytes,
        log_bytes_per_second,
    };
    let relay_target: SocketAddr = rpc
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .with_context(|| format!("--rpc {rpc} must be http://ip:port"))?;
    let (share, total) = relay_slots(p2p_relays);
    let config = AgentConfig {
        provider,
        listen,
        requests_per_second,
        gc_interval_ms,
        relay_listen: SocketAddr::new(network.gateway().into(), relay_port),
        relay_target,
        p2p_relays: network
            .p2p_relay_addresses()
            .into_iter()
            .zip(validators.iter().map(|validator| validator.p2p_address))
            .collect(),
        // Every environment can hold its share at once: no tenant starves another.
        relay_connections_per_environment_max: share,
        relay_connections_max: total,
        key,
    };
    runtime()?.block_on(async move {
        let driver = ContainerDriver::new(container)?;
        driver.prepare_host().await?;
        let client = crate::client::trusted_client(&rpc, Some(&genesis)).await?;
        if let Some((config, wallet)) = attest {
            let client = crate::client::trusted_client(&rpc, Some(&genesis)).await?;
            let attestor = Attestor::new(config, client, wallet);
            tokio::spawn(attestor.run());
        }
        let address = gatekeeper::start(config, client, driver.clone()).await?;
        println!(
            "{}",
            serde_json::json!({"ready": true, "agent": address.to_string(), "provider": provider, "cgroups": format!("{:?}", driver.hierarchy()), "tpm": tcti})
        );
        wait_for_signal().await;
        if destroy_on_exit {
            driver.destroy_all().await?;
        }
        Ok(())
    })
}

/// Runs `logos provisioner …`.
pub fn run_provisioner(command: ProvisionerCommand) -> Result<()> {
    runtime()?.block_on(async move {
        match command {
            ProvisionerCommand::Register {
                key,
                stake,
                rpc,
                format,
            } => {
                let (wallet, client) = key.connect(&rpc).await?;
                let call = Call::Provisioning(provisioning::Call::RegisterProvisioner { stake });
                let what = "provisioner registration";
                let (_, height) = progress::execute(&client, &wallet, call, what).await?;
                format
                    .print(&serde_json::json!({"provisioner": wallet.address(), "height": height}))
            }
            ProvisionerCommand::Run {
                key,
                rpc,
                poll_ms,
                resync_ms,
                probe_timeout_ms,
                genesis,
            } => {
                crate::node::init_logging("info");
                let wallet = key.wallet()?;
                let client = crate::client::trusted_client(&rpc, Some(&genesis)).await?;
                let address = wallet.address();
                let config = ProvisionerConfig {
                    poll_ms,
                    resync_ms,
                    probe_timeout_ms,
                };
                let provisioner = Provisioner::new(config, client, wallet)?;
                println!(
                    "{}",
                    serde_json::json!({"ready": true, "provisioner": address})
                );
                tokio::select! {
                    result = provisioner.run() => result?,
                    () = wait_for_signal() => {}
                }
                Ok(())
            }
        }
    })
}
