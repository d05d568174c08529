//! Who may talk to the dashboard: it has no login, so it answers only
//! requests addressed to its own host (a page of another site cannot reach
//! it through DNS rebinding), and changes state only for requests that come
//! from its own pages (a page of another site cannot post a form to it).

use std::net::SocketAddr;

use axum::http::{HeaderMap, Method, header};

/// The origins the dashboard's own pages have.
#[derive(Debug, Clone)]
pub struct Origins {
    /// `http://host:port` for each name the dashboard is reached by.
    origins: Vec<String>,
}

impl Origins {
    /// The origins of a dashboard listening on `addr`: a loopback address
    /// is also reached as `localhost`.
    pub fn of(addr: SocketAddr) -> Self {
        let mut origins = vec![format!("http://{addr}")];
        if addr.ip().is_loopback() {
            origins.push(format!("http://localhost:{}", addr.port()));
        }
        Self { origins }
    }

    /// The main origin, for messages.
    pub fn main(&self) -> &str {
        &self.origins[0]
    }

    /// Why a request must be refused, if it must.
    pub fn refuse(&self, method: &Method, headers: &HeaderMap) -> Option<String> {
        let host = text(headers, header::HOST);
        if !self.has_host(host) {
            return Some(format!(
                "refused: this dashboard answers only requests to {} (Host was {})",
                self.main(),
                host.unwrap_or("missing")
            ));
        }
        if method == Method::GET || method == Method::HEAD {
            return None;
        }
        let origin = text(headers, header::ORIGIN);
        let referer = text(headers, header::REFERER);
        let own = match (origin, referer) {
            (Some(origin), _) => self.origins.iter().any(|o| o == origin),
            (None, Some(referer)) => self.origins.iter().any(|o| same_origin(o, referer)),
            (None, None) => false,
        };
        match own {
            true => None,
            false => Some(format!(
                "refused: a request that changes state must come from the dashboard's own pages at {} (Origin was {}, Referer {})",
                self.main(),
                origin.unwrap_or("missing"),
                referer.unwrap_or("missing")
            )),
        }
    }

    fn has_host(&self, host: Option<&str>) -> bool {
        host.is_some_and(|h| {
            self.origins
                .iter()
                .any(|o| o.strip_prefix("http://") == Some(h))
        })
    }
}

fn text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether `url` is on `origin` (`http://a:1/x` is on `http://a:1`, and
/// `http://a:12/x` is not).
fn same_origin(origin: &str, url: &str) -> bool {
    url.strip_prefix(origin)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn posts_only_from_own_pages() {
        let o = Origins::of("127.0.0.1:7000".parse().unwrap());
        let host = (header::HOST, "127.0.0.1:7000");
        let post = |extra: &[(header::HeaderName, &str)]| {
            let mut all = vec![host.clone()];
            all.extend_from_slice(extra);
            o.refuse(&Method::POST, &headers(&all))
        };
        assert_eq!(post(&[(header::ORIGIN, "http://127.0.0.1:7000")]), None);
        assert_eq!(post(&[(header::ORIGIN, "http://localhost:7000")]), None);
        assert!(post(&[(header::ORIGIN, "http://evil.example")]).is_some());
        assert!(post(&[(header::ORIGIN, "http://127.0.0.1:70001")]).is_some());
        assert_eq!(
            post(&[(header::REFERER, "http://127.0.0.1:7000/m/x")]),
            None
        );
        assert!(post(&[(header::REFERER, "http://127.0.0.1:70001/m/x")]).is_some());
        assert!(post(&[]).is_some());
        assert_eq!(
            o.refuse(&Method::GET, &headers(std::slice::from_ref(&host))),
            None
        );
        let rebound = headers(&[(header::HOST, "evil.example:7000")]);
        assert!(o.refuse(&Method::GET, &rebound).is_some());
    }
}
