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

use super::cursor::Cursors;

/// The channel the notifications go on.
pub(super) const CHANNEL: &str = "alertpub_work";

/// How long the listener waits before it connects again after losing its connection.
const RECONNECT: Duration = Duration::from_secs(1);

/// A notification's payload: the replica that made the jobs, the target, and where the
/// earliest of them sits in its lane's range (its level, due time and id), space-separated.
pub(super) fn payload(owner: &str, target: &str, level: usize, at: (i64, i64)) -> String {
    format!("{owner} {target} {level} {} {}", at.0, at.1)
}

/// Where a target's earliest new job sits: its level, and (due, id).
type Earliest = (usize, (i64, i64));

/// A payload's parts: the replica, the target, and where its earliest job sits, if given (a
/// payload of two parts is an older replica's).
fn parse(payload: &str) -> Option<(&str, TargetName, Option<Earliest>)> {
    let mut parts = payload.split(' ');
    let from = parts.next()?;
    let target = TargetName::new(parts.next()?).ok()?;
    let at = match (parts.next(), parts.next(), parts.next()) {
        (Some(level), Some(due), Some(id)) => {
            Some((level.parse().ok()?, (due.parse().ok()?, id.parse().ok()?)))
        }
        _ => None,
    };
    Some((from, target, at))
}

/// Listens for new work until aborted, telling `announce` of each target that another replica
/// (not `owner`, which tells its own lanes itself) made jobs for.
pub(super) fn listen(
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    owner: String,
    announce: Arc<RwLock<Option<NewWork>>>,
    cursors: Arc<Cursors>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(error) = listen_once(&config, tls.clone(), &owner, &announce, &cursors).await
            {
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
    cursors: &Cursors,
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
    // Jobs made while the listener was away are found by the lanes' polls and full scans.
    while let Some(payload) = targets.recv().await {
        let Some((from, target, at)) = parse(&payload) else {
            continue;
        };
        if from == owner {
            continue;
        }
        match at {
            Some((level, at)) => cursors.lower(&target, level, at),
            None => cursors.forget(&target),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_names_the_replica_the_target_and_where_its_earliest_job_sits() {
        let payload = payload("replica-a", "pager", 1, (-5, 42));
        let (from, target, at) = parse(&payload).expect("parsed");
        assert_eq!(
            (from, target.as_str(), at),
            ("replica-a", "pager", Some((1, (-5, 42))))
        );
        // An older replica's payload names no place: the lane scans from the start.
        let (_, target, at) = parse("replica-b pager").expect("parsed");
        assert_eq!((target.as_str(), at), ("pager", None));
        assert!(parse("replica-c Not_A_Target").is_none());
    }
}
