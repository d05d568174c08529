//! Who may talk to the dashboard: it has no login, so it answers only
//! requests addressed to its own host (a page of another site cannot reach
//! it through DNS rebinding), and changes state only for requests that come
//! from its own pages (a page of another site cannot post a form to it).

use std::net::SocketAddr;

use axum::http::{HeaderMap, Method, header};

/// The origins the dashboard's own pages have.
#[derive(Debug, Clone)]
pub struct Origins {
    /// `scheme://host[:port]` for each name the dashboard is reached by,
    /// as browsers send it (lower case, default ports left out).
    origins: Vec<String>,
}

/// A `--origin` that is not an origin.
#[derive(Debug, thiserror::Error)]
#[error(
    "--origin {given:?} is not an origin: give the scheme, host and port users type, like https://migrations.example.com or http://10.0.0.5:7860 ({why})"
)]
pub struct BadOrigin {
    given: String,
    why: String,
}

impl Origins {
    /// The origins of a dashboard listening on `addr` (a loopback address
    /// is also reached as `localhost`; an unspecified one, like 0.0.0.0,
    /// by no name of its own), and those it is `also` reached by, through
    /// a proxy or another name.
    pub fn of(addr: SocketAddr, also: &[String]) -> Result<Self, BadOrigin> {
        let mut origins = Vec::new();
        if !addr.ip().is_unspecified() {
            origins.push(format!("http://{addr}"));
        }
        if addr.ip().is_loopback() {
            origins.push(format!("http://localhost:{}", addr.port()));
        }
        for given in also {
            origins.push(origin(given)?);
        }
        Ok(Self { origins })
    }

    /// Whether the dashboard has a name to be reached by (one listening
    /// on 0.0.0.0 has none until `--origin` gives one).
    pub fn is_empty(&self) -> bool {
        self.origins.is_empty()
    }

    /// Every origin answered.
    pub fn all(&self) -> &[String] {
        &self.origins
    }

    /// The main origin, for messages.
    pub fn main(&self) -> &str {
        self.origins.first().map_or("(no origin)", String::as_str)
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
        let Some(host) = host.map(str::to_ascii_lowercase) else {
            return false;
        };
        self.origins
            .iter()
            .filter_map(|o| o.split_once("://").map(|(_, h)| h))
            .any(|h| h == host)
    }
}

/// `given` as the origin a browser sends: `https://Host:443/` is
/// `https://host`.
fn origin(given: &str) -> Result<String, BadOrigin> {
    let bad = |why: &str| BadOrigin {
        given: given.to_string(),
        why: why.to_string(),
    };
    let url = url::Url::parse(given).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.path() != "/" || url.query().is_some() || !url.username().is_empty() {
        return Err(bad("no path, query or user"));
    }
    match url.origin() {
        o @ url::Origin::Tuple(..) => Ok(o.ascii_serialization()),
        url::Origin::Opaque(_) => Err(bad("it has no host")),
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
        let o = Origins::of("127.0.0.1:7000".parse().unwrap(), &[]).unwrap();
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
        let upper = headers(&[(header::HOST, "LOCALHOST:7000")]);
        assert_eq!(o.refuse(&Method::GET, &upper), None);
    }

    #[test]
    fn a_dashboard_on_every_address_answers_only_its_named_origins() {
        let any = "0.0.0.0:7000".parse().unwrap();
        assert!(Origins::of(any, &[]).unwrap().is_empty());
        let named = ["https://Migrations.Example.com:443/".to_string()];
        let o = Origins::of(any, &named).unwrap();
        assert_eq!(o.main(), "https://migrations.example.com");
        let via_proxy = headers(&[
            (header::HOST, "migrations.example.com"),
            (header::ORIGIN, "https://migrations.example.com"),
        ]);
        assert_eq!(o.refuse(&Method::POST, &via_proxy), None);
        let by_ip = headers(&[(header::HOST, "0.0.0.0:7000")]);
        assert!(o.refuse(&Method::GET, &by_ip).is_some());
        for bad in [
            "migrations.example.com",
            "ftp://x",
            "https://x/dash",
            "https://u@x",
        ] {
            let err = Origins::of(any, &[bad.to_string()]).unwrap_err();
            assert!(err.to_string().contains("is not an origin"), "{bad}: {err}");
        }
    }
}
