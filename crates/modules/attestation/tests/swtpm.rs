//! The chain verifies a real TPM 2.0: swtpm on loopback (installed by `scripts/install-deps`)
//! holds the endorsement and attestation keys, answers the challenger's
//! `TPM2_MakeCredential` with `TPM2_ActivateCredential`, and signs the quotes the mock chain's
//! state transition verifies; its EK certificate, made by a CA of the test's own
//! (`swtpm_localca`, RSA), is verified up to that CA's root, refused until the root is
//! approved. Once a PCR moves, the next report excludes the provider and refunds its tenant.

use logos_mia::{
    credential,
    evidence::{quote_nonce, quoted_pcrs},
    ima,
    pcr::{self, BOOT_PCRS},
};
use logos_mia_collect::{
    certs,
    swtpm::{LocalCa, Swtpm},
    tpm::{AkKind, AttestationKey, Tpm, TssTpm},
};
use logos_primitives::Amount;
use logos_runtime::mock::{address, assert_failed, fixtures, fixtures::World};
use logos_types::{
    attestation::{
        report_nonce, staging_calls, Call, Component, Digest, Event, Exclusion, ImaPolicy,
        MachineStatus, Machines, Nonces, Params, Reference, Reported, Start, Tamper,
        DRAW_DELAY_BLOCKS,
    },
    codec::encode,
    dvci::{ProviderId, ProviderStatus, Providers, ResourceClass},
    market::{CloseReason, LeaseId, Leases},
    transaction::TRANSACTION_MAX_BYTES,
    Event as RuntimeEvent, Receipt,
};
use rand_chacha::rand_core::{RngCore as _, SeedableRng as _};

const PROVIDER: ProviderId = ProviderId(0);
const POLICY: u32 = 7;

/// A fresh swtpm certified by a CA of its own, and a connection to it.
struct Machine {
    tpm: TssTpm,
    ca: LocalCa,
    _swtpm: Swtpm,
    _dir: tempfile::TempDir,
}

fn machine() -> Machine {
    assert!(
        Swtpm::installed(),
        "swtpm is not installed: run scripts/install-deps"
    );
    let dir = tempfile::tempdir().unwrap();
    let ca = LocalCa::at(&dir.path().join("ca")).unwrap();
    let swtpm = Swtpm::start_certified(&dir.path().join("tpm"), 0, &ca).expect("swtpm starts");
    let tpm = TssTpm::open(&swtpm.tcti()).expect("the TCTI connects");
    Machine {
        tpm,
        ca,
        _swtpm: swtpm,
        _dir: dir,
    }
}

fn reported() -> Reported {
    Reported {
        files: Component::Measured(Digest([0xF1; 32])),
        lkrg: Component::Unavailable,
        ebpf: Component::Unavailable,
        tamper: Tamper::Unavailable,
    }
}

/// Firmware, boot loader and kernel measure themselves; IMA logs the boot aggregate and two
/// files. Returns the IMA list's template data.
fn boot(tpm: &mut TssTpm) -> Vec<Vec<u8>> {
    for index in [0, 2, 4, 7, 8, 9, 11, 14] {
        let digest = pcr::sha256(format!("boot component {index}").as_bytes());
        tpm.extend(index, &digest).unwrap();
    }
    let boot = tpm.read_pcrs(&BOOT_PCRS).unwrap();
    let mut list = vec![ima::template_data(
        "sha256",
        &ima::boot_aggregate(&boot),
        ima::BOOT_AGGREGATE,
        None,
    )];
    for path in ["/usr/bin/logos", "/usr/lib/libc.so.6"] {
        list.push(ima::template_data(
            "sha256",
            &pcr::sha256(path.as_bytes()),
            path,
            None,
        ));
    }
    for data in &list {
        tpm.extend(10, &pcr::sha256(data)).unwrap();
    }
    list
}

/// The reference of this machine as governance would approve it after measuring one.
fn reference(tpm: &mut TssTpm) -> Reference {
    let boot = tpm.read_pcrs(&BOOT_PCRS).unwrap();
    let boot_pcrs: Vec<Digest> = boot.values().map(|value| Digest(*value)).collect();
    Reference {
        class: ResourceClass::ComputeHosted,
        boot_pcrs: boot_pcrs.try_into().unwrap(),
        ima: Some(ImaPolicy {
            policy: POLICY,
            digest: Digest([0x1A; 32]),
            violations_max: 0,
        }),
        files: reported().files,
        lkrg: Component::Unavailable,
        ebpf: Component::Unavailable,
    }
}

fn owner_call(world: &mut World, call: Call) -> Receipt {
    let owner = world.owner.clone();
    world.chain.call(&owner, call)
}

/// A report of a fresh quote by the TPM; checks that its transaction fits the 1 KiB limit.
fn report(world: &mut World, tpm: &mut TssTpm, ak: &AttestationKey) -> Receipt {
    let anchor = world.chain.height;
    let chain_nonce = world.chain.map::<Nonces>(&anchor).unwrap();
    let components = logos_attestation::report::bound_components(&reported());
    let chain_nonce = report_nonce(&chain_nonce, PROVIDER);
    let nonce = quote_nonce(&chain_nonce.0, &components);
    let quote = tpm.quote(ak, &nonce, &quoted_pcrs()).unwrap();
    let ima_pcr = Digest(tpm.read_pcrs(&[10]).unwrap()[&10]);
    let call = Call::Attest {
        provider: PROVIDER,
        anchor,
        attest: quote.attest.clone().try_into().unwrap(),
        signature: quote.signature.clone().try_into().unwrap(),
        reported: reported(),
        ima_pcr,
    };
    let owner = world.owner.clone();
    let transaction = world.chain.sign(&owner, call.into());
    let size = encode(&transaction).len();
    assert!(size <= TRANSACTION_MAX_BYTES, "a report is {size} bytes");
    world
        .chain
        .execute(&[transaction])
        .expect("a valid block")
        .remove(0)
}

fn excluded(receipt: &Receipt) -> Option<Exclusion> {
    receipt.events.iter().find_map(|event| match event {
        RuntimeEvent::Attestation(Event::MachineExcluded { reason, .. }) => Some(*reason),
        _ => None,
    })
}

/// Stages `chain` for provider 0's registration.
fn stage(world: &mut World, chain: &[u8]) {
    for call in staging_calls(PROVIDER, chain) {
        let staged = owner_call(world, call);
        assert!(staged.success, "{staged:?}");
    }
}

/// The drawn challenger's `TPM2_MakeCredential`, posted, and the machine's answer with its TPM.
fn answer_challenger(
    world: &mut World,
    tpm: &mut TssTpm,
    ek_public: &[u8],
    ak: &AttestationKey,
    rng: &mut rand_chacha::ChaCha20Rng,
) {
    let MachineStatus::AwaitingChallenge { challenger } =
        world.chain.map::<Machines>(&PROVIDER).unwrap().status
    else {
        panic!("no challenger drawn")
    };
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut secret);
    let challenge = credential::make_credential(ek_public, &ak.public, &secret, rng).unwrap();
    let challenger = world.key_of(challenger);
    let posted = world.chain.call(
        &challenger,
        Call::Challenge {
            provider: PROVIDER,
            credential_blob: challenge.credential_blob.try_into().unwrap(),
            encrypted_secret: challenge.secret.try_into().unwrap(),
            credential_hash: Digest(pcr::sha256(&secret)),
        },
    );
    assert!(posted.success, "{posted:?}");

    // The machine reads the challenge from the chain and answers with its TPM.
    let stored = world
        .chain
        .map::<Machines>(&PROVIDER)
        .unwrap()
        .challenge
        .unwrap();
    let answer = tpm
        .activate_credential(ak, &stored.credential_blob, &stored.encrypted_secret)
        .unwrap();
    let activated = owner_call(
        world,
        Call::ActivateCredential {
            provider: PROVIDER,
            credential: answer.try_into().unwrap(),
        },
    );
    assert!(activated.success, "{activated:?}");
}

fn admitted_with_swtpm(kind: AkKind) {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    let mut world = fixtures::attested_market(1);
    let mut machine = machine();
    let ca = &machine.ca;
    let tpm = &mut machine.tpm;
    let list = boot(tpm);
    let reference = reference(tpm);
    let id = reference.id();
    world.privileged(Call::ApproveReference { reference });
    world.privileged(Call::SetClassReference {
        class: ResourceClass::ComputeHosted,
        reference: id,
    });
    let files: Vec<Digest> = ["/usr/bin/logos", "/usr/lib/libc.so.6"]
        .iter()
        .map(|path| Digest(pcr::sha256(path.as_bytes())))
        .collect();
    world.privileged(Call::AllowFiles {
        policy: POLICY,
        files: files.try_into().unwrap(),
        allowed: true,
    });

    // Registration: the EK's certificate chain staged, the TPM's EK and a fresh AK.
    let endorsement = tpm.endorsement().unwrap();
    let ak = tpm.create_attestation_key(kind).unwrap();
    let certificate = endorsement
        .certificate
        .clone()
        .expect("swtpm_setup stored one");
    let chain = certs::chain(&certificate, &ca.authorities().unwrap()).unwrap();
    let register = Call::RegisterMachine {
        provider: PROVIDER,
        ek_public: endorsement.public.clone().try_into().unwrap(),
        ak_public: ak.public.clone().try_into().unwrap(),
    };
    // A genuine chain, but to a root nobody approved: the registration is removed at its
    // first deadline.
    stage(&mut world, &chain);
    assert!(owner_call(&mut world, register.clone()).success);
    world.chain.advance(DRAW_DELAY_BLOCKS);
    assert!(world.chain.map::<Machines>(&PROVIDER).is_none());
    let root = logos_mia::endorsement::certificate_key_hash(&ca.root().unwrap()).unwrap();
    world.privileged(Call::SetEndorsementRoot {
        root: Digest(root),
        approved: true,
    });
    stage(&mut world, &chain);
    let registered = owner_call(&mut world, register);
    assert!(registered.success, "{registered:?}");
    world.chain.advance(DRAW_DELAY_BLOCKS);
    assert_eq!(
        world.chain.map::<Machines>(&PROVIDER).unwrap().endorsed_by,
        Some(Digest(root))
    );

    // Each drawn challenger makes a credential only this TPM can open; the machine answers
    // them one after the other until it attests.
    let required = world.chain.value::<Params>().challenges_required;
    for answered in 1..=required {
        answer_challenger(&mut world, tpm, &endorsement.public, &ak, &mut rng);
        let status = world.chain.map::<Machines>(&PROVIDER).unwrap().status;
        match answered == required {
            true => assert_eq!(status, MachineStatus::Attesting),
            false => {
                assert_eq!(status, MachineStatus::AwaitingDraw);
                world.chain.advance(DRAW_DELAY_BLOCKS);
            }
        }
    }

    // The first report: the whole IMA list since boot, then a genuine quote.
    let entries = list
        .iter()
        .map(|data| data.clone().try_into().unwrap())
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    let staged = owner_call(
        &mut world,
        Call::StageIma {
            provider: PROVIDER,
            start: Start::Boot,
            entries,
        },
    );
    assert!(staged.success, "{staged:?}");
    let receipt = report(&mut world, tpm, &ak);
    assert!(
        receipt.success && excluded(&receipt).is_none(),
        "{receipt:?}"
    );
    let leased = world.lease(1_000);
    assert!(leased.success, "{leased:?}");

    // On schedule, nothing new in IMA: the report continues from the last one.
    world.chain.advance(2);
    let receipt = report(&mut world, tpm, &ak);
    assert!(
        receipt.success && excluded(&receipt).is_none(),
        "{receipt:?}"
    );

    // Someone with root extends PCR 14: the next genuine quote excludes the provider.
    tpm.extend(14, &pcr::sha256(b"a module loaded by hand"))
        .unwrap();
    let receipt = report(&mut world, tpm, &ak);
    assert_eq!(excluded(&receipt), Some(Exclusion::PcrMismatch));
    let provider = world.chain.map::<Providers>(&PROVIDER).unwrap();
    assert_eq!(provider.status, ProviderStatus::Excluded);
    let lease = world.chain.map::<Leases>(&LeaseId(0)).unwrap();
    assert!(matches!(
        lease.closed,
        Some((_, CloseReason::ProviderExcluded))
    ));
    assert_eq!(
        world.chain.account(&address(&world.tenant)).reserved,
        Amount::ZERO
    );
    assert_failed(&world.lease(10), "market", "NoCapacity");
}

#[test]
fn a_real_tpm_with_an_ecdsa_ak_is_admitted_verified_and_excluded_when_a_pcr_moves() {
    admitted_with_swtpm(AkKind::EcdsaP256);
}

#[test]
fn a_real_tpm_with_an_rsa_ak_is_admitted_verified_and_excluded_when_a_pcr_moves() {
    admitted_with_swtpm(AkKind::Rsa2048);
}
