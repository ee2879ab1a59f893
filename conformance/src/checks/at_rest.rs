//! At-rest checks through the optional dump hook: what a stolen copy of the
//! store would reveal.

use std::time::Duration;

use session_store_core::{ClientMeta, Policy, RotateReason, SessionToken};

use super::Ctx;
use crate::fixtures::hex;

/// The sorted raw dump of the namespace, or `None` without a dump hook.
pub(crate) async fn snapshot(ctx: &Ctx) -> Option<Vec<Vec<u8>>> {
    let dump = ctx.dump.as_ref()?;
    let mut values = dump().await.expect("dump hook");
    values.sort();
    Some(values)
}

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every spelling of `needle` a store might hold: raw, lowercase and
/// uppercase hex.
pub(crate) fn spellings(needle: &[u8]) -> Vec<Vec<u8>> {
    let lower = hex(needle);
    let upper = lower.to_uppercase();
    vec![needle.to_vec(), lower.into_bytes(), upper.into_bytes()]
}

/// Every spelling of a token: its text (base64url), standard base64 with
/// and without padding, and its 32 raw bytes.
fn token_needles(token: &SessionToken) -> Vec<(String, Vec<u8>)> {
    let text = token.expose_secret().to_owned();
    let standard: String = text
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    vec![
        ("token text".into(), text.clone().into_bytes()),
        (
            "token as standard base64".into(),
            standard.clone().into_bytes(),
        ),
        (
            "token as padded base64".into(),
            format!("{standard}=").into_bytes(),
        ),
        ("token bytes".into(), token.secret_bytes().to_vec()),
    ]
}

/// Neither tokens (in any spelling) nor, under encryption, session data and
/// client metadata appear in any stored byte string. Covers plain sessions,
/// logged-in sessions and renewal forwarders (which seal the successor's
/// token). Needs the dump hook; without one it is skipped.
pub async fn at_rest_no_token_or_plaintext(ctx: Ctx) {
    if ctx.dump.is_none() {
        ctx.skip("no dump hook (TestStore::with_dump)");
        return;
    }
    let policy = Policy {
        renewal_grace: Duration::from_secs(120),
        ..Policy::default()
    };
    let (m, clock) = super::manager::manager(&ctx, policy);
    let tag = hex(&SessionToken::generate().secret_bytes()[..6]);
    let marker = format!("PLAINTEXT-MARKER-{tag}");
    let ip = format!("203.0.113.{}", 1 + (tag.as_bytes()[0] % 200));
    let agent = format!("Agent-{tag}");
    let meta = ClientMeta {
        ip: Some(ip.clone()),
        user_agent: Some(agent.clone()),
        label: None,
    };

    let mut tokens = Vec::new();
    let mut s = m
        .create(format!("cart {marker} end").into_bytes(), meta.clone())
        .await
        .expect("create");
    tokens.push(s.token().clone());
    let anonymous = m
        .create(marker.clone().into_bytes(), meta)
        .await
        .expect("create");
    tokens.push(anonymous.token().clone());
    m.rotate(
        &mut s,
        RotateReason::Login {
            user_id: "alice".into(),
        },
    )
    .await
    .expect("login");
    tokens.push(s.token().clone());
    clock.advance(Duration::from_secs(60));
    m.rotate(&mut s, RotateReason::Renewal)
        .await
        .expect("renewal");
    tokens.push(s.token().clone());

    let dump = snapshot(&ctx).await.expect("dump hook");
    assert!(!dump.is_empty(), "the dump hook returned nothing");

    let mut needles: Vec<(String, Vec<u8>)> = tokens.iter().flat_map(token_needles).collect();
    let secrets = [
        (
            "session data marker".to_owned(),
            marker.clone().into_bytes(),
        ),
        ("client IP".to_owned(), ip.into_bytes()),
        ("user agent".to_owned(), agent.into_bytes()),
    ];
    if ctx.encrypts {
        needles.extend(secrets.iter().cloned());
    } else {
        // Sanity of the hook itself: in plain mode the data is stored as
        // given, so a hook that shows every stored byte string shows it.
        let seen = dump
            .iter()
            .any(|v| spellings(&secrets[0].1).iter().any(|n| contains(v, n)));
        assert!(
            seen,
            "the dump hook does not expose session data: it must return every raw value"
        );
    }
    for (what, needle) in &needles {
        for spelling in spellings(needle) {
            for value in &dump {
                assert!(
                    !contains(value, &spelling),
                    "{what} found at rest in a stored value of {} bytes",
                    value.len()
                );
            }
        }
    }
}
