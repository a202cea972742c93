//! From the update stream to the handlers: updates of one chat in order, chats concurrently,
//! and nothing kept for a chat with nothing pending.
//!
//! teloxide's `Dispatcher` gives every chat a worker task and a channel whose first block holds
//! 32 updates (~28 KB), and keeps them as long as there are no more workers than the most that
//! were ever busy at once — a high-water mark that never falls. One burst from 500 chats left
//! ~15 MB behind for good. Here a chat is a queue in a map while it has updates pending, and one
//! task drains it; the entry goes when the queue is empty.
//!
//! Bounds: at most [`PENDING_LIMIT`] updates wait overall (then the listener stops fetching, and
//! Telegram keeps the rest); at most [`CHAT_QUEUE_LIMIT`] per chat — a chat sending faster than
//! its commands can be answered loses the excess (counted and logged) rather than stalling every
//! other chat behind it.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

/// Updates waiting or being handled, all chats together: ~2 KB each as parsed, so at most a few
/// MB; far more than a Bot API server hands out per `getUpdates` (100).
pub const PENDING_LIMIT: usize = 1024;
/// Updates waiting in one chat's queue (besides the one being handled).
pub const CHAT_QUEUE_LIMIT: usize = 64;

/// What the dispatcher counted, for `/metrics`.
#[derive(Default)]
pub struct DispatchStats {
    handled: AtomicU64,
    dropped: AtomicU64,
    panicked: AtomicU64,
}

impl DispatchStats {
    pub fn write_metrics(&self, out: &mut String, pending: usize) {
        use std::fmt::Write;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        for (name, help, v) in [
            (
                "tg_bot_updates_handled_total",
                "Bot updates handed to a handler.",
                load(&self.handled),
            ),
            (
                "tg_bot_updates_dropped_total",
                "Bot updates dropped because their chat already had a full queue.",
                load(&self.dropped),
            ),
            (
                "tg_bot_handler_panics_total",
                "Bot handlers that panicked (the chat's next update is still handled).",
                load(&self.panicked),
            ),
        ] {
            crate::health::counter(out, name, help, v);
        }
        let _ = writeln!(
            out,
            "# HELP tg_bot_updates_pending Bot updates waiting or being handled.\n# TYPE tg_bot_updates_pending gauge\ntg_bot_updates_pending {pending}"
        );
    }
}

/// Whether [`ChatDispatcher::push`] queued the update.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// The chat already had [`CHAT_QUEUE_LIMIT`] updates waiting.
    Dropped,
}

type Queues<T> = Mutex<HashMap<i64, VecDeque<(T, OwnedSemaphorePermit)>>>;

/// Runs `handler` on items keyed by chat: one chat's items one after another, in order.
pub struct ChatDispatcher<T, H> {
    queues: Arc<Queues<T>>,
    slots: Arc<Semaphore>,
    handler: H,
    tasks: TaskTracker,
    pub stats: Arc<DispatchStats>,
    limit: usize,
    chat_limit: usize,
}

impl<T, H, Fut> ChatDispatcher<T, H>
where
    T: Send + 'static,
    H: Fn(T) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    pub fn new(handler: H) -> Self {
        Self::with_limits(handler, PENDING_LIMIT, CHAT_QUEUE_LIMIT)
    }

    pub fn with_limits(handler: H, pending: usize, chat_limit: usize) -> Self {
        let limit = pending.max(1);
        ChatDispatcher {
            queues: Arc::default(),
            slots: Arc::new(Semaphore::new(limit)),
            limit,
            handler,
            tasks: TaskTracker::new(),
            stats: Arc::default(),
            chat_limit,
        }
    }

    /// Updates waiting or being handled.
    pub fn pending(&self) -> usize {
        self.limit - self.slots.available_permits()
    }

    /// Chats with something pending.
    pub fn busy_chats(&self) -> usize {
        lock(&self.queues).len()
    }

    /// Queues `item` for `chat`; waits while [`PENDING_LIMIT`] updates are pending.
    pub async fn push(&self, chat: i64, item: T) -> Pushed {
        let Ok(permit) = self.slots.clone().acquire_owned().await else {
            // The semaphore is never closed.
            return Pushed::Dropped;
        };
        {
            let mut queues = lock(&self.queues);
            if let Some(queue) = queues.get_mut(&chat) {
                if queue.len() >= self.chat_limit {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    return Pushed::Dropped;
                }
                queue.push_back((item, permit));
                return Pushed::Queued;
            }
            queues.insert(chat, VecDeque::new());
        }
        let queues = self.queues.clone();
        let handler = self.handler.clone();
        let stats = self.stats.clone();
        self.tasks.spawn(async move {
            let mut next = Some((item, permit));
            while let Some((item, permit)) = next.take() {
                // A panicking handler must not leave the chat's entry behind: its queue would
                // then never be drained again.
                if AssertUnwindSafe(handler(item))
                    .catch_unwind()
                    .await
                    .is_err()
                {
                    stats.panicked.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        chat,
                        "a bot handler panicked; the chat's next update is handled as usual"
                    );
                }
                stats.handled.fetch_add(1, Ordering::Relaxed);
                drop(permit);
                let mut queues = lock(&queues);
                next = match queues.get_mut(&chat).and_then(VecDeque::pop_front) {
                    Some(n) => Some(n),
                    None => {
                        queues.remove(&chat);
                        if queues.is_empty() && queues.capacity() > 64 {
                            // After a burst from many chats, give the table's memory back.
                            queues.shrink_to_fit();
                        }
                        None
                    }
                };
            }
        });
        Pushed::Queued
    }

    /// Waits until every queued update was handled.
    pub async fn finish(&self) {
        self.tasks.close();
        self.tasks.wait().await;
        self.tasks.reopen();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock can only come from the allocator; the map stays usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    type Log = Arc<Mutex<Vec<(i64, u32)>>>;

    fn recorder(
        log: Log,
        delay: Duration,
    ) -> impl Fn((i64, u32)) -> futures::future::BoxFuture<'static, ()> + Clone {
        move |(chat, n)| {
            let log = log.clone();
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                log.lock().unwrap().push((chat, n));
            })
        }
    }

    #[tokio::test]
    async fn one_chats_updates_run_in_order_and_chats_concurrently() {
        let log: Log = Arc::default();
        let d = ChatDispatcher::new(recorder(log.clone(), Duration::from_millis(20)));
        let t = std::time::Instant::now();
        for n in 0..5 {
            for chat in 0..50 {
                assert_eq!(d.push(chat, (chat, n)).await, Pushed::Queued);
            }
        }
        d.finish().await;
        // 50 chats x 5 updates of 20 ms each: in order per chat, so about 100 ms, not 5 s.
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 250);
        for chat in 0..50 {
            let seen: Vec<u32> = log
                .iter()
                .filter(|(c, _)| *c == chat)
                .map(|(_, n)| *n)
                .collect();
            assert_eq!(seen, vec![0, 1, 2, 3, 4], "chat {chat}");
        }
        assert_eq!(d.busy_chats(), 0, "idle chats keep no entry");
        assert_eq!(d.pending(), 0);
    }

    #[tokio::test]
    async fn slow_chat_does_not_stall_others() {
        let log: Log = Arc::default();
        let gate = Arc::new(tokio::sync::Notify::new());
        let handler = {
            let log = log.clone();
            let gate = gate.clone();
            move |(chat, n): (i64, u32)| {
                let log = log.clone();
                let gate = gate.clone();
                async move {
                    if chat == 1 {
                        gate.notified().await;
                    }
                    log.lock().unwrap().push((chat, n));
                }
            }
        };
        let d = ChatDispatcher::new(handler);
        d.push(1, (1, 0)).await;
        d.push(1, (1, 1)).await;
        for n in 0..10 {
            d.push(2, (2, n)).await;
        }
        tokio::time::timeout(Duration::from_secs(5), async {
            while log.lock().unwrap().len() < 10 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("chat 2 was handled while chat 1 waited");
        assert!(log.lock().unwrap().iter().all(|(c, _)| *c == 2));
        gate.notify_one();
        gate.notify_one();
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                gate.notify_one();
                if log.lock().unwrap().len() == 12 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
        d.finish().await;
    }

    #[tokio::test]
    async fn full_chat_queue_drops_the_excess_only_for_that_chat() {
        let log: Log = Arc::default();
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let handler = {
            let log = log.clone();
            let gate = gate.clone();
            move |(chat, n): (i64, u32)| {
                let log = log.clone();
                let gate = gate.clone();
                async move {
                    if chat == 1 {
                        gate.acquire().await.unwrap().forget();
                    }
                    log.lock().unwrap().push((chat, n));
                }
            }
        };
        let d = ChatDispatcher::with_limits(handler, 100, 3);
        // One handled (waiting on the gate) + 3 queued; the fifth and sixth are dropped.
        let pushed: Vec<Pushed> = {
            let mut v = Vec::new();
            for n in 0..6 {
                v.push(d.push(1, (1, n)).await);
            }
            v
        };
        assert_eq!(pushed.iter().filter(|p| **p == Pushed::Dropped).count(), 2);
        assert_eq!(
            d.push(2, (2, 0)).await,
            Pushed::Queued,
            "other chats unaffected"
        );
        gate.add_permits(10);
        d.finish().await;
        let log = log.lock().unwrap();
        let chat1: Vec<u32> = log
            .iter()
            .filter(|(c, _)| *c == 1)
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(chat1, vec![0, 1, 2, 3], "the first ones kept, in order");
        assert_eq!(d.stats.dropped.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn pending_limit_holds_the_producer_back_until_updates_are_handled() {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let handler = {
            let gate = gate.clone();
            move |_: u32| {
                let gate = gate.clone();
                async move { gate.acquire().await.unwrap().forget() }
            }
        };
        let d = Arc::new(ChatDispatcher::with_limits(handler, 4, 64));
        for chat in 0..4 {
            d.push(chat, 0).await;
        }
        let blocked = {
            let d = d.clone();
            tokio::spawn(async move { d.push(9, 0).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !blocked.is_finished(),
            "a fifth pending update waits for a slot"
        );
        assert_eq!(d.pending(), 4);
        gate.add_permits(1);
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(5), blocked)
                .await
                .unwrap()
                .unwrap(),
            Pushed::Queued
        );
        gate.add_permits(10);
        d.finish().await;
    }

    #[tokio::test]
    async fn handler_panic_leaves_the_chat_usable() {
        let log: Log = Arc::default();
        let handler = {
            let log = log.clone();
            move |(chat, n): (i64, u32)| {
                let log = log.clone();
                async move {
                    if n == 0 {
                        panic!("handler bug");
                    }
                    log.lock().unwrap().push((chat, n));
                }
            }
        };
        let d = ChatDispatcher::new(handler);
        d.push(7, (7, 0)).await;
        d.push(7, (7, 1)).await;
        d.finish().await;
        d.push(7, (7, 2)).await;
        d.finish().await;
        assert_eq!(*log.lock().unwrap(), vec![(7, 1), (7, 2)]);
        assert_eq!(d.stats.panicked.load(Ordering::Relaxed), 1);
        assert_eq!(d.busy_chats(), 0);
    }
}
