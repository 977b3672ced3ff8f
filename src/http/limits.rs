//! The service's own limit on writes per client address (limits.writes_per_second; off by
//! default: a gateway in front limits there, deploy/nginx.conf.template), with actix-governor.
//!
//! The client is the peer, or, when the peer is a trusted proxy, the last address of
//! X-Forwarded-For that is not one: each proxy appends the address it received the request from,
//! so the addresses left of the last untrusted one could have been written by the client itself.

use crate::config::LimitSettings;
use actix_governor::governor::clock::{Clock, DefaultClock, QuantaInstant};
use actix_governor::governor::middleware::NoOpMiddleware;
use actix_governor::governor::NotUntil;
use actix_governor::{
    GovernorConfig, GovernorConfigBuilder, KeyExtractor, SimpleKeyExtractionError,
};
use actix_web::dev::ServiceRequest;
use actix_web::http::header::{ContentType, HeaderMap};
use actix_web::http::Method;
use actix_web::{HttpResponse, HttpResponseBuilder};
use std::net::IpAddr;
use std::sync::Arc;

pub type WriteLimit = GovernorConfig<ClientAddress, NoOpMiddleware<QuantaInstant>>;

/// The limiter's configuration, built once in `startup` (its state is shared by every worker),
/// and whether it is on.
pub fn writes(settings: &LimitSettings) -> (bool, WriteLimit) {
    let on = settings.writes_per_second > 0;
    let config = GovernorConfigBuilder::default()
        .requests_per_second(settings.writes_per_second.max(1))
        .burst_size(settings.write_burst)
        .methods(vec![Method::POST, Method::PUT])
        .key_extractor(ClientAddress {
            trusted: settings.trusted_proxies.iter().copied().collect(),
        })
        .finish()
        .expect("a positive rate and burst (checked by config)");
    (on, config)
}

/// CORS for the storefronts' origins (server.cors_origins): the API's methods, the token header
/// both ways, the validators readable.
pub fn cors(origins: &[String]) -> actix_cors::Cors {
    let cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "PUT"])
        .allowed_headers([
            actix_web::http::header::CONTENT_TYPE,
            actix_web::http::header::HeaderName::from_static(super::token::HEADER),
        ])
        .expose_headers([super::token::HEADER, "etag"])
        .max_age(3600);
    origins
        .iter()
        .fold(cors, |cors, origin| cors.allowed_origin(origin))
}

#[derive(Debug, Clone)]
pub struct ClientAddress {
    trusted: Arc<[IpAddr]>,
}

impl ClientAddress {
    fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusted.contains(&peer) {
            return peer;
        }
        let forwarded = headers
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>();
        forwarded
            .into_iter()
            .rev()
            .find(|a| !self.trusted.contains(a))
            .unwrap_or(peer)
    }
}

impl KeyExtractor for ClientAddress {
    type Key = IpAddr;
    type KeyExtractionError = SimpleKeyExtractionError<&'static str>;

    fn extract(&self, req: &ServiceRequest) -> Result<IpAddr, Self::KeyExtractionError> {
        let peer = req
            .peer_addr()
            .map(|a| a.ip())
            .ok_or_else(|| SimpleKeyExtractionError::new("Error: internal server error"))?;
        Ok(self.client(peer, req.headers()))
    }

    /// docs/api.md's error shape; the middleware adds Retry-After.
    fn exceed_rate_limit_response(
        &self,
        negative: &NotUntil<QuantaInstant>,
        mut response: HttpResponseBuilder,
    ) -> HttpResponse {
        let wait = negative.wait_time_from(DefaultClock::default().now());
        response
            .insert_header(("retry-after", wait.as_secs().max(1).to_string()))
            .content_type(ContentType(mime_text()))
            .body("Error: too many requests")
    }
}

fn mime_text() -> actix_web::mime::Mime {
    "text/plain; charset=utf-8".parse().expect("a media type")
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    #[test]
    fn the_client_is_the_peer_unless_the_peer_is_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let limiter = ClientAddress {
            trusted: Arc::from(vec![proxy]),
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for".parse().unwrap(),
            HeaderValue::from_static("6.6.6.6, 203.0.113.7, 10.0.0.1"),
        );
        let stranger: IpAddr = "198.51.100.2".parse().unwrap();
        assert_eq!(
            limiter.client(stranger, &headers),
            stranger,
            "not trusted: the header is ignored"
        );
        assert_eq!(
            limiter.client(proxy, &headers),
            "203.0.113.7".parse::<IpAddr>().unwrap(),
            "the last address the trusted proxies did not add"
        );
        assert_eq!(limiter.client(proxy, &HeaderMap::new()), proxy);
    }
}
