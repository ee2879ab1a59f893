//! The life of a session, shared by the quickstart examples of every store.
//! Included with `#[path = ...] mod walkthrough;`.

use session_store_core::{ClientMeta, Error, RotateReason, SessionManager};

/// Create, load, login rotation, save with conflict handling, list devices,
/// log out other devices, log out, log out everywhere.
pub async fn walkthrough(manager: &SessionManager) -> Result<(), Error> {
    // 1. An anonymous visitor gets a session; the token goes into a cookie.
    let browser = ClientMeta {
        ip: Some("192.0.2.10".into()),
        user_agent: Some("Firefox/140".into()),
        label: None,
    };
    let mut session = manager.create(b"cart=1".to_vec(), browser.clone()).await?;
    let cookie = session.token().expose_secret().to_owned();
    println!(
        "created session {:?} (token is {} chars, never logged)",
        session.handle(),
        cookie.len()
    );

    // 2. The next request presents the cookie.
    let loaded = manager.load(&cookie).await?.expect("the session is live");
    println!(
        "loaded: data = {:?}",
        String::from_utf8_lossy(loaded.data())
    );

    // 3. Login: a new token (the pre-login token dies), user bound, timers reset.
    manager
        .rotate(
            &mut session,
            RotateReason::Login {
                user_id: "alice".into(),
            },
        )
        .await?;
    assert!(manager.load(&cookie).await?.is_none());
    println!(
        "logged in as {:?}; old token no longer works",
        session.user_id()
    );

    // 4. Save with conflict handling: a stale copy is rejected, never written.
    let mut stale = manager
        .load(session.token().expose_secret())
        .await?
        .expect("live");
    session.set_data(b"cart=2".to_vec());
    manager.save(&mut session).await?;
    stale.set_data(b"cart=stale".to_vec());
    match manager.save(&mut stale).await {
        Err(Error::Conflict) => println!("stale save refused with Conflict; reload and retry"),
        other => panic!("expected a conflict, got {other:?}"),
    }

    // 5. A second device logs in; list the user's devices.
    let mut phone = manager
        .create(
            Vec::new(),
            ClientMeta {
                user_agent: Some("Phone".into()),
                ..ClientMeta::default()
            },
        )
        .await?;
    manager
        .rotate(
            &mut phone,
            RotateReason::Login {
                user_id: "alice".into(),
            },
        )
        .await?;
    for device in manager.list_devices("alice", Some(&session)).await? {
        println!(
            "device {} ua={:?} current={}",
            device.handle, device.meta.user_agent, device.current
        );
    }

    // 6. Log out other devices (after a password change), then log out.
    let removed = manager.logout_other_devices(&session).await?;
    println!("logged out {removed} other device(s)");
    manager.logout(&session).await?;
    assert!(manager
        .load(session.token().expose_secret())
        .await?
        .is_none());

    // 7. Log out everywhere.
    let removed = manager.logout_everywhere("alice").await?;
    println!("log out everywhere removed {removed} more session(s); done");
    Ok(())
}
