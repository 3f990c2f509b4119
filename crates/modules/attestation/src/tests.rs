//! Tests of `attestation` against the mock chain (every invariant checked after every block),
//! from the attacker's side: forged, replayed, stale, foreign and oversize evidence; the wrong
//! actor at every step; a machine that changes without a deployment. A software P-256 key
//! stands in for the TPM's AK (quotes from a real TPM are verified against swtpm in
//! `logos-mia-collect`'s tests); the quote structures are built here byte by byte.

use commonware_cryptography::Signer as _;
use logos_mia::{
    evidence::quote_nonce,
    ima, integrity,
    pcr::{self, IMA_PCR},
};
use logos_primitives::{Amount, PrivateKey};
use logos_runtime::mock::{address, assert_failed, fixtures, fixtures::World};
use logos_types::{
    attestation::{
        Call, Component, Digest, DueAt, Event, Exclusion, ImaPolicy, Machine, MachineStatus,
        Machines, Nonces, Parameters, Params, Reference, Reported, Tamper, BOOT_PCRS,
    },
    codec::BoundedVec,
    dvci::{Attested, ProviderId, ProviderStatus, Providers, ResourceClass},
    market::{self, CloseReason, LeaseId, Leases},
    Event as RuntimeEvent, Receipt,
};
use p256::ecdsa::{signature::hazmat::PrehashSigner, Signature, SigningKey};
use std::collections::BTreeMap;

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

fn tpm2b(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

fn ak_key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32].into()).unwrap()
}

/// An ECC P-256 AK's `TPMT_PUBLIC`: fixedTPM, fixedParent, sensitiveDataOrigin,
/// userWithAuth, restricted, sign (`attributes` to vary them).
fn ak_public(key: &SigningKey, attributes: u32) -> Vec<u8> {
    let point = key.verifying_key().to_encoded_point(false);
    let mut out = Vec::new();
    out.extend_from_slice(&0x0023u16.to_be_bytes());
    out.extend_from_slice(&0x000Bu16.to_be_bytes());
    out.extend_from_slice(&attributes.to_be_bytes());
    out.extend_from_slice(&tpm2b(&[]));
    out.extend_from_slice(&0x0010u16.to_be_bytes());
    out.extend_from_slice(&0x0018u16.to_be_bytes());
    out.extend_from_slice(&0x000Bu16.to_be_bytes());
    out.extend_from_slice(&0x0003u16.to_be_bytes());
    out.extend_from_slice(&0x0010u16.to_be_bytes());
    out.extend_from_slice(&tpm2b(point.x().unwrap()));
    out.extend_from_slice(&tpm2b(point.y().unwrap()));
    out
}

const AK_ATTRIBUTES: u32 = 0x0005_0072;

/// An RSA-2048 EK's `TPMT_PUBLIC` in the TCG default template's shape.
fn ek_public() -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0x0001u16.to_be_bytes());
    out.extend_from_slice(&0x000Bu16.to_be_bytes());
    out.extend_from_slice(&0x0003_00B2u32.to_be_bytes());
    out.extend_from_slice(&tpm2b(&[0x83; 32]));
    out.extend_from_slice(&0x0006u16.to_be_bytes());
    out.extend_from_slice(&128u16.to_be_bytes());
    out.extend_from_slice(&0x0043u16.to_be_bytes());
    out.extend_from_slice(&0x0010u16.to_be_bytes());
    out.extend_from_slice(&2048u16.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&tpm2b(&[0xC5; 256]));
    out
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

fn honest() -> Reported {
    Reported {
        files: Component::Measured(FILES),
        lkrg: Component::Unavailable,
        ebpf: Component::Unavailable,
        tamper: Tamper::Clear,
    }
}

/// A machine as the tests drive it: its AK, its PCRs, its IMA list and its TPM clock.
struct Tpm {
    key: SigningKey,
    pcrs: BTreeMap<u32, [u8; 32]>,
    clock_ms: u64,
    reset_count: u32,
}

impl Tpm {
    /// A machine booted into `reference`'s boot chain, IMA at zero.
    fn booted(reference: &Reference) -> Self {
        let mut pcrs: BTreeMap<u32, [u8; 32]> = BOOT_PCRS
            .iter()
            .zip(reference.boot_pcrs.iter())
            .map(|(i, v)| (*i, v.0))
            .collect();
        pcrs.insert(IMA_PCR, [0; 32]);
        Self {
            key: ak_key(),
            pcrs,
            clock_ms: 1_000,
            reset_count: 1,
        }
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

/// The chain with one provider that requires attestation, reference 0 approved as the class's,
/// [`ALLOWED`] in its allowlist and a deployer (the root).
fn world() -> World {
    let mut world = fixtures::attested_market(1);
    let id = reference(0).id();
    world.privileged(Call::ApproveReference {
        reference: reference(0),
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

fn root_key(world: &World) -> PrivateKey {
    world.root.clone()
}

fn owner_call(world: &mut World, call: Call) -> Receipt {
    let owner = world.owner.clone();
    world.chain.call(&owner, call)
}

fn machine(world: &World) -> Machine {
    world.chain.map::<Machines>(&PROVIDER).expect("registered")
}

fn register(world: &mut World) -> Receipt {
    owner_call(
        world,
        Call::RegisterMachine {
            provider: PROVIDER,
            ek_public: ek_public().try_into().unwrap(),
            ak_public: ak_public(&ak_key(), AK_ATTRIBUTES).try_into().unwrap(),
        },
    )
}

/// The drawn challenger's key.
fn challenger(world: &World) -> PrivateKey {
    match machine(world).status {
        MachineStatus::AwaitingChallenge { challenger } => world.key_of(challenger),
        status => panic!("no challenger awaited: {status:?}"),
    }
}

fn challenge(world: &mut World, by: &PrivateKey) -> Receipt {
    world.chain.call(
        by,
        Call::Challenge {
            provider: PROVIDER,
            credential_blob: vec![1; 68].try_into().unwrap(),
            encrypted_secret: vec![2; 256].try_into().unwrap(),
            credential_hash: Digest(pcr::sha256(&CREDENTIAL)),
        },
    )
}

fn activate(world: &mut World, credential: &[u8]) -> Receipt {
    owner_call(
        world,
        Call::ActivateCredential {
            provider: PROVIDER,
            credential: credential.to_vec().try_into().unwrap(),
        },
    )
}

/// Registers, challenges and activates the machine.
fn admitted(world: &mut World) {
    assert!(register(world).success);
    let challenger = challenger(world);
    assert!(challenge(world, &challenger).success);
    let activated = activate(world, &CREDENTIAL);
    assert!(activated.success, "{activated:?}");
    assert_eq!(machine(world).status, MachineStatus::Attesting);
}

fn stage(world: &mut World, from_boot: bool, entries: &[Vec<u8>]) -> Receipt {
    let entries: Vec<_> = entries
        .iter()
        .map(|data| data.clone().try_into().unwrap())
        .collect();
    owner_call(
        world,
        Call::StageIma {
            provider: PROVIDER,
            from_boot,
            entries: entries.try_into().unwrap(),
        },
    )
}

/// The call reporting a fresh quote by `tpm` anchored at the last block, with `reported`.
fn report_call(world: &World, tpm: &mut Tpm, reported: Reported) -> Call {
    let anchor = world.chain.height;
    report_at(world, tpm, reported, anchor)
}

fn report_at(world: &World, tpm: &mut Tpm, reported: Reported, anchor: u64) -> Call {
    let chain_nonce = world.chain.map::<Nonces>(&anchor).unwrap_or_default();
    let nonce = quote_nonce(&chain_nonce.0, &mia_components(&reported));
    let (attest, signature) = tpm.quote(&nonce);
    Call::Attest {
        provider: PROVIDER,
        anchor,
        attest: attest.try_into().unwrap(),
        signature: signature.try_into().unwrap(),
        reported,
    }
}

fn mia_components(reported: &Reported) -> integrity::Components {
    let status = |c: Component| match c {
        Component::Unavailable => integrity::Status::Unavailable,
        Component::Measured(d) => integrity::Status::Measured(d.0),
    };
    integrity::Components {
        boot: integrity::Status::Unavailable,
        ima: integrity::Status::Unavailable,
        files: status(reported.files),
        lkrg: status(reported.lkrg),
        ebpf: status(reported.ebpf),
        tamper: match reported.tamper {
            Tamper::Unavailable => integrity::Tamper::Unavailable,
            Tamper::Clear => integrity::Tamper::Clear,
            Tamper::Tripped => integrity::Tamper::Tripped,
        },
    }
}

/// An admitted machine that booted into reference 0 with IMA, staged its boot list and
/// reported once; the tenant holds lease 0 on it.
fn attesting() -> (World, Tpm) {
    let mut world = world();
    admitted(&mut world);
    let mut tpm = Tpm::booted(&reference(0));
    let list = [
        boot_aggregate(&reference(0)),
        entry(&ALLOWED, "/usr/bin/logos"),
    ];
    for data in &list {
        tpm.measure(data);
    }
    assert!(stage(&mut world, true, &list).success);
    let call = report_call(&world, &mut tpm, honest());
    let receipt = owner_call(&mut world, call);
    assert!(receipt.success, "{receipt:?}");
    let leased = world.lease(1_000);
    assert!(leased.success, "{leased:?}");
    (world, tpm)
}

fn excluded(receipt: &Receipt) -> Option<Exclusion> {
    receipt.events.iter().find_map(|event| match event {
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
    assert_eq!(
        world.chain.account(&address(&world.tenant)).reserved,
        Amount::ZERO
    );
    let again = world.lease(10);
    assert_failed(&again, "market", "NoCapacity");
}

#[test]
fn an_honest_machine_is_admitted_attests_and_only_then_takes_leases() {
    let mut world = world();
    // Admitted by governance, but not attested: no placement.
    assert_failed(&world.lease(10), "market", "NoCapacity");
    let registered = register(&mut world);
    assert!(registered.success, "{registered:?}");
    let challenger = challenger(&world);
    assert_ne!(address(&challenger), address(&world.owner));
    assert!(challenge(&mut world, &challenger).success);
    assert!(machine(&world).challenge.is_some(), "the agent reads it");
    assert!(activate(&mut world, &CREDENTIAL).success);
    assert_failed(&world.lease(10), "market", "NoCapacity");

    let mut tpm = Tpm::booted(&reference(0));
    let list = [boot_aggregate(&reference(0)), entry(&ALLOWED, "/usr/bin/a")];
    for data in &list {
        tpm.measure(data);
    }
    assert!(stage(&mut world, true, &list).success);
    let call = report_call(&world, &mut tpm, honest());
    let receipt = owner_call(&mut world, call);
    assert!(receipt.success, "{receipt:?}");
    assert_eq!(excluded(&receipt), None);
    let record = machine(&world);
    let last = record.last.expect("accepted");
    assert_eq!(last.ima_pcr, Digest(tpm.pcrs[&IMA_PCR]));
    assert!(record.staged.is_none());
    assert_eq!(
        world.chain.map::<Attested>(&PROVIDER),
        Some(world.chain.height)
    );
    let leased = world.lease(10);
    assert!(leased.success, "{leased:?}");

    // On schedule: new entries continue from the last report's PCR 10.
    let more = [entry(&ALLOWED, "/usr/bin/b")];
    tpm.measure(&more[0]);
    assert!(stage(&mut world, false, &more).success);
    let call = report_call(&world, &mut tpm, honest());
    assert!(owner_call(&mut world, call).success);
    // And with nothing new: PCR 10 stays where it was.
    world.chain.advance(3);
    let call = report_call(&world, &mut tpm, honest());
    let receipt = owner_call(&mut world, call);
    assert!(receipt.success, "{receipt:?}");
    assert_eq!(machine(&world).status, MachineStatus::Attesting);
}

#[test]
fn every_step_refuses_the_wrong_actor_and_the_wrong_keys() {
    let mut world = world();
    let tenant = world.tenant.clone();
    let stranger = world.chain.call(
        &tenant,
        Call::RegisterMachine {
            provider: PROVIDER,
            ek_public: ek_public().try_into().unwrap(),
            ak_public: ak_public(&ak_key(), AK_ATTRIBUTES).try_into().unwrap(),
        },
    );
    assert_failed(&stranger, "attestation", "NotOwner");
    // An AK that may leave its TPM (no fixedTPM), one that decrypts, and a garbage EK.
    for attributes in [AK_ATTRIBUTES & !0x2, AK_ATTRIBUTES | 0x0002_0000] {
        let receipt = owner_call(
            &mut world,
            Call::RegisterMachine {
                provider: PROVIDER,
                ek_public: ek_public().try_into().unwrap(),
                ak_public: ak_public(&ak_key(), attributes).try_into().unwrap(),
            },
        );
        assert_failed(&receipt, "attestation", "InvalidKey");
    }
    let receipt = owner_call(
        &mut world,
        Call::RegisterMachine {
            provider: PROVIDER,
            ek_public: vec![0; 64].try_into().unwrap(),
            ak_public: ak_public(&ak_key(), AK_ATTRIBUTES).try_into().unwrap(),
        },
    );
    assert_failed(&receipt, "attestation", "InvalidKey");
    let unknown = owner_call(
        &mut world,
        Call::RegisterMachine {
            provider: ProviderId(9),
            ek_public: ek_public().try_into().unwrap(),
            ak_public: ak_public(&ak_key(), AK_ATTRIBUTES).try_into().unwrap(),
        },
    );
    assert_failed(&unknown, "attestation", "UnknownProvider");

    assert!(register(&mut world).success);
    assert_failed(&register(&mut world), "attestation", "AlreadyRegistered");
    // Nobody but the drawn challenger challenges; the owner least of all.
    let owner = world.owner.clone();
    assert_failed(
        &challenge(&mut world, &owner),
        "attestation",
        "NotChallenger",
    );
    let challenger = challenger(&world);
    let other = world
        .provisioners
        .iter()
        .find(|key| address(key) != address(&challenger))
        .unwrap()
        .clone();
    assert_failed(
        &challenge(&mut world, &other),
        "attestation",
        "NotChallenger",
    );
    assert_failed(
        &activate(&mut world, &CREDENTIAL),
        "attestation",
        "WrongStep",
    );
    assert!(challenge(&mut world, &challenger).success);
    assert_failed(
        &challenge(&mut world, &challenger),
        "attestation",
        "WrongStep",
    );
    // A guessed credential, a short one, and the right one from someone else.
    assert_failed(
        &activate(&mut world, &[0x5D; 32]),
        "attestation",
        "CredentialMismatch",
    );
    assert_failed(
        &activate(&mut world, &[0x5C; 8]),
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
    let mut tpm = Tpm::booted(&reference(0));
    let call = report_call(&world, &mut tpm, honest());
    assert_failed(&owner_call(&mut world, call), "attestation", "WrongStep");
    assert!(activate(&mut world, &CREDENTIAL).success);
    // Another account cannot report or stage for the owner's machine.
    let call = report_call(&world, &mut tpm, honest());
    assert_failed(&world.chain.call(&tenant, call), "attestation", "NotOwner");
    let staged = world.chain.call(
        &tenant,
        Call::StageIma {
            provider: PROVIDER,
            from_boot: true,
            entries: vec![vec![].try_into().unwrap()].try_into().unwrap(),
        },
    );
    assert_failed(&staged, "attestation", "NotOwner");
}

#[test]
fn the_providers_agent_runs_the_protocol_without_the_owners_key() {
    let mut world = world();
    // The fixture's provider 0 has the agent key of seed 500.
    let agent = PrivateKey::from_seed(500);
    let root = world.root.clone();
    let funded = world.chain.call(
        &root,
        logos_types::balances::Call::Transfer {
            to: address(&agent),
            amount: Amount(1_000_000),
        },
    );
    assert!(funded.success);
    let registered = world.chain.call(
        &agent,
        Call::RegisterMachine {
            provider: PROVIDER,
            ek_public: ek_public().try_into().unwrap(),
            ak_public: ak_public(&ak_key(), AK_ATTRIBUTES).try_into().unwrap(),
        },
    );
    assert!(registered.success, "{registered:?}");
    let challenger = challenger(&world);
    assert!(challenge(&mut world, &challenger).success);
    let activated = world.chain.call(
        &agent,
        Call::ActivateCredential {
            provider: PROVIDER,
            credential: CREDENTIAL.to_vec().try_into().unwrap(),
        },
    );
    assert!(activated.success, "{activated:?}");
    let mut tpm = Tpm::booted(&reference(0));
    let list = [boot_aggregate(&reference(0))];
    tpm.measure(&list[0]);
    let entries = vec![list[0].clone().try_into().unwrap()]
        .try_into()
        .unwrap();
    let staged = world.chain.call(
        &agent,
        Call::StageIma {
            provider: PROVIDER,
            from_boot: true,
            entries,
        },
    );
    assert!(staged.success, "{staged:?}");
    let call = report_call(&world, &mut tpm, honest());
    let receipt = world.chain.call(&agent, call);
    assert!(
        receipt.success && excluded(&receipt).is_none(),
        "{receipt:?}"
    );
    // Another provider's agent is nobody here.
    let stranger = PrivateKey::from_seed(501);
    let funded = world.chain.call(
        &root,
        logos_types::balances::Call::Transfer {
            to: address(&stranger),
            amount: Amount(1_000_000),
        },
    );
    assert!(funded.success);
    let call = report_call(&world, &mut tpm, honest());
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
    let balance = world.chain.account(&address(&world.tenant));

    // Signed by another key.
    let mut forger = Tpm::booted(&reference(0));
    forger.pcrs = tpm.pcrs.clone();
    forger.key = SigningKey::from_bytes(&[9u8; 32].into()).unwrap();
    let call = report_call(&world, &mut forger, honest());
    let message = assert_failed(&owner_call(&mut world, call), "attestation", "QuoteRefused");
    assert!(message.contains("signature"), "{message}");

    // A genuine quote over another height's nonce, presented for this one.
    let anchor = world.chain.height;
    let Call::Attest {
        attest, signature, ..
    } = report_at(&world, &mut tpm, honest(), anchor - 1)
    else {
        unreachable!()
    };
    let moved = Call::Attest {
        provider: PROVIDER,
        anchor,
        attest,
        signature,
        reported: honest(),
    };
    let message = assert_failed(
        &owner_call(&mut world, moved),
        "attestation",
        "QuoteRefused",
    );
    assert!(message.contains("nonce"), "{message}");

    // Components other than the quoted ones: the nonce binds them.
    let call = report_call(&world, &mut tpm, honest());
    let Call::Attest {
        anchor,
        attest,
        signature,
        ..
    } = call
    else {
        unreachable!()
    };
    let swapped = Call::Attest {
        provider: PROVIDER,
        anchor,
        attest,
        signature,
        reported: Reported {
            lkrg: Component::Measured(Digest([3; 32])),
            ..honest()
        },
    };
    assert_failed(
        &owner_call(&mut world, swapped),
        "attestation",
        "QuoteRefused",
    );

    // A replayed clock: the TPM clock must move past the last accepted one (2,000 ms).
    tpm.clock_ms = 0;
    let call = report_call(&world, &mut tpm, honest());
    let message = assert_failed(&owner_call(&mut world, call), "attestation", "QuoteRefused");
    assert!(
        message.contains("replay") || message.contains("clock"),
        "{message}"
    );
    tpm.clock_ms = 10_000;

    // Anchors: in the future, too old, the last report's, garbage bytes.
    let now = world.chain.height;
    for anchor in [now + 1, now + 5, 0, before.last.unwrap().anchor] {
        let call = report_at(&world, &mut tpm, honest(), anchor);
        assert_failed(&owner_call(&mut world, call), "attestation", "StaleAnchor");
    }
    world.chain.advance(300);
    let call = report_at(&world, &mut tpm, honest(), world.chain.height - 257);
    assert_failed(&owner_call(&mut world, call), "attestation", "StaleAnchor");
    let garbage = Call::Attest {
        provider: PROVIDER,
        anchor: world.chain.height,
        attest: vec![0xFF; 256].try_into().unwrap(),
        signature: vec![0; 518].try_into().unwrap(),
        reported: honest(),
    };
    assert_failed(
        &owner_call(&mut world, garbage),
        "attestation",
        "QuoteRefused",
    );

    let after = machine(&world);
    assert_eq!((after.last, after.status), (before.last, before.status));
    assert_eq!(
        world.chain.map::<Providers>(&PROVIDER).unwrap().status,
        ProviderStatus::Active
    );
    assert!(world
        .chain
        .map::<Leases>(&LeaseId(0))
        .unwrap()
        .closed
        .is_none());
    assert!(world.chain.account(&address(&world.tenant)).reserved <= balance.reserved);
    // The honest machine still reports.
    let call = report_call(&world, &mut tpm, honest());
    assert!(owner_call(&mut world, call).success);
}

#[test]
fn an_extended_pcr_excludes_the_provider_at_that_block_and_refunds_its_leases() {
    let (mut world, mut tpm) = attesting();
    world.chain.advance(5);
    let reserved = world.chain.account(&address(&world.tenant)).reserved;
    assert!(reserved > Amount::ZERO);
    // Root extends PCR 9 (say, a kernel module loaded outside the boot chain).
    let pcr9 = tpm.pcrs.get_mut(&9).unwrap();
    *pcr9 = pcr::extend(pcr9, &[0xEE; 32]);
    let call = report_call(&world, &mut tpm, honest());
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
    let call = report_call(&world, &mut tpm, honest());
    assert_failed(&owner_call(&mut world, call), "attestation", "WrongStep");
    assert!(register(&mut world).success);
}

#[test]
fn a_missed_deadline_excludes_the_provider_within_one_period() {
    let (mut world, _) = attesting();
    let due = machine(&world).due;
    let period = world.chain.value::<Params>().period_blocks;
    assert_eq!(
        due,
        world.chain.height - 1 + period,
        "one period after the report"
    );
    world.chain.advance(due - world.chain.height - 1);
    assert_eq!(machine(&world).status, MachineStatus::Attesting);
    let (_, events) = world.chain.execute_with_events(&[]).unwrap();
    assert!(events.iter().any(|event| matches!(
        event,
        RuntimeEvent::Attestation(Event::MachineExcluded {
            reason: Exclusion::ReportMissing,
            ..
        })
    )));
    assert_excluded(&mut world, Exclusion::ReportMissing);
    assert!(world.chain.map::<DueAt>(&due).is_none());
}

/// Stages `list` (measured by `tpm` too, unless `lie`) and reports; returns the receipt.
fn stage_and_report(
    world: &mut World,
    tpm: &mut Tpm,
    list: &[Vec<u8>],
    reported: Reported,
) -> Receipt {
    for data in list {
        tpm.measure(data);
    }
    assert!(stage(world, false, list).success);
    let call = report_call(world, tpm, reported);
    owner_call(world, call)
}

#[test]
fn a_file_outside_the_allowlist_excludes_the_machine() {
    let (mut world, mut tpm) = attesting();
    let list = [
        entry(&ALLOWED, "/usr/bin/x"),
        entry(&FORBIDDEN, "/tmp/miner"),
    ];
    let receipt = stage_and_report(&mut world, &mut tpm, &list, honest());
    assert_eq!(excluded(&receipt), Some(Exclusion::FileNotAllowed));
    assert_excluded(&mut world, Exclusion::FileNotAllowed);
}

#[test]
fn a_violation_beyond_the_references_bound_excludes_the_machine() {
    let (mut world, mut tpm) = attesting();
    let receipt = stage_and_report(&mut world, &mut tpm, &[Vec::new()], honest());
    assert_eq!(excluded(&receipt), Some(Exclusion::ImaViolations));
    assert_excluded(&mut world, Exclusion::ImaViolations);
}

#[test]
fn an_ima_list_that_hides_an_entry_does_not_replay_and_excludes_the_machine() {
    let (mut world, mut tpm) = attesting();
    // The TPM measured a forbidden file; the owner stages only the allowed one.
    tpm.measure(&entry(&FORBIDDEN, "/tmp/miner"));
    let receipt = stage_and_report(&mut world, &mut tpm, &[entry(&ALLOWED, "/a")], honest());
    assert_eq!(excluded(&receipt), Some(Exclusion::PcrMismatch));
    assert_excluded(&mut world, Exclusion::PcrMismatch);
}

#[test]
fn a_reboot_must_start_from_the_references_boot_aggregate() {
    let (mut world, _) = attesting();
    let mut rebooted = Tpm::booted(&reference(0));
    rebooted.reset_count = 2;
    let forged = entry(&[0x77; 32], ima::BOOT_AGGREGATE);
    let list = [forged, entry(&ALLOWED, "/usr/bin/logos")];
    for data in &list {
        rebooted.measure(data);
    }
    assert!(stage(&mut world, true, &list).success);
    let call = report_call(&world, &mut rebooted, honest());
    let receipt = owner_call(&mut world, call);
    assert_eq!(excluded(&receipt), Some(Exclusion::BootAggregateMismatch));
    assert_excluded(&mut world, Exclusion::BootAggregateMismatch);
}

#[test]
fn a_genuine_reboot_into_the_reference_keeps_attesting() {
    let (mut world, _) = attesting();
    let mut rebooted = Tpm::booted(&reference(0));
    rebooted.reset_count = 2;
    rebooted.clock_ms = 0;
    let list = [boot_aggregate(&reference(0))];
    rebooted.measure(&list[0]);
    assert!(stage(&mut world, true, &list).success);
    let call = report_call(&world, &mut rebooted, honest());
    let receipt = owner_call(&mut world, call);
    assert!(
        receipt.success && excluded(&receipt).is_none(),
        "{receipt:?}"
    );
}

#[test]
fn a_tripped_tamper_flag_or_another_component_excludes_the_machine() {
    let (mut world, mut tpm) = attesting();
    let tripped = Reported {
        tamper: Tamper::Tripped,
        ..honest()
    };
    let call = report_call(&world, &mut tpm, tripped);
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
    let call = report_call(&world, &mut tpm, changed);
    assert_eq!(
        excluded(&owner_call(&mut world, call)),
        Some(Exclusion::ComponentMismatch)
    );
    assert_excluded(&mut world, Exclusion::ComponentMismatch);
}

#[test]
fn a_signed_deployment_updates_the_reference_and_an_unsigned_change_does_not() {
    let (mut world, mut tpm) = attesting();
    let updated = reference(1);
    let id = updated.id();
    // Not approved yet; not a deployer; then both.
    let root = world.root.clone();
    let early = world.chain.call(
        &root,
        Call::Deploy {
            provider: PROVIDER,
            reference: id,
        },
    );
    assert_failed(&early, "attestation", "NotDeployer");
    world.privileged(Call::SetDeployer {
        deployer: address(&root),
        authorized: true,
    });
    let unapproved = world.chain.call(
        &root,
        Call::Deploy {
            provider: PROVIDER,
            reference: id,
        },
    );
    assert_failed(&unapproved, "attestation", "UnknownReference");
    world.privileged(Call::ApproveReference {
        reference: updated.clone(),
    });
    let owner_deploys = owner_call(
        &mut world,
        Call::Deploy {
            provider: PROVIDER,
            reference: id,
        },
    );
    assert_failed(&owner_deploys, "attestation", "NotDeployer");
    let deployed = world.chain.call(
        &root,
        Call::Deploy {
            provider: PROVIDER,
            reference: id,
        },
    );
    assert!(deployed.success, "{deployed:?}");

    // Before the machine updates, the old reference still passes.
    let call = report_call(&world, &mut tpm, honest());
    assert!(owner_call(&mut world, call).success);
    assert_eq!(machine(&world).reference, reference(0).id());
    // It reboots into the new boot chain: the report adopts the deployment.
    let mut updated_tpm = Tpm::booted(&updated);
    updated_tpm.reset_count = 2;
    let list = [boot_aggregate(&updated)];
    updated_tpm.measure(&list[0]);
    assert!(stage(&mut world, true, &list).success);
    let call = report_call(&world, &mut updated_tpm, honest());
    let receipt = owner_call(&mut world, call);
    assert!(receipt.success, "{receipt:?}");
    assert!(receipt.events.iter().any(|event| matches!(
        event,
        RuntimeEvent::Attestation(Event::ReferenceUpdated { reference, .. }) if *reference == id
    )));
    assert_eq!(machine(&world).reference, id);
    assert!(machine(&world).pending.is_none());

    // Back to the old boot chain without a deployment: a violation.
    let mut old = Tpm::booted(&reference(0));
    old.reset_count = 3;
    let list = [boot_aggregate(&reference(0))];
    old.measure(&list[0]);
    assert!(stage(&mut world, true, &list).success);
    let call = report_call(&world, &mut old, honest());
    assert_eq!(
        excluded(&owner_call(&mut world, call)),
        Some(Exclusion::PcrMismatch)
    );
    assert_excluded(&mut world, Exclusion::PcrMismatch);
}

#[test]
fn an_expired_deployment_is_not_adopted() {
    let (mut world, _) = attesting();
    let updated = reference(2);
    let id = updated.id();
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
    assert!(
        world
            .chain
            .call(
                &root,
                Call::Deploy {
                    provider: PROVIDER,
                    reference: id
                }
            )
            .success
    );
    world.chain.advance(6);
    let mut updated_tpm = Tpm::booted(&updated);
    updated_tpm.reset_count = 2;
    let list = [boot_aggregate(&updated)];
    updated_tpm.measure(&list[0]);
    assert!(stage(&mut world, true, &list).success);
    let call = report_call(&world, &mut updated_tpm, honest());
    assert_eq!(
        excluded(&owner_call(&mut world, call)),
        Some(Exclusion::PcrMismatch)
    );
}

#[test]
fn a_silent_challenger_is_replaced_and_a_deployment_needs_another_class_right() {
    let mut world = world();
    assert!(register(&mut world).success);
    let first = challenger(&world);
    let timeout = world.chain.value::<Params>().challenge_timeout_blocks;
    let due = machine(&world).due;
    world.chain.advance(due - world.chain.height);
    let machine_now = machine(&world);
    assert!(matches!(
        machine_now.status,
        MachineStatus::AwaitingChallenge { .. }
    ));
    assert_eq!(machine_now.draws, 1);
    assert_eq!(machine_now.due, due + timeout);
    // The old challenger's late challenge is refused unless it was drawn again.
    let late = challenge(&mut world, &first);
    let redrawn = challenger(&world);
    if address(&redrawn) != address(&first) {
        assert_failed(&late, "attestation", "NotChallenger");
    }
    // A reference of another class cannot be a class's reference.
    let mut gpu = reference(3);
    gpu.class = ResourceClass::Gpu;
    world.privileged(Call::ApproveReference {
        reference: gpu.clone(),
    });
    let root = world.root.clone();
    let wrong = world.chain.call(
        &root,
        Call::SetClassReference {
            class: ResourceClass::ComputeHosted,
            reference: gpu.id(),
        },
    );
    assert_failed(&wrong, "attestation", "WrongClass");
}

#[test]
fn privileged_calls_need_the_privileged_origin_and_parameters_stay_in_range() {
    let mut world = world();
    let owner = world.owner.clone();
    for call in [
        Call::ApproveReference {
            reference: reference(5),
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
    ] {
        let receipt = world.chain.call(&owner, call);
        assert_failed(&receipt, "attestation", "BadOrigin");
    }
    let mut short = reference(6);
    short.boot_pcrs = short.boot_pcrs[..13].to_vec().try_into().unwrap();
    let receipt = world.chain.call(
        &root_key(&world),
        Call::ApproveReference { reference: short },
    );
    assert_failed(&receipt, "attestation", "InvalidReference");
    let root = world.root.clone();
    for params in [
        Parameters {
            period_blocks: 15,
            ..Parameters::default()
        },
        Parameters {
            nonce_window_blocks: 0,
            ..Parameters::default()
        },
        Parameters {
            nonce_window_blocks: 600,
            ..Parameters::default()
        },
        Parameters {
            nonce_window_blocks: 1_025,
            period_blocks: 5_000,
            ..Parameters::default()
        },
        Parameters {
            challenge_timeout_blocks: 0,
            ..Parameters::default()
        },
        Parameters {
            deployment_timeout_blocks: u64::MAX,
            ..Parameters::default()
        },
    ] {
        let receipt = world.chain.call(&root, Call::SetParams { params });
        assert_failed(&receipt, "attestation", "InvalidParams");
    }
}

#[test]
fn staging_refuses_malformed_entries_and_a_continuation_before_any_report() {
    let mut world = world();
    admitted(&mut world);
    assert_failed(
        &stage(&mut world, false, &[entry(&ALLOWED, "/a")]),
        "attestation",
        "ImaNotExpected",
    );
    let sha1 = ima::template_data("sha1", &[1; 20], "/a", None);
    for bad in [
        vec![1, 2, 3],
        sha1,
        ima::template_data("sha256", &[1; 20], "/a", None),
    ] {
        let receipt = stage(&mut world, true, &[bad]);
        assert_failed(&receipt, "attestation", "MalformedImaEntry");
    }
    assert!(machine(&world).staged.is_none());
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
    assert!(violation.contains("attestation"), "{violation}");
}

#[test]
fn an_unattested_genesis_places_without_attestation() {
    let mut world = fixtures::market(1);
    assert!(world.chain.value::<logos_types::dvci::Unattested>());
    assert!(world.lease(10).success);
}

#[test]
fn one_tpm_cannot_back_two_providers() {
    let mut world = fixtures::attested_market(2);
    world.privileged(Call::ApproveReference {
        reference: reference(0),
    });
    world.privileged(Call::SetClassReference {
        class: ResourceClass::ComputeHosted,
        reference: reference(0).id(),
    });
    assert!(register(&mut world).success);
    let second = owner_call(
        &mut world,
        Call::RegisterMachine {
            provider: ProviderId(1),
            ek_public: ek_public().try_into().unwrap(),
            ak_public: ak_public(
                &SigningKey::from_bytes(&[8u8; 32].into()).unwrap(),
                AK_ATTRIBUTES,
            )
            .try_into()
            .unwrap(),
        },
    );
    let message = assert_failed(&second, "attestation", "EndorsementInUse");
    assert!(message.contains("provider 0"), "{message}");
}
