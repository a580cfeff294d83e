//! The checks in front of every console route, before authentication:
//!
//! - the request's host (`Host`, or the URI's authority in HTTP/2) must be
//!   one the console answers for, so a page on a DNS name rebound to the
//!   console's address cannot use it (`421`, `…#misdirected-request`);
//! - a state-changing request (any method but `GET`, `HEAD`, `OPTIONS`,
//!   `TRACE`) must not come from another site: `Sec-Fetch-Site`, when
//!   present, is `same-origin` or `none`, and `Origin`, when present, is the
//!   console's own (`403`, `…#cross-site-request`);
//! - a state-changing request must say `Content-Type: application/json`,
//!   body-less ones included, which an HTML form cannot send (`415`,
//!   `…#unsupported-media-type`).

use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::uri::Authority;
use http::{HeaderMap, HeaderValue, header};

use super::problems::ProblemKind;
use crate::error::ConfigError;
use crate::problem::Problem;

/// One host the console answers for: a name or address, and a port or any.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowedHost {
    /// Lower case; IPv6 addresses in brackets, as in a `Host` header.
    host: String,
    port: Option<u16>,
}

/// The hosts the console answers for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AllowedHosts(Vec<AllowedHost>);

impl AllowedHosts {
    /// `localhost`, `127.0.0.1` and `[::1]`, on any port.
    pub(super) fn loopback() -> Self {
        let any_port = |host: &str| AllowedHost {
            host: host.to_owned(),
            port: None,
        };
        Self(vec![
            any_port("localhost"),
            any_port("127.0.0.1"),
            any_port("[::1]"),
        ])
    }

    /// Reads `name`, `name:port`, `[v6]` or `[v6]:port` entries.
    pub(super) fn parse<I, T>(hosts: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        let list = hosts
            .into_iter()
            .map(|h| allowed_host(h.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        if list.is_empty() {
            return Err(invalid_hosts(
                "the list is empty, so every request would be refused; name at least one host"
                    .into(),
            ));
        }
        Ok(Self(list))
    }

    fn allows(&self, authority: &Authority) -> bool {
        self.0.iter().any(|allowed| {
            allowed.host.eq_ignore_ascii_case(authority.host())
                && allowed.port.is_none_or(|p| authority.port_u16() == Some(p))
        })
    }

    fn names(&self) -> String {
        let shown: Vec<String> = self
            .0
            .iter()
            .map(|a| match a.port {
                Some(p) => format!("{}:{p}", a.host),
                None => a.host.clone(),
            })
            .collect();
        shown.join(", ")
    }
}

fn invalid_hosts(reason: String) -> ConfigError {
    ConfigError::InvalidSetting {
        setting: "allowed_hosts",
        reason,
    }
}

fn allowed_host(entry: &str) -> Result<AllowedHost, ConfigError> {
    let authority = Authority::from_str(entry.trim())
        .ok()
        .filter(|a| !a.as_str().contains('@') && !a.host().is_empty())
        .ok_or_else(|| {
            invalid_hosts(format!(
                "`{entry}` is not a host name, an IP address (IPv6 in brackets) or either with `:port`"
            ))
        })?;
    Ok(AllowedHost {
        host: authority.host().to_ascii_lowercase(),
        port: authority.port_u16(),
    })
}

/// The middleware: refuses what the module docs list, passes the rest on.
pub(super) async fn check_request(
    State(hosts): State<Arc<AllowedHosts>>,
    req: Request,
    next: Next,
) -> Response {
    match check(&hosts, &req) {
        Ok(()) => next.run(req).await,
        Err(problem) => problem.into_response(),
    }
}

fn check(hosts: &AllowedHosts, req: &Request) -> Result<(), Problem> {
    let authority = check_host(hosts, req)?;
    if req.method().is_safe() {
        return Ok(());
    }
    check_same_origin(req.headers(), &authority)?;
    check_json(req.headers())
}

/// Shows at most 100 characters of a header value in a problem's detail.
fn shown(value: &HeaderValue) -> String {
    String::from_utf8_lossy(value.as_bytes())
        .chars()
        .take(100)
        .collect()
}

fn check_host(hosts: &AllowedHosts, req: &Request) -> Result<Authority, Problem> {
    let misdirected = |detail: String| ProblemKind::MisdirectedRequest.problem(detail);
    let authority =
        match req.headers().get(header::HOST) {
            Some(value) => value
                .to_str()
                .ok()
                .and_then(|v| Authority::from_str(v).ok())
                .filter(|a| !a.as_str().contains('@'))
                .ok_or_else(|| misdirected(format!("`Host: {}` is not a host", shown(value))))?,
            None => req.uri().authority().cloned().ok_or_else(|| {
                misdirected("the request names no host; send a `Host` header".into())
            })?,
        };
    if hosts.allows(&authority) {
        return Ok(authority);
    }
    let requested: String = authority.as_str().chars().take(100).collect();
    // The names it does answer for go to the operator's log only: a page on
    // a rebound name can read this answer.
    tracing::debug!(
        requested = %requested,
        allowed = %hosts.names(),
        "console request for a host it does not serve"
    );
    Err(misdirected(format!(
        "this console does not answer for `{requested}`; its operator can add the name to `Console::allowed_hosts`",
    )))
}

fn check_same_origin(headers: &HeaderMap, authority: &Authority) -> Result<(), Problem> {
    let cross_site = |detail: String| ProblemKind::CrossSiteRequest.problem(detail);
    if let Some(site) = headers.get("sec-fetch-site") {
        if site != "same-origin" && site != "none" {
            return Err(cross_site(format!(
                "`Sec-Fetch-Site: {}`: the console changes nothing for another site's page",
                shown(site)
            )));
        }
    }
    match headers.get(header::ORIGIN) {
        Some(origin) if !is_origin_of(origin, authority) => Err(cross_site(format!(
            "`Origin: {}` is not this console's origin (`{}`); the console changes nothing for another site's page",
            shown(origin),
            authority.as_str(),
        ))),
        _ => Ok(()),
    }
}

/// `http://<authority>` or `https://<authority>` (an opaque origin, `null`,
/// is no one's).
fn is_origin_of(origin: &HeaderValue, authority: &Authority) -> bool {
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    rest.is_some_and(|rest| rest.eq_ignore_ascii_case(authority.as_str()))
}

fn check_json(headers: &HeaderMap) -> Result<(), Problem> {
    let given = headers.get(header::CONTENT_TYPE);
    let essence = given
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    if essence.is_some_and(|e| e.eq_ignore_ascii_case("application/json")) {
        return Ok(());
    }
    let what = given.map_or_else(
        || "no `Content-Type`".to_owned(),
        |v| format!("`Content-Type: {}`", shown(v)),
    );
    Err(ProblemKind::UnsupportedMediaType.problem(format!(
        "{what}: every POST, PATCH and DELETE to the console says `Content-Type: application/json`, even without a body"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authority(s: &str) -> Authority {
        Authority::from_str(s).unwrap()
    }

    #[test]
    fn loopback_names_are_allowed_on_any_port_and_nothing_else() {
        let hosts = AllowedHosts::loopback();
        for ok in ["localhost", "LocalHost:8080", "127.0.0.1:1", "[::1]:443"] {
            assert!(hosts.allows(&authority(ok)), "{ok}");
        }
        for refused in [
            "evil.example",
            "127.0.0.2",
            "localhost.evil.example:80",
            "0.0.0.0",
        ] {
            assert!(!hosts.allows(&authority(refused)), "{refused}");
        }
    }

    #[test]
    fn configured_hosts_keep_their_port() {
        let hosts = AllowedHosts::parse(["Console.Example.com", "admin.internal:8443"]).unwrap();
        assert!(hosts.allows(&authority("console.example.com:9000")));
        assert!(hosts.allows(&authority("admin.internal:8443")));
        assert!(!hosts.allows(&authority("admin.internal:8444")));
        assert!(!hosts.allows(&authority("localhost")));
    }

    #[test]
    fn unusable_host_lists_are_configuration_errors() {
        for bad in [&["user@host"][..], &["a b"], &["http://x"], &[":80"], &[]] {
            let err = AllowedHosts::parse(bad.iter()).unwrap_err();
            assert!(
                matches!(
                    err,
                    ConfigError::InvalidSetting {
                        setting: "allowed_hosts",
                        ..
                    }
                ),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn only_the_consoles_own_origin_is_its_origin() {
        let a = authority("localhost:8080");
        let origin = |s: &'static str| HeaderValue::from_static(s);
        assert!(is_origin_of(&origin("http://localhost:8080"), &a));
        assert!(is_origin_of(&origin("https://LOCALHOST:8080"), &a));
        for other in [
            "null",
            "http://localhost:8081",
            "http://evil.example",
            "http://localhost:8080.evil.example",
            "ftp://localhost:8080",
        ] {
            assert!(!is_origin_of(&origin(other), &a), "{other}");
        }
    }
}
