//! Tests of `attestation` against the mock chain (every invariant checked after every block,
//! and no hook may fail), from the attacker's side: forged, replayed, stale, foreign and
//! oversize evidence; the wrong actor at every step; a machine that changes without a
//! deployment; a registrant grinding its challenger; a TPM claimed twice. A software P-256
//! key stands in for the TPM's AK (quotes from a real TPM are verified against swtpm in
//! `tests/swtpm.rs`); the quote structures are built here byte by byte.

use commonware_cryptography::Signer as _;
use logos_mia::test_ca::{ek_public, TestCa};
use logos_mia::{
    evidence::quote_nonce,
    ima,
    pcr::{self, IMA_PCR},
};
use logos_primitives::{Amount, PrivateKey};
use logos_runtime::mock::{address, assert_failed, fixtures, fixtures::World};
use logos_types::{
    attestation::{
        report_nonce, staging_calls, Call, Component, Digest, Draws, DueAt, Endorsements, Event,
        Exclusion, ImaPolicy, Machine, MachineCount, MachineStatus, Machines, Nonces, Parameters,
        Params, Reference, Reported, StagedEndorsements, Start, Tamper, BOOT_PCRS,
        CHALLENGE_ROUNDS_MAX, DRAWS_MAX_PER_PROVIDER, DRAW_DELAY_BLOCKS, DUE_HANDLED_PER_BLOCK_MAX,
        ENDORSEMENT_CHAIN_MAX_BYTES, ENDORSEMENT_CHUNK_MAX_BYTES, MACHINES_MAX,
    },
    codec::BoundedVec,
    dvci::{self, Attested, ProviderId, ProviderStatus, Providers, ResourceClass},
    market::{self, CloseReason, LeaseId, Leases},
    Event as RuntimeEvent, Receipt,
};
use p256::ecdsa::{signature::hazmat::PrehashSigner, Signature, SigningKey};
use std::{collections::BTreeMap, sync::OnceLock};

const PROVIDER: ProviderId = ProviderId(0);
/// The IMA allowlist of the test references.
const POLICY: u32 = 1;
/// A file the allowlist allows, and one it does not.
const ALLOWED: [u8; 32] = [0xA1; 32];
const FORBIDDEN: [u8; 32] = [0xB2; 32];
/// The file snapshot the reference expects.
const FILES: Digest = Digest([0xF1; 32]);
/// The credential the challenger hides in its challenge.
const CREDENTIAL: [u8; 32] = [0x5C; 32];
/// TPMA_OBJECT of an AK: fixedTPM, fixedParent, sensitiveDataOrigin, userWithAuth,
/// restricted, sign.
const AK_ATTRIBUTES: u32 = 0x0005_0072;

fn tpm2b(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// An ECC P-256 AK's `TPMT_PUBLIC` with `attributes`.
fn ak_public(key: &SigningKey, attributes: u32) -> Vec<u8> {
    let point = key.verifying_key().to_encoded_point(false);
    let mut out = Vec::new();
    for field in [0x0023u16, 0x000B] {
        out.extend_from_slice(&field.to_be_bytes());
    }
    out.extend_from_slice(&attributes.to_be_bytes());
    out.extend_from_slice(&tpm2b(&[]));
    for field in [0x0010u16, 0x0018, 0x000B, 0x0003, 0x0010] {
        out.extend_from_slice(&field.to_be_bytes());
    }
    out.extend_from_slice(&tpm2b(point.x().unwrap()));
    out.extend_from_slice(&tpm2b(point.y().unwrap()));
    out
}

/// The test CA whose root every test chain approves.
fn ca() -> &'static TestCa {
    static CA: OnceLock<TestCa> = OnceLock::new();
    CA.get_or_init(|| TestCa::new(1))
}

/// Gives `tpm` the EK `ek`, its certified chain staged for `tpm`'s provider.
fn give_ek(world: &mut World, tpm: &mut Tpm, ek: &[u8]) {
    tpm.ek = ek.to_vec();
    let staged = stage_chain(world, tpm.provider, &ca().chain(ek));
    assert!(staged.iter().all(|r| r.success), "{staged:?}");
}

/// Stages `chain` for `provider`'s next registration, by its owner.
fn stage_chain(world: &mut World, provider: ProviderId, chain: &[u8]) -> Vec<Receipt> {
    staging_calls(provider, chain)
        .into_iter()
        .map(|call| owner_call(world, call))
        .collect()
}

/// The golden boot PCRs of reference `version`.
fn boot_pcrs(version: u8) -> BoundedVec<Digest, 14> {
    (0..14u8)
        .map(|i| Digest([version.wrapping_mul(16).wrapping_add(i + 1); 32]))
        .collect::<Vec<_>>()
        .try_into()
        .unwrap()
}

fn reference(version: u8) -> Reference {
    Reference {
        class: ResourceClass::ComputeHosted,
        boot_pcrs: boot_pcrs(version),
        ima: Some(ImaPolicy {
            policy: POLICY,
            digest: Digest([0x1A; 32]),
            violations_max: 0,
        }),
        files: Component::Measured(FILES),
        lkrg: Component::Unavailable,
        ebpf: Component::Unavailable,
    }
}

/// A reference with IMA off.
fn no_ima(version: u8) -> Reference {
    Reference {
        ima: None,
        ..reference(version)
    }
}

fn honest() -> Reported {
    Reported {
        files: Component::Measured(FILES),
        lkrg: Component::Unavailable,
        ebpf: Component::Unavailable,
        tamper: Tamper::Clear,
    }
}

/// A machine as the tests drive it: its provider, AK, EK, PCRs and TPM clock.
struct Tpm {
    provider: ProviderId,
    key: SigningKey,
    ek: Vec<u8>,
    pcrs: BTreeMap<u32, [u8; 32]>,
    clock_ms: u64,
    reset_count: u32,
}

impl Tpm {
    /// Provider `provider`'s machine, booted into `reference`'s boot chain, IMA at zero.
    fn booted(provider: ProviderId, reference: &Reference) -> Self {
        let seed = 7 + provider.get() as u8;
        let mut tpm = Self {
            provider,
            key: SigningKey::from_bytes(&[seed; 32].into()).unwrap(),
            ek: Self::ek_of(provider),
            pcrs: BTreeMap::new(),
            clock_ms: 1_000,
            reset_count: 1,
        };
        tpm.boot(reference);
        tpm
    }

    /// The EK of `provider`'s machine.
    fn ek_of(provider: ProviderId) -> Vec<u8> {
        ek_public(0xC5 + 2 * provider.get() as u8, 0)
    }

    /// Reboots into `reference`'s boot chain: PCRs reset, the TPM's reset count moves on.
    fn boot(&mut self, reference: &Reference) {
        self.pcrs = BOOT_PCRS
            .iter()
            .zip(reference.boot_pcrs.iter())
            .map(|(i, v)| (*i, v.0))
            .collect();
        self.pcrs.insert(IMA_PCR, [0; 32]);
        self.reset_count += 1;
    }

    /// IMA measures `data` (template data; empty for a violation).
    fn measure(&mut self, data: &[u8]) {
        let extend = match data.is_empty() {
            true => ima::VIOLATION_EXTEND,
            false => pcr::sha256(data),
        };
        let pcr10 = self.pcrs.get_mut(&IMA_PCR).unwrap();
        *pcr10 = pcr::extend(pcr10, &extend);
    }

    fn ima_pcr(&self) -> Digest {
        Digest(self.pcrs[&IMA_PCR])
    }

    /// The `TPMS_ATTEST` of a quote of PCRs 0–14 over `nonce`, and its signature.
    fn quote(&mut self, nonce: &[u8]) -> (Vec<u8>, Vec<u8>) {
        self.clock_ms += 1_000;
        let mut out = 0xFF54_4347u32.to_be_bytes().to_vec();
        out.extend_from_slice(&0x8018u16.to_be_bytes());
        out.extend_from_slice(&tpm2b(&[0x00, 0x0B, 0xAB, 0xAB]));
        out.extend_from_slice(&tpm2b(nonce));
        out.extend_from_slice(&self.clock_ms.to_be_bytes());
        out.extend_from_slice(&self.reset_count.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        out.push(1);
        out.extend_from_slice(&7u64.to_be_bytes());
        out.extend_from_slice(&1u32.to_be_bytes());
        out.extend_from_slice(&0x000Bu16.to_be_bytes());
        out.push(3);
        out.extend_from_slice(&[0xFF, 0x7F, 0x00]);
        out.extend_from_slice(&tpm2b(&pcr::quote_digest(&self.pcrs)));
        let signature = sign(&self.key, &out);
        (out, signature)
    }

    fn register_call(&self) -> Call {
        Call::RegisterMachine {
            provider: self.provider,
            ek_public: self.ek.clone().try_into().unwrap(),
            ak_public: ak_public(&self.key, AK_ATTRIBUTES).try_into().unwrap(),
        }
    }
}

fn sign(key: &SigningKey, message: &[u8]) -> Vec<u8> {
    let signature: Signature = key.sign_prehash(&pcr::sha256(message)).unwrap();
    let (r, s) = signature.split_bytes();
    let mut out = 0x0018u16.to_be_bytes().to_vec();
    out.extend_from_slice(&0x000Bu16.to_be_bytes());
    out.extend_from_slice(&tpm2b(&r));
    out.extend_from_slice(&tpm2b(&s));
    out
}

/// The template data of an `ima-ng` entry measuring `digest` at `path`.
fn entry(digest: &[u8; 32], path: &str) -> Vec<u8> {
    ima::template_data("sha256", digest, path, None)
}

/// The boot aggregate entry of `reference`'s boot PCRs.
fn boot_aggregate(reference: &Reference) -> Vec<u8> {
    let pcrs: BTreeMap<u32, [u8; 32]> = BOOT_PCRS
        .iter()
        .zip(reference.boot_pcrs.iter())
        .map(|(i, v)| (*i, v.0))
        .collect();
    entry(&ima::boot_aggregate(&pcrs), ima::BOOT_AGGREGATE)
}

/// The chain with `providers` providers that require attestation, `class_reference` approved
/// as the class's, [`ALLOWED`] in its allowlist, the test CA's root approved and each
/// provider's EK certificate chain ([`Tpm::booted`]'s EK) staged.
fn world_with(providers: u64, class_reference: Reference) -> World {
    let mut world = fixtures::attested_market(providers);
    world.privileged(Call::SetEndorsementRoot {
        root: Digest(ca().root_key_hash()),
        approved: true,
    });
    for id in 0..providers {
        let chain = ca().chain(&Tpm::ek_of(ProviderId(id)));
        let staged = stage_chain(&mut world, ProviderId(id), &chain);
        assert!(staged.iter().all(|r| r.success), "{staged:?}");
    }
    let id = class_reference.id();
    world.privileged(Call::ApproveReference {
        reference: class_reference,
    });
    world.privileged(Call::SetClassReference {
        class: ResourceClass::ComputeHosted,
        reference: id,
    });
    world.privileged(Call::AllowFiles {
        policy: POLICY,
        files: vec![Digest(ALLOWED)].try_into().unwrap(),
        allowed: true,
    });
    world
}

fn world() -> World {
    world_with(1, reference(0))
}

/// Runs `blocks` empty blocks; returns their end-of-block events.
fn advance_with_events(world: &mut World, blocks: u64) -> Vec<RuntimeEvent> {
    let mut events = Vec::new();
    for _ in 0..blocks {
        let (_, block) = world.chain.execute_with_events(&[]).unwrap();
        events.extend(block);
    }
    events
}

/// Runs any module's `call` from the owner.
fn owner_call_any(world: &mut World, call: impl Into<logos_types::Call>) -> Receipt {
    let owner = world.owner.clone();
    world.chain.call(&owner, call)
}

fn owner_call(world: &mut World, call: Call) -> Receipt {
    let owner = world.owner.clone();
    world.chain.call(&owner, call)
}

fn machine_of(world: &World, provider: ProviderId) -> Machine {
    world.chain.map::<Machines>(&provider).expect("registered")
}

fn machine(world: &World) -> Machine {
    machine_of(world, PROVIDER)
}

/// Registers `tpm`'s machine (its chain staged first unless one is) and runs the blocks until
/// its challenger is drawn.
fn register(world: &mut World, tpm: &Tpm) -> Receipt {
    if world
        .chain
        .map::<StagedEndorsements>(&tpm.provider)
        .is_none()
    {
        let staged = stage_chain(world, tpm.provider, &ca().chain(&tpm.ek));
        assert!(staged.iter().all(|r| r.success), "{staged:?}");
    }
    let receipt = owner_call(world, tpm.register_call());
    if receipt.success {
        assert_eq!(
            machine_of(world, tpm.provider).status,
            MachineStatus::AwaitingDraw
        );
        world.chain.advance(DRAW_DELAY_BLOCKS);
    }
    receipt
}

/// The drawn challenger's key.
fn challenger_of(world: &World, provider: ProviderId) -> PrivateKey {
    match machine_of(world, provider).status {
        MachineStatus::AwaitingChallenge { challenger } => world.key_of(challenger),
        status => panic!("no challenger awaited: {status:?}"),
    }
}

fn challenge(world: &mut World, provider: ProviderId, by: &PrivateKey) -> Receipt {
    world.chain.call(
        by,
        Call::Challenge {
            provider,
            credential_blob: vec![1; 68].try_into().unwrap(),
            encrypted_secret: vec![2; 256].try_into().unwrap(),
            credential_hash: Digest(pcr::sha256(&CREDENTIAL)),
        },
    )
}

fn activate(world: &mut World, provider: ProviderId, credential: &[u8]) -> Receipt {
    owner_call(
        world,
        Call::ActivateCredential {
            provider,
            credential: credential.to_vec().try_into().unwrap(),
        },
    )
}

/// Registers `tpm`'s machine and answers every challenger until it attests.
fn admit(world: &mut World, tpm: &Tpm) {
    assert!(register(world, tpm).success);
    let challenger = challenger_of(world, tpm.provider);
    assert!(challenge(world, tpm.provider, &challenger).success);
    let activated = activate(world, tpm.provider, &CREDENTIAL);
    assert!(activated.success, "{activated:?}");
    let owner = world.owner.clone();
    answer_rest(world, tpm.provider, &owner);
}

/// After an answer, draws and answers (from `by`) the next challengers until the machine
/// attests.
fn answer_rest(world: &mut World, provider: ProviderId, by: &PrivateKey) {
    while machine_of(world, provider).status != MachineStatus::Attesting {
        let status = machine_of(world, provider).status;
        assert_eq!(status, MachineStatus::AwaitingDraw, "{status:?}");
        world.chain.advance(DRAW_DELAY_BLOCKS);
        let challenger = challenger_of(world, provider);
        assert!(challenge(world, provider, &challenger).success);
        let call = Call::ActivateCredential {
            provider,
            credential: CREDENTIAL.to_vec().try_into().unwrap(),
        };
        let activated = world.chain.call(by, call);
        assert!(activated.success, "{activated:?}");
    }
}

fn stage_for(
    world: &mut World,
    provider: ProviderId,
    start: Start,
    entries: &[Vec<u8>],
) -> Receipt {
    let entries: Vec<_> = entries
        .iter()
        .map(|data| data.clone().try_into().unwrap())
        .collect();
    owner_call(
        world,
        Call::StageIma {
            provider,
            start,
            entries: entries.try_into().unwrap(),
        },
    )
}

fn stage(world: &mut World, start: Start, entries: &[Vec<u8>]) -> Receipt {
    stage_for(world, PROVIDER, start, entries)
}

/// Measures `list` on `tpm` and stages it.
fn measure_and_stage(world: &mut World, tpm: &mut Tpm, start: Start, list: &[Vec<u8>]) {
    for data in list {
        tpm.measure(data);
    }
    let staged = stage_for(world, tpm.provider, start, list);
    assert!(staged.success, "{staged:?}");
}

/// A report of a fresh quote by `tpm` anchored at the last block, claiming its real PCR 10.
fn report(world: &World, tpm: &mut Tpm, reported: Reported) -> Call {
    let anchor = world.chain.height;
    report_at(world, tpm, reported, anchor)
}

fn report_at(world: &World, tpm: &mut Tpm, reported: Reported, anchor: u64) -> Call {
    let anchor_nonce = world.chain.map::<Nonces>(&anchor).unwrap_or_default();
    let chain_nonce = report_nonce(&anchor_nonce, tpm.provider);
    let nonce = quote_nonce(&chain_nonce.0, &crate::report::bound_components(&reported));
    let (attest, signature) = tpm.quote(&nonce);
    Call::Attest {
        provider: tpm.provider,
        anchor,
        attest: attest.try_into().unwrap(),
        signature: signature.try_into().unwrap(),
        reported,
        ima_pcr: tpm.ima_pcr(),
    }
}

/// A report `call` with what it claims changed by `alter` (the quote and signature kept).
fn altered(call: Call, alter: impl FnOnce(&mut Call)) -> Call {
    assert!(matches!(call, Call::Attest { .. }), "a report");
    let mut call = call;
    alter(&mut call);
    call
}

/// An admitted machine that booted into reference 0 with IMA, staged its boot list and
/// reported once; the tenant holds lease 0 on it.
fn attesting() -> (World, Tpm) {
    attesting_with(1)
}

/// [`attesting`] on a chain of `providers` providers (provider 0 attesting).
fn attesting_with(providers: u64) -> (World, Tpm) {
    let mut world = world_with(providers, reference(0));
    let mut tpm = Tpm::booted(PROVIDER, &reference(0));
    admit(&mut world, &tpm);
    let list = [
        boot_aggregate(&reference(0)),
        entry(&ALLOWED, "/usr/bin/logos"),
    ];
    measure_and_stage(&mut world, &mut tpm, Start::Boot, &list);
    let call = report(&world, &mut tpm, honest());
    let receipt = owner_call(&mut world, call);
    assert!(
        receipt.success && excluded(&receipt).is_none(),
        "{receipt:?}"
    );
    let leased = world.lease(1_000);
    assert!(leased.success, "{leased:?}");
    (world, tpm)
}

fn excluded(receipt: &Receipt) -> Option<Exclusion> {
    excluded_in(&receipt.events)
}

fn excluded_in(events: &[RuntimeEvent]) -> Option<Exclusion> {
    events.iter().find_map(|event| match event {
        RuntimeEvent::Attestation(Event::MachineExcluded { reason, .. }) => Some(*reason),
        _ => None,
    })
}

/// The provider is excluded, lease 0 closed with its escrow refunded, no new lease placed.
fn assert_excluded(world: &mut World, reason: Exclusion) {
    let status = machine(world).status;
    assert!(
        matches!(status, MachineStatus::Excluded { reason: r, .. } if r == reason),
        "{status:?}"
    );
    let provider = world.chain.map::<Providers>(&PROVIDER).unwrap();
    assert_eq!(provider.status, ProviderStatus::Excluded);
    assert!(world.chain.map::<Attested>(&PROVIDER).is_none());
    let lease = world.chain.map::<Leases>(&LeaseId(0)).unwrap();
    assert!(
        matches!(lease.closed, Some((_, CloseReason::ProviderExcluded))),
        "{lease:?}"
    );
    assert_eq!(lease.escrow, Amount::ZERO);
    let tenant = address(&world.tenant);
    assert_eq!(world.chain.account(&tenant).reserved, Amount::ZERO);
    assert_failed(&world.lease(10), "market", "NoCapacity");
}

#[test]
fn an_honest_machine_is_admitted_attests_and_only_then_takes_leases() {
    let mut world = world();
    // Admitted by governance, but not attested: no placement.
    assert_failed(&world.lease(10), "market", "NoCapacity");
    let mut tpm = Tpm::booted(PROVIDER, &reference(0));
    let registered = owner_call(&mut world, tpm.register_call());
    assert!(registered.success, "{registered:?}");
    // The challenger is drawn from a later block's randomness.
    world.chain.advance(DRAW_DELAY_BLOCKS);
    let challenger = challenger_of(&world, PROVIDER);
    assert_ne!(address(&challenger), address(&world.owner));
    assert!(challenge(&mut world, PROVIDER, &challenger).success);
    assert!(machine(&world).challenge.is_some(), "the agent reads it");
    let first = activate(&mut world, PROVIDER, &CREDENTIAL);
    assert!(first.events.iter().any(|e| matches!(
        e,
        RuntimeEvent::Attestation(Event::CredentialActivated { answered: 1, .. })
    )));
    // One answered challenger is not enough: the next is drawn, never the same one, and the
    // EK is bound only once all are answered.
    assert_eq!(machine(&world).status, MachineStatus::AwaitingDraw);
    assert!(world
        .chain
        .map::<Endorsements>(&machine(&world).ek_id)
        .is_none());
    let call = report(&world, &mut tpm, honest());
    assert_failed(&owner_call(&mut world, call), "attestation", "WrongStep");
    let owner = world.owner.clone();
    answer_rest(&mut world, PROVIDER, &owner);
    let record = machine(&world);
    let required = world.chain.value::<Params>().challenges_required as usize;
    assert_eq!(record.answered.len(), required);
    let distinct: std::collections::BTreeSet<_> = record.answered.iter().collect();
    assert_eq!(distinct.len(), required, "{:?}", record.answered);
    assert!(!record.answered.contains(&address(&world.owner)));
    assert_eq!(
        world.chain.map::<Endorsements>(&record.ek_id),
        Some(PROVIDER)
    );
    assert_failed(&world.lease(10), "market", "NoCapacity");

    let list = [boot_aggregate(&reference(0)), entry(&ALLOWED, "/usr/bin/a")];
    measure_and_stage(&mut world, &mut tpm, Start::Boot, &list);
    let call = report(&world, &mut tpm, honest());
    let receipt = owner_call(&mut world, call);
    assert!(
        receipt.success && excluded(&receipt).is_none(),
        "{receipt:?}"
    );
    let record = machine(&world);
    assert_eq!(record.last.unwrap().ima_pcr, tpm.ima_pcr());
    assert!(record.staged.is_none());
    // Attested until its next deadline, one period on.
    let period = world.chain.value::<Params>().period_blocks;
    assert_eq!(record.due, world.chain.height + period);
    assert_eq!(world.chain.map::<Attested>(&PROVIDER), Some(record.due));
    assert!(world.lease(10).success);

    // On schedule: new entries continue from the last report's PCR 10.
    measure_and_stage(
        &mut world,
        &mut tpm,
        Start::LastReport,
        &[entry(&ALLOWED, "/b")],
    );
    let call = report(&world, &mut tpm, honest());
    assert!(owner_call(&mut world, call).success);
    // And with nothing new: PCR 10 stays where it was.
    world.chain.advance(3);
    let call = report(&world, &mut tpm, honest());
    let receipt = owner_call(&mut world, call);
    assert!(
        receipt.success && excluded(&receipt).is_none(),
        "{receipt:?}"
    );
}

#[test]
fn every_step_refuses_the_wrong_actor_and_the_wrong_keys() {
    let mut world = world();
    let tpm = Tpm::booted(PROVIDER, &reference(0));
    let tenant = world.tenant.clone();
    let stranger = world.chain.call(&tenant, tpm.register_call());
    assert_failed(&stranger, "attestation", "NotOwner");
    // An AK that may leave its TPM (no fixedTPM), one that decrypts, and a garbage EK.
    for attributes in [AK_ATTRIBUTES & !0x2, AK_ATTRIBUTES | 0x0002_0000] {
        let call = Call::RegisterMachine {
            provider: PROVIDER,
            ek_public: tpm.ek.clone().try_into().unwrap(),
            ak_public: ak_public(&tpm.key, attributes).try_into().unwrap(),
        };
        assert_failed(&owner_call(&mut world, call), "attestation", "InvalidKey");
    }
    let call = Call::RegisterMachine {
        provider: PROVIDER,
        ek_public: vec![0; 64].try_into().unwrap(),
        ak_public: ak_public(&tpm.key, AK_ATTRIBUTES).try_into().unwrap(),
    };
    assert_failed(&owner_call(&mut world, call), "attestation", "InvalidKey");
    let unknown = Tpm::booted(ProviderId(9), &reference(0));
    let receipt = owner_call(&mut world, unknown.register_call());
    assert_failed(&receipt, "attestation", "UnknownProvider");

    assert!(register(&mut world, &tpm).success);
    let again = owner_call(&mut world, tpm.register_call());
    assert_failed(&again, "attestation", "AlreadyRegistered");
    // Nobody but the drawn challenger challenges; the owner least of all.
    let owner = world.owner.clone();
    assert_failed(
        &challenge(&mut world, PROVIDER, &owner),
        "attestation",
        "NotChallenger",
    );
    let challenger = challenger_of(&world, PROVIDER);
    let other = world
        .provisioners
        .iter()
        .find(|key| address(key) != address(&challenger))
        .unwrap()
        .clone();
    assert_failed(
        &challenge(&mut world, PROVIDER, &other),
        "attestation",
        "NotChallenger",
    );
    assert_failed(
        &activate(&mut world, PROVIDER, &CREDENTIAL),
        "attestation",
        "WrongStep",
    );
    // A challenge that is not the shape of one for an RSA-2048 EK.
    let short = world.chain.call(
        &challenger,
        Call::Challenge {
            provider: PROVIDER,
            credential_blob: vec![1; 68].try_into().unwrap(),
            encrypted_secret: vec![2; 255].try_into().unwrap(),
            credential_hash: Digest(pcr::sha256(&CREDENTIAL)),
        },
    );
    assert_failed(&short, "attestation", "InvalidChallenge");
    assert!(challenge(&mut world, PROVIDER, &challenger).success);
    assert_failed(
        &challenge(&mut world, PROVIDER, &challenger),
        "attestation",
        "WrongStep",
    );
    // A guessed credential, a short one, and the right one from someone else.
    let guessed = activate(&mut world, PROVIDER, &[0x5D; 32]);
    assert_failed(&guessed, "attestation", "CredentialMismatch");
    assert_failed(
        &activate(&mut world, PROVIDER, &[0x5C; 8]),
        "attestation",
        "CredentialSize",
    );
    let by_tenant = world.chain.call(
        &tenant,
        Call::ActivateCredential {
            provider: PROVIDER,
            credential: CREDENTIAL.to_vec().try_into().unwrap(),
        },
    );
    assert_failed(&by_tenant, "attestation", "NotOwner");
    // Reports before the AK is proven are refused.
    let mut tpm = tpm;
    let call = report(&world, &mut tpm, honest());
    assert_failed(&owner_call(&mut world, call), "attestation", "WrongStep");
    assert!(activate(&mut world, PROVIDER, &CREDENTIAL).success);
    let owner = world.owner.clone();
    answer_rest(&mut world, PROVIDER, &owner);
    // Another account cannot report, stage or deregister for the owner's machine.
    let call = report(&world, &mut tpm, honest());
    assert_failed(&world.chain.call(&tenant, call), "attestation", "NotOwner");
    let entries = vec![BoundedVec::default()].try_into().unwrap();
    let staged = world.chain.call(
        &tenant,
        Call::StageIma {
            provider: PROVIDER,
            start: Start::Boot,
            entries,
        },
    );
    assert_failed(&staged, "attestation", "NotOwner");
    let removed = world
        .chain
        .call(&tenant, Call::DeregisterMachine { provider: PROVIDER });
    assert_failed(&removed, "attestation", "NotOwner");
}

#[test]
fn the_providers_agent_runs_the_protocol_without_the_owners_key() {
    let mut world = world();
    // The fixture's provider 0 has the agent key of seed 500.
    let agent = PrivateKey::from_seed(500);
    let stranger = PrivateKey::from_seed(501);
    let root = world.root.clone();
    for key in [&agent, &stranger] {
        let funded = world.chain.call(
            &root,
            logos_types::balances::Call::Transfer {
                to: address(key),
                amount: Amount(1_000_000),
            },
        );
        assert!(funded.success);
    }
    let mut tpm = Tpm::booted(PROVIDER, &reference(0));
    assert!(world.chain.call(&agent, tpm.register_call()).success);
    world.chain.advance(DRAW_DELAY_BLOCKS);
    let challenger = challenger_of(&world, PROVIDER);
    assert_ne!(address(&challenger), address(&agent));
    assert!(challenge(&mut world, PROVIDER, &challenger).success);
    let activated = world.chain.call(
        &agent,
        Call::ActivateCredential {
            provider: PROVIDER,
            credential: CREDENTIAL.to_vec().try_into().unwrap(),
        },
    );
    assert!(activated.success, "{activated:?}");
    answer_rest(&mut world, PROVIDER, &agent);
    let list = [boot_aggregate(&reference(0))];
    tpm.measure(&list[0]);
    let entries = vec![list[0].clone().try_into().unwrap()]
        .try_into()
        .unwrap();
    let staged = world.chain.call(
        &agent,
        Call::StageIma {
            provider: PROVIDER,
            start: Start::Boot,
            entries,
        },
    );
    assert!(staged.success, "{staged:?}");
    let call = report(&world, &mut tpm, honest());
    let receipt = world.chain.call(&agent, call);
    assert!(
        receipt.success && excluded(&receipt).is_none(),
        "{receipt:?}"
    );
    // Another provider's agent is nobody here.
    let call = report(&world, &mut tpm, honest());
    assert_failed(
        &world.chain.call(&stranger, call),
        "attestation",
        "NotOwner",
    );
}

#[test]
fn evidence_that_is_not_the_machines_word_is_refused_and_changes_nothing() {
    let (mut world, mut tpm) = attesting();
    let before = machine(&world);
    let reserved = world.chain.account(&address(&world.tenant)).reserved;

    // Signed by another key.
    let mut forger = Tpm::booted(PROVIDER, &reference(0));
    forger.pcrs = tpm.pcrs.clone();
    forger.key = SigningKey::from_bytes(&[99u8; 32].into()).unwrap();
    let call = report(&world, &mut forger, honest());
    let message = assert_failed(&owner_call(&mut world, call), "attestation", "QuoteRefused");
    assert!(message.contains("signature"), "{message}");

    // A genuine quote over another height's nonce, presented for this one.
    let now = world.chain.height;
    let moved = altered(report_at(&world, &mut tpm, honest(), now - 1), |call| {
        if let Call::Attest { anchor, .. } = call {
            *anchor = now;
        }
    });
    let message = assert_failed(
        &owner_call(&mut world, moved),
        "attestation",
        "QuoteRefused",
    );
    assert!(message.contains("nonce"), "{message}");

    // Components other than the quoted ones: the nonce binds them.
    let swapped = altered(report(&world, &mut tpm, honest()), |call| {
        if let Call::Attest { reported, .. } = call {
            reported.lkrg = Component::Measured(Digest([3; 32]));
        }
    });
    assert_failed(
        &owner_call(&mut world, swapped),
        "attestation",
        "QuoteRefused",
    );

    // A replayed clock: the TPM clock must move past the last accepted one (2,000 ms).
    tpm.clock_ms = 0;
    let call = report(&world, &mut tpm, honest());
    let message = assert_failed(&owner_call(&mut world, call), "attestation", "QuoteRefused");
    assert!(message.contains("replayed"), "{message}");
    tpm.clock_ms = 10_000;

    // Anchors: the current block, the future, height 0, the last report's.
    let now = world.chain.height;
    for anchor in [now + 1, now + 5, 0, before.last.unwrap().anchor] {
        let call = report_at(&world, &mut tpm, honest(), anchor);
        assert_failed(&owner_call(&mut world, call), "attestation", "StaleAnchor");
    }
    // The window's edge: 256 blocks old is the oldest accepted, 257 is refused.
    world.chain.advance(300);
    let too_old = world.chain.height + 1 - 257;
    let call = report_at(&world, &mut tpm, honest(), too_old);
    assert_failed(&owner_call(&mut world, call), "attestation", "StaleAnchor");
    let garbage = Call::Attest {
        provider: PROVIDER,
        anchor: world.chain.height,
        attest: vec![0xFF; 256].try_into().unwrap(),
        signature: vec![0; 518].try_into().unwrap(),
        reported: honest(),
        ima_pcr: tpm.ima_pcr(),
    };
    assert_failed(
        &owner_call(&mut world, garbage),
        "attestation",
        "QuoteRefused",
    );

    let after = machine(&world);
    assert_eq!((after.last, after.status), (before.last, before.status));
    let provider = world.chain.map::<Providers>(&PROVIDER).unwrap();
    assert_eq!(provider.status, ProviderStatus::Active);
    assert!(world
        .chain
        .map::<Leases>(&LeaseId(0))
        .unwrap()
        .closed
        .is_none());
    // The lease is not verified (no provisioner ran), so nothing was charged either.
    assert_eq!(
        world.chain.account(&address(&world.tenant)).reserved,
        reserved
    );
    // The honest machine still reports, at the window's edge.
    let oldest = world.chain.height + 1 - 256;
    let call = report_at(&world, &mut tpm, honest(), oldest);
    let receipt = owner_call(&mut world, call);
    assert!(
        receipt.success && excluded(&receipt).is_none(),
        "{receipt:?}"
    );
}

#[test]
fn a_quote_for_one_provider_does_not_serve_another() {
    let mut world = world_with(2, reference(0));
    let mut first = Tpm::booted(PROVIDER, &reference(0));
    let mut second = Tpm::booted(ProviderId(1), &reference(0));
    // The same AK on both (one TPM's key claimed twice): only the nonce tells them apart.
    second.key = first.key.clone();
    admit(&mut world, &first);
    admit(&mut world, &second);
    let list = [boot_aggregate(&reference(0))];
    measure_and_stage(&mut world, &mut first, Start::Boot, &list);
    // Provider 1 presents provider 0's quote, signed by the same AK.
    let stolen = altered(report(&world, &mut first, honest()), |call| {
        if let Call::Attest { provider, .. } = call {
            *provider = ProviderId(1);
        }
    });
    let message = assert_failed(
        &owner_call(&mut world, stolen),
        "attestation",
        "QuoteRefused",
    );
    assert!(message.contains("nonce"), "{message}");
}

#[test]
fn an_extended_pcr_excludes_the_provider_at_that_block_and_refunds_its_leases() {
    let (mut world, mut tpm) = attesting();
    world.chain.advance(5);
    assert!(world.chain.account(&address(&world.tenant)).reserved > Amount::ZERO);
    // Root extends PCR 9 (say, a kernel module loaded outside the boot chain).
    let pcr9 = tpm.pcrs.get_mut(&9).unwrap();
    *pcr9 = pcr::extend(pcr9, &[0xEE; 32]);
    let call = report(&world, &mut tpm, honest());
    let receipt = owner_call(&mut world, call);
    assert!(receipt.success, "{receipt:?}");
    assert_eq!(excluded(&receipt), Some(Exclusion::PcrMismatch));
    assert!(receipt.events.iter().any(|event| matches!(
        event,
        RuntimeEvent::Market(market::Event::LeaseClosed {
            reason: CloseReason::ProviderExcluded,
            ..
        })
    )));
    assert_excluded(&mut world, Exclusion::PcrMismatch);
    // An excluded machine reports no more; a new registration starts over (and placement
    // waits for governance to admit the provider again).
    let call = report(&world, &mut tpm, honest());
    assert_failed(&owner_call(&mut world, call), "attestation", "WrongStep");
    assert!(register(&mut world, &tpm).success);
    assert_eq!(world.chain.value::<MachineCount>(), 1);
}

#[test]
fn excluding_one_provider_leaves_another_providers_leases_alone() {
    let mut world = world_with(2, reference(0));
    let mut tpms = [
        Tpm::booted(PROVIDER, &reference(0)),
        Tpm::booted(ProviderId(1), &reference(0)),
    ];
    for tpm in &mut tpms {
        admit(&mut world, tpm);
        measure_and_stage(
            &mut world,
            tpm,
            Start::Boot,
            &[boot_aggregate(&reference(0))],
        );
        let call = report(&world, tpm, honest());
        assert!(owner_call(&mut world, call).success);
    }
    // Two leases, one on each provider (placement spreads by free capacity).
    assert!(world.lease(100).success);
    assert!(world.lease(100).success);
    let on = |world: &World, id| world.chain.map::<Leases>(&LeaseId(id)).unwrap().provider;
    assert_ne!(on(&world, 0), on(&world, 1));
    let [first, _] = &mut tpms;
    first.measure(&entry(&FORBIDDEN, "/tmp/x"));
    let list = [entry(&FORBIDDEN, "/tmp/x")];
    assert!(stage(&mut world, Start::LastReport, &list).success);
    let call = report(&world, first, honest());
    assert_eq!(
        excluded(&owner_call(&mut world, call)),
        Some(Exclusion::FileNotAllowed)
    );
    for id in 0..2 {
        let lease = world.chain.map::<Leases>(&LeaseId(id)).unwrap();
        assert_eq!(
            lease.closed.is_some(),
            lease.provider == PROVIDER,
            "{lease:?}"
        );
    }
    let other = world.chain.map::<Providers>(&ProviderId(1)).unwrap();
    assert_eq!(other.status, ProviderStatus::Active);
}

#[test]
fn a_missed_deadline_excludes_the_provider_within_one_period() {
    let (mut world, _) = attesting();
    let due = machine(&world).due;
    world.chain.advance(due - world.chain.height - 1);
    assert_eq!(machine(&world).status, MachineStatus::Attesting);
    let (_, events) = world.chain.execute_with_events(&[]).unwrap();
    assert_eq!(excluded_in(&events), Some(Exclusion::ReportMissing));
    assert_excluded(&mut world, Exclusion::ReportMissing);
    assert!(world.chain.map::<DueAt>(&due).is_none());
}

#[test]
fn a_machine_that_never_reports_after_activation_is_excluded() {
    let mut world = world();
    let tpm = Tpm::booted(PROVIDER, &reference(0));
    admit(&mut world, &tpm);
    let period = world.chain.value::<Params>().period_blocks;
    world.chain.advance(period);
    let status = machine(&world).status;
    assert!(
        matches!(
            status,
            MachineStatus::Excluded {
                reason: Exclusion::ReportMissing,
                ..
            }
        ),
        "{status:?}"
    );
    let provider = world.chain.map::<Providers>(&PROVIDER).unwrap();
    assert_eq!(provider.status, ProviderStatus::Excluded);
}

#[test]
fn a_file_outside_the_allowlist_excludes_the_machine() {
    let (mut world, mut tpm) = attesting();
    let list = [
        entry(&ALLOWED, "/usr/bin/x"),
        entry(&FORBIDDEN, "/tmp/miner"),
    ];
    measure_and_stage(&mut world, &mut tpm, Start::LastReport, &list);
    let call = report(&world, &mut tpm, honest());
    assert_eq!(
        excluded(&owner_call(&mut world, call)),
        Some(Exclusion::FileNotAllowed)
    );
    assert_excluded(&mut world, Exclusion::FileNotAllowed);
}

#[test]
fn a_violation_beyond_the_references_bound_excludes_the_machine() {
    let (mut world, mut tpm) = attesting();
    measure_and_stage(&mut world, &mut tpm, Start::LastReport, &[Vec::new()]);
    let call = report(&world, &mut tpm, honest());
    assert_eq!(
        excluded(&owner_call(&mut world, call)),
        Some(Exclusion::ImaViolations)
    );
    assert_excluded(&mut world, Exclusion::ImaViolations);
}

#[test]
fn a_hidden_ima_entry_is_refused_until_disclosed_and_a_lie_about_pcr_10_excludes() {
    let (mut world, mut tpm) = attesting();
    // The TPM measured a forbidden file; the owner stages only the allowed one.
    tpm.measure(&entry(&FORBIDDEN, "/tmp/miner"));
    measure_and_stage(
        &mut world,
        &mut tpm,
        Start::LastReport,
        &[entry(&ALLOWED, "/a")],
    );
    let call = report(&world, &mut tpm, honest());
    assert_failed(
        &owner_call(&mut world, call),
        "attestation",
        "ImaIncomplete",
    );
    assert_eq!(machine(&world).status, MachineStatus::Attesting);
    // Claiming the PCR 10 the staged entries reach instead of the real one: the quote's
    // digest gives the lie away.
    let staged_pcr = machine(&world).staged.unwrap().pcr;
    let lie = altered(report(&world, &mut tpm, honest()), |call| {
        if let Call::Attest { ima_pcr, .. } = call {
            *ima_pcr = staged_pcr;
        }
    });
    assert_eq!(
        excluded(&owner_call(&mut world, lie)),
        Some(Exclusion::PcrMismatch)
    );
    assert_excluded(&mut world, Exclusion::PcrMismatch);
}

#[test]
fn an_incomplete_staging_can_be_restarted_and_the_deadline_still_runs() {
    let (mut world, mut tpm) = attesting();
    tpm.measure(&entry(&ALLOWED, "/c"));
    // Staged wrong (a file that was not measured), then over from the last report.
    assert!(stage(&mut world, Start::LastReport, &[entry(&ALLOWED, "/d")]).success);
    let call = report(&world, &mut tpm, honest());
    assert_failed(
        &owner_call(&mut world, call),
        "attestation",
        "ImaIncomplete",
    );
    assert!(stage(&mut world, Start::LastReport, &[entry(&ALLOWED, "/c")]).success);
    let call = report(&world, &mut tpm, honest());
    let receipt = owner_call(&mut world, call);
    assert!(
        receipt.success && excluded(&receipt).is_none(),
        "{receipt:?}"
    );
    // A machine that never gets its staging right is excluded at the deadline.
    tpm.measure(&entry(&FORBIDDEN, "/e"));
    let due = machine(&world).due;
    world.chain.advance(due - world.chain.height);
    assert_excluded(&mut world, Exclusion::ReportMissing);
}

#[test]
fn a_reboot_must_show_in_the_quote_and_start_from_the_references_boot_aggregate() {
    let (mut world, mut tpm) = attesting();
    // Staging from a boot without a reboot: refused.
    let snapshot = tpm.pcrs.clone();
    tpm.pcrs.insert(IMA_PCR, [0; 32]);
    let list = [boot_aggregate(&reference(0))];
    measure_and_stage(&mut world, &mut tpm, Start::Boot, &list);
    let call = report(&world, &mut tpm, honest());
    assert_failed(
        &owner_call(&mut world, call),
        "attestation",
        "RebootNotQuoted",
    );
    tpm.pcrs = snapshot;
    // A real reboot with a forged boot aggregate: excluded.
    tpm.boot(&reference(0));
    let forged = entry(&[0x77; 32], ima::BOOT_AGGREGATE);
    measure_and_stage(
        &mut world,
        &mut tpm,
        Start::Boot,
        &[forged, entry(&ALLOWED, "/x")],
    );
    let call = report(&world, &mut tpm, honest());
    let receipt = owner_call(&mut world, call);
    assert_eq!(excluded(&receipt), Some(Exclusion::BootAggregateMismatch));
    assert_excluded(&mut world, Exclusion::BootAggregateMismatch);
}

#[test]
fn a_genuine_reboot_into_the_reference_keeps_attesting() {
    let (mut world, mut tpm) = attesting();
    tpm.boot(&reference(0));
    tpm.clock_ms = 0;
    // The kernel logs the boot aggregate first.
    let list = [boot_aggregate(&reference(0))];
    tpm.measure(&list[0]);
    // Reporting a rebooted machine as a continuation: refused (the list started over).
    let call = report(&world, &mut tpm, honest());
    assert_failed(
        &owner_call(&mut world, call),
        "attestation",
        "ImaIncomplete",
    );
    assert!(stage(&mut world, Start::Boot, &list).success);
    let call = report(&world, &mut tpm, honest());
    let receipt = owner_call(&mut world, call);
    assert!(
        receipt.success && excluded(&receipt).is_none(),
        "{receipt:?}"
    );
}

#[test]
fn a_reference_with_ima_off_requires_pcr_10_to_stay_zero() {
    let mut world = world_with(1, no_ima(0));
    let mut tpm = Tpm::booted(PROVIDER, &no_ima(0));
    admit(&mut world, &tpm);
    assert_failed(
        &stage(&mut world, Start::Boot, &[entry(&ALLOWED, "/a")]),
        "attestation",
        "ImaNotExpected",
    );
    let call = report(&world, &mut tpm, honest());
    let receipt = owner_call(&mut world, call);
    assert!(
        receipt.success && excluded(&receipt).is_none(),
        "{receipt:?}"
    );
    assert!(world.lease(10).success);
    // Root extends PCR 10 from user space: excluded.
    tpm.measure(&entry(&FORBIDDEN, "/tmp/x"));
    let call = report(&world, &mut tpm, honest());
    assert_eq!(
        excluded(&owner_call(&mut world, call)),
        Some(Exclusion::ComponentMismatch)
    );
    assert_excluded(&mut world, Exclusion::ComponentMismatch);
}

#[test]
fn a_tripped_tamper_flag_or_another_component_excludes_the_machine() {
    let (mut world, mut tpm) = attesting();
    let tripped = Reported {
        tamper: Tamper::Tripped,
        ..honest()
    };
    let call = report(&world, &mut tpm, tripped);
    assert_eq!(
        excluded(&owner_call(&mut world, call)),
        Some(Exclusion::Tampered)
    );
    assert_excluded(&mut world, Exclusion::Tampered);

    let (mut world, mut tpm) = attesting();
    let changed = Reported {
        files: Component::Measured(Digest([0xF2; 32])),
        ..honest()
    };
    let call = report(&world, &mut tpm, changed);
    let receipt = owner_call(&mut world, call);
    assert_eq!(excluded(&receipt), Some(Exclusion::ComponentMismatch));
    assert_excluded(&mut world, Exclusion::ComponentMismatch);
}

fn deploy(world: &mut World, by: &PrivateKey, reference: Digest) -> Receipt {
    world.chain.call(
        by,
        Call::Deploy {
            provider: PROVIDER,
            reference,
        },
    )
}

#[test]
fn a_signed_deployment_updates_the_reference_and_an_unsigned_change_does_not() {
    let (mut world, mut tpm) = attesting();
    let updated = reference(1);
    let id = updated.id();
    // Not a deployer; not approved yet; the owner is no deployer; a reference of another class.
    let root = world.root.clone();
    assert_failed(&deploy(&mut world, &root, id), "attestation", "NotDeployer");
    world.privileged(Call::SetDeployer {
        deployer: address(&root),
        authorized: true,
    });
    assert_failed(
        &deploy(&mut world, &root, id),
        "attestation",
        "UnknownReference",
    );
    world.privileged(Call::ApproveReference {
        reference: updated.clone(),
    });
    let owner = world.owner.clone();
    assert_failed(
        &deploy(&mut world, &owner, id),
        "attestation",
        "NotDeployer",
    );
    let gpu = Reference {
        class: ResourceClass::Gpu,
        ..reference(4)
    };
    world.privileged(Call::ApproveReference {
        reference: gpu.clone(),
    });
    assert_failed(
        &deploy(&mut world, &root, gpu.id()),
        "attestation",
        "WrongClass",
    );
    assert!(deploy(&mut world, &root, id).success);

    // Before the machine updates, the old reference still passes.
    let call = report(&world, &mut tpm, honest());
    assert!(owner_call(&mut world, call).success);
    assert_eq!(machine(&world).reference, reference(0).id());
    // It reboots into the new boot chain: the report adopts the deployment.
    tpm.boot(&updated);
    measure_and_stage(
        &mut world,
        &mut tpm,
        Start::Boot,
        &[boot_aggregate(&updated)],
    );
    let call = report(&world, &mut tpm, honest());
    let receipt = owner_call(&mut world, call);
    assert!(receipt.success, "{receipt:?}");
    assert!(receipt.events.iter().any(|event| matches!(
        event,
        RuntimeEvent::Attestation(Event::ReferenceUpdated { reference, .. }) if *reference == id
    )));
    assert_eq!(machine(&world).reference, id);
    assert!(machine(&world).pending.is_none());

    // Back to the old boot chain without a deployment: a violation.
    tpm.boot(&reference(0));
    measure_and_stage(
        &mut world,
        &mut tpm,
        Start::Boot,
        &[boot_aggregate(&reference(0))],
    );
    let call = report(&world, &mut tpm, honest());
    assert_eq!(
        excluded(&owner_call(&mut world, call)),
        Some(Exclusion::PcrMismatch)
    );
    assert_excluded(&mut world, Exclusion::PcrMismatch);
}

#[test]
fn entries_staged_before_a_deployment_are_checked_again_not_judged_unchecked() {
    let (mut world, mut tpm) = attesting();
    let mut updated = reference(1);
    updated.ima = Some(ImaPolicy {
        policy: POLICY + 1,
        digest: Digest([0x2A; 32]),
        violations_max: 0,
    });
    let root = world.root.clone();
    world.privileged(Call::SetDeployer {
        deployer: address(&root),
        authorized: true,
    });
    world.privileged(Call::ApproveReference {
        reference: updated.clone(),
    });
    world.privileged(Call::AllowFiles {
        policy: POLICY + 1,
        files: vec![Digest(ALLOWED)].try_into().unwrap(),
        allowed: true,
    });
    // The machine reboots into the new chain and stages before the deployment lands.
    tpm.boot(&updated);
    measure_and_stage(
        &mut world,
        &mut tpm,
        Start::Boot,
        &[boot_aggregate(&updated)],
    );
    assert!(deploy(&mut world, &root, updated.id()).success);
    let call = report(&world, &mut tpm, honest());
    assert_failed(
        &owner_call(&mut world, call),
        "attestation",
        "ImaNotChecked",
    );
    assert_eq!(machine(&world).status, MachineStatus::Attesting);
    // Staged again, against both allowlists: adopted.
    assert!(stage(&mut world, Start::Boot, &[boot_aggregate(&updated)]).success);
    let call = report(&world, &mut tpm, honest());
    let receipt = owner_call(&mut world, call);
    assert!(
        receipt.success && excluded(&receipt).is_none(),
        "{receipt:?}"
    );
    assert_eq!(machine(&world).reference, updated.id());
}

#[test]
fn an_expired_deployment_is_not_adopted() {
    let (mut world, mut tpm) = attesting();
    let updated = reference(2);
    let root = world.root.clone();
    world.privileged(Call::SetDeployer {
        deployer: address(&root),
        authorized: true,
    });
    world.privileged(Call::ApproveReference {
        reference: updated.clone(),
    });
    world.privileged(Call::SetParams {
        params: Parameters {
            deployment_timeout_blocks: 5,
            ..Parameters::default()
        },
    });
    assert!(deploy(&mut world, &root, updated.id()).success);
    world.chain.advance(6);
    tpm.boot(&updated);
    measure_and_stage(
        &mut world,
        &mut tpm,
        Start::Boot,
        &[boot_aggregate(&updated)],
    );
    let call = report(&world, &mut tpm, honest());
    assert_eq!(
        excluded(&owner_call(&mut world, call)),
        Some(Exclusion::PcrMismatch)
    );
}

#[test]
fn silent_challengers_are_replaced_by_others_and_an_unanswered_registration_is_dropped() {
    let mut world = world();
    let tpm = Tpm::booted(PROVIDER, &reference(0));
    assert!(register(&mut world, &tpm).success);
    let timeout = world.chain.value::<Params>().challenge_timeout_blocks;
    let mut seen = vec![address(&challenger_of(&world, PROVIDER))];
    for round in 1..CHALLENGE_ROUNDS_MAX {
        let due = machine(&world).due;
        world.chain.advance(due - world.chain.height);
        let record = machine(&world);
        assert_eq!(record.rounds, round);
        assert_eq!(record.due, due + timeout);
        let next = challenger_of(&world, PROVIDER);
        assert!(
            !seen.contains(&address(&next)),
            "a silent challenger is not drawn again"
        );
        // The previous challenger's late challenge is refused.
        let late = world.key_of(seen[seen.len() - 1]);
        assert_failed(
            &challenge(&mut world, PROVIDER, &late),
            "attestation",
            "NotChallenger",
        );
        seen.push(address(&next));
    }
    // The last round ends unanswered: the registration is dropped, its EK was never bound
    // (another provider's machine takes it).
    let due = machine(&world).due;
    world.chain.advance(due - world.chain.height);
    assert!(world.chain.map::<Machines>(&PROVIDER).is_none());
    assert_eq!(world.chain.value::<MachineCount>(), 0);
}

#[test]
fn an_unanswered_registration_never_binds_its_ek() {
    let mut world = world_with(2, reference(0));
    let tpm = Tpm::booted(PROVIDER, &reference(0));
    assert!(register(&mut world, &tpm).success);
    let ek_id = machine(&world).ek_id;
    for _ in 0..CHALLENGE_ROUNDS_MAX {
        // Each challenger challenges; the registrant never answers; the EK stays unbound.
        let challenger = challenger_of(&world, PROVIDER);
        assert!(challenge(&mut world, PROVIDER, &challenger).success);
        assert!(world.chain.map::<Endorsements>(&ek_id).is_none());
        let due = machine(&world).due;
        world.chain.advance(due - world.chain.height);
    }
    assert!(world.chain.map::<Machines>(&PROVIDER).is_none());
    let mut other = Tpm::booted(ProviderId(1), &reference(0));
    give_ek(&mut world, &mut other, &tpm.ek);
    admit(&mut world, &other);
}

#[test]
fn a_registrant_cannot_buy_fresh_draws_by_registering_again() {
    let mut world = world();
    let tpm = Tpm::booted(PROVIDER, &reference(0));
    let mut drawn = 0;
    loop {
        assert!(register(&mut world, &tpm).success);
        if !matches!(
            machine(&world).status,
            MachineStatus::AwaitingChallenge { .. }
        ) {
            break;
        }
        drawn += 1;
        let removed = owner_call(&mut world, Call::DeregisterMachine { provider: PROVIDER });
        assert!(removed.success, "{removed:?}");
    }
    assert_eq!(drawn, DRAWS_MAX_PER_PROVIDER);
    assert_eq!(machine(&world).status, MachineStatus::AwaitingDraw);
    // Governance grants more; the waiting registration gets its challenger at its deadline.
    world.privileged(Call::ResetDraws { provider: PROVIDER });
    let due = machine(&world).due;
    world.chain.advance(due - world.chain.height);
    assert!(matches!(
        machine(&world).status,
        MachineStatus::AwaitingChallenge { .. }
    ));
}

#[test]
fn deadlines_past_the_per_block_budget_wait_their_turn_and_refuse_late_steps() {
    const MACHINES: u64 = 18;
    let mut world = world_with(MACHINES, reference(0));
    // One challenger each: the machines attest after one answer, all at the same height.
    world.privileged(Call::SetParams {
        params: Parameters {
            challenges_required: 1,
            ..world.chain.value::<Params>()
        },
    });
    let mut tpms: Vec<Tpm> = (0..MACHINES)
        .map(|id| Tpm::booted(ProviderId(id), &reference(0)))
        .collect();
    let owner = world.owner.clone();
    // All register in one block: their draws fall on one height.
    let registrations: Vec<_> = tpms
        .iter()
        .map(|tpm| world.chain.sign(&owner, tpm.register_call().into()))
        .collect();
    assert!(world
        .chain
        .execute(&registrations)
        .unwrap()
        .iter()
        .all(|r| r.success));
    world.chain.advance(DRAW_DELAY_BLOCKS);
    let waiting = |world: &World| {
        (0..MACHINES)
            .filter(|id| machine_of(world, ProviderId(*id)).status == MachineStatus::AwaitingDraw)
            .count() as u64
    };
    // First deadlines check a certificate chain each: 4 of the budget of 16 apiece.
    let checks = 4;
    assert_eq!(
        waiting(&world),
        MACHINES - checks,
        "4 chains checked, the rest carried over"
    );
    world.chain.advance(MACHINES.div_ceil(checks) - 1);
    assert_eq!(waiting(&world), 0);
    let budget = u64::from(DUE_HANDLED_PER_BLOCK_MAX);
    // All challenged, answered and reported in the same blocks: all due at one height.
    let challenges: Vec<_> = (0..MACHINES)
        .map(|id| {
            let key = challenger_of(&world, ProviderId(id));
            let call = Call::Challenge {
                provider: ProviderId(id),
                credential_blob: vec![1; 68].try_into().unwrap(),
                encrypted_secret: vec![2; 256].try_into().unwrap(),
                credential_hash: Digest(pcr::sha256(&CREDENTIAL)),
            };
            world.chain.sign(&key, call.into())
        })
        .collect();
    assert!(world
        .chain
        .execute(&challenges)
        .unwrap()
        .iter()
        .all(|r| r.success));
    let answers: Vec<_> = (0..MACHINES)
        .map(|id| {
            let call = Call::ActivateCredential {
                provider: ProviderId(id),
                credential: CREDENTIAL.to_vec().try_into().unwrap(),
            };
            world.chain.sign(&owner, call.into())
        })
        .collect();
    assert!(world
        .chain
        .execute(&answers)
        .unwrap()
        .iter()
        .all(|r| r.success));
    let due = machine_of(&world, PROVIDER).due;
    assert!((0..MACHINES).all(|id| machine_of(&world, ProviderId(id)).due == due));
    world.chain.advance(due - world.chain.height);
    let excluded_now = |world: &World| {
        (0..MACHINES)
            .filter(|id| {
                matches!(
                    machine_of(world, ProviderId(*id)).status,
                    MachineStatus::Excluded { .. }
                )
            })
            .count() as u64
    };
    assert_eq!(excluded_now(&world), budget);
    // A machine whose deadline passed but is not handled yet cannot report its way out.
    let late = tpms.last_mut().unwrap();
    let call = report(&world, late, honest());
    assert_failed(
        &owner_call(&mut world, call),
        "attestation",
        "DeadlinePassed",
    );
    assert_eq!(excluded_now(&world), MACHINES);
}

#[test]
fn a_challenge_the_registrant_leaves_unanswered_ends_the_round() {
    let mut world = world();
    let tpm = Tpm::booted(PROVIDER, &reference(0));
    assert!(register(&mut world, &tpm).success);
    let first = challenger_of(&world, PROVIDER);
    assert!(challenge(&mut world, PROVIDER, &first).success);
    let due = machine(&world).due;
    // Too late to answer once the round is over.
    world.chain.advance(due - world.chain.height);
    assert_eq!(machine(&world).rounds, 1);
    assert!(machine(&world).challenge.is_none());
    assert_failed(
        &activate(&mut world, PROVIDER, &CREDENTIAL),
        "attestation",
        "WrongStep",
    );
}

#[test]
fn one_tpm_cannot_back_two_providers_however_its_ek_is_written() {
    let mut world = world_with(2, reference(0));
    let first = Tpm::booted(PROVIDER, &reference(0));
    // A registration that never activates does not hold the EK.
    let mut squatter = Tpm::booted(ProviderId(1), &reference(0));
    give_ek(&mut world, &mut squatter, &first.ek);
    assert!(register(&mut world, &squatter).success);
    admit(&mut world, &first);
    // Once bound, the same EK is refused, written with the other exponent encoding too.
    let call = Call::DeregisterMachine {
        provider: ProviderId(1),
    };
    assert!(owner_call(&mut world, call).success);
    for ek in [first.ek.clone(), ek_public(0xC5, 65_537)] {
        squatter.ek = ek;
        let message = assert_failed(
            &owner_call(&mut world, squatter.register_call()),
            "attestation",
            "EndorsementInUse",
        );
        assert!(message.contains("provider 0"), "{message}");
    }
}

#[test]
fn a_deregistered_machine_releases_its_tpm_and_refunds_its_leases() {
    let (mut world, tpm) = attesting_with(2);
    let receipt = owner_call(&mut world, Call::DeregisterMachine { provider: PROVIDER });
    assert!(receipt.success, "{receipt:?}");
    assert_eq!(excluded(&receipt), Some(Exclusion::Deregistered));
    assert!(world.chain.map::<Machines>(&PROVIDER).is_none());
    assert_eq!(world.chain.value::<MachineCount>(), 0);
    let lease = world.chain.map::<Leases>(&LeaseId(0)).unwrap();
    assert!(matches!(
        lease.closed,
        Some((_, CloseReason::ProviderExcluded))
    ));
    // Its TPM is free again, for another provider too.
    let mut other = Tpm::booted(ProviderId(1), &reference(0));
    give_ek(&mut world, &mut other, &tpm.ek);
    admit(&mut world, &other);
}

#[test]
fn a_machine_whose_provider_left_is_removed_at_its_deadline() {
    let mut world = world();
    let tpm = Tpm::booted(PROVIDER, &reference(0));
    admit(&mut world, &tpm);
    let owner = world.owner.clone();
    let left = world.chain.call(
        &owner,
        dvci::Call::DeregisterProvider { provider: PROVIDER },
    );
    assert!(left.success, "{left:?}");
    let due = machine(&world).due;
    world.chain.advance(due - world.chain.height);
    assert!(world.chain.map::<Machines>(&PROVIDER).is_none());
    assert_eq!(world.chain.value::<MachineCount>(), 0);
}

#[test]
fn privileged_calls_need_the_privileged_origin_and_parameters_stay_in_range() {
    let mut world = world();
    let owner = world.owner.clone();
    for call in [
        Call::ApproveReference {
            reference: reference(5),
        },
        Call::SetClassReference {
            class: ResourceClass::ComputeHosted,
            reference: reference(0).id(),
        },
        Call::AllowFiles {
            policy: POLICY,
            files: vec![Digest(FORBIDDEN)].try_into().unwrap(),
            allowed: true,
        },
        Call::SetDeployer {
            deployer: address(&owner),
            authorized: true,
        },
        Call::SetParams {
            params: Parameters::default(),
        },
        Call::ResetDraws { provider: PROVIDER },
        Call::SetEndorsementRoot {
            root: Digest(TestCa::new(9).root_key_hash()),
            approved: true,
        },
    ] {
        let receipt = world.chain.call(&owner, call);
        assert_failed(&receipt, "attestation", "BadOrigin");
    }
    let root = world.root.clone();
    let mut short = reference(6);
    short.boot_pcrs = short.boot_pcrs[..13].to_vec().try_into().unwrap();
    let receipt = world
        .chain
        .call(&root, Call::ApproveReference { reference: short });
    assert_failed(&receipt, "attestation", "InvalidReference");
    let defaults = Parameters::default();
    for params in [
        Parameters {
            period_blocks: 255,
            ..defaults
        },
        Parameters {
            nonce_window_blocks: 0,
            ..defaults
        },
        Parameters {
            nonce_window_blocks: 600,
            ..defaults
        },
        Parameters {
            nonce_window_blocks: 1_025,
            period_blocks: 5_000,
            ..defaults
        },
        Parameters {
            challenge_timeout_blocks: 255,
            ..defaults
        },
        Parameters {
            deployment_timeout_blocks: u64::MAX,
            ..defaults
        },
        Parameters {
            challenges_required: 0,
            ..defaults
        },
        Parameters {
            challenges_required: 6,
            ..defaults
        },
    ] {
        let receipt = world.chain.call(&root, Call::SetParams { params });
        assert_failed(&receipt, "attestation", "InvalidParams");
    }
}

#[test]
fn staging_refuses_malformed_entries_and_a_continuation_before_any_report() {
    let mut world = world();
    let tpm = Tpm::booted(PROVIDER, &reference(0));
    admit(&mut world, &tpm);
    for start in [Start::Continue, Start::LastReport] {
        let receipt = stage(&mut world, start, &[entry(&ALLOWED, "/a")]);
        assert_failed(&receipt, "attestation", "ImaNotExpected");
    }
    let sha1 = ima::template_data("sha1", &[1; 20], "/a", None);
    let short = ima::template_data("sha256", &[1; 20], "/a", None);
    for bad in [vec![1, 2, 3], sha1, short] {
        let receipt = stage(&mut world, Start::Boot, &[bad]);
        assert_failed(&receipt, "attestation", "MalformedImaEntry");
    }
    assert!(machine(&world).staged.is_none());
}

#[test]
fn the_machine_count_is_bounded() {
    let mut world = world();
    // As if 4,096 machines were registered (a dry run: the state is not theirs).
    world.chain.corrupt_value::<MachineCount>(&MACHINES_MAX);
    let tpm = Tpm::booted(PROVIDER, &reference(0));
    let owner = world.owner.clone();
    let transaction = world.chain.sign(&owner, tpm.register_call().into());
    let outcome = world.chain.dry_run(&[transaction]).unwrap();
    assert_failed(&outcome.receipts[0], "attestation", "TooManyMachines");
}

#[test]
fn a_deadline_that_cannot_be_handled_is_dropped_alone_and_the_others_go_on() {
    let mut world = world_with(2, reference(0));
    let tpms = [
        Tpm::booted(PROVIDER, &reference(0)),
        Tpm::booted(ProviderId(1), &reference(0)),
    ];
    let owner = world.owner.clone();
    let registrations: Vec<_> = tpms
        .iter()
        .map(|tpm| world.chain.sign(&owner, tpm.register_call().into()))
        .collect();
    assert!(world
        .chain
        .execute(&registrations)
        .unwrap()
        .iter()
        .all(|r| r.success));
    // Provider 0's machine record says another deadline than its list (a corrupted state).
    let mut broken = machine(&world);
    broken.due += 7;
    world.chain.corrupt::<Machines>(&PROVIDER, &broken);
    world.chain.height += DRAW_DELAY_BLOCKS - 1;
    let outcome = world.chain.dry_run(&[]).unwrap();
    let events = &outcome.block_events;
    assert!(
        !events.iter().any(|event| matches!(
            event,
            RuntimeEvent::Runtime(logos_types::RuntimeEvent::HookFailed { .. })
        )),
        "{events:?}"
    );
    assert!(events.iter().any(|event| matches!(
        event,
        RuntimeEvent::Attestation(Event::DeadlineDropped { provider }) if *provider == PROVIDER
    )));
    assert!(events.iter().any(|event| matches!(
        event,
        RuntimeEvent::Attestation(Event::ChallengerDrawn { provider, .. })
            if *provider == ProviderId(1)
    )));
}

#[test]
fn nonces_are_kept_for_the_window_only() {
    let mut world = world();
    world.chain.advance(1_100);
    let height = world.chain.height;
    assert!(world.chain.map::<Nonces>(&height).is_some());
    assert!(world.chain.map::<Nonces>(&(height - 1_024)).is_some());
    assert!(world.chain.map::<Nonces>(&(height - 1_025)).is_none());
}

#[test]
fn the_invariant_check_catches_a_machine_off_its_deadline_list() {
    let (mut world, _) = attesting();
    let mut record = machine(&world);
    record.due += 1;
    world.chain.corrupt::<Machines>(&PROVIDER, &record);
    let violation = logos_runtime::try_state_all(&world.chain.state).unwrap_err();
    assert!(violation.starts_with("attestation"), "{violation}");
}

#[test]
fn an_unattested_genesis_places_without_attestation() {
    let mut world = fixtures::market(1);
    assert!(world.chain.value::<dvci::Unattested>());
    assert!(world.lease(10).success);
}

#[test]
fn an_ek_without_a_chain_to_an_approved_root_is_not_registered() {
    use logos_mia::test_ca::der;
    let mut world = world_with(2, reference(0));
    let tpm = Tpm::booted(PROVIDER, &reference(0));
    let refused = |world: &mut World, chain: &[u8], reason: &str| {
        let staged = stage_chain(world, PROVIDER, chain);
        assert!(staged.iter().all(|r| r.success), "{staged:?}");
        let receipt = owner_call(world, tpm.register_call());
        assert!(receipt.success, "{receipt:?}");
        // Checked at the registration's first deadline, in the end-of-block hook.
        let events = advance_with_events(world, DRAW_DELAY_BLOCKS);
        let refusal = events.iter().find_map(|event| match event {
            RuntimeEvent::Attestation(Event::EndorsementRefused { provider, reason }) => {
                Some((*provider, reason.to_string()))
            }
            _ => None,
        });
        let (provider, message) = refusal.expect("an EndorsementRefused event");
        assert_eq!(provider, PROVIDER);
        assert!(message.contains(reason), "{message}");
        assert!(world.chain.map::<Machines>(&PROVIDER).is_none());
        assert!(world.chain.map::<StagedEndorsements>(&PROVIDER).is_none());
        assert_eq!(world.chain.value::<MachineCount>(), 0);
    };
    // A software TPM's own CA (not approved), another machine's chain, a chain cut below the
    // root, an intermediate's certificate in the EK's place, garbage.
    refused(
        &mut world,
        &TestCa::new(2).chain(&tpm.ek),
        "no certificate in the chain has an approved anchor key",
    );
    let other = Tpm::ek_of(ProviderId(1));
    refused(&mut world, &ca().chain(&other), "not the endorsement key's");
    let leaf = ca().certify(&tpm.ek);
    refused(&mut world, &der(&[&leaf, &ca().issuer]), "approved anchor");
    refused(
        &mut world,
        &der(&[&ca().issuer, &ca().root]),
        "not the endorsement key's",
    );
    refused(&mut world, &[0x30, 0x03, 1, 2, 3], "not DER");
    refused(&mut world, &[0x30, 0x03, 2, 1, 3], "malformed");
    // The chain was consumed: registering again needs a new one.
    let message = assert_failed(
        &owner_call(&mut world, tpm.register_call()),
        "attestation",
        "EndorsementRefused",
    );
    assert!(message.contains("no certificate chain staged"), "{message}");
    // Nor can a chain be continued before it is started.
    let call = Call::StageEndorsement {
        provider: PROVIDER,
        start: false,
        chunk: vec![0x30].try_into().unwrap(),
    };
    let receipt = owner_call(&mut world, call);
    assert_failed(&receipt, "attestation", "EndorsementStaging");
    // Someone else's chain cannot be staged for this provider.
    let tenant = world.tenant.clone();
    let call = Call::StageEndorsement {
        provider: PROVIDER,
        start: true,
        chunk: vec![0; 16].try_into().unwrap(),
    };
    assert_failed(&world.chain.call(&tenant, call), "attestation", "NotOwner");
    // The genuine chain registers; its check consumed it.
    let genuine = ca().chain(&tpm.ek);
    assert!(stage_chain(&mut world, PROVIDER, &genuine)
        .iter()
        .all(|r| r.success));
    assert!(register(&mut world, &tpm).success);
    let record = machine(&world);
    assert_eq!(record.endorsed_by, Some(Digest(ca().root_key_hash())));
    assert!(matches!(
        record.status,
        MachineStatus::AwaitingChallenge { .. }
    ));
    assert!(world.chain.map::<StagedEndorsements>(&PROVIDER).is_none());
}

#[test]
fn a_chain_staged_by_a_provider_that_left_is_dropped_by_anyone() {
    let mut world = world_with(1, reference(0));
    assert!(world.chain.map::<StagedEndorsements>(&PROVIDER).is_some());
    let call = dvci::Call::DeregisterProvider { provider: PROVIDER };
    let left = owner_call_any(&mut world, call);
    assert!(left.success, "{left:?}");
    let tenant = world.tenant.clone();
    let call = Call::DeregisterMachine { provider: PROVIDER };
    let dropped = world.chain.call(&tenant, call.clone());
    assert!(dropped.success, "{dropped:?}");
    assert!(world.chain.map::<StagedEndorsements>(&PROVIDER).is_none());
    // Nothing left to drop.
    assert_failed(
        &world.chain.call(&tenant, call),
        "attestation",
        "UnknownMachine",
    );
}

#[test]
fn staging_is_bounded_and_continues_only_what_was_started() {
    let mut world = world_with(1, reference(0));
    let chunk = |start: bool| Call::StageEndorsement {
        provider: PROVIDER,
        start,
        chunk: vec![0x30; ENDORSEMENT_CHUNK_MAX_BYTES].try_into().unwrap(),
    };
    // 6,144 bytes fit, one more chunk does not and leaves the staged bytes as they were.
    assert!(owner_call(&mut world, chunk(true)).success);
    for _ in 1..ENDORSEMENT_CHAIN_MAX_BYTES / ENDORSEMENT_CHUNK_MAX_BYTES {
        assert!(owner_call(&mut world, chunk(false)).success);
    }
    let full = world
        .chain
        .map::<logos_types::attestation::StagedEndorsements>(&PROVIDER)
        .unwrap();
    assert_eq!(full.len(), ENDORSEMENT_CHAIN_MAX_BYTES);
    assert_failed(
        &owner_call(&mut world, chunk(false)),
        "attestation",
        "EndorsementStaging",
    );
    assert_eq!(
        world
            .chain
            .map::<logos_types::attestation::StagedEndorsements>(&PROVIDER),
        Some(full)
    );
    // Nobody stages for a provider that does not exist.
    let unknown = Call::StageEndorsement {
        provider: ProviderId(5),
        start: false,
        chunk: vec![0].try_into().unwrap(),
    };
    assert_failed(
        &owner_call(&mut world, unknown),
        "attestation",
        "UnknownProvider",
    );
    // A largest staging call fits a transaction (signed last: it takes a nonce).
    let owner = world.owner.clone();
    let transaction = world.chain.sign(&owner, chunk(false).into());
    assert!(
        logos_types::codec::encode(&transaction).len()
            <= logos_types::transaction::TRANSACTION_MAX_BYTES
    );
}

#[test]
fn a_revoked_root_excludes_at_the_next_report_and_refuses_an_activation() {
    let (mut world, mut tpm) = attesting_with(2);
    let second = Tpm::booted(ProviderId(1), &reference(0));
    assert!(register(&mut world, &second).success);
    let challenger = challenger_of(&world, ProviderId(1));
    assert!(challenge(&mut world, ProviderId(1), &challenger).success);
    let revoke = Call::SetEndorsementRoot {
        root: Digest(ca().root_key_hash()),
        approved: false,
    };
    world.privileged(revoke);
    // Valid a block ago, not now: the pending registration cannot activate...
    assert_failed(
        &activate(&mut world, ProviderId(1), &CREDENTIAL),
        "attestation",
        "EndorsementRevoked",
    );
    assert!(matches!(
        machine_of(&world, ProviderId(1)).status,
        MachineStatus::Challenged { .. }
    ));
    // ...the attesting machine's next report, genuine as it is, excludes it...
    let call = report(&world, &mut tpm, honest());
    let receipt = owner_call(&mut world, call);
    assert_eq!(excluded(&receipt), Some(Exclusion::EndorsementRevoked));
    assert_excluded(&mut world, Exclusion::EndorsementRevoked);
    // ...and the pending registration goes at its next deadline.
    let due = machine_of(&world, ProviderId(1)).due;
    world.chain.advance(due - world.chain.height);
    assert!(world.chain.map::<Machines>(&ProviderId(1)).is_none());
}

#[test]
fn a_challenge_for_a_machine_under_a_revoked_root_is_refused() {
    let mut world = world_with(1, reference(0));
    let tpm = Tpm::booted(PROVIDER, &reference(0));
    assert!(register(&mut world, &tpm).success);
    let challenger = challenger_of(&world, PROVIDER);
    world.privileged(Call::SetEndorsementRoot {
        root: Digest(ca().root_key_hash()),
        approved: false,
    });
    let receipt = challenge(&mut world, PROVIDER, &challenger);
    assert_failed(&receipt, "attestation", "EndorsementRevoked");
}

/// An attacker's stake: almost all of it (the fixture's provisioners hold 5 × 2,000,000).
const ATTACKER_STAKE: Amount = Amount(500_000_000);

/// An account of seed `seed`, funded to stake [`ATTACKER_STAKE`].
fn funded_attacker(world: &mut World, seed: u64) -> PrivateKey {
    let attacker = PrivateKey::from_seed(seed);
    let root = world.root.clone();
    let funded = world.chain.call(
        &root,
        logos_types::balances::Call::Transfer {
            to: address(&attacker),
            amount: Amount(600_000_000),
        },
    );
    assert!(funded.success);
    attacker
}

#[test]
fn a_provisioner_joining_once_the_draws_randomness_is_known_is_not_drawn() {
    let mut world = world_with(1, reference(0));
    let tpm = Tpm::booted(PROVIDER, &reference(0));
    // An attacker with almost all the stake, registering the block before the draw (when the
    // draw's randomness, the parent's digest, can be known).
    let attacker = funded_attacker(&mut world, 4_242);
    assert!(owner_call(&mut world, tpm.register_call()).success);
    let joined = world.chain.call(
        &attacker,
        logos_types::provisioning::Call::RegisterProvisioner {
            stake: ATTACKER_STAKE,
        },
    );
    assert!(joined.success, "{joined:?}");
    world.chain.advance(DRAW_DELAY_BLOCKS - 1);
    let challenger = challenger_of(&world, PROVIDER);
    assert_ne!(address(&challenger), address(&attacker));
}

#[test]
fn an_unanswered_challenge_starts_the_answers_over_and_answers_cost_no_draws() {
    let mut world = world_with(1, reference(0));
    let tpm = Tpm::booted(PROVIDER, &reference(0));
    assert!(register(&mut world, &tpm).success);
    let first = challenger_of(&world, PROVIDER);
    assert!(challenge(&mut world, PROVIDER, &first).success);
    assert!(activate(&mut world, PROVIDER, &CREDENTIAL).success);
    assert_eq!(machine(&world).answered.len(), 1);
    // The answered challenger's draw is given back.
    assert_eq!(world.chain.map::<Draws>(&PROVIDER).unwrap().draws, 0);
    world.chain.advance(DRAW_DELAY_BLOCKS);
    let second = challenger_of(&world, PROVIDER);
    assert!(challenge(&mut world, PROVIDER, &second).success);
    // The provider skips this challenge (an honest challenger it cannot fool): at the deadline
    // its earlier answer no longer counts.
    let due = machine(&world).due;
    world.chain.advance(due - world.chain.height);
    let record = machine(&world);
    assert!(record.answered.is_empty(), "{:?}", record.answered);
    assert_eq!(record.rounds, 1);
    // The skipped challenger's draw counts, and so does the next one's, drawn at once.
    assert!(matches!(
        record.status,
        MachineStatus::AwaitingChallenge { .. }
    ));
    assert_eq!(world.chain.map::<Draws>(&PROVIDER).unwrap().draws, 2);
}

#[test]
fn a_provisioner_leaving_in_the_draws_block_does_not_steer_it() {
    // The same chain twice, up to the draw's block; in one, a provisioner leaves in that
    // block (after its randomness, the parent's digest, was known). Whoever leaves, the draw
    // is the same: the leaver still counts.
    for leaver in 0..fixtures::PROVISIONERS as usize {
        let drawn = |leaves: bool| {
            let mut world = world_with(1, reference(0));
            let tpm = Tpm::booted(PROVIDER, &reference(0));
            assert!(owner_call(&mut world, tpm.register_call()).success);
            world.chain.advance(DRAW_DELAY_BLOCKS - 1);
            let key = world.provisioners[leaver].clone();
            let call = logos_types::provisioning::Call::DeregisterProvisioner;
            match leaves {
                true => assert!(world.chain.call(&key, call).success),
                false => world.chain.advance(1),
            }
            address(&challenger_of(&world, PROVIDER))
        };
        assert_eq!(drawn(true), drawn(false), "provisioner {leaver} left");
    }
}

#[test]
fn joining_and_leaving_in_the_draws_block_does_not_count() {
    let mut world = world_with(1, reference(0));
    let tpm = Tpm::booted(PROVIDER, &reference(0));
    let attacker = funded_attacker(&mut world, 4_243);
    assert!(owner_call(&mut world, tpm.register_call()).success);
    world.chain.advance(DRAW_DELAY_BLOCKS - 1);
    // In the draw's block: join with almost all the stake, and leave at once.
    let join = world.chain.sign(
        &attacker,
        logos_types::provisioning::Call::RegisterProvisioner {
            stake: ATTACKER_STAKE,
        }
        .into(),
    );
    let leave = world.chain.sign(
        &attacker,
        logos_types::provisioning::Call::DeregisterProvisioner.into(),
    );
    let receipts = world.chain.execute(&[join, leave]).unwrap();
    assert!(receipts.iter().all(|r| r.success), "{receipts:?}");
    let challenger = challenger_of(&world, PROVIDER);
    assert_ne!(address(&challenger), address(&attacker));
}
