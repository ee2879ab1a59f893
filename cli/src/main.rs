//! The `session-store` command (see the crate docs for commands and exit codes).
#![forbid(unsafe_code)]

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use session_store_cli::{keys, ops, BackendUrl, Readiness, Store};
use session_store_core::{
    Encrypted, Error, Lookup, ScanCursor, SessionBackend, SessionHandle, Timestamp,
};

/// Operator tooling for session stores: statistics, revocation, cleanup,
/// re-encryption and copying between backends.
#[derive(Parser)]
#[command(name = "session-store", version, about)]
struct Cli {
    /// The store: sqlite://PATH, sled://PATH, redis://…, rediss://…,
    /// redis+cluster://h1:p1,h2:p2, postgres://…, mysql://… (namespace as
    /// ?table= or ?prefix=). Default: the SESSION_STORE_URL variable.
    #[arg(long, global = true)]
    url: Option<String>,
    /// Print one JSON object on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Encryption keys, one `ID=HEX` per line, the primary first.
    /// Default: the file named by SESSION_STORE_KEYS_FILE (as the
    /// reference app reads it), else the variable of --keys-env.
    #[arg(long, global = true)]
    keys_file: Option<PathBuf>,
    /// The variable holding the keys when no --keys-file is given.
    #[arg(long, global = true, default_value = "SESSION_STORE_KEYS")]
    keys_env: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create or upgrade the schema (SQL backends); idempotent.
    Migrate,
    /// Readiness probe: reach the store and check its schema version.
    Ready,
    /// Count live and expired sessions, users, sessions per user, bytes.
    Stats,
    /// A user's live sessions (handles, times; no data).
    List {
        /// The user id.
        #[arg(long)]
        user: String,
    },
    /// Revoke a user's sessions: all, all but one, or one.
    Revoke {
        /// The user id.
        #[arg(long)]
        user: String,
        /// Keep this session (a handle from `list`).
        #[arg(long, conflicts_with = "handle")]
        except: Option<String>,
        /// Revoke only this session (a handle from `list`).
        #[arg(long)]
        handle: Option<String>,
    },
    /// Delete expired entries in batches.
    Cleanup {
        /// Entries per batch.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Repeat forever at this interval (`500ms`, `30s`, `5m`, `1h`).
        #[arg(long)]
        every: Option<String>,
    },
    /// Delete every session of the namespace.
    Purge {
        /// Required: yes, everything.
        #[arg(long, required = true)]
        all: bool,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Re-encrypt every session under the primary key (needs the keys).
    Rekey {
        /// Start from a cursor printed by an interrupted run.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Copy every live session from one store to another.
    Copy {
        /// The source store URL.
        #[arg(long)]
        from: String,
        /// The destination store URL (migrated first).
        #[arg(long)]
        to: String,
        /// Compare both sides afterwards.
        #[arg(long)]
        verify: bool,
    },
}

/// A failure and its exit code.
struct Failure {
    code: u8,
    message: String,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let code = match e {
            Error::Config(_) | Error::InvalidInput(_) | Error::InvalidId => 2,
            _ => 1,
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: 2,
        message: message.into(),
    }
}

/// Where progress goes: a bar on a terminal, plain lines otherwise.
struct Reporter {
    bar: Option<ProgressBar>,
    label: &'static str,
}

impl Reporter {
    fn new(label: &'static str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) =
                ProgressStyle::with_template("{spinner} {msg} {pos} entries ({per_sec})")
            {
                bar.set_style(style);
            }
            bar.set_message(label);
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Reporter { bar, label }
    }

    fn update(&self, n: u64) {
        match &self.bar {
            Some(bar) => bar.set_position(n),
            None => eprintln!("{}: {n} entries", self.label),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn parse_interval(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return None,
    };
    (!d.is_zero()).then_some(d)
}

fn age(now: Timestamp, then: Timestamp) -> String {
    let s = now.saturating_duration_since(then).as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

fn store_url(cli: &Cli) -> Result<BackendUrl, Failure> {
    let raw = match &cli.url {
        Some(u) => u.clone(),
        None => std::env::var("SESSION_STORE_URL")
            .map_err(|_| usage("no store: pass --url URL or set SESSION_STORE_URL"))?,
    };
    Ok(BackendUrl::parse(&raw)?)
}

async fn open(url: &BackendUrl) -> Result<Store, Failure> {
    url.open().await.map_err(|e| {
        let mut f = Failure::from(e);
        f.message = format!("{}: {}", url.endpoint(), f.message);
        f
    })
}

fn handle(text: &str) -> Result<SessionHandle, Failure> {
    SessionHandle::parse(text)
        .map_err(|_| usage("a handle is 64 lowercase hex characters (see `list`)"))
}

/// Runs the command; the JSON value to print (or the text already printed)
/// and the exit code.
async fn run(cli: Cli) -> Result<(Value, String, u8), Failure> {
    let now = Timestamp::now_utc();
    match &cli.command {
        Command::Migrate => {
            let url = store_url(&cli)?;
            open(&url).await?.migrate().await?;
            Ok((
                json!({"migrated": url.endpoint()}),
                format!("migrated {}", url.endpoint()),
                0,
            ))
        }
        Command::Ready => {
            let url = store_url(&cli)?;
            let store = open(&url).await?;
            Ok(match store.ready().await? {
                Readiness::Ready => (json!({"ready": true}), format!("ready: {}", url.endpoint()), 0),
                Readiness::SchemaMismatch { found, expected } => (
                    json!({"ready": false, "schema_found": found, "schema_expected": expected}),
                    format!(
                        "not ready: {} has schema version {} (this build writes {expected}; run migrate)",
                        url.endpoint(),
                        found.map_or("none".to_owned(), |v| v.to_string())
                    ),
                    3,
                ),
            })
        }
        Command::Stats => {
            let url = store_url(&cli)?;
            let store = open(&url).await?;
            let rep = Reporter::new("stats");
            let s = ops::stats(&*store.backend(), store.scan_may_repeat(), now, &|n| {
                rep.update(n)
            })
            .await?;
            rep.finish();
            let text = format!(
                "store                      {}\n\
                 live sessions              {}\n\
                 persistent logins          {}\n\
                 expired, awaiting cleanup  {}\n\
                 renewal forwarders         {}\n\
                 users                      {}\n\
                 sessions per user          p50 {}  p99 {}  max {}\n\
                 bytes (data + metadata)    {}\n\
                 oldest session             {}",
                url.endpoint(),
                s.live,
                s.persistent_logins,
                s.expired,
                s.forwarders,
                s.users,
                s.per_user.0,
                s.per_user.1,
                s.per_user.2,
                s.bytes,
                s.oldest
                    .map_or("-".to_owned(), |t| format!("created {} ago", age(now, t))),
            );
            let mut v = s.to_json();
            v["store"] = json!(url.endpoint());
            Ok((v, text, 0))
        }
        Command::List { user } => {
            let url = store_url(&cli)?;
            let store = open(&url).await?;
            let list = store.backend().list_user(user, now).await?;
            let mut text = format!("{} live session(s) and persistent login(s)", list.len());
            let mut rows = Vec::new();
            for s in &list {
                let h = SessionHandle::new(s.key).to_string();
                let kind = if session_store_core::persistent::is_family_metadata(&s.meta) {
                    "persistent"
                } else {
                    "session"
                };
                text.push_str(&format!(
                    "\n{h}  {kind:<10}  created {} ago  last seen {} ago  expires in {}",
                    age(now, s.created_at),
                    age(now, s.last_seen_at),
                    age(s.idle_deadline.min(s.absolute_deadline), now),
                ));
                rows.push(json!({
                    "handle": h,
                    "kind": kind,
                    "created_ms": s.created_at.as_millis(),
                    "last_seen_ms": s.last_seen_at.as_millis(),
                    "expires_ms": s.idle_deadline.min(s.absolute_deadline).as_millis(),
                }));
            }
            Ok((json!({"user_sessions": rows}), text, 0))
        }
        Command::Revoke {
            user,
            except,
            handle: one,
        } => {
            let url = store_url(&cli)?;
            let except = except.as_deref().map(handle).transpose()?;
            let one = one.as_deref().map(handle).transpose()?;
            let store = open(&url).await?;
            let backend = store.backend();
            let revoked = match one {
                Some(h) => {
                    let key = *h.storage_key();
                    match backend.load(&key, now).await? {
                        Some(Lookup::Session(r)) if r.user_id.as_deref() == Some(user.as_str()) => {
                            u64::from(backend.delete(&key).await?)
                        }
                        _ => 0,
                    }
                }
                None => {
                    backend
                        .delete_user(user, except.as_ref().map(|h| h.storage_key()), now)
                        .await?
                }
            };
            Ok((
                json!({"revoked": revoked}),
                format!("revoked {revoked} session(s)"),
                0,
            ))
        }
        Command::Cleanup { batch, every } => {
            let url = store_url(&cli)?;
            if *batch == 0 {
                return Err(usage("--batch must be at least 1"));
            }
            let every = every
                .as_deref()
                .map(|e| {
                    parse_interval(e).ok_or_else(|| {
                        usage(format!(
                            "--every {e:?}: expected a number and ms, s, m or h"
                        ))
                    })
                })
                .transpose()?;
            let store = open(&url).await?;
            let backend = store.backend();
            loop {
                let now = Timestamp::now_utc();
                let mut removed = 0;
                loop {
                    let n = backend.cleanup_expired(now, *batch).await?;
                    removed += n;
                    if n < *batch as u64 {
                        break;
                    }
                }
                match every {
                    None => {
                        return Ok((
                            json!({"removed": removed}),
                            format!("removed {removed} expired entries"),
                            0,
                        ))
                    }
                    Some(d) => {
                        eprintln!("cleanup: removed {removed} expired entries");
                        tokio::time::sleep(d).await;
                    }
                }
            }
        }
        Command::Purge { all: _, yes } => {
            let url = store_url(&cli)?;
            if !yes {
                eprint!("Delete EVERY session in {}? Type yes: ", url.endpoint());
                let _ = std::io::stderr().flush();
                let mut answer = String::new();
                let _ = std::io::stdin().lock().read_line(&mut answer);
                if answer.trim() != "yes" {
                    return Err(Failure {
                        code: 4,
                        message: "not confirmed; nothing deleted".into(),
                    });
                }
            }
            let store = open(&url).await?;
            store.backend().delete_all().await?;
            Ok((
                json!({"purged": url.endpoint()}),
                format!("purged {}", url.endpoint()),
                0,
            ))
        }
        Command::Rekey { cursor } => {
            let url = store_url(&cli)?;
            let file = cli.keys_file.clone().or_else(|| {
                std::env::var_os(keys::KEYS_FILE_VAR)
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            });
            let keyring = keys::load_keyring(file.as_deref(), &cli.keys_env)?.ok_or_else(|| {
                usage(format!(
                    "rekey needs the keys: --keys-file PATH, a file named by {} or the variable {}",
                    keys::KEYS_FILE_VAR,
                    cli.keys_env
                ))
            })?;
            let start = cursor.as_deref().map(ScanCursor::parse).transpose()?;
            let store = open(&url).await?;
            let enc = Encrypted::new(store.backend(), keyring);
            let rep = Reporter::new("rekey");
            let r = match ops::rekey(&enc, start, store.scan_may_repeat(), now, &|n| {
                rep.update(n)
            })
            .await
            {
                Ok(r) => r,
                Err(stop) => {
                    rep.finish();
                    let mut f = Failure::from(stop.error);
                    f.message = match &stop.resume {
                        Some(c) => format!(
                            "{} (after {} re-encrypted; resume with --cursor {})",
                            f.message,
                            stop.done.resealed,
                            c.to_text()
                        ),
                        None => format!("{} (run rekey again)", f.message),
                    };
                    return Err(f);
                }
            };
            rep.finish();
            let mut text = format!(
                "rekey {}: {} entries, {} re-encrypted, {} already under the primary key, {} skipped (expired or forwarders)",
                url.endpoint(), r.scanned, r.resealed, r.already_primary, r.skipped
            );
            for h in &r.undecryptable {
                text.push_str(&format!("\nundecryptable (left in place): {h}"));
            }
            for h in &r.conflicts {
                text.push_str(&format!("\nchanged during rekey, run again: {h}"));
            }
            let code = if r.undecryptable.is_empty() && r.conflicts.is_empty() {
                0
            } else {
                3
            };
            Ok((r.to_json(), text, code))
        }
        Command::Copy { from, to, verify } => {
            let (from_url, to_url) = (BackendUrl::parse(from)?, BackendUrl::parse(to)?);
            let src = open(&from_url).await?;
            let dst = open(&to_url).await?;
            dst.migrate().await?;
            let dedupe = src.scan_may_repeat();
            let rep = Reporter::new("copy");
            let c = ops::copy(&*src.backend(), &*dst.backend(), dedupe, now, &|n| {
                rep.update(n)
            })
            .await?;
            rep.finish();
            let mut text = format!(
                "copy {} -> {}: {} entries, {} copied, {} already there, {} replaced (older copy), {} kept (newer at the destination), {} skipped (expired or forwarders)",
                from_url.endpoint(), to_url.endpoint(), c.scanned, c.copied, c.unchanged, c.replaced, c.kept_newer, c.skipped
            );
            let mut v = json!({"copy": c.to_json()});
            let mut code = 0;
            if *verify {
                let rep = Reporter::new("verify");
                let check = ops::verify(
                    &*src.backend(),
                    &*dst.backend(),
                    dedupe,
                    Timestamp::now_utc(),
                    &|n| rep.update(n),
                )
                .await?;
                rep.finish();
                text.push_str(&format!(
                    "\nverify: {} live sessions compared, {} missing, {} different",
                    check.compared,
                    check.missing.len(),
                    check.different.len()
                ));
                for h in &check.missing {
                    text.push_str(&format!("\nmissing: {h}"));
                }
                for h in &check.different {
                    text.push_str(&format!("\ndifferent: {h}"));
                }
                if !check.ok() {
                    code = 3;
                }
                v["verify"] = check.to_json();
            }
            Ok((v, text, code))
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json_out = cli.json;
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok((v, text, code)) => {
            if json_out {
                println!("{v}");
            } else {
                println!("{text}");
            }
            ExitCode::from(code)
        }
        Err(f) => {
            if json_out {
                println!("{}", json!({"error": f.message, "exit_code": f.code}));
            }
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}
