//! The layer over HTTP: an axum router served on 127.0.0.1 and driven by
//! reqwest with a real cookie jar, on SQLite, encrypted SQLite, PostgreSQL
//! and Redis (one `#[tokio::test]` per scenario and backend). Time is a
//! `ManualClock` shared with the manager; every backend is wrapped in a
//! probe that counts its calls and can simulate an outage.

mod common;

use std::time::Duration;

use common::*;
use session_store_axum::{ClientIpSource, ContextPolicy, CookieConfig, HeaderMode, IpGranularity};
use session_store_test_support::{per_backend, TestBackend};

fn cookie_header(token: &str) -> Vec<u8> {
    format!("{SESSION_COOKIE}={token}").into_bytes()
}

async fn user_with(base: &str, headers: &[(&str, &[u8])]) -> (Option<String>, Reply) {
    let r = get_raw(base, "/whoami", headers).await;
    assert_eq!(r.status, 200, "{}", r.body);
    (r.json()["user"].as_str().map(str::to_owned), r)
}

/// No store I/O and no cookie for a request that never touches the session;
/// the login form's CSRF token stores nothing.
async fn lazy_requests_cost_nothing(b: TestBackend) {
    let app = start(b.backend.clone(), default_config()).await;
    let alice = Browser::new(&app.base, "UA-1");
    let r = alice.get("/none").await;
    assert_eq!(r.status, 200);
    assert!(r.set_cookies.is_empty() && r.cache_control.is_none());
    let r = alice.get("/csrf").await;
    assert_eq!(r.cookie(SESSION_COOKIE), None, "{:?}", r.set_cookies);
    assert!(r.cookie("__Host-csrf").is_some());
    assert_eq!(app.probe.calls(), 0, "showing a login form stores nothing");
    alice.login("alice").await;
    let before = app.probe.calls();
    let r = alice.get("/none").await;
    assert!(r.set_cookies.is_empty() && r.cache_control.is_none());
    assert_eq!(
        app.probe.calls(),
        before,
        "an untouched session costs no I/O"
    );
    b.finish().await;
}

async fn set_cookie_attributes_are_exact(b: TestBackend) {
    let app = start(b.backend.clone(), default_config()).await;
    let alice = Browser::new(&app.base, "UA-1");
    let r = alice.get("/csrf").await;
    let csrf = r.cookie("__Host-csrf").unwrap();
    assert_eq!(
        r.set_cookies,
        [format!(
            "__Host-csrf={csrf}; Path=/; Secure; HttpOnly; SameSite=Strict"
        )]
    );
    assert_eq!(r.cache_control.as_deref(), Some("no-store"));
    let r = alice
        .post("/login", Some(&csrf), &[("user", "alice")])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.cookie(SESSION_COOKIE).unwrap();
    assert_eq!(token.len(), 43);
    assert_eq!(
        r.set_cookies,
        [
            format!("{SESSION_COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Lax"),
            "__Host-csrf=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0".to_owned(),
        ]
    );
    assert_eq!(r.cache_control.as_deref(), Some("no-store"));
    let r = alice.act("/logout", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.set_cookies,
        [format!(
            "{SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0"
        )]
    );
    assert_eq!(r.cache_control.as_deref(), Some("no-store"));
    assert_eq!(alice.session_cookie(), None, "the jar dropped the cookie");

    // A configured Max-Age never outlives the absolute deadline.
    let long = default_config()
        .with_cookie(CookieConfig::default().with_max_age(Some(Duration::from_secs(100 * 3600))));
    let app = start(b.backend.clone(), long).await;
    let bob = Browser::new(&app.base, "UA-1");
    let t = bob.csrf().await;
    let r = bob.post("/login", Some(&t), &[("user", "bob")]).await;
    let set = r
        .set_cookies
        .iter()
        .find(|c| c.starts_with(SESSION_COOKIE))
        .unwrap();
    let age: u64 = set.rsplit("Max-Age=").next().unwrap().parse().unwrap();
    assert!(
        age <= ABSOLUTE.as_secs() && age > ABSOLUTE.as_secs() - 60,
        "{set}"
    );
    b.finish().await;
}

async fn fixation_planted_cookie_is_useless(b: TestBackend) {
    let app = start(b.backend.clone(), default_config()).await;
    let attacker = Browser::new(&app.base, "UA-1");
    let r = attacker.act("/incr", &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let planted = attacker.session_cookie().unwrap();
    let victim = Browser::new(&app.base, "UA-1");
    victim.plant(SESSION_COOKIE, &planted);
    victim.login("alice").await;
    let after = victim.session_cookie().unwrap();
    assert_ne!(after, planted, "login rotates the token");
    assert_eq!(victim.user().await.as_deref(), Some("alice"));
    let r = attacker.get("/whoami").await;
    assert_eq!(r.json()["user"], serde_json::Value::Null);
    assert_eq!(r.json()["exists"], false, "the planted token is dead");
    b.finish().await;
}

async fn stolen_cookie_after_logout(b: TestBackend) {
    let app = start(b.backend.clone(), default_config()).await;
    let alice = Browser::new(&app.base, "UA-1");
    alice.login("alice").await;
    let stolen = alice.session_cookie().unwrap();
    assert_eq!(
        user_with(&app.base, &[("cookie", &cookie_header(&stolen))])
            .await
            .0
            .as_deref(),
        Some("alice")
    );
    assert_eq!(alice.act("/logout", &[]).await.status, 200);
    let (user, r) = user_with(&app.base, &[("cookie", &cookie_header(&stolen))]).await;
    assert_eq!(user, None);
    assert!(r.set_cookies.is_empty(), "a dead token gets no new session");
    b.finish().await;
}

async fn logout_everywhere_and_other_devices(b: TestBackend) {
    let app = start(b.backend.clone(), default_config()).await;
    let (a, c, bob) = (
        Browser::new(&app.base, "UA-A"),
        Browser::new(&app.base, "UA-B"),
        Browser::new(&app.base, "UA-C"),
    );
    a.login("alice").await;
    c.login("alice").await;
    bob.login("bob").await;
    let r = a.act("/logout-everywhere", &[]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "2"));
    assert!(r.set_cookies[0].ends_with("Max-Age=0"));
    assert_eq!(a.user().await, None);
    assert_eq!(c.user().await, None);
    assert_eq!(bob.user().await.as_deref(), Some("bob"));

    a.login("alice").await;
    c.login("alice").await;
    let r = a.act("/logout-others", &[]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "1"));
    assert_eq!(a.user().await.as_deref(), Some("alice"));
    assert_eq!(c.user().await, None);
    b.finish().await;
}

/// Two concurrent requests with the old cookie after `renew_after` land on
/// one successor and both receive it; the old token dies with the grace window.
async fn renewal_and_grace_window(b: TestBackend) {
    let app = start(b.backend.clone(), default_config()).await;
    let alice = Browser::new(&app.base, "UA-1");
    alice.login("alice").await;
    let old = alice.session_cookie().unwrap();
    app.clock.advance(RENEW_AFTER + Duration::from_secs(60));
    let header = cookie_header(&old);
    let h: &[(&str, &[u8])] = &[("cookie", &header), ("user-agent", b"UA-1")];
    let (r1, r2) = tokio::join!(
        get_raw(&app.base, "/whoami", h),
        get_raw(&app.base, "/whoami", h)
    );
    for r in [&r1, &r2] {
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["user"], "alice");
        assert_eq!(r.cache_control.as_deref(), Some("no-store"));
    }
    let (n1, n2) = (
        r1.cookie(SESSION_COOKIE).unwrap(),
        r2.cookie(SESSION_COOKIE).unwrap(),
    );
    assert_eq!(n1, n2, "one successor for both requests");
    assert_ne!(n1, old);
    let (user, r) = user_with(
        &app.base,
        &[("cookie", &cookie_header(&n1)), ("user-agent", b"UA-1")],
    )
    .await;
    assert_eq!(user.as_deref(), Some("alice"));
    assert!(r.set_cookies.is_empty(), "not renewed again");
    app.clock.advance(GRACE + Duration::from_secs(1));
    assert_eq!(
        user_with(&app.base, &[("cookie", &header)]).await.0,
        None,
        "grace over"
    );
    assert_eq!(
        user_with(
            &app.base,
            &[("cookie", &cookie_header(&n1)), ("user-agent", b"UA-1")]
        )
        .await
        .0
        .as_deref(),
        Some("alice")
    );
    b.finish().await;
}

async fn csrf_refusals(b: TestBackend) {
    let app = start(b.backend.clone(), default_config()).await;
    let alice = Browser::new(&app.base, "UA-1");
    let bob = Browser::new(&app.base, "UA-1");
    // Anonymous: no double-submit cookie, or a wrong field.
    let r = alice.post("/login", None, &[("user", "alice")]).await;
    assert_eq!(r.status, 403);
    let _ = alice.csrf().await;
    let r = alice
        .post("/login", Some("forged"), &[("user", "alice")])
        .await;
    assert_eq!(r.status, 403);
    alice.login("alice").await;
    bob.login("bob").await;
    let (a_token, b_token) = (alice.csrf().await, bob.csrf().await);
    assert_ne!(a_token, b_token);
    assert_eq!(alice.post("/incr", None, &[]).await.status, 403, "missing");
    assert_eq!(
        alice.post("/incr", Some("x"), &[]).await.status,
        403,
        "wrong"
    );
    assert_eq!(
        alice.post("/incr", Some(&b_token), &[]).await.status,
        403,
        "another session's"
    );
    let dup = alice
        .post("/incr", Some(&a_token), &[("csrf", &a_token)])
        .await;
    assert_eq!(dup.status, 403, "two tokens");
    let r = alice
        .client
        .post(format!("{}/incr", app.base))
        .header("x-csrf-token", &a_token)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "cross-site");
    let r = alice
        .client
        .post(format!("{}/incr", app.base))
        .header("x-csrf-token", &a_token)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "foreign origin");
    let r = alice
        .client
        .post(format!("{}/incr", app.base))
        .header("x-csrf-token", &a_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "header token");
    let r = alice
        .post("/echo", Some(&a_token), &[("text", "kept body")])
        .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "kept body"),
        "the handler reads the form"
    );
    assert_eq!(
        alice.get("/n").await.json(),
        1,
        "only the accepted request counted"
    );
    b.finish().await;
}

async fn store_outage_is_503(b: TestBackend) {
    let app = start(b.backend.clone(), default_config()).await;
    let alice = Browser::new(&app.base, "UA-1");
    alice.login("alice").await;
    let token = alice.csrf().await;
    app.probe.set_down(true);
    for r in [
        alice.get("/whoami").await,
        alice.post("/incr", Some(&token), &[]).await,
        alice.get("/csrf").await,
    ] {
        assert_eq!(r.status, 503, "{}", r.body);
        assert!(r.set_cookies.is_empty(), "no new session, no logout");
    }
    let fresh = Browser::new(&app.base, "UA-1");
    let r = fresh.get("/none").await;
    assert_eq!(
        r.status, 200,
        "requests that do not touch the session still work"
    );
    app.probe.set_down(false);
    assert_eq!(
        alice.user().await.as_deref(),
        Some("alice"),
        "still logged in"
    );
    assert_eq!(alice.get("/n").await.json(), serde_json::Value::Null);
    b.finish().await;
}

/// 64 concurrent requests on one session, each incrementing a counter
/// through `update`: the final value is 64.
async fn no_lost_updates(b: TestBackend) {
    let app = start(b.backend.clone(), default_config()).await;
    let alice = Browser::new(&app.base, "UA-1");
    alice.login("alice").await;
    let token = alice.csrf().await;
    let requests = (0..64).map(|_| {
        alice
            .client
            .post(format!("{}/incr", app.base))
            .header("x-csrf-token", &token)
            .send()
    });
    let mut seen: Vec<u64> = Vec::new();
    for r in futures::future::join_all(requests).await {
        let r = reply(r.unwrap()).await;
        assert_eq!(r.status, 200, "{}", r.body);
        seen.push(r.body.parse().unwrap());
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        (1..=64).collect::<Vec<_>>(),
        "each update saw the one before"
    );
    let final_value = alice.get("/n").await.json();
    println!(
        "lost-update check ({}): {final_value} of 64 increments survive",
        b.name
    );
    assert_eq!(final_value, 64);
    b.finish().await;
}

async fn context_signal_policies(b: TestBackend) {
    let xff = ClientIpSource::TrustedHeader("x-forwarded-for".parse().unwrap());
    let probe = |policy, granularity| {
        default_config()
            .with_client_ip(xff.clone())
            .with_context_policy(policy)
            .with_ip_granularity(granularity)
    };
    let login = |base: &str| {
        let base = base.to_owned();
        async move {
            let b = Browser::new(&base, "UA-1");
            // The browser's requests come "from" 192.0.2.1 via the proxy header.
            let t = b.csrf().await;
            let r = b
                .client
                .post(format!("{base}/login"))
                .header("x-forwarded-for", "203.0.113.9, 192.0.2.1")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form_encode(&[("user", "alice"), ("csrf", &t)]))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            b.session_cookie().unwrap()
        }
    };
    let context = |base: String, token: String, ip: &'static str, ua: &'static str| async move {
        let c = cookie_header(&token);
        get_raw(
            &base,
            "/context",
            &[
                ("cookie", &c),
                ("x-forwarded-for", ip.as_bytes()),
                ("user-agent", ua.as_bytes()),
            ],
        )
        .await
    };

    let flag = start(
        b.backend.clone(),
        probe(ContextPolicy::Flag, IpGranularity::default()),
    )
    .await;
    let t = login(&flag.base).await;
    let r = context(flag.base.clone(), t.clone(), "192.0.2.77", "UA-1")
        .await
        .json();
    assert_eq!(
        (r["user"].as_str(), &r["ip_changed"]),
        (Some("alice"), &serde_json::Value::Null),
        "same /24"
    );
    let r = context(flag.base.clone(), t.clone(), "198.51.100.1", "UA-1")
        .await
        .json();
    assert_eq!(
        (r["user"].as_str(), r["ip_changed"].as_bool()),
        (Some("alice"), Some(true))
    );
    let r = context(flag.base.clone(), t.clone(), "192.0.2.1", "UA-2")
        .await
        .json();
    assert_eq!(r["user_agent_changed"], true);

    let exact = start(
        b.backend.clone(),
        probe(ContextPolicy::Flag, IpGranularity::exact()),
    )
    .await;
    let t = login(&exact.base).await;
    let r = context(exact.base.clone(), t, "192.0.2.77", "UA-1")
        .await
        .json();
    assert_eq!(r["ip_changed"], true, "exact granularity");

    let ignore = start(
        b.backend.clone(),
        probe(ContextPolicy::Ignore, IpGranularity::default()),
    )
    .await;
    let t = login(&ignore.base).await;
    let r = context(ignore.base.clone(), t, "198.51.100.1", "UA-2")
        .await
        .json();
    assert_eq!(
        (r["user"].as_str(), &r["ip_changed"]),
        (Some("alice"), &serde_json::Value::Null)
    );

    let reauth = start(
        b.backend.clone(),
        probe(ContextPolicy::RequireReauth, IpGranularity::default()),
    )
    .await;
    let t = login(&reauth.base).await;
    let r = context(reauth.base.clone(), t.clone(), "192.0.2.1", "UA-2").await;
    assert_eq!(r.json()["user"], serde_json::Value::Null);
    assert_eq!(r.json()["user_agent_changed"], true);
    assert!(
        r.set_cookies[0].ends_with("Max-Age=0"),
        "{:?}",
        r.set_cookies
    );
    let r = context(reauth.base.clone(), t, "192.0.2.1", "UA-1").await;
    assert_eq!(
        r.json()["user"],
        serde_json::Value::Null,
        "the session was ended"
    );

    // By default the IP is the connection's; a forwarded header is ignored.
    let plain = start(b.backend.clone(), default_config()).await;
    let carol = Browser::new(&plain.base, "UA-1");
    let t = carol.csrf().await;
    let r = carol
        .client
        .post(format!("{}/login", plain.base))
        .header("x-forwarded-for", "192.0.2.1")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_encode(&[("user", "carol"), ("csrf", &t)]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let devices = carol.get("/devices").await.json();
    assert_eq!(devices[0]["ip"], "127.0.0.1");
    b.finish().await;
}

async fn header_mode(b: TestBackend) {
    let config = default_config().with_header_mode(Some(HeaderMode::Bearer));
    let app = start(b.backend.clone(), config).await;
    let alice = Browser::new(&app.base, "UA-1");
    alice.login("alice").await;
    let token = alice.session_cookie().unwrap();
    assert_eq!(alice.get("/api-token").await.body, token);
    let bearer = format!("Bearer {token}").into_bytes();
    let h: &[(&str, &[u8])] = &[("authorization", &bearer), ("user-agent", b"UA-1")];
    assert_eq!(user_with(&app.base, h).await.0.as_deref(), Some("alice"));
    let r = reqwest::Client::new()
        .post(format!("{}/incr", app.base))
        .header("authorization", format!("Bearer {token}"))
        .header("user-agent", "UA-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "header-mode requests need no CSRF token");
    // Renewal answers with the token header, never a cookie.
    app.clock.advance(RENEW_AFTER + Duration::from_secs(1));
    let (_, r) = user_with(&app.base, h).await;
    assert!(r.set_cookies.is_empty());
    let renewed = r
        .headers
        .get("session-token")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(renewed, token);
    assert_eq!(r.cache_control.as_deref(), Some("no-store"));

    // Off by default; never from a query string.
    let plain = start(b.backend.clone(), default_config()).await;
    let bob = Browser::new(&plain.base, "UA-1");
    bob.login("bob").await;
    let t = bob.session_cookie().unwrap();
    let bearer = format!("Bearer {t}").into_bytes();
    assert_eq!(
        user_with(&plain.base, &[("authorization", &bearer)])
            .await
            .0,
        None
    );
    let r = get_raw(
        &plain.base,
        &format!("/whoami?{SESSION_COOKIE}={t}&session={t}"),
        &[],
    )
    .await;
    assert_eq!(r.json()["user"], serde_json::Value::Null);
    b.finish().await;
}

/// `Cookie` headers, the user they must reach (if any), what the case shows.
type BadCookieCase<'a> = (Vec<Vec<u8>>, Option<&'a str>, &'a str);

async fn bad_cookies(b: TestBackend) {
    let app = start(b.backend.clone(), default_config()).await;
    let alice = Browser::new(&app.base, "UA-1");
    alice.login("alice").await;
    let t = alice.session_cookie().unwrap();
    let unknown = session_store_core::SessionToken::generate();
    let unknown = unknown.expose_secret();
    let long = format!("{SESSION_COOKIE}={}", "A".repeat(5000));
    let cases: Vec<BadCookieCase> = vec![
        (vec![long.into_bytes()], None, "too long"),
        (vec![cookie_header(&"!".repeat(43))], None, "wrong alphabet"),
        (vec![cookie_header(&t[..42])], None, "too short"),
        (
            vec![format!("{SESSION_COOKIE}=garbage; {SESSION_COOKIE}={t}").into_bytes()],
            Some("alice"),
            "a malformed duplicate is skipped",
        ),
        (
            vec![format!("{SESSION_COOKIE}={t}; {SESSION_COOKIE}={unknown}").into_bytes()],
            Some("alice"),
            "the first well-formed cookie wins",
        ),
        (
            vec![format!("{SESSION_COOKIE}={unknown}; {SESSION_COOKIE}={t}").into_bytes()],
            None,
            "the first well-formed cookie wins, even when unknown",
        ),
        (
            vec![[
                b"pref=\xff\xfe\xc3; ;; =x; junk; ".as_slice(),
                &cookie_header(&t),
                b"; b=\"x y\"",
            ]
            .concat()],
            Some("alice"),
            "foreign bytes, empty pairs, quotes",
        ),
        (
            vec![format!("{SESSION_COOKIE}=\"{t}\"").into_bytes()],
            Some("alice"),
            "a quoted value",
        ),
        (
            vec![b"a=1".to_vec(), cookie_header(&t)],
            Some("alice"),
            "several Cookie headers",
        ),
    ];
    for (headers, expected, what) in cases {
        let mut req = reqwest::Client::new().get(format!("{}/whoami", app.base));
        for h in headers {
            req = req.header(
                "cookie",
                reqwest::header::HeaderValue::from_bytes(&h).unwrap(),
            );
        }
        let r = reply(req.header("user-agent", "UA-1").send().await.unwrap()).await;
        assert_eq!(r.status, 200, "{what}: {}", r.body);
        assert_eq!(r.json()["user"].as_str(), expected, "{what}");
        assert!(r.set_cookies.is_empty(), "{what}: no cookie is overwritten");
    }
    b.finish().await;
}

async fn body_limit_and_forms(b: TestBackend) {
    let app = start(b.backend.clone(), default_config().with_body_limit(1024)).await;
    let alice = Browser::new(&app.base, "UA-1");
    alice.login("alice").await;
    let token = alice.csrf().await;
    let big = "x".repeat(2000);
    let r = alice.post("/echo", None, &[("text", &big)]).await;
    assert_eq!(r.status, 413, "over the limit before any CSRF logic");
    let r = alice.post("/echo", Some(&token), &[("text", &big)]).await;
    assert_eq!(r.status, 413);
    let r = reply(
        alice
            .client
            .post(format!("{}/echo", app.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("text=a&csrf=%zz")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 400, "a malformed form is not an empty one");
    b.finish().await;
}

async fn devices_and_revoke(b: TestBackend) {
    let app = start(b.backend.clone(), default_config()).await;
    let (a, c, bob) = (
        Browser::new(&app.base, "UA-A"),
        Browser::new(&app.base, "UA-B"),
        Browser::new(&app.base, "UA-C"),
    );
    a.login("alice").await;
    c.login("alice").await;
    bob.login("bob").await;
    let list = a.get("/devices").await.json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let mine = list.iter().find(|d| d["current"] == true).unwrap();
    let other = list.iter().find(|d| d["current"] == false).unwrap();
    assert_eq!(
        (mine["user_agent"].as_str(), other["user_agent"].as_str()),
        (Some("UA-A"), Some("UA-B"))
    );
    let other_handle = other["handle"].as_str().unwrap().to_owned();
    let mine_handle = mine["handle"].as_str().unwrap().to_owned();
    let r = bob.act("/revoke", &[("handle", &other_handle)]).await;
    assert_eq!(r.body, "false", "another user's handle revokes nothing");
    assert_eq!(c.user().await.as_deref(), Some("alice"));
    let r = a.act("/revoke", &[("handle", &other_handle)]).await;
    assert_eq!(r.body, "true");
    assert_eq!(c.user().await, None);
    let r = a.act("/revoke", &[("handle", &mine_handle)]).await;
    assert_eq!(r.body, "true");
    assert!(r.set_cookies[0].ends_with("Max-Age=0"));
    assert_eq!(a.user().await, None);
    b.finish().await;
}

async fn elevate_and_flash(b: TestBackend) {
    let app = start(b.backend.clone(), default_config()).await;
    let alice = Browser::new(&app.base, "UA-1");
    alice.login("alice").await;
    let old = alice.session_cookie().unwrap();
    let before = app
        .manager
        .load(&old)
        .await
        .unwrap()
        .unwrap()
        .absolute_deadline();
    assert_eq!(alice.act("/elevate", &[]).await.status, 200);
    let new = alice.session_cookie().unwrap();
    assert_ne!(new, old);
    assert_eq!(
        user_with(&app.base, &[("cookie", &cookie_header(&old))])
            .await
            .0,
        None,
        "old token dead at once"
    );
    let after = app
        .manager
        .load(&new)
        .await
        .unwrap()
        .unwrap()
        .absolute_deadline();
    assert_eq!(
        before, after,
        "a privilege change keeps the absolute deadline"
    );
    assert_eq!(alice.act("/flash", &[]).await.status, 200);
    assert_eq!(alice.get("/flash").await.json(), "saved");
    assert_eq!(
        alice.get("/flash").await.json(),
        serde_json::Value::Null,
        "read once"
    );
    b.finish().await;
}

async fn anonymous_sessions_can_be_disabled(b: TestBackend) {
    let app = start(
        b.backend.clone(),
        default_config().with_anonymous_sessions(false),
    )
    .await;
    let visitor = Browser::new(&app.base, "UA-1");
    let r = visitor.act("/incr", &[]).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(visitor.session_cookie(), None);
    let r = visitor.act("/flash", &[]).await;
    assert_eq!(r.status, 403);
    assert_eq!(app.probe.calls(), 0, "an anonymous visitor stores nothing");
    visitor.login("alice").await;
    assert_eq!(visitor.act("/incr", &[]).await.body, "1");
    b.finish().await;
}

per_backend!("axum";
    lazy_requests_cost_nothing,
    set_cookie_attributes_are_exact,
    fixation_planted_cookie_is_useless,
    stolen_cookie_after_logout,
    logout_everywhere_and_other_devices,
    renewal_and_grace_window,
    csrf_refusals,
    store_outage_is_503,
    no_lost_updates,
    context_signal_policies,
    header_mode,
    bad_cookies,
    body_limit_and_forms,
    devices_and_revoke,
    elevate_and_flash,
    anonymous_sessions_can_be_disabled,
);
