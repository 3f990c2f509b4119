//! The TPM collector: endorsement key, attestation key, PCR reads, quotes, extends.
//!
//! The endorsement key (EK) is the TPM's identity: an RSA-2048 primary key re-derived from the
//! endorsement seed with the TCG default template (TCG EK Credential Profile §2.1.5.1), so it
//! is the same key every time; its certificate, when the manufacturer (or `swtpm_setup
//! --create-ek-cert`) stored one, is read from NV index `0x01c00002`. The attestation key (AK)
//! is an ECDSA P-256 (or RSA-2048) restricted signing key created under the EK; its public part
//! and its private blob (wrapped by the EK, useless off this TPM) are kept by the caller and
//! loaded for each quote.
//!
//! Every transient object is flushed when the operation that loaded it ends, whether it
//! succeeded or not: swtpm has no resource manager and a TPM holds only a few objects
//! (`TPM_RC_OBJECT_MEMORY`, 0x902).

use crate::CollectError;
use logos_mia::pcr::Digest;
use num_traits::FromPrimitive;
use std::{collections::BTreeMap, str::FromStr};
use tss_esapi::{
    abstraction::{ak, ek, AsymmetricAlgorithmSelection},
    attributes::SessionAttributesBuilder,
    constants::SessionType,
    handles::{AuthHandle, KeyHandle, PcrHandle, SessionHandle},
    interface_types::{
        algorithm::{HashingAlgorithm, SignatureSchemeAlgorithm},
        ecc::EccCurve,
        key_bits::RsaKeyBits,
        session_handles::{AuthSession, PolicySession},
    },
    structures::{
        Data, Digest as TssDigest, DigestValues, EncryptedSecret, IdObject,
        PcrSelectionListBuilder, PcrSlot, Private, Public, SignatureScheme, SymmetricDefinition,
    },
    tcti_ldr::TctiNameConf,
    traits::{Marshall, UnMarshall},
    Context,
};

/// The endorsement key's algorithm.
const EK_ALGORITHM: AsymmetricAlgorithmSelection =
    AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa2048);
/// The largest nonce a quote takes (`TPM2B_DATA`), bytes.
pub const NONCE_MAX_BYTES: usize = 64;

/// The TPM's endorsement identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endorsement {
    /// The EK's `TPMT_PUBLIC`.
    pub public: Vec<u8>,
    /// The EK's DER certificate, when the TPM stores one.
    pub certificate: Option<Vec<u8>>,
}

/// Which kind of attestation key to create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AkKind {
    /// ECDSA on NIST P-256 with SHA-256: small signatures (64 bytes), fast to create.
    EcdsaP256,
    /// RSASSA-PKCS1-v1_5, 2048 bits, SHA-256.
    Rsa2048,
}

/// An attestation key as stored off the TPM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttestationKey {
    /// Its `TPMT_PUBLIC` (what the chain registers).
    pub public: Vec<u8>,
    /// Its `TPM2B_PRIVATE` contents, wrapped by the EK: only this TPM can load it.
    pub private: Vec<u8>,
}

/// A quote as the TPM produced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuoteBytes {
    /// The `TPMS_ATTEST`.
    pub attest: Vec<u8>,
    /// The `TPMT_SIGNATURE` over it.
    pub signature: Vec<u8>,
}

impl QuoteBytes {
    /// The quote as the verifier takes it.
    pub fn as_quote(&self) -> logos_mia::quote::Quote<'_> {
        logos_mia::quote::Quote {
            attest: &self.attest,
            signature: &self.signature,
        }
    }
}

/// What the attestation needs from a TPM.
pub trait Tpm {
    /// The endorsement key and its certificate.
    fn endorsement(&mut self) -> Result<Endorsement, CollectError>;
    /// Creates a new attestation key under the endorsement key.
    fn create_attestation_key(&mut self, kind: AkKind) -> Result<AttestationKey, CollectError>;
    /// Reads SHA-256 PCRs.
    fn read_pcrs(&mut self, pcrs: &[u32]) -> Result<BTreeMap<u32, Digest>, CollectError>;
    /// Quotes the SHA-256 `pcrs` with `ak`, `nonce` in `extraData`.
    fn quote(
        &mut self,
        ak: &AttestationKey,
        nonce: &[u8],
        pcrs: &[u32],
    ) -> Result<QuoteBytes, CollectError>;
    /// Extends SHA-256 PCR `pcr` with `digest` (what a measured component does).
    fn extend(&mut self, pcr: u32, digest: &Digest) -> Result<(), CollectError>;
    /// Answers a `TPM2_MakeCredential` challenge (`logos_mia::credential`) for `ak`: the
    /// credential, which this TPM recovers only if it holds the endorsement key the challenge
    /// was made for and `ak` is the key it names.
    fn activate_credential(
        &mut self,
        ak: &AttestationKey,
        credential_blob: &[u8],
        secret: &[u8],
    ) -> Result<Vec<u8>, CollectError>;
}

/// A TPM reached through a TSS2 TCTI: `device:/dev/tpmrm0` on a machine,
/// `swtpm:host=127.0.0.1,port=2321` for swtpm.
pub struct TssTpm {
    context: Context,
}

impl TssTpm {
    /// Opens the TPM at `tcti` (a TSS2 TCTI configuration string).
    pub fn open(tcti: &str) -> Result<Self, CollectError> {
        let conf = TctiNameConf::from_str(tcti)?;
        Ok(Self {
            context: Context::new(conf)?,
        })
    }

    /// Shuts the TPM down in order (`TPM2_Shutdown(CLEAR)`, Part 3 §9.4), as an operating
    /// system does before a reboot: the next start is not counted against the
    /// dictionary-attack protection.
    pub fn shutdown(&mut self) -> Result<(), CollectError> {
        Ok(self
            .context
            .shutdown(tss_esapi::constants::StartupType::Clear)?)
    }

    /// Runs `f` with the endorsement key loaded, and flushes it afterwards.
    fn with_ek<T>(
        &mut self,
        f: impl FnOnce(&mut Context, KeyHandle) -> Result<T, CollectError>,
    ) -> Result<T, CollectError> {
        let ek = ek::create_ek_object_2(&mut self.context, EK_ALGORITHM, None)?;
        let result = f(&mut self.context, ek);
        let flushed = self.context.flush_context(ek.into());
        let value = result?;
        flushed?;
        Ok(value)
    }

    /// Runs `f` with `key` loaded under the endorsement key (`f` gets the AK's handle, then
    /// the EK's), and flushes both afterwards.
    fn with_ak<T>(
        &mut self,
        key: &AttestationKey,
        f: impl FnOnce(&mut Context, KeyHandle, KeyHandle) -> Result<T, CollectError>,
    ) -> Result<T, CollectError> {
        let public = Public::unmarshall(&key.public)?;
        let private = Private::try_from(key.private.clone())?;
        self.with_ek(|context, ek| {
            let handle = ak::load_ak(context, ek, None, private, public)?;
            let result = f(context, handle, ek);
            let flushed = context.flush_context(handle.into());
            let value = result?;
            flushed?;
            Ok(value)
        })
    }
}

/// The PCR slot of index `pcr`.
fn slot(pcr: u32) -> Result<PcrSlot, CollectError> {
    let bit = 1u32
        .checked_shl(pcr)
        .filter(|_| pcr < 24)
        .ok_or_else(|| CollectError::Invalid(format!("PCR {pcr} does not exist")))?;
    Ok(PcrSlot::try_from(bit)?)
}

impl Tpm for TssTpm {
    fn endorsement(&mut self) -> Result<Endorsement, CollectError> {
        let public = self.with_ek(|context, ek| {
            let (public, _, _) = context.read_public(ek)?;
            Ok(public.marshall()?)
        })?;
        // No certificate is not an error: many TPMs (and a bare swtpm) have none.
        let certificate = ek::retrieve_ek_pubcert(&mut self.context, EK_ALGORITHM).ok();
        Ok(Endorsement {
            public,
            certificate,
        })
    }

    fn create_attestation_key(&mut self, kind: AkKind) -> Result<AttestationKey, CollectError> {
        let (algorithm, scheme) = match kind {
            AkKind::EcdsaP256 => (
                AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP256),
                SignatureSchemeAlgorithm::EcDsa,
            ),
            AkKind::Rsa2048 => (
                AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa2048),
                SignatureSchemeAlgorithm::RsaSsa,
            ),
        };
        self.with_ek(|context, ek| {
            let created = ak::create_ak_2(
                context,
                ek,
                HashingAlgorithm::Sha256,
                algorithm,
                scheme,
                None,
                None,
            )?;
            Ok(AttestationKey {
                public: created.out_public.marshall()?,
                private: created.out_private.value().to_vec(),
            })
        })
    }

    fn read_pcrs(&mut self, pcrs: &[u32]) -> Result<BTreeMap<u32, Digest>, CollectError> {
        let mut values = BTreeMap::new();
        for &pcr in pcrs {
            let selection = PcrSelectionListBuilder::new()
                .with_selection(HashingAlgorithm::Sha256, &[slot(pcr)?])
                .build()?;
            let (_, _, digests) = self
                .context
                .execute_without_session(|c| c.pcr_read(selection))?;
            let value = match digests.value() {
                [digest] => Digest::try_from(digest.value()).ok(),
                _ => None,
            };
            let value = value.ok_or_else(|| {
                CollectError::Invalid(format!("the TPM returned no SHA-256 PCR {pcr}"))
            })?;
            values.insert(pcr, value);
        }
        Ok(values)
    }

    fn quote(
        &mut self,
        key: &AttestationKey,
        nonce: &[u8],
        pcrs: &[u32],
    ) -> Result<QuoteBytes, CollectError> {
        if nonce.len() > NONCE_MAX_BYTES {
            return Err(CollectError::TooLarge {
                what: "the nonce".into(),
                max: NONCE_MAX_BYTES,
            });
        }
        let slots = pcrs
            .iter()
            .map(|&pcr| slot(pcr))
            .collect::<Result<Vec<_>, _>>()?;
        let selection = PcrSelectionListBuilder::new()
            .with_selection(HashingAlgorithm::Sha256, &slots)
            .build()?;
        let nonce = Data::try_from(nonce.to_vec())?;
        self.with_ak(key, |context, handle, _| {
            let (attest, signature) = context.execute_with_nullauth_session(|c| {
                c.quote(handle, nonce, SignatureScheme::Null, selection)
            })?;
            Ok(QuoteBytes {
                attest: attest.marshall()?,
                signature: signature.marshall()?,
            })
        })
    }

    fn extend(&mut self, pcr: u32, digest: &Digest) -> Result<(), CollectError> {
        let handle = PcrHandle::from_u32(pcr)
            .filter(|_| pcr < 24)
            .ok_or_else(|| CollectError::Invalid(format!("PCR {pcr} does not exist")))?;
        let mut values = DigestValues::new();
        values.set(
            HashingAlgorithm::Sha256,
            TssDigest::try_from(digest.to_vec())?,
        );
        self.context
            .execute_with_nullauth_session(|c| c.pcr_extend(handle, values))?;
        Ok(())
    }

    fn activate_credential(
        &mut self,
        key: &AttestationKey,
        credential_blob: &[u8],
        secret: &[u8],
    ) -> Result<Vec<u8>, CollectError> {
        let blob = IdObject::try_from(credential_blob.to_vec())?;
        let secret = EncryptedSecret::try_from(secret.to_vec())?;
        self.with_ak(key, |context, ak, ek| {
            let hmac = start_session(context, SessionType::Hmac)?;
            let policy = match start_session(context, SessionType::Policy) {
                Ok(policy) => policy,
                Err(error) => {
                    let _ = context.flush_context(SessionHandle::from(hmac).into());
                    return Err(error);
                }
            };
            let result = activate(context, [hmac, policy], [ak, ek], blob, secret);
            context.clear_sessions();
            let flushed_hmac = context.flush_context(SessionHandle::from(hmac).into());
            let flushed_policy = context.flush_context(SessionHandle::from(policy).into());
            let credential = result?;
            flushed_hmac?;
            flushed_policy?;
            Ok(credential)
        })
    }
}

fn start_session(context: &mut Context, kind: SessionType) -> Result<AuthSession, CollectError> {
    let session = context
        .start_auth_session(
            None,
            None,
            None,
            kind,
            SymmetricDefinition::AES_128_CFB,
            HashingAlgorithm::Sha256,
        )?
        .ok_or_else(|| CollectError::Invalid("the TPM started no session".into()))?;
    let (attributes, mask) = SessionAttributesBuilder::new().build();
    if let Err(error) = context.tr_sess_set_attributes(session, attributes, mask) {
        let _ = context.flush_context(SessionHandle::from(session).into());
        return Err(error.into());
    }
    Ok(session)
}

/// `TPM2_ActivateCredential` for `[ak, ek]`, with `hmac` authorizing the AK and the EK's policy
/// (`PolicySecret(TPM_RH_ENDORSEMENT)`) satisfied in `policy`.
fn activate(
    context: &mut Context,
    [hmac, policy]: [AuthSession; 2],
    [ak, ek]: [KeyHandle; 2],
    blob: IdObject,
    secret: EncryptedSecret,
) -> Result<Vec<u8>, CollectError> {
    let policy_session = PolicySession::try_from(policy)?;
    context.execute_with_session(Some(hmac), |c| {
        c.policy_secret(
            policy_session,
            AuthHandle::Endorsement,
            Default::default(),
            Default::default(),
            Default::default(),
            None,
        )
    })?;
    context.set_sessions((Some(hmac), Some(policy), None));
    let credential = context.activate_credential(ak, ek, blob, secret)?;
    Ok(credential.value().to_vec())
}
