//! Rate limits on creating anonymous sessions: a token bucket per client
//! network and one for the whole layer, in memory, with a bounded table.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use session_store_core::{Error, Result};

/// A token bucket: up to `burst` events at once, then one more per `every`
/// (the bucket refills continuously, one token per `every`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    burst: u32,
    every: Duration,
}

impl Rate {
    /// `burst` at once, then one per `every`. Checked by
    /// [`AnonymousLimit::validate`] (a zero burst or an interval under one
    /// millisecond is refused).
    pub fn new(burst: u32, every: Duration) -> Self {
        Rate { burst, every }
    }
    /// The bucket size.
    pub fn burst(&self) -> u32 {
        self.burst
    }
    /// The refill interval (one token each).
    pub fn every(&self) -> Duration {
        self.every
    }
    fn every_ms(&self) -> i64 {
        i64::try_from(self.every.as_millis()).unwrap_or(i64::MAX)
    }
    fn validate(&self, what: &str) -> Result<()> {
        if self.burst == 0 {
            return Err(Error::Config(format!(
                "anonymous_limit {what}: burst must be at least 1"
            )));
        }
        if self.every < Duration::from_millis(1) {
            return Err(Error::Config(format!(
                "anonymous_limit {what}: the refill interval must be at least 1 ms"
            )));
        }
        Ok(())
    }
}

/// How many anonymous sessions may be created, per client network and in
/// total ([`SessionConfig::with_anonymous_limit`](crate::SessionConfig::with_anonymous_limit)).
///
/// Only the creation of an anonymous session is counted: the first write of
/// a visitor without a session ([`Session::insert`](crate::Session::insert),
/// [`Session::update`](crate::Session::update), flash values, ...). Writes
/// to an existing session and [`Session::login`](crate::Session::login)
/// (which creates a logged-in session) are never limited. A creation over
/// the limit stores nothing and fails with
/// [`SessionError::AnonymousRateLimited`](crate::SessionError::AnonymousRateLimited)
/// (`429` when the handler returns it).
///
/// - **Per client**: one bucket per IPv4 address and per IPv6 /64 (one
///   subscriber's allocation), the address taken as
///   [`SessionConfig::with_client_ip`](crate::SessionConfig::with_client_ip)
///   says. Requests without a known address share one bucket.
/// - **Global**: one bucket for the whole layer. With it, the number of
///   live anonymous sessions stays below about `burst + idle_timeout / every`
///   whatever the number of clients.
/// - **Bounded memory**: at most [`AnonymousLimit::max_clients`] client
///   buckets are kept. A bucket that has refilled completely is dropped when
///   room is needed (it means the same as no bucket); while the table is
///   full of clients still being limited, every further client shares one
///   overflow bucket with the per-client rate, so many addresses buy an
///   attacker no more than one more client's worth.
///
/// Time comes from the manager's clock (inject a
/// [`ManualClock`](session_store_core::ManualClock) in tests). The buckets
/// live in the layer's memory: each instance behind a load balancer counts
/// its own requests.
///
/// Default: 20 per client, refilling one per 30 seconds; no global rate;
/// 10 000 client buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnonymousLimit {
    per_client: Option<Rate>,
    global: Option<Rate>,
    max_clients: usize,
}

impl Default for AnonymousLimit {
    fn default() -> Self {
        AnonymousLimit {
            per_client: Some(Rate::new(20, Duration::from_secs(30))),
            global: None,
            max_clients: 10_000,
        }
    }
}

impl AnonymousLimit {
    /// The per-client rate (`None`: no per-client limit).
    pub fn with_per_client(mut self, rate: Option<Rate>) -> Self {
        self.per_client = rate;
        self
    }
    /// The rate for the whole layer (`None`: no global limit).
    pub fn with_global(mut self, rate: Option<Rate>) -> Self {
        self.global = rate;
        self
    }
    /// Most client buckets kept in memory (at least 1).
    pub fn with_max_clients(mut self, n: usize) -> Self {
        self.max_clients = n;
        self
    }
    /// The per-client rate.
    pub fn per_client(&self) -> Option<Rate> {
        self.per_client
    }
    /// The global rate.
    pub fn global(&self) -> Option<Rate> {
        self.global
    }
    /// Most client buckets kept in memory.
    pub fn max_clients(&self) -> usize {
        self.max_clients
    }

    /// Checks the rates and the table size.
    ///
    /// # Errors
    /// [`Error::Config`] naming the field: a zero burst, a refill interval
    /// under one millisecond, a zero `max_clients`.
    pub fn validate(&self) -> Result<()> {
        if let Some(r) = &self.per_client {
            r.validate("per_client")?;
        }
        if let Some(r) = &self.global {
            r.validate("global")?;
        }
        if self.max_clients == 0 {
            return Err(Error::Config(
                "anonymous_limit max_clients: must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// A client's bucket key: the IPv4 address or the IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ClientKey {
    V4([u8; 4]),
    V6([u8; 8]),
}

fn client_key(ip: IpAddr) -> ClientKey {
    match ip {
        IpAddr::V4(v4) => ClientKey::V4(v4.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => ClientKey::V4(v4.octets()),
            None => {
                let o = v6.octets();
                ClientKey::V6([o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]])
            }
        },
    }
}

/// Generic cell rate algorithm: `tat` is the theoretical arrival time (ms)
/// of the next event; a bucket with `tat <= now` is full. Returns the new
/// `tat` when the event is admitted.
fn admit(tat: i64, now: i64, rate: Rate) -> Option<i64> {
    let every = rate.every_ms();
    let tolerance = every.saturating_mul(i64::from(rate.burst) - 1);
    let t = tat.max(now);
    (t.saturating_sub(now) <= tolerance).then(|| t.saturating_add(every))
}

struct Buckets {
    clients: HashMap<ClientKey, i64>,
    overflow: i64,
    global: i64,
    /// No bucket of `clients` is full before this time (no point pruning).
    next_prune: i64,
}

enum Slot {
    Client(ClientKey),
    Overflow,
}

/// The live limiter of one layer.
pub(crate) struct Limiter {
    config: AnonymousLimit,
    buckets: Mutex<Buckets>,
}

impl Limiter {
    pub(crate) fn new(config: AnonymousLimit) -> Self {
        Limiter {
            config,
            buckets: Mutex::new(Buckets {
                clients: HashMap::new(),
                overflow: i64::MIN,
                global: i64::MIN,
                next_prune: i64::MIN,
            }),
        }
    }

    /// Takes one token for a new anonymous session of `ip` at `now` (ms);
    /// `false` (and nothing taken) when a bucket is empty.
    pub(crate) fn try_acquire(&self, ip: Option<IpAddr>, now: i64) -> bool {
        let mut b = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let client = match self.config.per_client {
            None => None,
            Some(rate) => {
                let slot = match ip.map(client_key) {
                    Some(k) if b.clients.contains_key(&k) => Slot::Client(k),
                    Some(k) => {
                        if b.clients.len() >= self.config.max_clients && now >= b.next_prune {
                            let mut next = i64::MAX;
                            b.clients.retain(|_, tat| {
                                let keep = *tat > now;
                                if keep {
                                    next = next.min(*tat);
                                }
                                keep
                            });
                            b.next_prune = next;
                        }
                        if b.clients.len() < self.config.max_clients {
                            Slot::Client(k)
                        } else {
                            Slot::Overflow
                        }
                    }
                    None => Slot::Overflow,
                };
                let tat = match &slot {
                    Slot::Client(k) => b.clients.get(k).copied().unwrap_or(i64::MIN),
                    Slot::Overflow => b.overflow,
                };
                match admit(tat, now, rate) {
                    Some(t) => Some((slot, t)),
                    None => return false,
                }
            }
        };
        let global = match self.config.global {
            None => None,
            Some(rate) => match admit(b.global, now, rate) {
                Some(t) => Some(t),
                None => return false,
            },
        };
        if let Some(t) = global {
            b.global = t;
        }
        match client {
            Some((Slot::Client(k), t)) => {
                b.clients.insert(k, t);
            }
            Some((Slot::Overflow, t)) => b.overflow = t,
            None => {}
        }
        true
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets.lock().unwrap().clients.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn a_bucket_allows_its_burst_then_one_per_interval() {
        let l = Limiter::new(
            AnonymousLimit::default().with_per_client(Some(Rate::new(3, Duration::from_secs(10)))),
        );
        let t0 = 1_000_000;
        assert!((0..3).all(|_| l.try_acquire(ip("192.0.2.1"), t0)));
        assert!(!l.try_acquire(ip("192.0.2.1"), t0));
        assert!(!l.try_acquire(ip("192.0.2.1"), t0 + 9_999));
        assert!(l.try_acquire(ip("192.0.2.1"), t0 + 10_000));
        assert!(!l.try_acquire(ip("192.0.2.1"), t0 + 10_000));
        assert!(l.try_acquire(ip("192.0.2.2"), t0), "another client");
        // One IPv6 /64 is one client; an IPv4-mapped address is the IPv4 one.
        assert!((0..3).all(|i| l.try_acquire(ip(&format!("2001:db8:0:1::{i}")), t0)));
        assert!(!l.try_acquire(ip("2001:db8:0:1:ffff::1"), t0));
        assert!(l.try_acquire(ip("2001:db8:0:2::1"), t0));
        assert!(!l.try_acquire(ip("::ffff:192.0.2.1"), t0));
        // A full refill: the whole burst again, never more.
        let later = t0 + 1_000_000;
        assert!((0..3).all(|_| l.try_acquire(ip("192.0.2.1"), later)));
        assert!(!l.try_acquire(ip("192.0.2.1"), later));
    }

    #[test]
    fn the_global_rate_holds_across_clients_and_refusals_take_nothing() {
        let l = Limiter::new(
            AnonymousLimit::default()
                .with_per_client(Some(Rate::new(2, Duration::from_secs(60))))
                .with_global(Some(Rate::new(3, Duration::from_secs(1)))),
        );
        let t0 = 0;
        assert!(l.try_acquire(ip("192.0.2.1"), t0));
        assert!(l.try_acquire(ip("192.0.2.1"), t0));
        assert!(!l.try_acquire(ip("192.0.2.1"), t0), "per client");
        assert!(l.try_acquire(ip("192.0.2.2"), t0));
        assert!(!l.try_acquire(ip("192.0.2.3"), t0), "global");
        // The global refusal took nothing from 192.0.2.3's bucket.
        assert!(l.try_acquire(ip("192.0.2.3"), t0 + 1_000));
        assert!(l.try_acquire(ip("192.0.2.3"), t0 + 2_000));
        assert!(!l.try_acquire(ip("192.0.2.3"), t0 + 3_000));
    }

    #[test]
    fn the_client_table_is_bounded() {
        let l = Limiter::new(
            AnonymousLimit::default()
                .with_per_client(Some(Rate::new(1, Duration::from_secs(60))))
                .with_max_clients(4),
        );
        let t0 = 0;
        for i in 0..4 {
            assert!(l.try_acquire(ip(&format!("10.0.0.{i}")), t0));
        }
        // Full of clients still limited: new addresses share one overflow bucket.
        assert!(l.try_acquire(ip("10.0.1.1"), t0));
        for i in 0..1000 {
            assert!(!l.try_acquire(ip(&format!("10.1.{}.{}", i / 256, i % 256)), t0));
        }
        assert_eq!(l.tracked(), 4);
        assert!(!l.try_acquire(None, t0), "no address: the overflow bucket");
        // Once the buckets have refilled they make room.
        assert!(l.try_acquire(ip("10.2.0.1"), t0 + 60_000));
        assert_eq!(l.tracked(), 1);
    }

    #[test]
    fn validation() {
        AnonymousLimit::default().validate().unwrap();
        let bad = [
            AnonymousLimit::default().with_per_client(Some(Rate::new(0, Duration::from_secs(1)))),
            AnonymousLimit::default().with_global(Some(Rate::new(1, Duration::ZERO))),
            AnonymousLimit::default().with_max_clients(0),
        ];
        for b in bad {
            assert!(matches!(b.validate(), Err(Error::Config(_))), "{b:?}");
        }
        // Huge values saturate instead of overflowing.
        let l = Limiter::new(
            AnonymousLimit::default().with_per_client(Some(Rate::new(u32::MAX, Duration::MAX))),
        );
        assert!(l.try_acquire(ip("192.0.2.1"), i64::MAX - 1));
        assert!(l.try_acquire(ip("192.0.2.1"), i64::MIN));
    }
}
