//! Contextual signals: the client IP and user agent recorded at login,
//! compared with each request that loads the session.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::header::USER_AGENT;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
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
        match b.parse::<IpAddr>() {
            Ok(b) => self.same_network_as(a, b),
            // Not an address: equal text only (an address never spells it).
            Err(_) => a == b,
        }
    }
}

impl IpGranularity {
    /// [`IpGranularity::same_network`] with the second address parsed
    /// (text that is not an address never matches one).
    fn same_network_as(&self, a: &str, b: IpAddr) -> bool {
        match (a.parse::<IpAddr>(), b) {
            (Ok(IpAddr::V4(x)), IpAddr::V4(y)) => {
                prefix_eq(&x.octets(), &y.octets(), self.v4_prefix)
            }
            (Ok(IpAddr::V6(x)), IpAddr::V6(y)) => {
                prefix_eq(&x.octets(), &y.octets(), self.v6_prefix)
            }
            _ => false,
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
    meta_of(ip, parts.headers.get(USER_AGENT))
}

/// The request's `User-Agent` header (for [`meta_of`]; a cheap reference
/// count, not a copy of the text).
pub(crate) fn user_agent_header(parts: &Parts) -> Option<HeaderValue> {
    parts.headers.get(USER_AGENT).cloned()
}

/// Client metadata from the client IP and the `User-Agent` header.
pub(crate) fn meta_of(ip: Option<IpAddr>, user_agent: Option<&HeaderValue>) -> ClientMeta {
    ClientMeta {
        ip: ip.map(|ip| ip.to_string()),
        user_agent: user_agent.map(|v| user_agent_text(v).into_owned()),
        label: None,
    }
}

/// The user agent as recorded: lossy UTF-8, cut to [`MAX_USER_AGENT_BYTES`]
/// at a character boundary (borrowed unless the header is not UTF-8).
fn user_agent_text(v: &HeaderValue) -> Cow<'_, str> {
    match String::from_utf8_lossy(v.as_bytes()) {
        Cow::Borrowed(s) => Cow::Borrowed(truncated(s, MAX_USER_AGENT_BYTES)),
        Cow::Owned(s) => Cow::Owned(truncated(&s, MAX_USER_AGENT_BYTES).to_owned()),
    }
}

fn truncated(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
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

/// Compares the login's metadata with this request's client IP and
/// `User-Agent` header (as [`meta_of`] would record them, without copying
/// them); `key` names the session in the change, computed only when there
/// is one.
pub(crate) fn compare(
    at_login: &ClientMeta,
    ip: Option<IpAddr>,
    user_agent: Option<&HeaderValue>,
    granularity: IpGranularity,
    key: impl FnOnce() -> String,
) -> Option<ContextChange> {
    let ip_changed = match (&at_login.ip, ip) {
        (Some(a), Some(b)) => !granularity.same_network_as(a, b),
        _ => false,
    };
    let user_agent_changed =
        at_login.user_agent.as_deref() != user_agent.map(user_agent_text).as_deref();
    (ip_changed || user_agent_changed).then(|| ContextChange {
        ip_changed,
        user_agent_changed,
        key: key(),
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
        let here: Option<IpAddr> = "192.0.2.1".parse().ok();
        let a = HeaderValue::from_static("A");
        assert_eq!(compare(&login, here, Some(&a), g, || "k".into()), None);
        let moved = "198.51.100.1".parse().ok();
        let c = compare(&login, moved, Some(&a), g, || "k".into()).unwrap();
        assert!(c.ip_changed && !c.user_agent_changed);
        assert_eq!(c.key, "k");
        let b = HeaderValue::from_static("B");
        let c = compare(&login, here, Some(&b), g, || "k".into()).unwrap();
        assert!(!c.ip_changed && c.user_agent_changed);
        let c = compare(&login, here, None, g, || "k".into()).unwrap();
        assert!(
            !c.ip_changed && c.user_agent_changed,
            "a user agent removed is a change"
        );
        assert_eq!(truncated("héllo", 2), "h");
    }

    /// Comparing with the request's IP and header gives what comparing with
    /// the metadata [`meta_of`] records for them gives (same network at the
    /// granularity, user agents equal as recorded: lossy, truncated).
    #[test]
    fn compare_agrees_with_recorded_meta() {
        let long = "x".repeat(MAX_USER_AGENT_BYTES + 10);
        let uas: Vec<Option<HeaderValue>> = vec![
            None,
            Some(HeaderValue::from_static("A")),
            Some(HeaderValue::from_bytes(b"caf\xe9").unwrap()),
            Some(HeaderValue::from_str(&long).unwrap()),
            Some(HeaderValue::from_str(&"x".repeat(MAX_USER_AGENT_BYTES)).unwrap()),
        ];
        let ips: Vec<Option<IpAddr>> = vec![
            None,
            "192.0.2.1".parse().ok(),
            "192.0.2.200".parse().ok(),
            "2001:db8::1".parse().ok(),
        ];
        let stored_ips = [
            None,
            Some("192.0.2.9"),
            Some("2001:db8::2"),
            Some("not an ip"),
        ];
        for g in [IpGranularity::default(), IpGranularity::exact()] {
            for stored_ip in stored_ips {
                for stored_ua in &uas {
                    let mut login = meta_of(None, stored_ua.as_ref());
                    login.ip = stored_ip.map(str::to_owned);
                    for ip in &ips {
                        for ua in &uas {
                            let now = meta_of(*ip, ua.as_ref());
                            let ip_changed = match (&login.ip, &now.ip) {
                                (Some(a), Some(b)) => !g.same_network(a, b),
                                _ => false,
                            };
                            let ua_changed = login.user_agent != now.user_agent;
                            let got = compare(&login, *ip, ua.as_ref(), g, || "k".into());
                            assert_eq!(
                                got.map(|c| (c.ip_changed, c.user_agent_changed)),
                                (ip_changed || ua_changed).then_some((ip_changed, ua_changed)),
                                "{stored_ip:?} {ip:?} {ua:?}"
                            );
                        }
                    }
                }
            }
        }
        assert_eq!(
            meta_of(None, Some(&HeaderValue::from_str(&long).unwrap()))
                .user_agent
                .map(|u| u.len()),
            Some(MAX_USER_AGENT_BYTES)
        );
    }
}
