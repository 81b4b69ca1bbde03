//! The [`Fetcher`] as the `openidconnect` crate's HTTP client, so that an
//! eID connector's discovery, the key set it names and the token request
//! go through the same checks as every other outbound fetch (the crate's
//! own reqwest client would follow the upstream's URLs anywhere and read
//! bodies whole).

use std::future::Future;
use std::pin::Pin;

use super::{FetchError, Fetcher, Use};

/// The fetcher for one use, as an [`openidconnect::AsyncHttpClient`].
#[derive(Debug, Clone)]
pub struct Upstream {
    fetcher: Fetcher,
    use_: Use,
}

impl Upstream {
    pub(super) fn new(fetcher: Fetcher, use_: Use) -> Self {
        Self { fetcher, use_ }
    }
}

impl<'c> openidconnect::AsyncHttpClient<'c> for Upstream {
    type Error = FetchError;
    type Future =
        Pin<Box<dyn Future<Output = Result<openidconnect::HttpResponse, FetchError>> + Send + 'c>>;

    fn call(&'c self, request: openidconnect::HttpRequest) -> Self::Future {
        Box::pin(self.fetcher.execute(request, self.use_))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use openidconnect::IssuerUrl;
    use openidconnect::core::CoreProviderMetadata;

    use super::*;
    use crate::outbound::{AddressClass, Limits, Policy, Reason, Refusal};

    /// A loopback port that counts the connections it accepts.
    async fn counting_listener() -> (u16, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                drop(socket);
            }
        });
        (port, accepted)
    }

    #[tokio::test]
    async fn eid_discovery_goes_through_the_guard() {
        let (port, accepted) = counting_listener().await;
        let fetcher = Fetcher::new(Policy::PRODUCTION, Limits::default()).unwrap();
        let http = fetcher.upstream(Use::Eid);
        for issuer in [
            format!("https://127.0.0.1:{port}"),
            format!("https://localhost:{port}"),
        ] {
            let result = CoreProviderMetadata::discover_async(
                IssuerUrl::new(issuer.clone()).unwrap(),
                &http,
            )
            .await;
            let Err(openidconnect::DiscoveryError::Request(e)) = result else {
                panic!("{issuer}: discovery did not fail in the request: {result:?}");
            };
            assert_eq!(
                e.reason(),
                Reason::Refused(Refusal::Address(AddressClass::Loopback)),
                "{issuer}"
            );
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            0,
            "nothing was connected to"
        );
    }
}
