//! Contextual signals: the client IP and user agent recorded at login,
//! compared with each request that loads the session.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::header::USER_AGENT;
use axum::http::request::Parts;
use axum::http::HeaderName;
use session_store_core::ClientMeta;

/// Longest user agent kept in session metadata (longer ones are cut at a
/// character boundary).
pub const MAX_USER_AGENT_BYTES: usize = 256;

/// What a change of client network or user agent does to a logged-in session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextPolicy {
    /// Nothing (the change is still logged and passed to the hook).
    Ignore,
    /// The session stays; [`Session::context_change`](crate::Session::context_change)
    /// reports the change for the handler to act on (ask for the password again).
    Flag,
    /// The session is deleted server-side and its cookie cleared: the
    /// request continues without a session and the user must log in again.
    RequireReauth,
}

/// How much of two IP addresses must agree to count as the same network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpGranularity {
    /// Prefix length for IPv4 (0..=32). Default 24.
    pub v4_prefix: u8,
    /// Prefix length for IPv6 (0..=128). Default 64.
    pub v6_prefix: u8,
}

impl Default for IpGranularity {
    fn default() -> Self {
        IpGranularity {
            v4_prefix: 24,
            v6_prefix: 64,
        }
    }
}

impl IpGranularity {
    /// Exact addresses (/32 and /128).
    pub fn exact() -> Self {
        IpGranularity {
            v4_prefix: 32,
            v6_prefix: 128,
        }
    }

    /// Whether `a` and `b` are in the same network at this granularity.
    /// Addresses of different families never match; text that is not an
    /// address matches only itself.
    pub fn same_network(&self, a: &str, b: &str) -> bool {
        match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
            (Ok(IpAddr::V4(x)), Ok(IpAddr::V4(y))) => {
                prefix_eq(&x.octets(), &y.octets(), self.v4_prefix)
            }
            (Ok(IpAddr::V6(x)), Ok(IpAddr::V6(y))) => {
                prefix_eq(&x.octets(), &y.octets(), self.v6_prefix)
            }
            (Ok(_), Ok(_)) => false,
            _ => a == b,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let bits = usize::from(bits).min(a.len() * 8);
    let (whole, rest) = (bits / 8, bits % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    a[whole] & mask == b[whole] & mask
}

/// Where the client IP is taken from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ClientIpSource {
    /// The TCP peer (`ConnectInfo<SocketAddr>`: serve with
    /// `into_make_service_with_connect_info::<SocketAddr>()`). The default.
    #[default]
    Connection,
    /// The last (rightmost) address of the last instance of this header
    /// (`x-forwarded-for`), as appended by the one reverse proxy in front of
    /// the application; the connection's address when the header is absent
    /// or unparsable. Configure only behind a proxy that sets the header:
    /// otherwise clients choose their own IP.
    TrustedHeader(HeaderName),
}

/// A logged-in session seen from a different client context than at login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextChange {
    /// The IP is outside the login's network (at the configured granularity).
    pub ip_changed: bool,
    /// The user agent differs from the login's.
    pub user_agent_changed: bool,
    /// Short hash of the session's storage key (for logs; never the token).
    pub key: String,
}

/// The client IP of a request, as `source` says.
pub(crate) fn client_ip(parts: &Parts, source: &ClientIpSource) -> Option<IpAddr> {
    let connection = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    match source {
        ClientIpSource::Connection => connection,
        ClientIpSource::TrustedHeader(name) => parts
            .headers
            .get_all(name)
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
            .or(connection),
    }
}

/// The client IP (see [`client_ip`]) and user agent of a request.
pub(crate) fn client_meta(parts: &Parts, ip: Option<IpAddr>) -> ClientMeta {
    let user_agent = parts
        .headers
        .get(USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .map(|ua| truncate(&ua, MAX_USER_AGENT_BYTES));
    ClientMeta {
        ip: ip.map(|ip| ip.to_string()),
        user_agent,
        label: None,
    }
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

impl ContextPolicy {
    /// The `action` of [`Event::ContextChanged`](session_store_core::Event::ContextChanged).
    pub(crate) fn event_action(self) -> &'static str {
        match self {
            ContextPolicy::Ignore => "ignore",
            ContextPolicy::Flag => "flag",
            ContextPolicy::RequireReauth => "end",
        }
    }
}

/// Compares the login's metadata with this request's.
pub(crate) fn compare(
    at_login: &ClientMeta,
    now: &ClientMeta,
    granularity: IpGranularity,
    key: String,
) -> Option<ContextChange> {
    let ip_changed = match (&at_login.ip, &now.ip) {
        (Some(a), Some(b)) => !granularity.same_network(a, b),
        _ => false,
    };
    let user_agent_changed = at_login.user_agent != now.user_agent;
    (ip_changed || user_agent_changed).then_some(ContextChange {
        ip_changed,
        user_agent_changed,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn granularity() {
        let g = IpGranularity::default();
        assert!(g.same_network("192.0.2.1", "192.0.2.254"));
        assert!(!g.same_network("192.0.2.1", "192.0.3.1"));
        assert!(g.same_network("2001:db8:1:2::1", "2001:db8:1:2:ffff::9"));
        assert!(!g.same_network("2001:db8:1:2::1", "2001:db8:1:3::1"));
        assert!(!g.same_network("192.0.2.1", "::ffff:192.0.2.1"));
        let e = IpGranularity::exact();
        assert!(!e.same_network("192.0.2.1", "192.0.2.2"));
        assert!(e.same_network("192.0.2.1", "192.0.2.1"));
        let odd = IpGranularity {
            v4_prefix: 20,
            v6_prefix: 0,
        };
        assert!(odd.same_network("10.0.15.1", "10.0.0.1"));
        assert!(!odd.same_network("10.0.16.1", "10.0.0.1"));
        assert!(odd.same_network("::1", "2001:db8::1"));
    }

    #[test]
    fn compare_reports_what_changed() {
        let login = ClientMeta {
            ip: Some("192.0.2.1".into()),
            user_agent: Some("A".into()),
            label: None,
        };
        let g = IpGranularity::default();
        assert_eq!(compare(&login, &login, g, "k".into()), None);
        let moved = ClientMeta {
            ip: Some("198.51.100.1".into()),
            ..login.clone()
        };
        let c = compare(&login, &moved, g, "k".into()).unwrap();
        assert!(c.ip_changed && !c.user_agent_changed);
        let ua = ClientMeta {
            user_agent: Some("B".into()),
            ..login.clone()
        };
        let c = compare(&login, &ua, g, "k".into()).unwrap();
        assert!(!c.ip_changed && c.user_agent_changed);
        assert_eq!(truncate("héllo", 2), "h");
    }
}
