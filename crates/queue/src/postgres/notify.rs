//! New work announced across replicas: an op that makes jobs sends `NOTIFY alertpub_work` with
//! each target in its transaction (delivered at commit), and every replica listens on a
//! connection of its own and tells its lanes. A lane also polls, so a notification lost to a
//! dropped connection only delays its jobs by a poll. This needs session pooling (or none)
//! between alertpub and the database: `LISTEN` does not survive a pooler in transaction mode.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use alert_core::{NewWork, TargetName};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The channel the notifications go on.
pub(super) const CHANNEL: &str = "alertpub_work";

/// How long the listener waits before it connects again after losing its connection.
const RECONNECT: Duration = Duration::from_secs(1);

/// A notification's payload: the replica that made the jobs, a space, the target.
pub(super) fn payload(owner: &str, target: &str) -> String {
    format!("{owner} {target}")
}

/// Listens for new work until aborted, telling `announce` of each target that another replica
/// (not `owner`, which tells its own lanes itself) made jobs for.
pub(super) fn listen(
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    owner: String,
    announce: Arc<RwLock<Option<NewWork>>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(error) = listen_once(&config, tls.clone(), &owner, &announce).await {
                tracing::debug!(%error, "the new-work listener lost its connection");
            }
            tokio::time::sleep(RECONNECT).await;
        }
    })
}

async fn listen_once(
    config: &tokio_postgres::Config,
    tls: MakeRustlsConnect,
    owner: &str,
    announce: &RwLock<Option<NewWork>>,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(tls).await?;
    let (sender, mut targets) = mpsc::unbounded_channel::<String>();
    // The connection delivers the notifications; it ends when the connection does.
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(notification)) => {
                    if sender.send(notification.payload().to_owned()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    let listening = client.batch_execute(&format!("LISTEN {CHANNEL}")).await;
    if let Err(error) = listening {
        driver.abort();
        return Err(error);
    }
    while let Some(payload) = targets.recv().await {
        let Some((from, target)) = payload.split_once(' ') else {
            continue;
        };
        let Ok(target) = TargetName::new(target) else {
            continue;
        };
        if from == owner {
            continue;
        }
        let announce = announce
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(announce) = announce {
            announce(&target);
        }
    }
    drop(client);
    Ok(())
}
