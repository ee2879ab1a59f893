//! `scan`: a namespace walked with `SCAN` (one server, or each cluster
//! master in turn), never `KEYS`.
//!
//! A server `SCAN` batch cannot be cut in the middle and resumed (its cursor
//! points between batches), so when a batch holds more keys than the page
//! has room for, the rest of the batch travels in the returned cursor and
//! opens the next page. The cursor is therefore bounded by one batch
//! (`COUNT` is the page limit, capped), not by the namespace.
//!
//! Cursor bytes: `1`, the node (`u16` length + `host:port`, empty for one
//! server), the node's `SCAN` cursor (`u64`), a flag "node finished", then
//! the carried storage keys (`u32` count + 32 bytes each).

use std::collections::BTreeSet;

use futures::stream::{self, StreamExt, TryStreamExt};
use redis::Value;

use session_store_core::{Error, Result, ScanCursor, ScanEntry, ScanPage, StorageKey};

use crate::core::Core;
use crate::index::{masters, FAN_OUT};
use crate::reply;
use crate::schema::{self, Keys};

const CURSOR_FORMAT: u8 = 1;
/// Largest `COUNT` hint sent (a batch's keys are carried in the cursor).
const MAX_COUNT: usize = 1000;
/// `SCAN` calls per page at most, so that a page over a sparse keyspace
/// (many keys of other prefixes) returns in bounded time, maybe empty.
const SCANS_PER_PAGE: usize = 16;

/// Where a walk stands.
#[derive(Debug, Default, PartialEq, Eq)]
struct State {
    /// `host:port` of the cluster master being walked; empty on one server.
    node: String,
    /// The `SCAN` cursor to send next on that node.
    server_cursor: u64,
    /// The node's `SCAN` has returned cursor 0.
    node_done: bool,
    /// Keys found but not yet returned.
    carried: Vec<StorageKey>,
}

impl State {
    fn encode(&self) -> ScanCursor {
        let mut out = Vec::with_capacity(16 + self.node.len() + 32 * self.carried.len());
        out.push(CURSOR_FORMAT);
        let node_len = u16::try_from(self.node.len()).expect("host:port fits in u16");
        out.extend_from_slice(&node_len.to_be_bytes());
        out.extend_from_slice(self.node.as_bytes());
        out.extend_from_slice(&self.server_cursor.to_be_bytes());
        out.push(u8::from(self.node_done));
        let n = u32::try_from(self.carried.len()).expect("a batch fits in u32");
        out.extend_from_slice(&n.to_be_bytes());
        for k in &self.carried {
            out.extend_from_slice(k.as_bytes());
        }
        ScanCursor::from_bytes(out)
    }

    fn decode(cursor: &ScanCursor) -> Result<State> {
        let bad = || Error::InvalidInput("scan cursor was not issued by this store");
        let mut b = cursor.as_bytes();
        let mut take = |n: usize| -> Result<&[u8]> {
            if b.len() < n {
                return Err(bad());
            }
            let (head, rest) = b.split_at(n);
            b = rest;
            Ok(head)
        };
        if take(1)? != [CURSOR_FORMAT] {
            return Err(bad());
        }
        let node_len = u16::from_be_bytes(take(2)?.try_into().expect("2 bytes")) as usize;
        let node = String::from_utf8(take(node_len)?.to_vec()).map_err(|_| bad())?;
        let server_cursor = u64::from_be_bytes(take(8)?.try_into().expect("8 bytes"));
        let node_done = match take(1)? {
            [0] => false,
            [1] => true,
            _ => return Err(bad()),
        };
        let n = u32::from_be_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
        let mut carried = Vec::with_capacity(n);
        for _ in 0..n {
            carried.push(StorageKey::try_from_slice(take(32)?).map_err(|_| bad())?);
        }
        if !b.is_empty() {
            return Err(bad());
        }
        Ok(State {
            node,
            server_cursor,
            node_done,
            carried,
        })
    }
}

fn node_name((host, port): &(String, u16)) -> String {
    format!("{host}:{port}")
}

/// One page of at most `limit` entries of `keys`' prefix (see the module docs).
pub(crate) async fn page(
    core: &Core,
    keys: &Keys,
    cursor: Option<&ScanCursor>,
    limit: usize,
) -> Result<ScanPage> {
    let mut state = match cursor {
        Some(c) => State::decode(c)?,
        None => State::default(),
    };
    // Cluster masters in a stable (sorted) order; the walk goes through them
    // in that order, by name, so a cursor survives a reconnect.
    let nodes = match core.cluster() {
        None => Vec::new(),
        Some(cluster) => masters(core, cluster).await?,
    };
    if cursor.is_none() {
        if let Some(first) = nodes.first() {
            state.node = node_name(first);
        }
    }
    let pattern = keys.entry_scan_pattern();
    let count = limit.clamp(10, MAX_COUNT);
    let mut entries = Vec::new();
    let mut seen = BTreeSet::new();
    let mut scans = 0;
    loop {
        // Carried keys first, as many as the page has room for.
        let room = limit - entries.len();
        let take: Vec<StorageKey> = state
            .carried
            .drain(..room.min(state.carried.len()))
            .filter(|k| seen.insert(*k))
            .collect();
        entries.extend(fetch(core, keys, take).await?);
        if entries.len() >= limit || !state.carried.is_empty() {
            break;
        }
        if state.node_done {
            let next = nodes.iter().map(node_name).find(|n| *n > state.node);
            match next {
                Some(n) if !nodes.is_empty() => {
                    state = State {
                        node: n,
                        ..State::default()
                    };
                }
                _ => return Ok(ScanPage::last(entries)),
            }
        }
        if scans == SCANS_PER_PAGE {
            break;
        }
        scans += 1;
        let (next, names) =
            scan_once(core, &state.node, state.server_cursor, &pattern, count).await?;
        let found: BTreeSet<StorageKey> = names
            .iter()
            .filter_map(|n| keys.parse_entry(n))
            .filter(|k| !seen.contains(k))
            .collect();
        state.carried = found.into_iter().collect();
        state.server_cursor = next;
        state.node_done = next == 0;
    }
    Ok(ScanPage {
        entries,
        next: Some(state.encode()),
    })
}

/// One `SCAN` call on `node` (`host:port`, or empty for the one server).
async fn scan_once(
    core: &Core,
    node: &str,
    cursor: u64,
    pattern: &str,
    count: usize,
) -> Result<(u64, Vec<Vec<u8>>)> {
    let cmd = redis::cmd("SCAN")
        .arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(count)
        .clone();
    let reply = core
        .bounded(async {
            match (core.cluster(), node.rsplit_once(':')) {
                (Some(mut c), Some((host, port))) => {
                    let port: u16 = port
                        .parse()
                        .map_err(|_| Error::InvalidInput("scan cursor names no node"))?;
                    Core::query_node(&mut c, cmd, host, port).await
                }
                (Some(_), None) => Err(Error::InvalidInput("scan cursor names no node")),
                (None, _) => core.query::<Value>(&cmd).await,
            }
        })
        .await?;
    reply::scan(reply)
}

/// The entries under `found`, in that order; keys gone since the `SCAN` are
/// left out.
async fn fetch(core: &Core, keys: &Keys, found: Vec<StorageKey>) -> Result<Vec<ScanEntry>> {
    let fetched: Vec<Option<ScanEntry>> = stream::iter(found)
        .map(|key| async move {
            let name = keys.entry(&key);
            let bytes = core
                .bounded(core.query::<Option<Vec<u8>>>(redis::cmd("GET").arg(&name)))
                .await?;
            bytes
                .map(|b| schema::decode(&b).map(|entry| ScanEntry { key, entry }))
                .transpose()
        })
        .buffered(FAN_OUT)
        .try_collect()
        .await?;
    Ok(fetched.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_strangers() {
        let s = State {
            node: "127.0.0.1:7001".into(),
            server_cursor: 12345,
            node_done: true,
            carried: vec![
                StorageKey::from_bytes([7; 32]),
                StorageKey::from_bytes([9; 32]),
            ],
        };
        assert_eq!(State::decode(&s.encode()).unwrap(), s);
        assert_eq!(
            State::decode(&State::default().encode()).unwrap(),
            State::default()
        );
        for bad in [
            vec![],
            vec![2],
            vec![1, 0],
            s.encode().as_bytes()[..20].to_vec(),
        ] {
            assert!(matches!(
                State::decode(&ScanCursor::from_bytes(bad)),
                Err(Error::InvalidInput(_))
            ));
        }
    }
}
