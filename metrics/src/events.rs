//! [`MetricsEvents`]: the manager's lifecycle events as counters.

use metrics::counter;
use session_store_core::{Event, EventSink, ExpiredBy, RotateReason};

/// An [`EventSink`] that counts every event in
/// `session_store_events_total{event=…}`; rotations also carry
/// `reason` (`login`, `privilege_change`, `renewal`), corrupted entries
/// `damage` (`undecodable`, `undecryptable`), expiries on read `deadline`
/// (`idle`, `absolute`), context changes `action`; persistent logins count
/// as `persistent_issued`, `persistent_used`, `persistent_grace_joined`,
/// `persistent_reuse` (alert on it: a stolen remember-me or refresh token)
/// and `persistent_revoked`. Keys, client addresses and
/// user ids are never labels.
#[derive(Debug, Default, Clone, Copy)]
pub struct MetricsEvents;

impl EventSink for MetricsEvents {
    fn event(&self, event: &Event) {
        let name = "session_store_events_total";
        match event {
            Event::Created { .. } => counter!(name, "event" => "created").increment(1),
            Event::Rotated { reason, .. } => {
                let reason = match reason {
                    RotateReason::Login { .. } => "login",
                    RotateReason::PrivilegeChange => "privilege_change",
                    RotateReason::Renewal => "renewal",
                };
                counter!(name, "event" => "rotated", "reason" => reason).increment(1)
            }
            Event::ForwardFollowed { .. } => {
                counter!(name, "event" => "forward_followed").increment(1)
            }
            Event::Deleted { .. } => counter!(name, "event" => "deleted").increment(1),
            Event::Revoked { .. } => counter!(name, "event" => "revoked").increment(1),
            Event::UserSessionsRevoked { count } => {
                counter!(name, "event" => "user_sessions_revoked").increment(*count)
            }
            Event::Evicted { .. } => counter!(name, "event" => "evicted").increment(1),
            Event::LookupMiss { .. } => counter!(name, "event" => "lookup_miss").increment(1),
            Event::Corrupted { damage, .. } => {
                counter!(name, "event" => "corrupted", "damage" => damage.label()).increment(1)
            }
            Event::InvalidToken => counter!(name, "event" => "invalid_token").increment(1),
            Event::DecryptFailed { .. } => counter!(name, "event" => "decrypt_failed").increment(1),
            Event::CleanedUp { removed } => {
                counter!(name, "event" => "cleaned_up").increment(*removed)
            }
            Event::Expired { deadline, .. } => {
                let deadline = match deadline {
                    ExpiredBy::Idle => "idle",
                    ExpiredBy::Absolute => "absolute",
                };
                counter!(name, "event" => "expired", "deadline" => deadline).increment(1)
            }
            Event::ContextChanged { action, .. } => {
                counter!(name, "event" => "context_changed", "action" => *action).increment(1)
            }
            Event::PersistentIssued { .. } => {
                counter!(name, "event" => "persistent_issued").increment(1)
            }
            Event::PersistentUsed { .. } => {
                counter!(name, "event" => "persistent_used").increment(1)
            }
            Event::PersistentGraceJoined { .. } => {
                counter!(name, "event" => "persistent_grace_joined").increment(1)
            }
            Event::PersistentReuse { .. } => {
                counter!(name, "event" => "persistent_reuse").increment(1)
            }
            Event::PersistentRevoked { .. } => {
                counter!(name, "event" => "persistent_revoked").increment(1)
            }
            _ => counter!(name, "event" => "other").increment(1),
        }
    }
}
