//! Calls that arrive together go to the database together: the first caller leads and runs
//! every call queued so far as one batch; a caller whose call queued while that batch ran leads
//! the next one. The others wait for their answers. So a busy replica's lanes lease and settle
//! in one statement for many jobs, an idle one answers each call at once, with no timer, and
//! no caller is held for longer than one batch of others' calls (a lane that led is back to its
//! own jobs after one batch).
//!
//! A leader dropped mid-batch (its caller went away) hands the lead to a waiting caller; the
//! calls of the batch it was running get no answer, which their callers see as `None`.
//!
//! A gathering batcher ([`Batcher::gathering`]) is for calls whose answer nobody waits on
//! closely (the acks): while calls come together (the last batch held more than one), its
//! leader waits up to a set time for enough calls before it takes them, so a busy replica
//! makes fewer, larger statements; a lone call is never held.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};

/// The calls waiting for a batch, each with where its answer goes.
pub(super) struct Batcher<R, A> {
    waiting: Mutex<Waiting<R, A>>,
    /// Wakes a waiting caller to lead when a leader was dropped.
    handover: Notify,
    /// How long a leader may wait for calls, and how many end the wait.
    gather: Option<(Duration, usize)>,
    /// Wakes a gathering leader once enough calls wait.
    filled: Notify,
}

struct Waiting<R, A> {
    queue: Vec<(R, oneshot::Sender<A>)>,
    leading: bool,
    /// How many calls the last batch held.
    last_batch: usize,
}

impl<R, A> Default for Batcher<R, A> {
    fn default() -> Self {
        Self {
            waiting: Mutex::new(Waiting {
                queue: Vec::new(),
                leading: false,
                last_batch: 0,
            }),
            handover: Notify::new(),
            gather: None,
            filled: Notify::new(),
        }
    }
}

/// Gives the lead up if the leader is dropped before the queue is empty.
struct Leading<'a, R, A>(&'a Batcher<R, A>, bool);

impl<R, A> Drop for Leading<'_, R, A> {
    fn drop(&mut self) {
        if self.1 {
            self.0.lock().leading = false;
            self.0.handover.notify_one();
        }
    }
}

impl<R, A> Batcher<R, A> {
    /// A batcher whose leader, while calls come together, waits up to `wait` for `enough` of
    /// them before it takes its batch.
    pub(super) fn gathering(wait: Duration, enough: usize) -> Self {
        Self {
            gather: Some((wait, enough)),
            ..Self::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting<R, A>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `request` and returns its answer: `work` answers a batch of requests, one answer
    /// each, in order. `None` if the batch that held it was dropped unanswered.
    pub(super) async fn call<F, W>(&self, request: R, work: W) -> Option<A>
    where
        W: Fn(Vec<R>) -> F,
        F: Future<Output = Vec<A>>,
    {
        let (sender, mut answer) = oneshot::channel();
        let mut lead = {
            let mut waiting = self.lock();
            waiting.queue.push((request, sender));
            if self
                .gather
                .is_some_and(|(_, enough)| waiting.queue.len() == enough)
            {
                self.filled.notify_waiters();
            }
            !std::mem::replace(&mut waiting.leading, true)
        };
        loop {
            if lead {
                // One batch: every call queued now, this one among them (unless a batch before
                // answered it). Then the lead passes on, so no caller waits on other callers'
                // batches for longer than one of them.
                let mut guard = Leading(self, true);
                if let Some((wait, enough)) = self.gather {
                    // Listening before looking, so a call that fills the batch meanwhile is heard.
                    let filled = self.filled.notified();
                    tokio::pin!(filled);
                    filled.as_mut().enable();
                    let gather = {
                        let waiting = self.lock();
                        waiting.last_batch > 1 && waiting.queue.len() < enough
                    };
                    if gather {
                        let _ = tokio::time::timeout(wait, filled).await;
                    }
                }
                let batch = {
                    let mut waiting = self.lock();
                    waiting.last_batch = waiting.queue.len();
                    std::mem::take(&mut waiting.queue)
                };
                if !batch.is_empty() {
                    let (requests, senders): (Vec<R>, Vec<_>) = batch.into_iter().unzip();
                    let answers = work(requests).await;
                    for (sender, answer) in senders.into_iter().zip(answers) {
                        let _ = sender.send(answer);
                    }
                }
                let mut waiting = self.lock();
                waiting.leading = false;
                guard.1 = false;
                if !waiting.queue.is_empty() {
                    // Calls queued meanwhile: one of their callers leads the next batch.
                    self.handover.notify_one();
                }
            }
            tokio::select! {
                answer = &mut answer => return answer.ok(),
                () = self.handover.notified() => {
                    let mut waiting = self.lock();
                    lead = !waiting.queue.is_empty() && !std::mem::replace(&mut waiting.leading, true);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn calls_that_wait_together_run_as_one_batch() {
        let batcher: Arc<Batcher<u32, u32>> = Arc::default();
        let batches = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(Notify::new());
        let mut calls = Vec::new();
        for i in 0..5 {
            let (batcher, batches, release) = (
                Arc::clone(&batcher),
                Arc::clone(&batches),
                Arc::clone(&release),
            );
            calls.push(tokio::spawn(async move {
                batcher
                    .call(i, |requests: Vec<u32>| {
                        let (batches, release) = (Arc::clone(&batches), Arc::clone(&release));
                        async move {
                            batches.fetch_add(1, Ordering::SeqCst);
                            // The first batch holds until every other call queued behind it.
                            if requests == [0] {
                                release.notified().await;
                            }
                            requests.iter().map(|r| r * 10).collect()
                        }
                    })
                    .await
            }));
            tokio::task::yield_now().await;
        }
        release.notify_one();
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await.expect("call"));
        }
        assert_eq!(answers, [Some(0), Some(10), Some(20), Some(30), Some(40)]);
        assert_eq!(
            batches.load(Ordering::SeqCst),
            2,
            "the first call alone, then the four queued behind it together"
        );
    }

    #[tokio::test]
    async fn a_leader_returns_after_one_batch_while_the_next_is_still_running() {
        let batcher: Arc<Batcher<u32, u32>> = Arc::default();
        let release = Arc::new(Notify::new());
        let started = Arc::new(Notify::new());
        let call = |i: u32| {
            let (batcher, release, started) = (
                Arc::clone(&batcher),
                Arc::clone(&release),
                Arc::clone(&started),
            );
            tokio::spawn(async move {
                batcher
                    .call(i, |requests: Vec<u32>| {
                        let (release, started) = (Arc::clone(&release), Arc::clone(&started));
                        async move {
                            started.notify_one();
                            release.notified().await;
                            requests
                        }
                    })
                    .await
            })
        };
        let first = call(1);
        started.notified().await;
        // The second call queues while the first's batch runs.
        let second = call(2);
        tokio::task::yield_now().await;
        release.notify_one();
        let first = tokio::time::timeout(std::time::Duration::from_secs(5), first)
            .await
            .expect("the first call returned after its own batch, not after the next one");
        assert_eq!(first.expect("first"), Some(1), "the first call's own batch");
        // The second call leads its own batch; the first returned without waiting for it.
        started.notified().await;
        release.notify_one();
        assert_eq!(second.await.expect("second"), Some(2));
    }

    #[tokio::test]
    async fn a_dropped_leader_hands_the_lead_over() {
        let batcher: Arc<Batcher<u32, u32>> = Arc::default();
        let stuck = Arc::new(Notify::new());
        let leader = {
            let (batcher, stuck) = (Arc::clone(&batcher), Arc::clone(&stuck));
            tokio::spawn(async move {
                batcher
                    .call(1, |r: Vec<u32>| {
                        let stuck = Arc::clone(&stuck);
                        async move {
                            stuck.notified().await;
                            r
                        }
                    })
                    .await
            })
        };
        tokio::task::yield_now().await;
        let follower = {
            let batcher = Arc::clone(&batcher);
            tokio::spawn(async move { batcher.call(2, |r: Vec<u32>| async move { r }).await })
        };
        tokio::task::yield_now().await;
        leader.abort();
        assert!(leader.await.is_err(), "the leader was cancelled");
        assert_eq!(
            follower.await.expect("follower"),
            Some(2),
            "the waiting call leads its own batch once the leader is gone"
        );
    }

    /// Runs `n` calls of `batcher` together: the first holds its batch until the others have
    /// queued, so the batch after it carries them all. Returns each call's batch size.
    async fn calls_together(batcher: &Arc<Batcher<u32, usize>>, n: u32) -> Vec<usize> {
        let release = Arc::new(Notify::new());
        let mut calls = Vec::new();
        for i in 0..n {
            let (batcher, release) = (Arc::clone(batcher), Arc::clone(&release));
            calls.push(tokio::spawn(async move {
                batcher
                    .call(i, |requests: Vec<u32>| {
                        let release = Arc::clone(&release);
                        async move {
                            if requests == [0] {
                                release.notified().await;
                            }
                            vec![requests.len(); requests.len()]
                        }
                    })
                    .await
                    .expect("answered")
            }));
            tokio::task::yield_now().await;
        }
        release.notify_one();
        let mut sizes = Vec::new();
        for call in calls {
            sizes.push(call.await.expect("call"));
        }
        sizes
    }

    async fn one_call(batcher: &Arc<Batcher<u32, usize>>, i: u32) -> usize {
        batcher
            .call(i, |requests: Vec<u32>| async move {
                vec![requests.len(); requests.len()]
            })
            .await
            .expect("answered")
    }

    #[tokio::test(start_paused = true)]
    async fn a_gathering_batcher_never_holds_a_lone_call() {
        let batcher = Arc::new(Batcher::gathering(Duration::from_millis(10), 8));
        let start = tokio::time::Instant::now();
        assert_eq!(one_call(&batcher, 1).await, 1);
        assert_eq!(one_call(&batcher, 2).await, 1);
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "calls that come one at a time are answered at once"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn while_calls_come_together_the_leader_waits_for_more() {
        let batcher = Arc::new(Batcher::gathering(Duration::from_millis(10), 3));
        assert_eq!(calls_together(&batcher, 4).await, [1, 3, 3, 3]);
        // The last batch held three: the next leader waits, here the whole time, since no other
        // call comes.
        let start = tokio::time::Instant::now();
        assert_eq!(one_call(&batcher, 9).await, 1);
        assert_eq!(start.elapsed(), Duration::from_millis(10));
        // That batch held one: the next call is answered at once.
        let start = tokio::time::Instant::now();
        assert_eq!(one_call(&batcher, 10).await, 1);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn enough_calls_end_the_wait() {
        let batcher = Arc::new(Batcher::gathering(Duration::from_secs(60), 3));
        assert_eq!(calls_together(&batcher, 3).await, [1, 2, 2]);
        let start = tokio::time::Instant::now();
        let mut calls = Vec::new();
        for i in 0..3 {
            let batcher = Arc::clone(&batcher);
            calls.push(tokio::spawn(async move { one_call(&batcher, i).await }));
            tokio::task::yield_now().await;
        }
        let mut sizes = Vec::new();
        for call in calls {
            sizes.push(call.await.expect("call"));
        }
        assert_eq!(sizes, [3, 3, 3], "the three calls went as one batch");
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the third call ended the wait, not the timer"
        );
    }
}
