//! TLS for the HTTP sources: the platform's certificate verifier (the system's trust
//! store), built on the first TLS handshake instead of when the client is built.
//!
//! Loading the trust store parses the system's PEM certificates before the first request
//! of every run (BENCHMARKS.md, "Figures behind code choices"); a `lookout once` over
//! plain-HTTP pages never needs it.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// The client TLS setup reqwest would build, with the verifier made lazy: TLS 1.2 and
/// 1.3, ALPN for HTTP/2 and HTTP/1.1.
pub(super) fn client_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = LazyVerifier::new(Arc::clone(&provider), {
        let provider = Arc::clone(&provider);
        move || {
            rustls_platform_verifier::Verifier::new(Arc::clone(&provider))
                .map(|v| Arc::new(v) as Arc<dyn ServerCertVerifier>)
        }
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

type Build = dyn Fn() -> Result<Arc<dyn ServerCertVerifier>, rustls::Error> + Send + Sync;

/// A certificate verifier made by `build` when the first certificate is to be
/// verified; every verification goes to it. A failure to build fails that handshake
/// and is tried again on the next one.
pub(super) struct LazyVerifier {
    provider: Arc<CryptoProvider>,
    build: Box<Build>,
    built: OnceLock<Arc<dyn ServerCertVerifier>>,
}

impl LazyVerifier {
    /// A verifier for `provider`'s signature schemes that `build` makes on first use.
    pub(super) fn new(
        provider: Arc<CryptoProvider>,
        build: impl Fn() -> Result<Arc<dyn ServerCertVerifier>, rustls::Error> + Send + Sync + 'static,
    ) -> LazyVerifier {
        LazyVerifier {
            provider,
            build: Box::new(build),
            built: OnceLock::new(),
        }
    }

    fn inner(&self) -> Result<&Arc<dyn ServerCertVerifier>, rustls::Error> {
        if let Some(inner) = self.built.get() {
            return Ok(inner);
        }
        let inner = (self.build)()?;
        Ok(self.built.get_or_init(|| inner))
    }
}

impl std::fmt::Debug for LazyVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyVerifier")
            .field("built", &self.built.get().is_some())
            .finish_non_exhaustive()
    }
}

impl ServerCertVerifier for LazyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner()?
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner()?.verify_tls13_signature(message, cert, dss)
    }

    // Asked for every ClientHello, before any certificate: answered without building
    // (the platform verifier supports exactly its provider's schemes).
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use rustls::client::WebPkiServerVerifier;

    use super::*;

    /// A CA, a certificate it signed for 127.0.0.1, and one nobody trusts.
    fn certificates() -> (
        CertificateDer<'static>,
        CertificateDer<'static>,
        CertificateDer<'static>,
    ) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        let signed = leaf_params
            .signed_by(&KeyPair::generate().unwrap(), &issuer)
            .unwrap();
        let stranger = leaf_params
            .self_signed(&KeyPair::generate().unwrap())
            .unwrap();
        (
            ca.der().clone(),
            signed.der().clone(),
            stranger.der().clone(),
        )
    }

    #[test]
    fn the_verifier_is_built_on_the_first_certificate_and_decides_every_one() {
        let (ca, signed, stranger) = certificates();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builds = Arc::new(AtomicUsize::new(0));
        let lazy = LazyVerifier::new(Arc::clone(&provider), {
            let (provider, builds) = (Arc::clone(&provider), Arc::clone(&builds));
            move || {
                builds.fetch_add(1, Ordering::SeqCst);
                let mut roots = rustls::RootCertStore::empty();
                roots.add(ca.clone())?;
                WebPkiServerVerifier::builder_with_provider(roots.into(), Arc::clone(&provider))
                    .build()
                    .map(|v| v as Arc<dyn ServerCertVerifier>)
                    .map_err(|e| rustls::Error::General(e.to_string()))
            }
        });
        assert!(!lazy.supported_verify_schemes().is_empty());
        assert_eq!(
            builds.load(Ordering::SeqCst),
            0,
            "nothing built for a ClientHello"
        );

        let host = ServerName::try_from("127.0.0.1").unwrap();
        let verify = |cert: &CertificateDer<'_>| {
            lazy.verify_server_cert(cert, &[], &host, &[], UnixTime::now())
        };
        assert!(
            verify(&signed).is_ok(),
            "a certificate the CA signed passes"
        );
        assert!(
            verify(&stranger).is_err(),
            "a certificate nobody signed fails"
        );
        let other = ServerName::try_from("example.org").unwrap();
        assert!(
            lazy.verify_server_cert(&signed, &[], &other, &[], UnixTime::now())
                .is_err(),
            "a certificate for another name fails"
        );
        assert_eq!(builds.load(Ordering::SeqCst), 1, "built once");
    }

    #[test]
    fn a_verifier_that_cannot_be_built_fails_the_handshake() {
        let (_, signed, _) = certificates();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let lazy = LazyVerifier::new(provider, || {
            Err(rustls::Error::General("no trust store".to_owned()))
        });
        let host = ServerName::try_from("127.0.0.1").unwrap();
        let err = lazy
            .verify_server_cert(&signed, &[], &host, &[], UnixTime::now())
            .unwrap_err();
        assert!(err.to_string().contains("no trust store"), "{err}");
    }
}
