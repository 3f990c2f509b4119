//! A mock chain for module tests: a map state, blocks applied through the real executor, and
//! [`try_state_all`](crate::try_state_all) (every module's invariants and the chain-wide ones)
//! checked after every block.

use crate::{
    build_block, execute_block, genesis_state, try_state_all, BlockError, BlockOutcome, BuiltBlock,
};
use commonware_cryptography::Signer;
use futures::executor::block_on;
use logos_framework::{apply, BlockContext, MapExt, State, ValueExt, WriteSet};
use logos_primitives::{hash, Address, Amount, ChainId, PrivateKey};
use logos_types::{
    balances::{AccountInfo, Accounts},
    genesis::GenesisAccount,
    Call, Event, Genesis, Params, Receipt, StateError, StorageMap, StorageValue, Transaction,
    TransactionPayload,
};
use std::collections::BTreeMap;

/// The mock chain.
pub struct MockChain {
    /// Full state.
    pub state: State,
    /// Chain id of transactions.
    pub chain_id: ChainId,
    /// Author of every block.
    pub author: Address,
    /// Height of the last block.
    pub height: u64,
    /// Chain parameters.
    pub params: Params,
    /// Mixed into every block's randomness (tests vary it to sample draws).
    pub seed: u64,
    nonces: BTreeMap<Address, u64>,
}

/// The address of `key`.
pub fn address(key: &PrivateKey) -> Address {
    Address::from_public_key(&key.public_key())
}

impl MockChain {
    /// A chain whose genesis funds `balances`, without a bootstrap authority (providers
    /// `unattested`, as on a devnet: the attestation module's tests use [`Self::with_params`]).
    pub fn new(balances: &[(Address, u128)]) -> Self {
        let params = Params {
            unattested: true,
            ..Params::default()
        };
        Self::with_params(balances, params)
    }

    /// A chain whose genesis funds `balances` and names `authority` the bootstrap authority.
    pub fn with_authority(balances: &[(Address, u128)], authority: Address) -> Self {
        let params = Params {
            privileged_account: Some(authority),
            unattested: true,
            ..Params::default()
        };
        Self::with_params(balances, params)
    }

    /// The keys of the mock genesis validators (the committee of epochs 0 and 1).
    pub fn genesis_validators() -> Vec<PrivateKey> {
        (0..5).map(|i| PrivateKey::from_seed(9_000 + i)).collect()
    }

    /// A chain whose genesis funds `balances` with `params`.
    pub fn with_params(balances: &[(Address, u128)], params: Params) -> Self {
        let validators = Self::genesis_validators()
            .iter()
            .enumerate()
            .map(|(i, key)| logos_types::genesis::GenesisValidator {
                public_key: logos_primitives::format_public_key(&key.public_key()),
                p2p_address: std::net::SocketAddr::from(([127, 0, 0, 1], 30_300 + i as u16)),
            })
            .collect();
        let genesis = Genesis {
            chain_name: "mock".into(),
            timestamp_ms: 0,
            params: params.clone(),
            validators,
            accounts: balances
                .iter()
                .map(|(address, amount)| GenesisAccount {
                    address: *address,
                    balance: Amount(*amount),
                })
                .collect(),
            parent: None,
        };
        let mut chain = Self {
            state: State::new(),
            chain_id: ChainId(hash(&[b"mock"])),
            author: Address([0xAA; 20]),
            height: 0,
            params,
            seed: 0,
            nonces: BTreeMap::new(),
        };
        chain.apply(genesis_state(&genesis).expect("mock genesis"));
        chain
    }

    fn apply(&mut self, writes: WriteSet) {
        apply(&mut self.state, writes);
        if let Err(violation) = try_state_all(&self.state) {
            panic!("invariant broken after block {}: {violation}", self.height);
        }
    }

    /// Executes one block of `transactions`; on error the state is untouched.
    pub fn execute(&mut self, transactions: &[Transaction]) -> Result<Vec<Receipt>, BlockError> {
        Ok(self.execute_with_events(transactions)?.0)
    }

    /// Like [`Self::execute`], also returning the end-of-block events.
    pub fn execute_with_events(
        &mut self,
        transactions: &[Transaction],
    ) -> Result<(Vec<Receipt>, Vec<Event>), BlockError> {
        let outcome = self.dry_run(transactions)?;
        // A hook fails only on a corrupted state; an executed block must not hide one (its
        // writes, deadlines or bills would be dropped without a test noticing).
        if let Some(failed) = outcome.block_events.iter().find(|event| {
            matches!(
                event,
                Event::Runtime(logos_types::RuntimeEvent::HookFailed { .. })
            )
        }) {
            panic!("a hook failed in block {}: {failed:?}", self.height + 1);
        }
        self.height += 1;
        self.apply(outcome.writes);
        Ok((outcome.receipts, outcome.block_events))
    }

    /// Executes the next block of `transactions` without applying it or checking invariants
    /// (to look at what a block on a corrupted state does).
    pub fn dry_run(&self, transactions: &[Transaction]) -> Result<BlockOutcome, BlockError> {
        block_on(execute_block(
            &self.state,
            &self.next_context(),
            transactions,
        ))
    }

    /// Builds the next block from `candidates` as a leader would ([`build_block`]), without
    /// applying it.
    pub fn build(&self, candidates: &[Transaction]) -> Result<BuiltBlock, StateError> {
        block_on(build_block(&self.state, &self.next_context(), candidates))
    }

    fn next_context(&self) -> BlockContext {
        BlockContext {
            chain_id: self.chain_id,
            height: self.height + 1,
            author: self.author,
            params: self.params.clone(),
            randomness: hash(&[&self.seed.to_be_bytes(), &self.height.to_be_bytes()]),
            parent: Self::block_digest(self.height),
        }
    }

    /// The digest the mock chain gives its block at `height` (blocks here have no content).
    pub fn block_digest(height: u64) -> logos_primitives::Hash {
        hash(&[b"mock-block", &height.to_be_bytes()])
    }

    /// `call` signed by `key` with its next nonce and the minimum fee.
    pub fn sign(&mut self, key: &PrivateKey, call: Call) -> Transaction {
        let nonce = self.nonces.entry(address(key)).or_default();
        let transaction = TransactionPayload {
            chain_id: self.chain_id,
            sender: key.public_key(),
            nonce: *nonce,
            fee: self.params.min_fee,
            call,
        }
        .sign(key);
        *nonce += 1;
        transaction
    }

    /// Signs `call` from `key` and executes it alone in a block; returns its receipt.
    pub fn call(&mut self, key: &PrivateKey, call: impl Into<Call>) -> Receipt {
        let transaction = self.sign(key, call.into());
        self.execute(&[transaction])
            .expect("a valid block")
            .remove(0)
    }

    /// Runs `blocks` empty blocks.
    pub fn advance(&mut self, blocks: u64) {
        for _ in 0..blocks {
            self.execute(&[]).expect("an empty block is valid");
        }
    }

    /// The value of map item `I` under `key`.
    pub fn map<I: StorageMap>(&self, key: &I::Key) -> Option<I::Value> {
        I::get_from(&self.state, key).expect("stored values decode")
    }

    /// The value of item `I` (its default while absent).
    pub fn value<I: StorageValue>(&self) -> I::Value {
        I::get_from(&self.state).expect("stored values decode")
    }

    /// Writes `value` under `key` of item `I` directly into the state, bypassing every module
    /// (to show that an invariant check catches a corrupted state).
    pub fn corrupt<I: StorageMap>(&mut self, key: &I::Key, value: &I::Value) {
        self.state
            .insert(I::key(key), logos_types::codec::encode(value));
    }

    /// Writes `value` as item `I` directly into the state, bypassing every module.
    pub fn corrupt_value<I: StorageValue>(&mut self, value: &I::Value) {
        self.state
            .insert(I::key(), logos_types::codec::encode(value));
    }

    /// `address`'s account.
    pub fn account(&self, address: &Address) -> AccountInfo {
        self.map::<Accounts>(address).unwrap_or_default()
    }
}

/// Asserts that `receipt` failed with `module`'s `error` (by name); returns the error's text.
pub fn assert_failed(receipt: &Receipt, module: &str, error: &str) -> String {
    assert!(
        !receipt.success,
        "expected {module}::{error}, the call succeeded"
    );
    let failure = receipt
        .error
        .as_ref()
        .expect("a failed call names its error");
    assert_eq!(
        (failure.module.as_str(), failure.error.as_str()),
        (module, error),
        "{failure}"
    );
    failure.message.clone()
}

/// A market to lease from: region [`REGION`], active providers, product 0 "small"
/// ([`small`], [`UNITS`] compute units), template 0 "Logos full node" and a compute-hosted
/// price of [`PRICE`] per compute unit per block (a rate of 20 per block).
pub mod fixtures {
    use super::*;
    use logos_types::{
        catalog::{self, HealthCheck, Product, ProductId, Template, TemplateId, Workload},
        dvci::{self, ProviderId, ProviderStatus, RegionId, ResourceClass, Resources},
        market::{self, LeaseId},
        operations::PortMapping,
        operations::{Environment, EnvironmentId, Environments, Phase},
        provisioning::{self, Assignment, Assignments, Outcome, Report, Verdict},
    };

    /// The fixtures' region.
    pub const REGION: RegionId = RegionId(1);
    /// Price per compute unit per block.
    pub const PRICE: u128 = 10;
    /// Compute units of product 0.
    pub const UNITS: u32 = 2;
    /// Stake of each fixture provisioner.
    pub const STAKE: Amount = Amount(2_000_000);

    /// What product 0 gets.
    pub fn small() -> Resources {
        Resources {
            vcpu: 2,
            memory_mib: 2_048,
            disk_gib: 20,
            gpus: 0,
        }
    }

    /// A 10-vCPU provider's inventory.
    pub fn machine() -> Resources {
        Resources {
            vcpu: 10,
            memory_mib: 10_240,
            disk_gib: 100,
            gpus: 0,
        }
    }

    /// The chain and its actors: `root` is privileged, `owner` owns the providers, `tenant`
    /// leases, `provisioners` are registered with [`STAKE`].
    pub struct World {
        /// The chain.
        pub chain: MockChain,
        /// The privileged account's key.
        pub root: PrivateKey,
        /// The providers' owner.
        pub owner: PrivateKey,
        /// The tenant.
        pub tenant: PrivateKey,
        /// Registered provisioners.
        pub provisioners: Vec<PrivateKey>,
    }

    /// Provisioners [`market`] registers: enough for the default verification parameters
    /// (an assignee and three checkers) and one spare.
    pub const PROVISIONERS: u64 = 5;

    /// `providers` active providers in [`REGION`], the catalog, a price and [`PROVISIONERS`]
    /// registered provisioners.
    pub fn market(providers: u64) -> World {
        let mut world = bare(providers);
        world.add_provisioners(PROVISIONERS);
        world
    }

    /// `providers` active providers in [`REGION`] (provider `k`'s agent key from seed
    /// `500 + k`), the catalog and a price; no provisioners. Providers are `unattested`.
    pub fn bare(providers: u64) -> World {
        bare_with(providers, true)
    }

    /// [`market`] on a chain that requires attestation: its providers take no lease until
    /// their machines attest.
    pub fn attested_market(providers: u64) -> World {
        let mut world = bare_with(providers, false);
        world.add_provisioners(PROVISIONERS);
        world
    }

    fn bare_with(providers: u64, unattested: bool) -> World {
        let (root, owner, tenant) = (
            PrivateKey::from_seed(1),
            PrivateKey::from_seed(2),
            PrivateKey::from_seed(3),
        );
        let chain = MockChain::with_params(
            &[
                (address(&root), 1_000_000_000),
                (address(&owner), 1_000_000_000),
                (address(&tenant), 1_000_000),
            ],
            Params {
                privileged_account: Some(address(&root)),
                unattested,
                ..Params::default()
            },
        );
        let mut world = World {
            chain,
            root,
            owner,
            tenant,
            provisioners: Vec::new(),
        };
        world.privileged(dvci::Call::CreateRegion {
            region: REGION,
            name: "local".try_into().expect("short name"),
        });
        for provider in 0..providers {
            let endpoint = format!("10.77.1.{}:7100", 100 + provider);
            let owner = world.owner.clone();
            let registered = world.chain.call(
                &owner,
                dvci::Call::RegisterProvider {
                    endpoint: endpoint.as_str().try_into().expect("short endpoint"),
                    inventory: machine(),
                    class: ResourceClass::ComputeHosted,
                    region: REGION,
                    bond: Amount(1_000_000),
                },
            );
            assert!(registered.success, "{registered:?}");
            // Placement takes only providers whose agent can sign what it observes.
            let agent = PrivateKey::from_seed(500 + provider);
            let keyed = world.chain.call(
                &owner,
                dvci::Call::SetAgentKey {
                    provider: ProviderId(provider),
                    key: logos_primitives::NodeKey::from_public_key(&agent.public_key()),
                },
            );
            assert!(keyed.success, "{keyed:?}");
            world.privileged(dvci::Call::SetProviderStatus {
                provider: ProviderId(provider),
                status: ProviderStatus::Active,
            });
        }
        world.privileged(catalog::Call::SetProduct {
            id: ProductId(0),
            product: Product {
                name: "small".try_into().expect("short name"),
                resources: small(),
                class: ResourceClass::ComputeHosted,
                compute_units: UNITS,
            },
        });
        world.privileged(catalog::Call::SetTemplate {
            id: TemplateId(0),
            template: Template {
                name: "Logos full node".try_into().expect("short name"),
                product: ProductId(0),
                workload: workload(&["logos", "node"], 8545),
            },
        });
        world.privileged(market::Call::SetPrice {
            class: ResourceClass::ComputeHosted,
            price: Amount(PRICE),
        });
        world
    }

    /// An image reference pinned by a made-up digest (test fixtures only).
    pub const IMAGE: &str =
        "127.0.0.1:5000/logos/node@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// A workload of [`IMAGE`] running `command` with `port` declared and probed over HTTP
    /// (`/health`).
    pub fn workload(command: &[&str], port: u16) -> Workload {
        Workload {
            image: IMAGE.try_into().expect("short reference"),
            command: command
                .iter()
                .map(|part| (*part).try_into().expect("short argument"))
                .collect::<Vec<_>>()
                .try_into()
                .expect("few arguments"),
            ports: vec![port].try_into().expect("one port"),
            health: HealthCheck {
                port,
                path: Some("/health".try_into().expect("short path")),
            },
            ..Workload::default()
        }
    }

    /// One active provider, `count` registered provisioners (at least [`PROVISIONERS`]) and
    /// one lease (environment 0) of 10,000 blocks.
    pub fn provisioned(count: u64) -> World {
        let mut world = market(1);
        world.add_provisioners(count.saturating_sub(PROVISIONERS));
        let created = world.lease(10_000);
        assert!(created.success, "{created:?}");
        world
    }

    impl World {
        /// Funds and registers `count` more provisioners with [`STAKE`].
        pub fn add_provisioners(&mut self, count: u64) {
            for _ in 0..count {
                let seed = 100 + self.provisioners.len() as u64;
                let key = PrivateKey::from_seed(seed);
                let root = self.root.clone();
                let funded = self.chain.call(
                    &root,
                    logos_types::balances::Call::Transfer {
                        to: address(&key),
                        amount: Amount(10_000_000),
                    },
                );
                assert!(funded.success);
                let registered = self.chain.call(
                    &key,
                    provisioning::Call::RegisterProvisioner { stake: STAKE },
                );
                assert!(registered.success, "{registered:?}");
                self.provisioners.push(key);
            }
        }

        /// Runs `call` from the privileged account and asserts that it succeeded.
        pub fn privileged(&mut self, call: impl Into<Call>) -> Receipt {
            let root = self.root.clone();
            let receipt = self.chain.call(&root, call);
            assert!(receipt.success, "{receipt:?}");
            receipt
        }

        /// Runs `call` from the tenant.
        pub fn tenant_call(&mut self, call: impl Into<Call>) -> Receipt {
            let tenant = self.tenant.clone();
            self.chain.call(&tenant, call)
        }

        /// The tenant leases template 0 in [`REGION`] for `blocks` blocks.
        pub fn lease(&mut self, blocks: u64) -> Receipt {
            self.tenant_call(market::Call::CreateLease {
                template: TemplateId(0),
                region: REGION,
                blocks,
            })
        }

        /// A lease.
        pub fn lease_record(&self, id: u64) -> market::Lease {
            self.chain
                .map::<market::Leases>(&LeaseId(id))
                .expect("lease stored")
        }

        /// Environment 0.
        pub fn environment(&self) -> Environment {
            self.chain
                .map::<Environments>(&EnvironmentId(0))
                .expect("environment 0")
        }

        /// Environment 0's assignment.
        pub fn assignment(&self) -> Assignment {
            self.chain
                .map::<Assignments>(&EnvironmentId(0))
                .expect("environment 0 assigned")
        }

        /// The fixture provisioner with `account`.
        pub fn key_of(&self, account: Address) -> PrivateKey {
            self.provisioners
                .iter()
                .find(|key| address(key) == account)
                .expect("a fixture provisioner")
                .clone()
        }

        /// A provisioning call from `key`.
        pub fn provisioning(&mut self, key: &PrivateKey, call: provisioning::Call) -> Receipt {
            self.chain.call(key, call)
        }

        /// `key` reports environment 0's `generation` in `phase`, at port 24000 on its provider's
        /// host.
        pub fn report(&mut self, key: &PrivateKey, generation: u64, phase: Phase) -> Receipt {
            let provider = self.environment().provider;
            let agent = self
                .chain
                .map::<dvci::Providers>(&provider)
                .expect("provider stored")
                .endpoint;
            let host = agent.rsplit_once(':').expect("host:port").0;
            let endpoint = format!("{host}:24000");
            let report = Report {
                generation,
                phase,
                endpoint: endpoint.as_str().try_into().expect("short endpoint"),
                ports: vec![PortMapping {
                    port: 8545,
                    published: 24_000,
                }]
                .try_into()
                .expect("one port"),
                message: "HealthCheckPassed: 200".try_into().expect("short message"),
                attestation: None,
            };
            self.provisioning(
                key,
                provisioning::Call::Report {
                    environment: EnvironmentId(0),
                    report,
                },
            )
        }

        /// Runs blocks until environment 0's round has its checkers drawn.
        pub fn draw(&mut self) {
            let delay = self.chain.value::<provisioning::Params>().draw_delay_blocks;
            for _ in 0..=delay {
                if self.assignment().draw_at.is_none() {
                    break;
                }
                self.chain.advance(1);
            }
            assert!(self.assignment().draw_at.is_none(), "checkers drawn");
        }

        /// Every checker of environment 0's round gives `verdict`.
        pub fn vote_all(&mut self, verdict: Verdict) {
            let task = self.assignment();
            for checker in task.checkers.clone() {
                let now = self.assignment();
                if now.decided() || now.checkers != task.checkers {
                    break; // decided (a contradicted report also clears the round)
                }
                let key = self.key_of(checker);
                let receipt = self.provisioning(
                    &key,
                    provisioning::Call::CrossCheck {
                        environment: EnvironmentId(0),
                        round: task.round,
                        verdict,
                    },
                );
                assert!(receipt.success, "{receipt:?}");
            }
        }

        /// The assignee reports environment 0 `Running`, its checkers are drawn and confirm it:
        /// it is `Verified` from the block of the last vote.
        pub fn verify(&mut self) {
            let assignee = self.assignment().assigned.expect("assigned");
            let key = self.key_of(assignee);
            let generation = self.environment().generation;
            let reported = self.report(&key, generation, Phase::Running);
            assert!(reported.success, "{reported:?}");
            self.draw();
            self.vote_all(Verdict::Confirmed);
            assert_eq!(self.assignment().outcome, Some(Outcome::Confirmed));
        }
    }
}
