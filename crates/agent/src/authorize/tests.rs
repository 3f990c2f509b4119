//! Every decision of the gatekeeper's core, one refusal reason at a time.

use super::*;
use commonware_codec::Encode;
use commonware_cryptography::Signer;
use logos_api::agent::{LOGS_NAMESPACE, STATS_REQUEST_NAMESPACE};
use logos_primitives::{format_public_key, PrivateKey};
use logos_types::{
    catalog::TemplateId,
    operations::{Desired, Spec},
};

const PROVIDER: ProviderId = ProviderId(3);
const ID: EnvironmentId = EnvironmentId(42);
const CHAIN: &str = "0xc4a1";
/// The finalized height the tests authorize at.
const HEIGHT: u64 = 100;

fn provisioner() -> PrivateKey {
    PrivateKey::from_seed(7)
}

fn tenant() -> PrivateKey {
    PrivateKey::from_seed(8)
}

fn sign(key: &PrivateKey, provider: ProviderId, generation: u64, action: Action) -> AgentRequest {
    signed_with(key, provider, generation, action, HEIGHT + 10, 1)
}

fn signed_with(
    key: &PrivateKey,
    provider: ProviderId,
    generation: u64,
    action: Action,
    expires_at: u64,
    nonce: u64,
) -> AgentRequest {
    let mut request = AgentRequest {
        chain_id: CHAIN.into(),
        provider,
        environment: ID,
        generation,
        action,
        expires_at,
        nonce,
        provisioner: format_public_key(&key.public_key()),
        signature: String::new(),
    };
    request.signature = format!(
        "0x{}",
        hex::encode(key.sign(AGENT_NAMESPACE, &request.message()).encode())
    );
    request
}

fn environment(desired: Desired) -> Environment {
    let mut spec = Spec::default();
    spec.workload.health.port = 8080;
    let tenant = Address::from_public_key(&tenant().public_key());
    let mut record = Environment::new(tenant, PROVIDER, TemplateId(0), spec, 10);
    record.generation = 2;
    record.desired = desired;
    record
}

fn facts(desired: Desired, assigned: Option<&PrivateKey>) -> ChainFacts {
    ChainFacts {
        environment: Some(environment(desired)),
        assignment: Some(Assignment {
            assigned: assigned.map(|key| Address::from_public_key(&key.public_key())),
            ..Assignment::default()
        }),
    }
}

fn signed(generation: u64, action: Action) -> SignedRequest {
    verify(
        sign(&provisioner(), PROVIDER, generation, action),
        ID,
        PROVIDER,
        CHAIN,
    )
    .unwrap()
}

#[test]
fn the_assigned_provisioner_gets_the_action_finalized_state_wants() {
    let me = provisioner();
    let running = facts(Desired::Running, Some(&me));
    assert_eq!(
        authorize(&signed(2, Action::Ensure), PROVIDER, &running, HEIGHT),
        Ok(Action::Ensure)
    );
    let destroyed = facts(Desired::Destroyed, Some(&me));
    assert_eq!(
        authorize(&signed(2, Action::Destroy), PROVIDER, &destroyed, HEIGHT),
        Ok(Action::Destroy)
    );
}

#[test]
fn verify_refuses_misaddressed_mismatched_and_forged_requests() {
    let request = sign(&provisioner(), PROVIDER, 2, Action::Ensure);
    assert_eq!(
        verify(request.clone(), EnvironmentId(1), PROVIDER, CHAIN).unwrap_err(),
        Refusal::PathMismatch {
            path: EnvironmentId(1),
            body: ID
        }
    );
    assert!(Refusal::PathMismatch { path: ID, body: ID }.is_malformed());
    assert_eq!(
        verify(
            sign(&provisioner(), ProviderId(9), 2, Action::Ensure),
            ID,
            PROVIDER,
            CHAIN
        )
        .unwrap_err(),
        Refusal::WrongProvider(ProviderId(9))
    );
    let mut garbled = request.clone();
    garbled.signature = "0xzz".into();
    assert!(matches!(
        verify(garbled, ID, PROVIDER, CHAIN),
        Err(Refusal::MalformedSigner(_))
    ));
    let mut no_key = request.clone();
    no_key.provisioner = "0x1234".into();
    assert!(matches!(
        verify(no_key, ID, PROVIDER, CHAIN),
        Err(Refusal::MalformedSigner(_))
    ));
    // A genuine signature over another generation (a replay of an older request).
    let mut replayed = sign(&provisioner(), PROVIDER, 1, Action::Ensure);
    replayed.generation = 2;
    assert_eq!(
        verify(replayed, ID, PROVIDER, CHAIN).unwrap_err(),
        Refusal::BadSignature
    );
    // A genuine request for another chain.
    let key = provisioner();
    let mut other_chain = sign(&key, PROVIDER, 2, Action::Ensure);
    other_chain.chain_id = "0xfeed".into();
    other_chain.signature = format!(
        "0x{}",
        hex::encode(key.sign(AGENT_NAMESPACE, &other_chain.message()).encode())
    );
    assert_eq!(
        verify(other_chain.clone(), ID, PROVIDER, CHAIN).unwrap_err(),
        Refusal::WrongChain("0xfeed".into())
    );
    // Relabelled for this chain, its signature no longer verifies.
    other_chain.chain_id = CHAIN.into();
    assert_eq!(
        verify(other_chain, ID, PROVIDER, CHAIN).unwrap_err(),
        Refusal::BadSignature
    );
    let resigned = sign(&provisioner(), PROVIDER, 2, Action::Ensure);
    let mut relabelled = resigned.clone();
    relabelled.expires_at += 1;
    assert_eq!(
        verify(relabelled, ID, PROVIDER, CHAIN).unwrap_err(),
        Refusal::BadSignature,
        "the expiry is signed"
    );
    let mut renonced = resigned;
    renonced.nonce += 1;
    assert_eq!(
        verify(renonced, ID, PROVIDER, CHAIN).unwrap_err(),
        Refusal::BadSignature,
        "the nonce is signed"
    );
    // The same signature claimed by another key.
    let mut impostor = request;
    impostor.provisioner = format_public_key(&PrivateKey::from_seed(99).public_key());
    assert_eq!(
        verify(impostor, ID, PROVIDER, CHAIN).unwrap_err(),
        Refusal::BadSignature
    );
}

#[test]
fn authorize_refuses_what_finalized_state_does_not_back() {
    let me = provisioner();
    let request = signed(2, Action::Ensure);
    assert_eq!(
        authorize(&request, PROVIDER, &ChainFacts::default(), HEIGHT),
        Err(Refusal::UnknownEnvironment)
    );
    let mut elsewhere = facts(Desired::Running, Some(&me));
    elsewhere.environment.as_mut().unwrap().provider = ProviderId(4);
    assert_eq!(
        authorize(&request, PROVIDER, &elsewhere, HEIGHT),
        Err(Refusal::PlacedElsewhere(ProviderId(4)))
    );
    let running = facts(Desired::Running, Some(&me));
    assert_eq!(
        authorize(&signed(3, Action::Ensure), PROVIDER, &running, HEIGHT),
        Err(Refusal::WrongGeneration {
            requested: 3,
            finalized: 2
        })
    );
    assert_eq!(
        authorize(&signed(2, Action::Destroy), PROVIDER, &running, HEIGHT),
        Err(Refusal::WrongAction(Action::Ensure))
    );
    let destroyed = facts(Desired::Destroyed, Some(&me));
    assert_eq!(
        authorize(&request, PROVIDER, &destroyed, HEIGHT),
        Err(Refusal::WrongAction(Action::Destroy))
    );
    let signer = request.signer();
    let stranger = facts(Desired::Running, Some(&tenant()));
    assert_eq!(
        authorize(&request, PROVIDER, &stranger, HEIGHT),
        Err(Refusal::NotAssigned(signer))
    );
    let unassigned = facts(Desired::Running, None);
    assert_eq!(
        authorize(&request, PROVIDER, &unassigned, HEIGHT),
        Err(Refusal::NotAssigned(signer))
    );
    let no_assignment = ChainFacts {
        environment: Some(environment(Desired::Running)),
        assignment: None,
    };
    assert_eq!(
        authorize(&request, PROVIDER, &no_assignment, HEIGHT),
        Err(Refusal::NotAssigned(signer))
    );
}

/// The gatekeeper's two steps for a logs request: on its own, then against the chain.
fn logs(request: &LogsRequest, environment: &Environment, now_s: u64) -> Result<(), Refusal> {
    verify_read(request, ID, now_s, LOGS_NAMESPACE)
        .and_then(|signer| authorize_logs(signer, environment))
}

fn logs_request(key: &PrivateKey, timestamp_s: u64) -> LogsRequest {
    LogsRequest {
        timestamp_s,
        public_key: format_public_key(&key.public_key()),
        signature: format!(
            "0x{}",
            hex::encode(
                key.sign(LOGS_NAMESPACE, &logs_message(ID, timestamp_s, false))
                    .encode()
            )
        ),
        bytes: None,
        follow: None,
    }
}

#[test]
fn logs_go_only_to_the_tenant_and_only_fresh() {
    let record = environment(Desired::Running);
    let now = 1_000_000;
    assert_eq!(logs(&logs_request(&tenant(), now), &record, now), Ok(()));
    assert_eq!(
        logs(
            &logs_request(&tenant(), now - LOGS_MAX_AGE_S - 1),
            &record,
            now
        ),
        Err(Refusal::Expired)
    );
    assert_eq!(
        logs(
            &logs_request(&tenant(), now + LOGS_MAX_AGE_S + 1),
            &record,
            now
        ),
        Err(Refusal::Expired)
    );
    assert_eq!(
        logs(&logs_request(&provisioner(), now), &record, now),
        Err(Refusal::NotTenant)
    );
    // The tenant's signature of another moment.
    let mut stale = logs_request(&tenant(), now - 5);
    stale.timestamp_s = now;
    assert_eq!(logs(&stale, &record, now), Err(Refusal::BadSignature));
    // The tenant's signature for another environment.
    assert_eq!(
        verify_read(
            &logs_request(&tenant(), now),
            EnvironmentId(ID.0 + 1),
            now,
            LOGS_NAMESPACE
        ),
        Err(Refusal::BadSignature)
    );
    // A request for the tail replayed as a followed one.
    let mut followed = logs_request(&tenant(), now);
    followed.follow = Some(true);
    assert_eq!(logs(&followed, &record, now), Err(Refusal::BadSignature));
    // A logs request replayed as a stats request (another namespace).
    assert_eq!(
        verify_read(
            &logs_request(&tenant(), now),
            ID,
            now,
            STATS_REQUEST_NAMESPACE
        ),
        Err(Refusal::BadSignature)
    );
    let mut garbled = logs_request(&tenant(), now);
    garbled.public_key = "nope".into();
    assert!(matches!(
        logs(&garbled, &record, now),
        Err(Refusal::MalformedSigner(_))
    ));
}

#[test]
fn garbage_collection_keeps_only_what_runs_here() {
    let running = environment(Desired::Running);
    assert!(wanted_here(Some(&running), PROVIDER));
    assert!(!wanted_here(Some(&running), ProviderId(4)));
    assert!(!wanted_here(
        Some(&environment(Desired::Destroyed)),
        PROVIDER
    ));
    assert!(!wanted_here(None, PROVIDER));
}

fn signed_at(expires_at: u64, nonce: u64, action: Action) -> SignedRequest {
    let request = signed_with(&provisioner(), PROVIDER, 2, action, expires_at, nonce);
    verify(request, ID, PROVIDER, CHAIN).unwrap()
}

#[test]
fn a_request_is_valid_until_its_expiry_and_not_beyond_the_window() {
    let me = provisioner();
    let running = facts(Desired::Running, Some(&me));
    let at_expiry = signed_at(HEIGHT, 1, Action::Ensure);
    assert_eq!(
        authorize(&at_expiry, PROVIDER, &running, HEIGHT),
        Ok(Action::Ensure)
    );
    // Valid now, refused a block later.
    assert_eq!(
        authorize(&at_expiry, PROVIDER, &running, HEIGHT + 1),
        Err(Refusal::RequestExpired {
            expires_at: HEIGHT,
            height: HEIGHT + 1
        })
    );
    let far = signed_at(HEIGHT + REQUEST_EXPIRY_MAX_BLOCKS + 1, 1, Action::Ensure);
    assert_eq!(
        authorize(&far, PROVIDER, &running, HEIGHT),
        Err(Refusal::ExpiryTooFar {
            expires_at: HEIGHT + REQUEST_EXPIRY_MAX_BLOCKS + 1,
            height: HEIGHT
        })
    );
}

#[test]
fn a_replayed_nonce_is_refused_until_it_expires_and_memory_is_bounded() {
    let mut nonces = Nonces::default();
    let first = signed_at(HEIGHT + 5, 7, Action::Ensure);
    assert_eq!(nonces.admit(&first, HEIGHT), Ok(()));
    assert_eq!(nonces.admit(&first, HEIGHT + 1), Err(Refusal::Replayed(7)));
    // Another nonce of the same signer is fine; an expired one is forgotten (and refused by
    // `authorize` anyway).
    assert_eq!(
        nonces.admit(&signed_at(HEIGHT + 5, 8, Action::Ensure), HEIGHT),
        Ok(())
    );
    assert_eq!(nonces.admit(&first, HEIGHT + 6), Ok(()));
    let mut flood = Nonces::default();
    for nonce in 0..NONCES_PER_SIGNER_MAX as u64 {
        assert_eq!(
            flood.admit(&signed_at(HEIGHT + 5, nonce, Action::Ensure), HEIGHT),
            Ok(())
        );
    }
    let signer = first.signer();
    assert_eq!(
        flood.admit(&signed_at(HEIGHT + 5, u64::MAX, Action::Ensure), HEIGHT),
        Err(Refusal::TooManyInFlight(signer))
    );
    assert_eq!(
        flood.admit(&signed_at(HEIGHT + 5, u64::MAX, Action::Ensure), HEIGHT + 6),
        Ok(()),
        "room again once they expired"
    );
}

#[test]
fn only_the_assignee_and_the_rounds_checkers_may_observe() {
    let me = provisioner();
    let observe = signed(2, Action::Observe);
    let signer = observe.signer();
    // The assignee, whatever finalized state wants.
    let destroyed = facts(Desired::Destroyed, Some(&me));
    assert_eq!(
        authorize(&observe, PROVIDER, &destroyed, HEIGHT),
        Ok(Action::Observe)
    );
    // A checker of the current round.
    let mut checked = facts(Desired::Running, Some(&tenant()));
    checked.assignment.as_mut().unwrap().checkers = vec![signer].try_into().unwrap();
    assert_eq!(
        authorize(&observe, PROVIDER, &checked, HEIGHT),
        Ok(Action::Observe)
    );
    // Anyone else.
    let other = facts(Desired::Running, Some(&tenant()));
    assert_eq!(
        authorize(&observe, PROVIDER, &other, HEIGHT),
        Err(Refusal::NotObserver(signer))
    );
}
